"""Every network privbench runs follows ``--device``, checked without a GPU.

On a CPU-only machine a network left on the CPU by mistake still works, so a forgotten ``.to(device)`` only
shows on a CUDA machine — as a crash in the middle of a run. The ``placement`` fixture makes that mistake
visible on the CPU: ``nn.Module.to`` is wrapped to mark every submodule it is called with a device on, and a
global forward pre-hook records each module with its own parameters or buffers that runs without ever having
been placed that way. The same hook compares the devices of a module's tensors with those of its inputs and
with the engine's device (always equal on a CPU, the real check on a GPU machine, where the test runs on
CUDA because the config asks for ``auto``).

Only ``.to`` calls that name a device count: ``.to(memory_format=...)`` or ``.to(dtype)`` place nothing, and
``.cpu()`` is not "the engine's device". Modules without tensors of their own (containers, activations,
parameter-free stages) cannot be misplaced and are skipped; so are forward passes during a module's own
construction (a shape probe on CPU zeros, before anyone could place it). A deep copy of a placed module is
placed (the mark is copied with it).
"""

from __future__ import annotations

import dataclasses
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import reduced
from torch import nn

from privbench.cache import Cache
from privbench.config import load_config
from privbench.device import resolve_device
from privbench.sweep import run_benchmark

#: attribute the wrapped ``nn.Module.to`` sets on every submodule it moves to a device
PLACED = "_privbench_placed"
#: the engine's device in this test: CUDA where there is one (then the device comparisons bite), else CPU
DEVICE = "auto"


@dataclasses.dataclass
class PlacementLog:
    """Modules that ran unplaced or on a device other than their inputs' / the engine's, by class name."""

    expected: torch.device
    failures: dict[str, str] = dataclasses.field(default_factory=dict)
    checked: set[str] = dataclasses.field(default_factory=set)

    def record(self, module: nn.Module, problem: str) -> None:
        self.failures[type(module).__qualname__] = f"{problem} (called from {caller()})"

    def summary(self) -> str:
        return "; ".join(f"{name}: {problem}" for name, problem in sorted(self.failures.items()))


def own_tensors(module: nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(recurse=False), *module.buffers(recurse=False)]


def input_tensors(args: object) -> Iterator[torch.Tensor]:
    if isinstance(args, torch.Tensor):
        yield args
    elif isinstance(args, list | tuple):
        for item in args:
            yield from input_tensors(item)
    elif isinstance(args, dict):
        for item in args.values():
            yield from input_tensors(item)


def caller() -> str:
    """``file:line function`` of the code that ran the offending network: the innermost frame outside torch,
    this file and every module's ``forward`` (the line that called the outermost module)."""
    skip = (str(Path(torch.__file__).parent), __file__)
    frame = sys._getframe(1)
    while frame is not None and (frame.f_code.co_filename.startswith(skip) or in_forward(frame)):
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}"


def in_forward(frame: types.FrameType) -> bool:
    return frame.f_code.co_name == "forward" and isinstance(frame.f_locals.get("self"), nn.Module)


def under_construction() -> bool:
    """Whether the current forward pass runs inside some module's ``__init__`` (a shape probe)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "__init__" and isinstance(frame.f_locals.get("self"), nn.Module):
            return True
        frame = frame.f_back
    return False


def same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` are one device when the current device is 0."""
    if a.type != b.type:
        return False
    index = torch.cuda.current_device() if a.type == "cuda" else 0
    return (a.index if a.index is not None else index) == (b.index if b.index is not None else index)


@pytest.fixture
def placement(monkeypatch) -> Iterator[PlacementLog]:
    log = PlacementLog(resolve_device(DEVICE))
    original_to = nn.Module.to

    def to(self: nn.Module, *args, **kwargs) -> nn.Module:
        # Module.to's own parser: (device, dtype, non_blocking, memory_format)
        if torch._C._nn._parse_to(*args, **kwargs)[0] is not None:
            for sub in self.modules():
                setattr(sub, PLACED, True)
        return original_to(self, *args, **kwargs)

    def check(module: nn.Module, args: tuple) -> None:
        tensors = own_tensors(module)
        if not tensors:
            return
        name = type(module).__qualname__
        log.checked.add(name)
        if name in log.failures:  # the first occurrence of each class says enough
            return
        devices = {t.device for t in tensors} | {t.device for t in input_tensors(args)}
        if any(not same_device(d, log.expected) for d in devices):
            problem = f"tensors on {sorted(map(str, devices))}, engine device {log.expected}"
        elif not getattr(module, PLACED, False):
            problem = "runs without ever being moved with .to(device)"
        else:
            return
        if not under_construction():  # looked up only when something is wrong: it walks the stack
            log.record(module, problem)

    monkeypatch.setattr(nn.Module, "to", to)
    handle = nn.modules.module.register_module_forward_pre_hook(check)
    try:
        yield log
    finally:
        handle.remove()


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread: with two, while another process kept a core of this 2-core machine busy, the
    spin-waiting OpenMP threads stretched this test from 10-13 s to 87-109 s (see the CPU notes of
    :mod:`privbench.recognizers.base`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def tiny_recognizers(monkeypatch) -> None:
    """Recognizers trained on a few dozen images: this test is about where they train, not how well."""
    from privbench.metrics import attack_accuracy
    from privbench.recognizers import face, lpr, par

    monkeypatch.setattr(par, "TRAIN_IMAGES", 64)
    monkeypatch.setattr(lpr, "TRAIN_PLATES", 64)
    monkeypatch.setattr(face, "TRAIN_IDENTITIES", 64)
    monkeypatch.setattr(attack_accuracy, "TRAIN_IMAGES", 64)
    monkeypatch.setattr(attack_accuracy, "EPOCHS", 2)


def tiny_default_config() -> dict:
    """The default benchmark's structure at a size that runs in well under a minute on two cores: every
    privacy metric with a network that runs offline (both PAR protocols, plate adaptation), a trained and two
    transform defenses, the three attacks, a probe set of every synthetic family."""
    scenes = {"subset": "attacker", "n": 64, "size": 32, "classes": 4}
    data = reduced(
        device=DEVICE,
        defenses=[{"name": "noise", "strengths": [0.0, 1.0]},
                  {"name": "autoencoder", "params": {"bottleneck": 2, "epochs_ae": 1, "epochs_rec": 1,
                                                     "epochs_adv": 1, "recnet_width": 4},
                   "strengths": [1.0]},
                  {"name": "blur", "strengths": [1.0]}],
        attacks=[{"name": "inverse-net", "params": {"epochs": 1}},
                 {"name": "rmle", "params": {"iterations": 3, "lambda_tv": 1.0}},
                 {"name": "shadow", "params": {"epochs": 1, "then": "inverse-net", "decoder_epochs": 1}}],
        metrics=["psnr", "ssim", "accuracy", "face-id", {"name": "plate", "params": {"adapt": 1}}, "par-ma",
                 {"name": "par-f1", "params": {"protocol": "adversary-trained", "epochs": 1,
                                               "bootstrap": 50}},
                 "attack-acc"])
    data["attacker_data"] = [{"name": "synth-scenes", "params": scenes},
                             {"name": "synth-faces", "params": {"subset": "attacker", "identities": 16,
                                                                "per_identity": 2, "size": 32}}]
    data["probes"] = [
        {"name": "synth-faces", "params": {"subset": "test", "identities": 4, "per_identity": 2, "size": 32}},
        {"name": "synth-plates", "params": {"subset": "test", "n": 8, "size": 32, "length": 5}},
        {"name": "synth-pedestrians", "params": {"subset": "test", "n": 8, "size": 32}},
        {"name": "synth-scenes", "params": {"subset": "test", "n": 8, "size": 32, "classes": 4}},
    ]
    return data


def test_every_module_runs_on_the_engine_device(tmp_path, placement, tiny_recognizers, one_thread):
    start = time.perf_counter()
    out = run_benchmark(load_config(None, tiny_default_config()), Cache(tmp_path), progress=False)
    seconds = time.perf_counter() - start
    scored = set(out.frame.metric)
    expected = {"psnr", "ssim", "accuracy", "face-id", "plate", "par-ma", "par-f1", "attack-acc"}
    assert expected <= scored, (f"metrics that did not run, so their networks were not checked: "
                                f"{sorted(expected - scored)}; notes: {out.notes}")
    # Every layer type of the recognizers, task network, autoencoder and attack decoders went through the hook.
    assert {"Conv2d", "BatchNorm2d", "Linear", "ConvTranspose2d"} <= placement.checked, placement.checked
    assert not placement.failures, f"device placement ({seconds:.0f} s run): {placement.summary()}"
