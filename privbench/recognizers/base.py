"""Shared machinery of the recognizers: training sets derived from a probe set, cached training, batching.

A recognizer is the adversary's (or the evaluator's) tool for *reading* private information out of an image
(who is this, what does the plate say, which attributes does the person have). privbench trains its built-in
recognizers on clean synthetic data of the **same family and resolution as the probe set they score**, from a
split that is disjoint from the probes (the synthetic ``train`` subset, whose identities and strings never
occur in ``test``), and caches the trained weights as plain state dicts. Training runs on the run's device
(``--device``): the network and every batch are moved there; the cached state dicts are on the CPU.

CPU notes. Recognizer training uses torch's intra-op thread count (by default one per core; set
``OMP_NUM_THREADS`` / ``torch.set_num_threads`` to change it). On this project's idle 2-core machine two
threads trained the PAR classifier 1.55× faster than one; on a machine shared with other CPU-heavy processes,
spin-waiting OpenMP threads were measured 5–20× slower than a single thread, so set one thread there. The
thread count is part of the cache key (float summation order may differ between counts).
Where the CPU has native bfloat16 (AVX512-BF16/AMX), training runs under bfloat16
autocast with channels-last tensors (measured 2–2.5× faster here); the precision is part of the cache key.
The precision can also be chosen (:func:`training_precision`): ``$PRIVBENCH_PRECISION=fp32|bf16`` for every
recognizer, or a metric's ``precision`` parameter where it has one (face-id). bf16 on a CPU without native
bf16 still runs, emulated by oneDNN, but slowly: capping oneDNN's ISA on this machine, a face-embedder training
step took 1.4–2.2× the fp32 time at AVX-512 without BF16 and 9–13× at AVX2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from privbench.cache import Cache
from privbench.data.base import Dataset, ImageSet
from privbench.device import derive_seed
from privbench.errors import MetricUnavailable, PrivbenchError
from privbench.registry import DATASETS

#: images per forward pass at inference time
INFER_BATCH = 256


def fast_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX512-BF16 or AMX)."""
    cpu = torch.cpu
    return any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported",
                                                                "_is_amx_tile_supported"))


#: recognizer training precisions: ``auto`` is bf16 where the CPU has native bf16, else fp32
PRECISIONS = ("auto", "fp32", "bf16")
#: environment variable that sets the precision of every recognizer whose own setting is ``auto``
PRECISION_ENV = "PRIVBENCH_PRECISION"


def training_precision(requested: str = "auto") -> str:
    """The precision recognizer training runs in, ``"fp32"`` or ``"bf16"``.

    An explicit ``requested`` precision (e.g. a metric parameter) wins; ``"auto"`` defers to
    ``$PRIVBENCH_PRECISION``, and where that is unset or ``auto`` to the CPU (bf16 when :func:`fast_bf16`).
    Forcing either value lets the tests train and check both paths on any CPU.
    """
    choice, source = requested or "auto", "training precision"
    if choice == "auto" and os.environ.get(PRECISION_ENV, "").strip():
        choice, source = os.environ[PRECISION_ENV].strip().lower(), f"${PRECISION_ENV}"
    if choice not in PRECISIONS:
        raise PrivbenchError(f"{source} must be one of {', '.join(PRECISIONS)}, got '{choice}'")
    if choice == "auto":
        return "bf16" if fast_bf16() else "fp32"
    return choice


def autocast(precision: str, device: torch.device | str):
    """bfloat16 autocast on ``device``'s type for ``precision == "bf16"`` (BatchNorm and losses stay in float32).

    Autocast only affects operations on its own device type: a CPU autocast around a CUDA network would
    silently train it in float32.
    """
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def synthetic_family(probes: ImageSet) -> str:
    """The registered synthetic dataset that generated a probe set (``synth-faces/test`` -> ``synth-faces``).

    Raises :class:`MetricUnavailable` for real data: the built-in recognizers only know the synthetic
    families; real data needs pretrained weights (facenet, LPRNet) or a protocol that trains on the probes.
    ``run`` and ``eval`` refuse such a metric before computing anything (``Metric.check``, with the metric's
    own how-to); this is the last line of defence for callers that skip that check.
    """
    family = str(probes.meta.get("family") or probes.name.split("/")[0])
    if not probes.meta.get("synthetic") or family not in DATASETS:
        raise MetricUnavailable(f"'{probes.name}' holds real images and the built-in recognizers are trained on "
                                "synthetic data only: name a pretrained one in the metric's parameters (face-id "
                                "embedder=facenet weights=PATH, plate weights=PATH; see `privbench list "
                                "metrics`), or for folders of a synthetic family's images use `privbench eval "
                                "--synthetic FAMILY`")
    return family


def training_data(probes: ImageSet, **params: Any) -> Dataset:
    """The clean training set (a dataset component, not yet loaded) of a recognizer that scores ``probes``.

    Same synthetic family, image ``size`` and generator ``seed`` as the probe set, but the ``train`` subset
    (``test`` if the probes themselves are the train subset), so no identity, string or image of the probes is
    ever seen in training. Its ``spec()`` is part of the recognizer's cache key; ``load(cache)`` generates it
    only when the recognizer actually has to be trained.
    """
    family = synthetic_family(probes)
    height, width = probes.size
    if height != width:
        raise PrivbenchError(f"{probes.name}: synthetic probe images must be square, got {height}×{width}")
    subset = "test" if probes.meta.get("subset") == "train" else "train"
    return DATASETS.create(family, subset=subset, size=height, seed=int(probes.meta.get("seed", 0)), **params)


def cached_training(cache: Cache, kind: str, spec: dict[str, Any], train: Callable[[], nn.Module], *,
                    device: torch.device | str, precision: str = "auto") -> dict[str, torch.Tensor]:
    """The trained state dict of recognizer ``kind`` for ``spec``: from the cache, or trained now and stored.

    ``train`` builds and trains the network on ``device``, in the precision ``training_precision(precision)``.
    Both are part of the key: ``auto`` and the precision it resolves to share an entry, and the device type
    separates CPU from CUDA artifacts (different kernels, different floating-point results). ``device`` has no
    default so that no caller can train on one device and file the result under another. Only tensors are
    stored, on the CPU (``torch.load(weights_only=True)`` safe), plus the training time (wall clock and CPU
    seconds; on a shared machine the CPU time is the better measure of the work).
    """

    from privbench.recognizers.shipped import load_shipped, other_precision_requested

    if not other_precision_requested(precision) and (shipped := load_shipped(kind, spec)) is not None:
        return shipped
    if _recorder is not None and _recorder.dry:
        raise NotShipped(kind, spec)

    def create() -> dict[str, Any]:
        start, cpu = time.perf_counter(), time.process_time()
        network = train()
        state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
        return {"state": state, "seconds": round(time.perf_counter() - start, 3),
                "cpu_seconds": round(time.process_time() - cpu, 3)}

    key = {"recognizer": kind, "precision": training_precision(precision), "threads": torch.get_num_threads(),
           "device": torch.device(device).type, **spec}
    value = cache.get_or_create("recognizer", key, create)
    if _recorder is not None:
        _recorder.found.append(Trained(kind, spec, value["state"], training_precision(precision), value["seconds"]))
    return value["state"]


class NotShipped(Exception):
    """Raised by :func:`cached_training` inside :func:`recording` with ``dry=True`` when a recognizer would be
    trained: no weights ship for its spec and code."""

    def __init__(self, kind: str, spec: dict[str, Any]) -> None:
        super().__init__(f"no shipped {kind} recognizer for this spec and code")
        self.kind, self.spec = kind, spec


@dataclasses.dataclass
class Trained:
    kind: str
    spec: dict[str, Any]
    state: dict[str, torch.Tensor]
    precision: str
    seconds: float


@dataclasses.dataclass
class _Recorder:
    dry: bool
    found: list[Trained] = dataclasses.field(default_factory=list)


_recorder: _Recorder | None = None


@contextlib.contextmanager
def recording(dry: bool = False):
    """Collect every recognizer :func:`cached_training` trains or takes from the cache in this block (what
    ``privbench build-recognizers`` ships); ``dry``: train nothing, raise :class:`NotShipped` instead."""
    global _recorder
    previous, _recorder = _recorder, _Recorder(dry)
    try:
        yield _recorder
    finally:
        _recorder = previous


#: the seed every built-in recognizer of a synthetic family trains with: the recognizers are the evaluator's
#: instruments, the same at every run seed (and shipped, :mod:`privbench.recognizers.shipped`), so seed-to-seed
#: variation of a score is the pipeline's, not the instrument's
RECOGNIZER_SEED = 0


def training_seed(seed: int, kind: str) -> int:
    return derive_seed(seed, "recognizer", kind)


@torch.no_grad()
def predict(network: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
            device: torch.device | str = "cpu", batch_size: int = INFER_BATCH) -> torch.Tensor:
    """Apply ``network`` to float images in batches (never per image); results on CPU."""
    if isinstance(network, nn.Module):
        network.eval()
    outs = [network(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    if not outs:
        raise PrivbenchError("no images to score")
    return torch.cat(outs)


def adam_schedule(parameters, lr: float, steps: int, weight_decay: float = 1e-4):
    """AdamW with a one-cycle learning-rate schedule (fast convergence in few epochs)."""
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=max(1, steps), pct_start=0.15)
    return optimizer, schedule


def halves(n: int, seed: int, *parts: object) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic random split of ``range(n)`` into two halves (first gets ``n // 2``)."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "halves", *parts))
    order = torch.randperm(n, generator=generator)
    return order[: n // 2].sort().values, order[n // 2:].sort().values


def content_hash(*tensors: torch.Tensor) -> str:
    """SHA-256 of tensors' bytes: keys cached adaptations to the exact reconstructions they were fitted on."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        if t.is_floating_point():
            t = t.clamp(0, 1).mul(255).round().to(torch.uint8)
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:24]


def conv_bn_relu(cin: int, cout: int, stride: int | tuple[int, int] = 1, kernel: int | tuple[int, int] = 3,
                 padding: int | tuple[int, int] = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Standardize(nn.Module):
    """Per-image, per-channel standardisation: removes exposure and white balance before the first conv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = x.std(dim=(2, 3), keepdim=True)
        return (x - mean) / (std + 0.02)


def freeze_batchnorm(network: nn.Module) -> None:
    """Training mode except BatchNorm, whose running statistics a few dozen fine-tuning images must not
    overwrite (used when an adversary adapts a recognizer to reconstructions)."""
    network.train()
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
