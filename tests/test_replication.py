"""Seeds as the unit of replication: the two-level bootstrap over seeds and probes, and paired comparisons of
defenses at matched utility (``privbench compare``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privbench.compare import compare, compare_pair, pipelines
from privbench.errors import PrivbenchError
from privbench.metrics.base import Score
from privbench.metrics.bd import interpolation_weights, mean_gap_weights
from privbench.replication import summarize, two_level_interval
from privbench.results import COLUMNS, base_row


def _row(seed, defense, strength, dataset, attack, metric, kind, score: Score) -> dict:
    return base_row(seed=seed, dataset=dataset, model="m", split="relu12", defense=defense,
                    defense_params=f'{{"s":{strength}}}', strength=strength, codec="none", codec_params="",
                    quality="", attack=attack, metric=metric, kind=kind, value=score.value, ci_low=score.ci_low,
                    ci_high=score.ci_high, ci_method=score.ci_method, n=score.n, seconds=0.0)


def table(leak: dict[tuple[str, float], float], utility: dict[tuple[str, float], float], seeds=range(5),
          seed_sd: float = 0.03, probes: int = 200, rng_seed: int = 0) -> pd.DataFrame:
    """A results table: face-id rank-1 of two attacks (the worst is the larger) and task accuracy per setting and
    seed, with a seed effect of ``seed_sd`` and binomial probe noise over ``probes`` probes."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for seed in seeds:
        shift = rng.normal(0, seed_sd)
        for (defense, strength), p in leak.items():
            u = float(np.clip(utility[(defense, strength)] + rng.normal(0, 0.01), 0, 1))
            rows.append(_row(seed, defense, strength, "scenes", "none", "accuracy", "utility",
                             Score.from_proportion(int(round(u * 400)), 400, 0.95)))
            for attack, factor in (("a1", 1.0), ("a2", 0.7)):
                hits = rng.binomial(probes, float(np.clip((p + shift) * factor, 0, 1)))
                rows.append(_row(seed, defense, strength, "faces", attack, "face-id", "privacy",
                                 Score.from_proportion(int(hits), probes, 0.95)))
    return pd.DataFrame(rows, columns=COLUMNS)


LEAK = {("noise", 0.0): 0.8, ("noise", 0.5): 0.5, ("noise", 1.0): 0.3,
        ("dropout", 0.0): 0.8, ("dropout", 0.5): 0.6, ("dropout", 0.9): 0.45,
        ("blur", 1.0): 0.45}
UTILITY = {("noise", 0.0): 0.9, ("noise", 0.5): 0.8, ("noise", 1.0): 0.6,
           ("dropout", 0.0): 0.9, ("dropout", 0.5): 0.8, ("dropout", 0.9): 0.6,
           ("blur", 1.0): 0.7}


def test_interpolation_and_mean_gap_weights_are_linear_functionals():
    x = np.array([0.9, 0.5, 0.7])
    y = np.array([3.0, 1.0, 2.0])
    assert interpolation_weights(x, 0.6) @ y == pytest.approx(1.5)
    assert interpolation_weights(np.array([0.5, 0.5, 0.9]), 0.5) @ np.array([1.0, 3.0, 5.0]) == pytest.approx(2.0)
    wa, wb = mean_gap_weights(x, np.array([0.6, 0.95]))
    # mean of the a-curve over 0.6–0.9 (piecewise linear) minus the b-curve (constant 1)
    grid = np.linspace(0.6, 0.9, 20001)
    expected = np.interp(grid, [0.5, 0.7, 0.9], [1, 2, 3]).mean() - 1.0
    assert wa @ y - wb @ np.array([1.0, 1.0]) == pytest.approx(expected, abs=1e-3)
    assert mean_gap_weights(np.array([0.1, 0.2]), np.array([0.3, 0.4])) is None


def test_one_seed_keeps_the_probe_interval_and_several_seeds_widen_it():
    frame = table(LEAK, UTILITY)
    one = summarize(frame[frame["seed"] == 0])
    row = one[(one["defense"] == "noise") & (one["strength"] == 0.5) & (one["attack"] == "a1")].iloc[0]
    assert row["n_seeds"] == 1 and row["ci_method"] == "wilson95"
    many = summarize(frame)
    row5 = many[(many["defense"] == "noise") & (many["strength"] == 0.5) & (many["attack"] == "a1")].iloc[0]
    assert row5["n_seeds"] == 5 and row5["ci_method"].startswith("bootstrap2")
    assert row5["seed"] == "0 1 2 3 4"
    assert row5["ci_low"] < row5["value"] < row5["ci_high"]


def test_two_level_interval_covers_the_mean_it_estimates():
    """Over many simulated 5-seed tables, the 95 % interval covers the true mean (seed effect + binomial probes)
    in most of them: the interval accounts for the seed-to-seed variation a probe interval ignores."""
    covered, probe_only = 0, 0
    trials = 60
    for trial in range(trials):
        frame = table({("noise", 0.5): 0.5}, {("noise", 0.5): 0.8}, seed_sd=0.06, probes=200, rng_seed=trial)
        rows = frame[(frame["attack"] == "a1")]
        _, low, high = two_level_interval(rows, replicates=2000)
        covered += low <= 0.5 <= high
        first = rows.iloc[0]
        probe_only += first["ci_low"] <= 0.5 <= first["ci_high"]
    assert covered >= 0.8 * trials  # nominal 95 %; a 5-seed percentile bootstrap runs a little short
    assert covered > probe_only  # the one-seed probe interval misses the seed effect more often


def test_summarize_refuses_a_point_twice_at_one_seed():
    frame = table(LEAK, UTILITY, seeds=[0])
    with pytest.raises(PrivbenchError, match="twice at the same seed"):
        summarize(pd.concat([frame, frame]))


def test_compare_finds_the_defense_that_is_more_private_at_equal_utility():
    frame = table(LEAK, UTILITY, seed_sd=0.02)
    result = compare(frame, "face-id", "accuracy", replicates=2000)
    pair = result[(result["a"] == "dropout") & (result["b"] == "noise")].iloc[0]
    assert pair["comparison"] == "mean gap over common utility"
    assert pair["difference"] > 0.05 and pair["significant"] and pair["more_private"] == "noise"
    single = result[(result["a"] == "blur") & (result["b"] == "noise")].iloc[0]
    # noise read at blur's utility (0.7): 0.4 < 0.45: blur leaks more, by less than the seeds can tell apart here
    assert single["comparison"] == "curve at the single setting's utility"
    assert single["difference"] == pytest.approx(0.05, abs=0.04)
    at = compare(frame, "face-id", "accuracy", at=0.8, replicates=2000)
    pair_at = at[(at["a"] == "dropout") & (at["b"] == "noise")].iloc[0]
    assert pair_at["difference"] == pytest.approx(0.1, abs=0.04) and pair_at["comparison"] == "at utility 0.8"
    blur_at = at[(at["a"] == "blur") & (at["b"] == "noise")].iloc[0]
    assert not np.isfinite(blur_at["difference"]) and "single setting" in blur_at["comparison"]


def test_identical_defenses_are_not_significantly_different():
    leak = {("noise", 0.0): 0.8, ("noise", 1.0): 0.4, ("dropout", 0.0): 0.8, ("dropout", 1.0): 0.4}
    utility = {("noise", 0.0): 0.9, ("noise", 1.0): 0.7, ("dropout", 0.0): 0.9, ("dropout", 1.0): 0.7}
    false_positives = 0
    for trial in range(20):
        result = compare(table(leak, utility, seed_sd=0.05, rng_seed=trial), "face-id", "accuracy", replicates=1000)
        false_positives += bool(result["significant"].iloc[0])
    assert false_positives <= 4  # nominal 5 %: 1 of 20 expected


def test_pairing_cancels_what_the_seeds_share():
    """A seed effect common to both defenses widens each one's interval but not their paired difference."""
    frame = table(LEAK, UTILITY, seed_sd=0.15, rng_seed=3)
    by = pipelines(frame, "face-id", "accuracy")["faces"]
    paired = compare_pair(by["dropout"], by["noise"], None, replicates=2000)
    summary = summarize(frame)
    noise = summary[(summary["defense"] == "noise") & (summary["strength"] == 0.5) & (summary["attack"] == "a1")]
    assert paired["ci_high"] - paired["ci_low"] < (noise["ci_high"] - noise["ci_low"]).iloc[0]


def test_compare_refuses_unknown_metrics_with_what_the_run_has():
    frame = table(LEAK, UTILITY, seeds=[0])
    with pytest.raises(PrivbenchError, match=r"no privacy metric 'psnr' \(it has: face-id\)"):
        compare(frame, "psnr")
    with pytest.raises(PrivbenchError, match="no utility metric 'map'"):
        compare(frame, "face-id", "map")


def _write(frame: pd.DataFrame, folder) -> None:
    from privbench.results import write_csv

    folder.mkdir(parents=True, exist_ok=True)
    write_csv(frame, folder / "results.csv")


def test_compare_command_writes_a_table_and_a_figure(tmp_path):
    from click.testing import CliRunner

    from privbench.cli import cli

    _write(table(LEAK, UTILITY, seed_sd=0.02), tmp_path / "run")
    out = CliRunner().invoke(cli, ["compare", str(tmp_path / "run"), "--metric", "face-id"])
    assert out.exit_code == 0, out.output
    assert "noise more private" in out.output and "paired intervals over 5 seed(s)" in out.output
    written = pd.read_csv(tmp_path / "run" / "compare_face-id.csv")
    assert list(written["a"]) == ["blur", "blur", "dropout"] and written["n_seeds"].eq(5).all()
    assert (tmp_path / "run" / "compare_face-id.png").read_bytes().startswith(b"\x89PNG")
    bad = CliRunner().invoke(cli, ["compare", str(tmp_path / "run"), "--metric", "psnr"])
    assert bad.exit_code != 0 and "no privacy metric 'psnr'" in str(bad.exception)


def test_the_markdown_report_opens_with_the_ranked_summary(tmp_path):
    from privbench.report import privacy_utility_plots, write_report

    frame = table(LEAK, UTILITY, seed_sd=0.02)
    noise = frame["defense"] == "noise"
    frame.loc[noise, "defense_params"] = [f'{{"distribution":"gaussian","placement":"features","scale":{s}}}'
                                          for s in frame.loc[noise, "strength"]]
    plots = privacy_utility_plots(frame, tmp_path)
    assert [p.name for p in plots] == ["privacy_utility_face-id.png", "privacy_utility_face-id_attacks.png"]
    text = write_report(frame, tmp_path, "seed: 0\n", plots, None, [], manifest={"name": "x"}).read_text()
    assert text.index("## Summary") < text.index("## Privacy–utility") < text.index("## Results") \
        < text.index("## Run manifest") < text.index("## Configuration")
    summary = text[text.index("## Summary"):text.index("## Privacy–utility")]
    assert "mean over 5 seeds" in summary
    lines = [line for line in summary.splitlines() if line.startswith("| ")]
    assert lines[1].split("|")[2].strip() == "noise 1" and "best" in lines[1]  # the least leakage ranks first
    assert "↓" in lines[1] and "↓" not in [line for line in lines if "noise 0 " in line][0]


def test_an_unstable_undefended_task_model_is_named():
    from privbench.ranking import replication_warnings

    frame = table(LEAK, UTILITY, seed_sd=0.0)
    noise = frame["defense"] == "noise"
    frame.loc[noise, "defense_params"] = [f'{{"distribution":"gaussian","placement":"features","scale":{s}}}'
                                          for s in frame.loc[noise, "strength"]]
    assert replication_warnings(frame) == []  # the utility moves by its ±0.01 seed noise only
    undefended = noise & (frame["strength"] == 0.0) & (frame["metric"] == "accuracy")
    frame.loc[undefended & (frame["seed"] == 3), "value"] = 0.3
    (warning,) = replication_warnings(frame)
    assert "unstable across seeds" in warning and "0.300" in warning
    assert replication_warnings(frame[frame["seed"] == 3]) == []  # one seed shows no spread


def test_a_task_model_near_chance_is_warned_about():
    from privbench.engine.setting_rows import model_warning
    from privbench.tasks import Sanity

    assert "at chance" in model_warning(Sanity("accuracy", 0.12, 0.09, 0.1, 400))
    assert "near chance" in model_warning(Sanity("accuracy", 0.28, 0.24, 0.1, 400))
    assert model_warning(Sanity("accuracy", 0.92, 0.90, 0.1, 400)) is None


def test_on_a_small_grid_the_seed_interval_covers_the_seeds_values(tmp_path):
    """The property of issue 29: a replicated run prints beside each value an interval that covers (at least 4 of 5
    of) its seeds' own values; the interval of the mean, which only says how well the mean is known, need not."""
    from conftest import reduced

    from privbench.cache import Cache
    from privbench.config import load_grid
    from privbench.sweep import run_benchmark

    data = reduced(defenses=[{"name": "noise", "params": {"placement": "features"}, "strengths": [0.0, 1.0]}],
                   attacks=[{"name": "inverse-net", "params": {"epochs": 1}}], metrics=["psnr", "accuracy"],
                   name="seeds", seed=[0, 1, 2, 3, 4])
    frame = run_benchmark(load_grid(None, data), Cache(tmp_path), progress=False).frame
    summary = summarize(frame)
    checked = 0
    for _, row in summary[summary["kind"].isin(["privacy", "utility"])].iterrows():
        same = frame[(frame["defense"] == row["defense"]) & (frame["strength"] == row["strength"]) &
                     (frame["attack"] == row["attack"]) & (frame["dataset"] == row["dataset"]) &
                     (frame["metric"] == row["metric"])]
        values = same["value"].to_numpy(float)
        assert row["n_seeds"] == 5 and len(values) == 5
        covered = int(((values >= row["ci_low"]) & (values <= row["ci_high"])).sum())
        assert covered >= 4, (row["defense"], row["strength"], row["metric"], values, row["ci_low"], row["ci_high"])
        assert row["mean_low"] >= row["ci_low"] - 1e-9 and row["mean_high"] <= row["ci_high"] + 1e-9
        checked += 1
    assert checked >= 4  # accuracy and psnr of both settings
