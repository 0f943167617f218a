"""The CI regression gate passes an unchanged table and catches a defense that got worse."""

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
    worse.loc[leak, "value"] += 3.0  # the attack now reconstructs 3 dB better
    worse.loc[worse.metric == "mse", "value"] -= 0.0  # unchanged
    verdict = compare(worse, base)
    assert set(verdict.regressions.metric) == {"psnr"}
    assert len(verdict.regressions) == leak.sum()

    better = base.copy()
    better.loc[leak, "value"] -= 3.0  # more private is not a regression
    assert compare(better, base).ok

    write_csv(base, tmp_path / "base.csv")
    write_csv(worse, tmp_path / "now.csv")
    assert run_main(["regress", str(tmp_path / "base.csv"), "--baseline", str(tmp_path / "base.csv")]) == 0
    assert run_main(["regress", str(tmp_path / "now.csv"), "--baseline", str(tmp_path / "base.csv")]) == 1
    out = capsys.readouterr().out
    assert "regressed" in out and "psnr" in out
    # a generous tolerance lets it through
    assert run_main(["regress", str(tmp_path / "now.csv"), "--baseline", str(tmp_path / "base.csv"),
                     "--tol", "psnr=5"]) == 0


def test_missing_rows_fail(small_run):
    base = small_run.frame.copy()
    current = base[base.defense != "dropout"].copy()
    verdict = compare(current, base)
    gated = ~base["metric"].isin(TIMING_METRICS)
    assert not verdict.ok and len(verdict.missing) == ((base.defense == "dropout") & gated).sum()
