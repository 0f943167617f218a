"""`privbench bd`: BD-rate / BD-metric of pipelines from a results table, on hand-made tables with the real columns.

The BD numbers must be exactly what `bjontegaard` gives on the same points; what privbench adds — the join of
rate and metric rows, the Pareto front, the overlap checks and their notes — is what these tests pin down.
"""

from __future__ import annotations

import json
import math

import bjontegaard
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from privbench.cli import cli, main
from privbench.errors import PrivbenchError
from privbench.metrics.bd import bd, bd_report, bd_table, curve, pareto_front, parse_selector
from privbench.results import COLUMNS, base_row, write_csv

TEST_SET, FACES, PLATES = "synth-scenes", "synth-faces", "synth-plates"


def point_rows(codec: str, quality: float, bpp: float, accuracy: float, psnr: dict[str, float] | None = None,
               seed: int = 0, placement: str = "features", defense: str = "noise", strength: float = 0.0,
               faces_bpp: float | None = None, probes: tuple[str, ...] = (FACES,)) -> list[dict]:
    """The rows one coded grid point writes: bpp per coded dataset, accuracy on the test set, a privacy metric
    per attack (plus attack=worst) on each probe set."""
    common = dict(seed=seed, model="vgg-small", split="relu12", defense=defense,
                  defense_params=json.dumps({"placement": "features", "scale": strength}, sort_keys=True),
                  strength=strength, codec=codec, quality=quality,
                  codec_params=json.dumps({"placement": placement, "clip_sigma": 6.0}, sort_keys=True) if codec != "none"
                  else "")
    rows = [base_row(**common, dataset=TEST_SET, attack="none", metric="accuracy", kind="utility", value=accuracy,
                     ci_low=accuracy - 0.05, ci_high=accuracy + 0.05, ci_method="wilson95", n=200)]
    if codec != "none":
        rows.append(base_row(**common, dataset=TEST_SET, attack="none", metric="bpp", kind="rate", value=bpp, n=200))
        for probe in probes:
            probe_bpp = faces_bpp if faces_bpp is not None else 1.5 * bpp
            rows.append(base_row(**common, dataset=probe, attack="none", metric="bpp", kind="rate", value=probe_bpp,
                                 n=16))
    for probe in probes:
        for attack, value in (psnr or {}).items():
            rows.append(base_row(**common, dataset=probe, attack=attack, metric="psnr", kind="privacy", value=value,
                                 ci_low=value - 1, ci_high=value + 1, ci_method="normal95", n=16))
    return rows


def pipeline(codec: str, rates, accuracies, placement: str = "features", **kw) -> list[dict]:
    return [r for q, (b, a) in enumerate(zip(rates, accuracies, strict=True))
            for r in point_rows(codec, 20 + 2 * q, b, a, placement=placement, **kw)]


def frame(*groups: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([r for g in groups for r in g], columns=COLUMNS)


ANCHOR_RATES = np.array([0.05, 0.1, 0.2, 0.4, 0.8])
ANCHOR_ACC = np.array([0.40, 0.52, 0.61, 0.66, 0.69])


@pytest.mark.parametrize("method", ["pchip", "akima"])
def test_lower_rate_at_equal_utility_is_a_negative_bd_rate_equal_to_bjontegaard(method):
    test_rates = ANCHOR_RATES * np.array([0.7, 0.75, 0.8, 0.78, 0.72])
    test_acc = ANCHOR_ACC + np.array([0.0, 0.01, 0.0, 0.005, 0.0])
    table = frame(pipeline("hevc", ANCHOR_RATES, ANCHOR_ACC, placement="input"), pipeline("hevc", test_rates, test_acc))
    anchor = curve(table, "codec=hevc,codec.placement=input", "accuracy")
    test = curve(table, "codec=hevc,codec.placement=features", "accuracy")
    assert anchor.dataset == TEST_SET and anchor.dropped == 0 and test.dropped == 0
    result = bd(anchor, test, method)
    expected_rate = bjontegaard.bd_rate(ANCHOR_RATES, ANCHOR_ACC, test_rates, test_acc, method=method,
                                        require_matching_points=False)
    expected_metric = bjontegaard.bd_psnr(ANCHOR_RATES, ANCHOR_ACC, test_rates, test_acc, method=method,
                                          require_matching_points=False)
    assert result.bd_rate is not None and result.bd_rate < -15
    assert result.bd_rate == pytest.approx(expected_rate, abs=1e-9)
    assert result.bd_metric is not None and result.bd_metric > 0
    assert result.bd_metric == pytest.approx(expected_metric, abs=1e-12)
    assert result.notes == ()


def test_higher_utility_at_equal_rate_is_a_positive_bd_metric():
    table = frame(pipeline("jpeg", ANCHOR_RATES, ANCHOR_ACC), pipeline("webp", ANCHOR_RATES, ANCHOR_ACC + 0.03))
    out = bd_table(table, "codec=jpeg", ["codec=webp"], ["accuracy"])
    assert out.loc[0, "bd_accuracy"] == pytest.approx(0.03, abs=1e-9)
    assert out.loc[0, "bd_rate_accuracy (%)"] < 0
    assert list(out.columns) == ["test", "anchor", "bd_rate_accuracy (%)", "bd_accuracy", "points", "method", "note"]
    # the anchor against itself: zero on both axes
    same = bd_table(table, "codec=jpeg", ["codec=jpeg"], ["accuracy"])
    assert same.loc[0, "bd_accuracy"] == pytest.approx(0.0, abs=1e-12)
    assert same.loc[0, "bd_rate_accuracy (%)"] == pytest.approx(0.0, abs=1e-9)


def test_several_settings_of_one_pipeline_are_reduced_to_their_pareto_front():
    # two strengths x four qualities; the weaker points (and a non-monotonic one) are dominated
    strong = pipeline("hevc", [0.1, 0.2, 0.3, 0.4], [0.50, 0.62, 0.60, 0.70], strength=1.0)
    weak = pipeline("hevc", [0.12, 0.25, 0.35, 0.5], [0.45, 0.55, 0.69, 0.72], strength=2.0)
    anchor = pipeline("jpeg", ANCHOR_RATES, ANCHOR_ACC)
    table = frame(strong, weak, anchor)
    c = curve(table, "codec=hevc", "accuracy")
    assert len(c.points) == 8 and c.reduction == "8→5" and c.dropped == 3
    assert list(c.front["rate"]) == [0.1, 0.2, 0.35, 0.4, 0.5]
    assert np.all(np.diff(c.front["rate"]) > 0) and np.all(np.diff(c.front["value"]) > 0)
    report = bd_report(table, "codec=jpeg", ["codec=hevc"], ["accuracy"])
    assert report.table.loc[0, "points"] == "anchor 5→5, test 8→5"
    assert any("8 points -> Pareto front of 5 (3 dominated points dropped)" in n for n in report.notes)
    # the BD value is bjontegaard's on the front, not on the raw (non-monotonic) points
    expected = bjontegaard.bd_rate(ANCHOR_RATES, ANCHOR_ACC, c.rates(), c.values(), method="pchip",
                                   require_matching_points=False, min_overlap=0)
    assert report.table.loc[0, "bd_rate_accuracy (%)"] == pytest.approx(expected, abs=1e-9)


def test_pareto_front_directions():
    pts = [(0.1, 0.5), (0.2, 0.5), (0.2, 0.6), (0.3, 0.55), (0.4, 0.8), (0.4, 0.8)]
    upper = pareto_front(pts)
    assert list(zip(upper["rate"], upper["value"], strict=True)) == [(0.1, 0.5), (0.2, 0.6), (0.4, 0.8)]
    # lower is leakier (MSE): the lower envelope, rate up and metric down
    lower = pareto_front([(0.1, 0.09), (0.2, 0.05), (0.3, 0.07), (0.4, 0.02)], higher_is_better=False)
    assert list(lower["value"]) == [0.09, 0.05, 0.02]
    with pytest.raises(PrivbenchError, match="1 points have no finite rate or value"):
        pareto_front([(0.1, 0.5), (0.2, float("nan"))])


def test_curves_that_do_not_overlap_get_a_note_not_nan(tmp_path):
    table = frame(pipeline("jpeg", [0.1, 0.2, 0.4], [0.31, 0.42, 0.52]),
                  pipeline("webp", [0.1, 0.2, 0.4], [0.60, 0.65, 0.71]))
    out = bd_table(table, "codec=jpeg", ["codec=webp"], ["accuracy"])
    assert math.isnan(out.loc[0, "bd_rate_accuracy (%)"])
    assert "no overlap in accuracy: anchor 0.31–0.52, test 0.6–0.71" in out.loc[0, "note"]
    # same rates: the vertical gap exists
    assert out.loc[0, "bd_accuracy"] == pytest.approx(bjontegaard.bd_psnr(
        [0.1, 0.2, 0.4], [0.31, 0.42, 0.52], [0.1, 0.2, 0.4], [0.60, 0.65, 0.71], method="pchip"), abs=1e-12)

    disjoint = frame(pipeline("jpeg", [0.1, 0.2, 0.4], [0.31, 0.42, 0.52]),
                     pipeline("webp", [1.0, 2.0, 4.0], [0.60, 0.65, 0.71]))
    result = bd(curve(disjoint, "codec=jpeg", "accuracy"), curve(disjoint, "codec=webp", "accuracy"))
    assert result.bd_rate is None and result.bd_metric is None and not result.computed
    assert any("no overlap in bpp: anchor 0.1–0.4, test 1–4" in n for n in result.notes)
    write_csv(disjoint, tmp_path / "results.csv")
    run = CliRunner().invoke(cli, ["bd", str(tmp_path / "results.csv"), "--anchor", "codec=jpeg", "--test", "codec=webp"])
    assert run.exit_code == 1, run.output
    assert "no BD value could be computed" in run.output and "no overlap in accuracy" in run.output
    assert "nan" not in run.output.lower()
    saved = pd.read_csv(tmp_path / "bd.csv", keep_default_na=False)
    assert saved.loc[0, "bd_rate_accuracy (%)"] == "" and "no overlap" in saved.loc[0, "note"]


def test_small_overlap_warns_and_cubic_needs_four_points():
    table = frame(pipeline("jpeg", [0.1, 0.2, 0.4], [0.40, 0.50, 0.60]),
                  pipeline("webp", [0.1, 0.2, 0.4], [0.55, 0.62, 0.70]))
    result = bd(curve(table, "codec=jpeg", "accuracy"), curve(table, "codec=webp", "accuracy"))
    assert result.bd_rate is not None and result.overlap_metric == pytest.approx(0.05 / 0.30)
    assert any("overlap only 17 % (< 75 %)" in n for n in result.notes)
    cubic = bd(curve(table, "codec=jpeg", "accuracy"), curve(table, "codec=webp", "accuracy"), "cubic")
    assert not cubic.computed and "too few points for cubic, which needs 4" in cubic.notes[0]


def test_selector_errors_are_one_clear_line(tmp_path, capsys):
    table = frame(pipeline("jpeg", ANCHOR_RATES, ANCHOR_ACC))
    with pytest.raises(PrivbenchError, match=r"unknown key 'colour'.*valid keys: dataset, model.*codec\.<param>"):
        parse_selector("codec=jpeg,colour=red")
    with pytest.raises(PrivbenchError, match=r"unknown key 'codec.speed'.*codec\.clip_sigma, codec\.placement"):
        curve(table, "codec.speed=3", "accuracy")
    with pytest.raises(PrivbenchError, match=r"selector 'codec=avif' matches no rows \(the table's codec: jpeg\)"):
        curve(table, "codec=avif", "accuracy")
    with pytest.raises(PrivbenchError, match="is not key=value"):
        parse_selector("codec")
    uncoded = frame(pipeline("jpeg", ANCHOR_RATES, ANCHOR_ACC), point_rows("none", "", 0, 0.7))
    with pytest.raises(PrivbenchError, match=r"selector 'codec=none' matches no coded grid point \(rows with kind=rate\)"):
        curve(uncoded, "codec=none", "accuracy")
    # the uncoded point is simply not on the curve of a selector that matches both
    assert len(curve(uncoded, "defense=noise", "accuracy").points) == len(ANCHOR_RATES)

    write_csv(table, tmp_path / "results.csv")
    for selector, needle in (("colour=red", "unknown key 'colour'"), ("codec=avif", "'codec=avif' matches no rows")):
        with pytest.raises(SystemExit) as exit_info:
            main(["bd", str(tmp_path / "results.csv"), "--anchor", "codec=jpeg", "--test", selector])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and needle in err


def test_numbers_compare_as_numbers_and_strings_as_strings():
    table = frame(pipeline("jpeg", ANCHOR_RATES, ANCHOR_ACC, strength=1.0), pipeline("jpeg", ANCHOR_RATES, ANCHOR_ACC,
                                                                                      strength=2.0))
    assert len(curve(table, "codec=jpeg,strength=1", "accuracy").points) == 5
    assert len(curve(table, "codec=jpeg,defense.scale=2.0", "accuracy").points) == 5
    assert len(curve(table, "codec=jpeg,quality=24.0", "accuracy").points) == 2  # one quality, both strengths
    assert len(curve(table, "codec.placement=features", "accuracy").points) == 10


def test_points_are_averaged_over_seeds():
    seed0 = pipeline("jpeg", [0.1, 0.2, 0.4], [0.50, 0.60, 0.70], seed=0)
    seed1 = pipeline("jpeg", [0.3, 0.4, 0.6], [0.54, 0.66, 0.74], seed=1)
    c = curve(frame(seed0, seed1), "codec=jpeg", "accuracy")
    assert list(c.points["seeds"]) == [2, 2, 2]
    assert c.rates() == pytest.approx([0.2, 0.3, 0.5])
    assert c.values() == pytest.approx([0.52, 0.63, 0.72])


def test_privacy_metric_uses_the_worst_attack_and_the_probe_sets_bpp():
    def psnr(q):
        return {"inverse-net": 14.0 + q, "rmle": 12.0 + 1.5 * q, "worst": max(14.0 + q, 12.0 + 1.5 * q)}

    rows = [r for q, b in enumerate([0.1, 0.2, 0.4])
            for r in point_rows("hevc", 30 - q, b, 0.5 + 0.1 * q, psnr(q), faces_bpp=3 * b)]
    table = frame(rows)
    c = curve(table, "codec=hevc", "psnr")
    assert c.dataset == FACES and c.attack == "worst" and c.kind == "privacy" and c.higher_is_better
    assert c.rates() == pytest.approx([0.3, 0.6, 1.2])  # the faces' bpp, not the test set's
    assert c.values() == pytest.approx([14.0, 15.0, 16.0])
    assert curve(table, "codec=hevc", "psnr", attack="rmle").values() == pytest.approx([12.0, 13.5, 15.0])
    assert curve(table, "codec=hevc", "accuracy").rates() == pytest.approx([0.1, 0.2, 0.4])
    with pytest.raises(PrivbenchError, match=r"no psnr rows at attack=shadow \(attacks here: inverse-net, rmle, worst\)"):
        curve(table, "codec=hevc", "psnr", attack="shadow")
    two = frame([r for q, b in enumerate([0.1, 0.2]) for r in point_rows("hevc", 30 - q, b, 0.6, psnr(q),
                                                                        probes=(FACES, PLATES))])
    with pytest.raises(PrivbenchError, match=r"several datasets \(synth-faces, synth-plates\): name one with --dataset"):
        curve(two, "codec=hevc", "psnr")
    assert curve(two, "codec=hevc", "psnr", dataset=PLATES).dataset == PLATES


def test_cli_end_to_end(tmp_path):
    def psnr(q, shift):
        return {"inverse-net": 13.0 + q + shift, "worst": 13.0 + q + shift}

    anchor = [r for q, b in enumerate(ANCHOR_RATES) for r in point_rows("hevc", 40 - q, b, ANCHOR_ACC[q], psnr(q, 2.0),
                                                                          placement="input")]
    test = [r for q, b in enumerate(ANCHOR_RATES * 0.8) for r in point_rows("hevc", 40 - q, b, ANCHOR_ACC[q], psnr(q, 0))]
    other = [r for q, b in enumerate(ANCHOR_RATES * 1.3) for r in point_rows("jpeg", 60 + q, b, ANCHOR_ACC[q], psnr(q, 1))]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_csv(frame(anchor, test, other), run_dir / "results.csv")
    out = CliRunner().invoke(cli, ["bd", str(run_dir / "results.csv"), "--anchor", "codec=hevc,codec.placement=input",
                                   "--test", "codec=hevc,codec.placement=features", "--test", "codec=jpeg",
                                   "--metric", "accuracy", "--metric", "psnr"])
    assert out.exit_code == 0, out.output
    text = out.output
    assert "BD values against anchor 'codec=hevc,codec.placement=input'" in text
    assert "bd_rate_accuracy (%)" in text and "bd_psnr" in text and "codec=jpeg" in text
    assert "-20" in text and "+30" in text  # 0.8x and 1.3x the rate at equal accuracy
    assert "BD-psnr > 0 means the test leaks more at the same rate" in text
    saved = pd.read_csv(run_dir / "bd.csv")
    assert list(saved["test"]) == ["codec=hevc,codec.placement=features", "codec=jpeg"]
    assert saved.loc[0, "bd_rate_accuracy (%)"] == pytest.approx(-20.0, abs=1e-3)
    assert saved.loc[1, "bd_rate_accuracy (%)"] == pytest.approx(30.0, abs=1e-3)
    assert saved.loc[0, "bd_psnr"] < 0  # at equal faces bpp the features pipeline leaks less
    for name in ("bd_accuracy.png", "bd_psnr.png"):
        png = (run_dir / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert not list(run_dir.glob(".*.tmp"))
    # --out elsewhere, linear axis
    elsewhere = tmp_path / "elsewhere"
    again = CliRunner().invoke(cli, ["bd", str(run_dir / "results.csv"), "--anchor", "codec=jpeg", "--test",
                                     "codec=hevc", "--dataset", FACES, "--metric", "psnr", "--linear-rate",
                                     "--out", str(elsewhere)])
    assert again.exit_code == 0, again.output
    assert (elsewhere / "bd.csv").is_file() and (elsewhere / "bd_psnr.png").is_file()
    assert "anchor 5→5, test 10→" in again.output
