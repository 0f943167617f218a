"""The regression gate on small hand-made tables: typed matching, one-line rejection of bad input, the
direction of each metric, the spread + CI allowance, and property tests of the matching."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privbench.baseline import aggregate, parse_seeds
from privbench.cli import main, resolve_config
from privbench.errors import PrivbenchError
from privbench.regress import compare, format_verdict, read_table
from privbench.results import COLUMNS, write_csv


def row(metric: str, value: float, strength: float = 1.0, kind: str | None = None, attack: str = "rmle",
        dataset: str = "synth-faces", half: float | None = 0.005, **extra) -> dict:
    kind = kind or {"accuracy": "utility", "edge-params": "cost", "edge-macs": "cost",
                    "edge-latency-ms": "cost"}.get(metric, "privacy")
    base = {c: "" for c in COLUMNS}
    base.update(run_id="r", config_hash="h", seed=0, dataset=dataset, model="vgg-small", split="relu12",
                defense="noise", defense_params=f'{{"scale":{strength:g}}}', strength=strength, codec="none",
                quality=float("nan"), attack=attack, metric=metric, kind=kind, value=value,
                ci_low=float("nan") if half is None else value - half,
                ci_high=float("nan") if half is None else value + half, ci_method="normal95", n=10, seconds=1.0)
    base.update(extra)
    return base


def table(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=[*COLUMNS, *[k for k in rows[0] if k not in COLUMNS]])


def run_main(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code


GRID = [row("psnr", 15.0, 0.0), row("psnr", 12.0, 1.0), row("ssim", 0.4, 1.0), row("mse", 0.03, 1.0),
        row("accuracy", 0.6, 1.0, attack="none", dataset="synth-scenes"),
        row("edge-params", 840.0, 1.0, attack="none", dataset="edge", half=None),
        row("edge-latency-ms", 0.2, 1.0, attack="none", dataset="edge", half=None)]


# -- typed matching and rejected input -------------------------------------------------------------------------

def test_whole_number_strengths_match_their_float_spelling(tmp_path):
    """'%.6g' writes 1.0 as '1': a baseline with whole strengths must still match a run with 1.0."""
    base = tmp_path / "base.csv"
    base.write_text(",".join(COLUMNS) + "\n" + "\n".join(
        f"r,h,0,0.1,x,synth-faces,vgg-small,relu12,noise,{{}},{s},none,,,rmle,psnr,privacy,12,11.9,12.1,normal95,10,1"
        for s in ("0", "1", "2")) + "\n")
    now = table(*(row("psnr", 12.0, float(s), defense_params="{}") for s in (0, 1, 2)))
    write_csv(now, tmp_path / "now.csv")
    verdict = compare(read_table(tmp_path / "now.csv", "current"), read_table(base, "baseline"))
    assert verdict.ok and len(verdict.table) == 3 and verdict.missing.empty


@pytest.mark.parametrize("content, message", [
    ("", "empty (0 bytes)"),
    ("\n\n", "no header"),
    (",".join(COLUMNS) + "\n", "no rows"),
    ("metric,value\npsnr,1\n", "missing column 'dataset'"),
    (",".join(COLUMNS) + '\n"unterminated\n', "not a valid results CSV"),
    (",".join(COLUMNS) + "\nr,h,0,0.1,x,synth-faces,vgg-small,relu12,noise,{},one,none,,,rmle,psnr,privacy,1,0,2,n,1,1\n",
     "not a valid results CSV"),
])
def test_malformed_files_are_one_line_errors(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    write_csv(table(*GRID), tmp_path / "good.csv")
    with pytest.raises(PrivbenchError, match="bad.csv"):
        read_table(bad, "baseline")
    assert run_main(["regress", str(tmp_path / "good.csv"), "--baseline", str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_missing_file_is_one_line(tmp_path, capsys):
    write_csv(table(*GRID), tmp_path / "good.csv")
    assert run_main(["regress", str(tmp_path / "nope.csv"), "--baseline", str(tmp_path / "good.csv")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("frame, message", [
    (table(*GRID, row("psnr", 12.5, 1.0)), "rows sharing a key"),
    (table(*GRID[:-1], row("ssim", float("nan"), 2.0)), "no value"),
    (table(*GRID, row("ssim", 0.4, 2.0, ci_low=float("nan"))), "no ci_low"),
    (table(row("psnr", 1.0, float("nan"))), "no strength"),
    (table(*GRID).iloc[0:0], "no rows"),
    (table(GRID[-1]), "only timing rows"),
    (table(*GRID).drop(columns=["ci_high"]), "missing column 'ci_high'"),
])
def test_bad_tables_are_rejected_on_either_side(frame, message):
    good = table(*GRID)
    with pytest.raises(PrivbenchError, match=message):
        compare(frame, good)
    with pytest.raises(PrivbenchError, match=message):
        compare(good, frame)


def test_cost_rows_may_have_no_ci():
    assert compare(table(*GRID), table(*GRID)).ok


# -- direction, allowance, output ------------------------------------------------------------------------------

@pytest.mark.parametrize("metric, step, worse", [
    ("psnr", +1.0, True), ("psnr", -1.0, False),            # higher PSNR = better reconstruction = more leakage
    ("ssim", +0.2, True), ("ssim", -0.2, False),
    ("mse", -0.02, True), ("mse", +0.02, False),            # lower MSE = more leakage
    ("accuracy", -0.2, True), ("accuracy", +0.2, False),    # lower accuracy = lost utility
    ("edge-params", +100, True), ("edge-params", -100, False),  # a heavier edge is worse
    ("edge-latency-ms", +100, False), ("edge-latency-ms", -100, False),  # timings are never gated
])
def test_direction_per_metric(metric, step, worse):
    base = table(*GRID)
    now = base.copy()
    now.loc[now.metric == metric, ["value", "ci_low", "ci_high"]] += step
    verdict = compare(now, base)
    assert (not verdict.ok) == worse
    if worse:
        assert set(verdict.regressions.metric) == {metric}


def test_direction_is_read_from_the_metric_class():
    from privbench.components import load_components
    from privbench.registry import METRICS
    from privbench.regress import worse_direction

    load_components()
    for name in ("psnr", "ssim", "face-id", "plate", "par-ma", "mse"):
        assert worse_direction(name, "privacy") == (1 if METRICS.get(name).higher_is_leakier else -1)
    assert worse_direction("face-id", "privacy") == 1 and worse_direction("mse", "privacy") == -1
    with pytest.raises(PrivbenchError, match="not registered"):
        worse_direction("no-such-metric", "privacy")


def baseline_with_spread(spread: float, half: float = 0.1) -> pd.DataFrame:
    base = table(*(row("psnr", 12.0, s, half=half) for s in (0.0, 1.0)))
    return base.assign(spread=spread, seeds=3)


def test_a_move_inside_the_spread_passes_and_past_it_fails_named(tmp_path, capsys):
    base = baseline_with_spread(2.0)  # allowance = 1.5 × 2.0 + 0.1 + 0.1 = 3.2 (> the psnr floor 0.5)
    inside = base.drop(columns=["spread", "seeds"]).copy()
    inside[["value", "ci_low", "ci_high"]] += 3.1
    assert compare(inside, base).ok
    past = inside.copy()
    past.loc[past.strength == 1.0, ["value", "ci_low", "ci_high"]] += 0.4  # 3.5 > 3.2
    verdict = compare(past, base)
    assert len(verdict.regressions) == 1 and verdict.regressions.iloc[0]["strength"] == 1.0
    text = format_verdict(verdict)
    assert "synth-faces noise=1 rmle psnr: 15.5 vs baseline 12 ± spread 2 (3 seeds)" in text
    assert "allowance 3.2" in text and "past it by 0.3" in text
    # the same move against a single-run (legacy) baseline: spread 0, so it fails and the output says why
    legacy = compare(inside, base.drop(columns=["spread", "seeds"]))
    assert len(legacy.regressions) == 2 and legacy.legacy_baseline and "single run" in format_verdict(legacy)
    # through the CLI, from files
    write_csv(base, tmp_path / "base.csv")
    write_csv(past, tmp_path / "now.csv")
    assert run_main(["regress", str(tmp_path / "now.csv"), "--baseline", str(tmp_path / "base.csv")]) == 1
    assert "past it by" in capsys.readouterr().out


def test_tol_is_a_floor_under_the_allowance():
    base = baseline_with_spread(0.0, half=0.0)
    now = base.drop(columns=["spread", "seeds"]).copy()
    now["value"] += 0.4
    assert compare(now, base).ok  # psnr floor 0.5
    assert not compare(now, base, {"psnr": 0.3}).ok
    assert compare(now, base, {"psnr": 1.0}).ok


def test_missing_points_fail_and_extra_points_do_not():
    base = table(*GRID)
    verdict = compare(base.iloc[1:], base)
    assert not verdict.ok and len(verdict.missing) == 1
    assert compare(base, base.iloc[1:]).ok


# -- baseline aggregation ---------------------------------------------------------------------------------------

def test_aggregate_mean_spread_and_widest_ci():
    runs = [table(row("psnr", v, 1.0, half=h, seed=s), row("edge-params", 840.0, 1.0, kind="cost", attack="none",
                                                          dataset="edge", half=None, seed=s))
            for s, (v, h) in enumerate([(10.0, 0.2), (11.0, 0.5), (12.5, 0.1)])]
    out = aggregate(runs)
    psnr = out[out.metric == "psnr"].iloc[0]
    assert psnr["value"] == pytest.approx(11.1666, abs=1e-3) and psnr["spread"] == pytest.approx(2.5)
    assert psnr["ci_high"] - psnr["value"] == pytest.approx(0.5) and psnr["seeds"] == 3 and psnr["seed"] == "0 1 2"
    cost = out[out.metric == "edge-params"].iloc[0]
    assert cost["spread"] == 0 and pd.isna(cost["ci_low"])
    with pytest.raises(PrivbenchError, match="one grid"):
        aggregate([runs[0], runs[1].iloc[:1]])


def test_parse_seeds():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("0", "0,0", "a,b"):
        with pytest.raises(PrivbenchError):
            parse_seeds(bad)


def test_shipped_config_names_resolve(tmp_path, monkeypatch):
    assert Path(resolve_config("quick")).name == "quick.yaml" and Path(resolve_config("default")).is_file()
    assert resolve_config(None) is None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quick").write_text("name: mine\n")
    assert resolve_config("quick") == "quick"  # a file of that name wins
    assert resolve_config("mine.yaml") == "mine.yaml"  # a path is used as given (and fails later if absent)
    with pytest.raises(PrivbenchError, match=r"presets: .*compression, default, detection, .*quick"):
        resolve_config("nosuch")


# -- properties -------------------------------------------------------------------------------------------------

LEAKS = ["psnr", "ssim", "par-ma", "plate", "face-id"]
FLOOR_FREE = {m: 0.0 for m in [*LEAKS, "accuracy", "mse"]}


@st.composite
def tables(draw) -> pd.DataFrame:
    strengths = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 4.0]), min_size=1, max_size=4, unique=True))
    metrics = draw(st.lists(st.sampled_from([*LEAKS, "mse"]), min_size=1, max_size=4, unique=True))
    values = st.floats(0.0, 30.0, allow_nan=False, allow_infinity=False)
    halves = st.floats(0.0, 2.0, allow_nan=False, allow_infinity=False)
    rows = [row(m, draw(values), s, half=draw(halves)) for s in strengths for m in metrics]
    rows.append(row("accuracy", draw(st.floats(0, 1)), 0.0, attack="none", dataset="synth-scenes"))
    frame = table(*rows)
    return frame.assign(spread=[draw(st.floats(0.0, 3.0)) for _ in range(len(frame))], seeds=3)


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(tables())
def test_property_a_table_passes_against_itself(frame):
    verdict = compare(frame, frame, FLOOR_FREE, 0.0)
    assert verdict.ok and len(verdict.table) == len(frame)


@SETTINGS
@given(tables(), st.randoms(use_true_random=False))
def test_property_row_order_changes_nothing(frame, rng):
    shifted = frame.copy()
    shifted["value"] = shifted["value"] + [rng.uniform(-3, 3) for _ in range(len(shifted))]
    order = list(range(len(frame)))
    rng.shuffle(order)
    a = compare(shifted, frame, FLOOR_FREE, 0.0)
    b = compare(shifted.iloc[order], frame.iloc[list(reversed(order))], FLOOR_FREE, 0.0)
    key = ["dataset", "strength", "metric"]
    assert a.regressions.sort_values(key)[key].values.tolist() == b.regressions.sort_values(key)[key].values.tolist()


@SETTINGS
@given(tables(), st.data())
def test_property_a_leak_past_its_allowance_always_fails(frame, data):
    leaks = frame.index[frame["metric"].isin(["psnr", "ssim", "par-ma", "plate", "face-id"])]
    if leaks.empty:
        return
    i = data.draw(st.sampled_from(list(leaks)))
    half = (frame.at[i, "ci_high"] - frame.at[i, "ci_low"]) / 2
    allowance = max(1.5 * frame.at[i, "spread"] + 2 * half, 0.5 if frame.at[i, "metric"] == "psnr" else 0.02)
    now = frame.drop(columns=["spread", "seeds"]).copy()
    bump = allowance + data.draw(st.floats(1e-3, 5.0))
    now.loc[i, ["value", "ci_low", "ci_high"]] += bump
    verdict = compare(now, frame)
    named = verdict.regressions
    assert len(named) == 1 and (named.iloc[0][["metric", "strength"]] == frame.loc[i, ["metric", "strength"]]).all()
