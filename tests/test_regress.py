"""The CI regression gate passes an unchanged table and catches a defense that got worse (on a real run;
hand-made tables and property tests are in test_regress_gate.py)."""

import pytest

from privbench.cli import main
from privbench.regress import compare
from privbench.results import TIMING_METRICS, write_csv


def run_main(args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code


def test_identical_tables_pass(small_run):
    verdict = compare(small_run.frame.copy(), small_run.frame.copy())
    timings = small_run.frame["metric"].isin(TIMING_METRICS)
    assert timings.any() and verdict.ok and len(verdict.table) == len(small_run.frame) - timings.sum()


def test_timings_are_not_gated_but_a_heavier_edge_is(small_run):
    base = small_run.frame.copy()
    slower = base.copy()
    slower.loc[slower["metric"] == "edge-latency-ms", "value"] *= 10
    assert compare(slower, base).ok
    heavier = base.copy()
    heavier.loc[heavier["metric"] == "edge-params", "value"] += 1000
    assert set(compare(heavier, base).regressions["metric"]) == {"edge-params"}


def test_leakier_defense_and_lost_utility_are_caught(small_run, tmp_path, capsys):
    base = small_run.frame.copy()
    worse = base.copy()
    leak = (worse.metric == "psnr") & (worse.defense == "noise") & (worse.strength > 0)
    # the attack now reconstructs better by 1 dB more than the two CI half-widths (a single-run baseline: no spread)
    worse.loc[leak, "value"] += (worse.loc[leak, "ci_high"] - worse.loc[leak, "ci_low"]) + 1.0
    verdict = compare(worse, base)
    assert set(verdict.regressions.metric) == {"psnr"}
    assert len(verdict.regressions) == leak.sum()

    better = base.copy()
    better.loc[leak, "value"] -= 10.0  # more private is not a regression
    assert compare(better, base).ok

    write_csv(base, tmp_path / "base.csv")
    write_csv(worse, tmp_path / "now.csv")
    assert run_main(["regress", str(tmp_path / "base.csv"), "--baseline", str(tmp_path / "base.csv")]) == 0
    assert run_main(["regress", str(tmp_path / "now.csv"), "--baseline", str(tmp_path / "base.csv")]) == 1
    out = capsys.readouterr().out
    assert "regressed" in out and "psnr" in out and "past it by" in out and "single run" in out
    # a generous floor lets it through
    assert run_main(["regress", str(tmp_path / "now.csv"), "--baseline", str(tmp_path / "base.csv"),
                     "--tol", "psnr=100"]) == 0


def test_missing_rows_fail(small_run):
    base = small_run.frame.copy()
    current = base[base.defense != "dropout"].copy()
    verdict = compare(current, base)
    gated = ~base["metric"].isin(TIMING_METRICS)
    assert not verdict.ok and len(verdict.missing) == ((base.defense == "dropout") & gated).sum()


def test_a_measured_spread_absorbs_run_to_run_noise(small_run):
    """The same move fails against a single run and passes against a baseline whose seeds spread that far."""
    base = small_run.frame.copy()
    moved = base.copy()
    leak = moved.metric == "psnr"
    moved.loc[leak, "value"] += (moved.loc[leak, "ci_high"] - moved.loc[leak, "ci_low"]) + 1.0
    assert not compare(moved, base).ok
    assert compare(moved, base.assign(spread=1.5, seeds=3)).ok


def test_the_committed_quick_baseline_passes_against_itself():
    from pathlib import Path

    from privbench.regress import read_table

    path = Path(__file__).resolve().parents[1] / "results" / "baselines" / "quick.csv"
    table = read_table(path, "baseline")
    assert "spread" in table.columns and (table["seeds"] >= 3).all()
    assert compare(table.drop(columns=["spread", "seeds"]), table).ok
