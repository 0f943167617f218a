"""What a (defended) front costs on the edge device: parameters, multiply–accumulates, latency, throughput.

A defense is part of the deployed edge pipeline, so its price is paid on the camera/phone: a learned
obfuscator adds weights and MACs, a blur adds a depthwise convolution, noise adds almost nothing. Paper 004
(De Coninck et al.) argues for a *lightweight* edge obfuscator; :func:`edge_cost` puts numbers on that for
any front, so privacy–utility results can be read next to what the edge has to run.

Measurement is non-intrusive: the module's train/eval flags (each submodule's) and torch's global random
state are restored afterwards, nothing is moved between devices, and no gradients are recorded.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from privbench.errors import PrivbenchError


@dataclasses.dataclass(frozen=True)
class EdgeCost:
    """Cost of one front on one device.

    ``params``: number of parameter elements (trainable or frozen; buffers such as batch-norm running
    statistics are not parameters and are not counted). ``macs``: multiply–accumulates of one image's
    forward pass, as counted by :func:`count_macs`. ``latency_ms``: median wall time of a forward pass at
    batch size 1. ``images_per_s``: images per second at batch size ``batch`` (from the median batch time).
    """

    params: int
    macs: int
    latency_ms: float
    images_per_s: float
    batch: int
    device: str

    def as_dict(self) -> dict[str, float | int | str]:
        return dataclasses.asdict(self)


def count_params(module: nn.Module) -> int:
    """Number of parameter elements of ``module``, trainable or not (a parameter shared twice counts once)."""
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, input_shape: tuple[int, ...], device: torch.device | str | None = None) -> int:
    """Multiply–accumulates of one forward pass on a single input of shape ``input_shape`` (no batch dim).

    Counted with torch's own :class:`torch.utils.flop_counter.FlopCounterMode`, which knows the matrix
    products (``mm``/``addmm``/``bmm``, i.e. linear layers, attention) and convolutions and counts each as
    2·m·k·n FLOPs; MACs are FLOPs / 2. Operations it does not know count zero: elementwise ops
    (activations, additive noise, dropout masks, bias additions), pooling, normalization, padding and
    resampling are *not* counted. Counted ops inside defense stages count too: a Gaussian blur is a
    depthwise convolution (plus the small outer product that builds its kernel on every call). The module
    is run once in eval mode under ``torch.no_grad``, on one CPU thread (the count does not depend on it, and
    one thread is not slowed down by a busy host; see :func:`time_forward`).
    """
    device, dtype = _placement(module, device)
    x = torch.zeros(1, *input_shape, device=device, dtype=dtype)
    from torch.utils.flop_counter import FlopCounterMode  # on use: it imports triton when installed (~0.2 s)

    with _measuring(module, device), _cpu_threads(1), FlopCounterMode(display=False) as counter:
        module(x)
    return int(counter.get_total_flops()) // 2


def time_forward(module: nn.Module, input_shape: tuple[int, ...], device: torch.device | str | None = None, *,
                 batch: int = 1, repeats: int = 20, warmup: int = 3, threads: int | None = 1) -> float:
    """Median wall time in seconds of one forward pass on a batch of ``batch`` random inputs in [0, 1].

    ``warmup`` untimed passes come first (allocator, kernel selection, lazy imports); each of the
    ``repeats`` timed passes is measured on its own with :func:`time.perf_counter` (synchronizing CUDA), and
    the median is returned so that one descheduled pass does not skew it. Eval mode, ``torch.inference_mode``.

    ``threads`` is the number of CPU threads torch may use while timing (restored afterwards; ``None`` keeps
    the current setting). The default 1 models a single-core edge budget and keeps the number meaningful on
    a busy host: with 2 intra-op threads on a 2-core machine shared with one other busy process, a 0.1 ms
    forward was measured at 25–36 ms, every parallel region waiting for the descheduled thread.
    """
    if batch < 1 or repeats < 1 or warmup < 0 or (threads is not None and threads < 1):
        raise PrivbenchError(f"time_forward needs batch >= 1, repeats >= 1, warmup >= 0, threads >= 1; got "
                             f"{batch}, {repeats}, {warmup}, {threads}")
    device, dtype = _placement(module, device)
    sync = _synchronizer(device)
    with _measuring(module, device), _cpu_threads(threads), torch.inference_mode():
        x = torch.rand(batch, *input_shape, device=device, dtype=dtype,
                       generator=torch.Generator(device).manual_seed(0))
        for _ in range(warmup):
            module(x)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def edge_cost(edge: nn.Module, input_shape: tuple[int, ...], device: torch.device | str | None = None, *,
              repeats: int = 20, batch: int = 16, warmup: int = 3, threads: int | None = 1) -> EdgeCost:
    """Parameters, MACs, batch-1 latency and batched throughput of ``edge`` (e.g. a defended front).

    ``input_shape`` is one input without the batch dimension (C×H×W for images). ``device`` defaults to the
    module's own (that of its first parameter or buffer, else CPU); the module is never moved, so a given
    device must be the one it lives on. Latency takes ``warmup`` + ``repeats`` passes at batch 1 and
    throughput ``warmup`` + ``max(3, repeats // 4)`` passes at batch ``batch``: for a small CNN front at
    32 px the whole measurement takes well under a second on CPU (30–50 ms for ``vgg-small`` width 8 cut
    at ``relu22``, measured on a busy 2-core host), but the first call in a process also pays a one-off
    1–2 s: FlopCounterMode's first convolution makes torch import ``torch._dynamo``.
    ``threads``: CPU threads while timing (see :func:`time_forward`). Stochastic defense stages are fine
    (they draw fresh randomness per pass, and torch's global random state is restored afterwards).
    """
    timing = dict(warmup=warmup, threads=threads)
    latency = time_forward(edge, input_shape, device, batch=1, repeats=repeats, **timing)
    batched = time_forward(edge, input_shape, device, batch=batch, repeats=max(3, repeats // 4), **timing)
    resolved, _ = _placement(edge, device)
    return EdgeCost(params=count_params(edge), macs=count_macs(edge, input_shape, device),
                    latency_ms=latency * 1e3, images_per_s=batch / batched, batch=batch, device=str(resolved))


def _placement(module: nn.Module, device: torch.device | str | None) -> tuple[torch.device, torch.dtype]:
    """The device to run on (the module's own by default) and the input dtype (its floating dtype)."""
    tensors = [*module.parameters(), *module.buffers()]
    own = tensors[0].device if tensors else None
    target = torch.device(device) if device is not None else (own or torch.device("cpu"))
    if own is not None:
        if own.type != target.type or (target.index is not None and own.index != target.index):
            raise PrivbenchError(f"edge cost: the module lives on {own}, not on {target} (it is not moved)")
        target = own
    elif target.type == "cuda" and target.index is None:
        target = torch.device("cuda", torch.cuda.current_device())
    floating = [t.dtype for t in tensors if t.is_floating_point()]
    return target, (floating[0] if floating else torch.float32)


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@contextmanager
def _cpu_threads(threads: int | None) -> Iterator[None]:
    """Limit torch's intra-op CPU threads to ``threads`` for the duration (``None``: leave as is)."""
    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextmanager
def _measuring(module: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode, no gradients and a private random state for the duration; every module's flag restored."""
    modes = [(m, m.training) for m in module.modules()]
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            module.eval()
            yield
    finally:
        for m, training in modes:
            m.training = training
