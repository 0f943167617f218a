"""End-to-end behaviour of a small benchmark: the curves move the right way, results are reproducible."""

import pandas as pd
import pytest
from conftest import reduced

from privbench.cache import Cache
from privbench.config import load_config
from privbench.results import COLUMNS, TIMING_METRICS
from privbench.sweep import run_benchmark


def values(frame, defense, metric, dataset=None, attack=None):
    part = frame[(frame.defense == defense) & (frame.metric == metric)]
    if dataset:
        part = part[part.dataset == dataset]
    if attack:
        part = part[part.attack == attack]
    return part.sort_values("strength").set_index("strength")["value"]


def test_schema_and_counts(small_run):
    frame = small_run.frame
    assert list(frame.columns) == COLUMNS
    # 6 settings × (1 utility row + 4 edge-cost rows + 2 probe sets × 4 privacy metrics)
    assert len(frame) == 6 * (1 + 4 + 2 * 4)
    assert set(frame.kind) == {"privacy", "utility", "cost"}
    assert (frame.n > 0).all()
    scored = frame[frame.kind != "cost"]  # cost rows carry no interval
    assert ((scored.ci_low <= scored.value + 1e-9) & (scored.value <= scored.ci_high + 1e-9)).all()


@pytest.mark.parametrize("defense", ["noise", "dropout"])
def test_stronger_defense_lowers_attack_psnr(small_run, defense):
    frame = small_run.frame
    for dataset in ("synth-faces", "synth-pedestrians"):
        psnr = values(frame, defense, "psnr", dataset, "inverse-net")
        assert psnr.iloc[0] > psnr.iloc[-1] + 1.0, psnr  # clearly better at strength 0 than at the strongest
        assert psnr.is_monotonic_decreasing or (psnr.diff().dropna() < 0.3).all(), psnr
        mse = values(frame, defense, "mse", dataset, "inverse-net")
        assert mse.iloc[-1] > mse.iloc[0]


@pytest.mark.parametrize("defense", ["noise", "dropout"])
def test_stronger_defense_lowers_task_accuracy(small_run, defense):
    accuracy = values(small_run.frame, defense, "accuracy")
    assert accuracy.iloc[0] > 0.3, "the task model must learn the synthetic task (chance is 0.1)"
    assert accuracy.iloc[-1] < accuracy.iloc[0] - 0.05, accuracy


def test_zero_strength_settings_share_one_attacker(small_run):
    frame = small_run.frame
    zero = frame[(frame.strength == 0) & (frame.kind == "privacy")]
    by_defense = zero.pivot_table(index=["dataset", "metric"], columns="defense", values="value")
    pd.testing.assert_series_equal(by_defense["noise"], by_defense["dropout"], check_names=False)


def test_same_config_and_seed_give_identical_results(tmp_path, small_config):
    """Two runs from empty caches: identical tables apart from wall-clock seconds and the edge timings."""
    config = load_config(None, reduced(defenses=[{"name": "noise", "strengths": [0.0, 2.0]}],
                                       attacks=[{"name": "inverse-net", "params": {"epochs": 2}}]))
    first = run_benchmark(config, Cache(tmp_path / "a"), progress=False).frame
    second = run_benchmark(config, Cache(tmp_path / "b"), progress=False).frame
    def untimed(frame):
        return frame[~frame["metric"].isin(TIMING_METRICS)].drop(columns="seconds").reset_index(drop=True)

    pd.testing.assert_frame_equal(untimed(first), untimed(second))


def test_warm_rerun_recomputes_nothing(tmp_path):
    config = load_config(None, reduced(defenses=[{"name": "dropout", "strengths": [0.0, 0.5]}],
                                       attacks=[{"name": "inverse-net", "params": {"epochs": 1}}]))
    cache = Cache(tmp_path)
    first = run_benchmark(config, cache, progress=False).frame
    warm = Cache(tmp_path)
    second = run_benchmark(config, warm, progress=False).frame
    assert warm.misses == 0 and warm.hits > 0
    pd.testing.assert_frame_equal(first, second)


def test_report_tiling_matches_torchvision_make_grid():
    import torch
    from torchvision.utils import make_grid

    from privbench.report import tile

    images = torch.rand(7, 3, 8, 6)
    for per_row in (1, 3, 7, 9):
        assert torch.equal(tile(images, per_row), make_grid(images, nrow=per_row, padding=2, pad_value=1.0))


def test_figures_are_copied_from_the_cache_only_when_their_data_is_unchanged(tmp_path, small_run):
    from privbench.report import privacy_utility_plots

    cache = Cache(tmp_path / "cache")
    drawn = privacy_utility_plots(small_run.frame, tmp_path / "a", cache=cache)
    assert drawn and cache.misses == len(drawn) and cache.hits == 0
    copied = privacy_utility_plots(small_run.frame, tmp_path / "b", cache=cache)
    assert cache.hits == len(drawn)
    assert [p.read_bytes() for p in drawn] == [p.read_bytes() for p in copied]
    changed = small_run.frame.copy()
    changed.loc[(changed.metric == "psnr") & (changed.strength > 0), "value"] += 1.0
    hits = cache.hits
    redrawn = {p.name: p for p in privacy_utility_plots(changed, tmp_path / "c", cache=cache)}
    assert cache.hits == hits + len(drawn) - 2  # only the psnr figures (worst case, per attack) are redrawn
    assert redrawn["privacy_utility_psnr.png"].read_bytes() != (tmp_path / "a" / "privacy_utility_psnr.png").read_bytes()
