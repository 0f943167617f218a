"""Shared fixtures: tiny but real benchmark configurations (CPU, seconds, not minutes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from privbench.cache import Cache
from privbench.config import load_config
from privbench.sweep import run_benchmark


def pytest_configure(config):
    """Under ``pytest -n N`` (pytest-xdist: the README's test command runs two workers), each worker process uses
    one torch thread, so two workers share the two cores without oversubscribing them (OpenMP spin-waiting)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


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


#: four classes told apart by their tint, under a smooth random brightness texture and pixel noise: learnt
#: to 1.00 test accuracy by the tiny task net in 5 epochs of 200 images (synth-scenes stays at chance there)
COLOURS = ((0.8, 0.2, 0.2), (0.2, 0.8, 0.2), (0.2, 0.2, 0.8), (0.8, 0.8, 0.2))


def colour_set(n: int, seed: int):
    """A 4-class ImageSet (32×32) that a tiny task network learns in seconds, for trained-defense tests."""
    import torch
    from torch.nn import functional as F

    from privbench.data.base import ImageSet

    colours = torch.tensor(COLOURS)
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(colours)
    texture = F.interpolate(torch.rand(n, 1, 8, 8, generator=g), size=32, mode="bilinear", align_corners=False)
    x = colours[labels].view(n, 3, 1, 1) * (0.5 + 0.5 * texture) + 0.08 * torch.randn(n, 3, 32, 32, generator=g)
    return ImageSet("colours", (x.clamp(0, 1) * 255).round().to(torch.uint8), {"label": labels})


def tiny_vgg(seed: int = 0, split: str = "relu12", classes: int = 4):
    """vgg-small width 8 at 32×32, frozen, in eval mode, freshly initialised with ``seed``."""
    import torch

    from privbench.components import load_components
    from privbench.registry import MODELS

    load_components()
    spec = MODELS.create("vgg-small", width=8)
    torch.manual_seed(seed)
    network = spec.build(classes, (3, 32, 32)).eval()
    for p in network.parameters():
        p.requires_grad_(False)
    return spec.split_model(network, split, classes, (3, 32, 32))


def trained_task_model(train, seed: int, split: str = "relu12"):
    """:func:`tiny_vgg` trained 5 epochs on ``train`` (e.g. :func:`colour_set`), then frozen."""
    import torch

    from privbench.training import fit_task

    model = tiny_vgg(seed, split)
    for p in model.parameters():
        p.requires_grad_(True)
    fit_task(model, train.images, train.labels["label"], epochs=5, lr=3e-3, batch_size=32,
                   device=torch.device("cpu"), seed=seed)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


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


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread is as fast idle, and with two, while other processes kept this 2-core machine
    busy, OpenMP spin-waiting stretched a trained-defense test module from 28 s to 204 s."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
