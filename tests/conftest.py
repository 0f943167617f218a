"""Shared fixtures: tiny but real benchmark configurations (CPU, seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from privbench.cache import Cache
from privbench.config import load_config
from privbench.runner import run_benchmark

# A small version of the default benchmark: same structure, fewer images and epochs.
SMALL = {
    "name": "small",
    "seed": 0,
    "device": "cpu",
    "model": {"name": "vgg-small", "params": {"width": 8}, "split": "relu12", "epochs": 8, "lr": 0.003,
              "batch_size": 32},
    # All 10 scene classes: the first four alone (disc, square, triangle, cross) are the hardest to tell
    # apart at 32 px, and 800 images of them did not train past chance.
    "task": {"train": {"name": "synth-scenes", "params": {"subset": "train", "n": 800, "size": 32}},
             "test": {"name": "synth-scenes", "params": {"subset": "test", "n": 200, "size": 32}}},
    "attacker_data": [
        {"name": "synth-scenes", "params": {"subset": "attacker", "n": 200, "size": 32}},
        {"name": "synth-faces", "params": {"subset": "attacker", "identities": 50, "per_identity": 2, "size": 32}},
        {"name": "synth-pedestrians", "params": {"subset": "attacker", "n": 100, "size": 32}},
    ],
    "probes": [
        {"name": "synth-faces", "params": {"subset": "test", "identities": 8, "per_identity": 2, "size": 32}},
        {"name": "synth-pedestrians", "params": {"subset": "test", "n": 16, "size": 32}},
    ],
    "defenses": [
        {"name": "noise", "params": {"placement": "features"}, "strengths": [0.0, 1.0, 4.0]},
        {"name": "dropout", "params": {"placement": "features"}, "strengths": [0.0, 0.5, 0.95]},
    ],
    "attacks": [{"name": "inverse-net", "params": {"epochs": 6}}],
    "metrics": ["psnr", "ssim", "edge-psnr", "mse", "accuracy"],
}


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def reduced(**changes) -> dict:
    """SMALL with fewer images (for tests that run the pipeline more than once)."""
    data = {**SMALL, **changes}
    data["task"] = {"train": {"name": "synth-scenes", "params": {"subset": "train", "n": 200, "size": 32, "classes": 4}},
                    "test": {"name": "synth-scenes", "params": {"subset": "test", "n": 60, "size": 32, "classes": 4}}}
    data["model"] = {**SMALL["model"], "epochs": 1}
    data["attacker_data"] = [{"name": "synth-faces", "params": {"subset": "attacker", "identities": 30,
                                                                "per_identity": 2, "size": 32}}]
    data["probes"] = [{"name": "synth-faces", "params": {"subset": "test", "identities": 4, "per_identity": 2,
                                                         "size": 32}}]
    return data


@pytest.fixture(scope="session")
def small_config():
    return load_config(None, SMALL)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory, small_config):
    cache = Cache(tmp_path_factory.mktemp("cache-small"))
    return run_benchmark(small_config, cache, progress=False)


@pytest.fixture(scope="session")
def recognizer_context(tmp_path_factory):
    """One temporary cache for every test that needs a trained recognizer: each is trained once per session."""
    import torch

    from privbench.metrics.base import MetricContext

    return MetricContext(cache=Cache(tmp_path_factory.mktemp("cache-recognizers")), device=torch.device("cpu"),
                         seed=0)


def gaussian_blur(images, sigma: float):
    """Gaussian blur of float N×3×H×W images (σ in pixels), as the blur tests use it."""
    from privbench.data.base import gaussian_blur as blur

    return blur(images, sigma)


def cli(capsys, *args) -> tuple[int, str, str]:
    """Run the ``privbench`` command line in-process: (exit code, stdout, stderr)."""
    from privbench.cli import main

    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err
