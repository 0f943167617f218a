"""The codec stage: what crosses the network is coded with a real codec and decoded (DESIGN §1, §8).

A :class:`CodecStage` is the last stage of the edge side. For ``placement=features`` it codes the (defended)
features at the split — clip, 8-bit quantize, tile into one gray frame per image (:mod:`privbench.codecs.tiling`),
encode, decode, untile, dequantize — and the back sees the decoded tensor. For ``placement=input`` it codes the
RGB image itself (8-bit, as the camera gives it; paper 000's "Benchmark-input"): the split moves to the input,
the whole network runs in the cloud on the decoded image, and that decoded image is what an observer holds.

The stage is not differentiable. It declares a **straight-through** approximation (Bengio et al. 2013): the
backward pass is that of the clipping alone (identity inside the clipping range, zero outside), so a white-box
attack that accepts the approximation (rMLE) optimizes through the real codec in the forward pass.

Bits are the real bitstreams' lengths. A :class:`CodingTally` opened with :meth:`CodecStage.counting` collects
the bits and encode/decode seconds of every frame coded while it is open; bpp = total bits / total
input-image pixels (paper 000). Frames of a batch are coded in a thread pool of one worker per core (the
codecs release the GIL or run as subprocesses), so a 2-core machine keeps both cores busy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from privbench.codecs.base import Codec
from privbench.codecs.tiling import ClipRange, dequantize, quantize, tile, untile
from privbench.errors import PrivbenchError
from privbench.split import SplitModel, Stage, pipeline_stages

#: workers of the coding pool: one per core
CODING_WORKERS = max(1, os.cpu_count() or 1)


@functools.cache
def coding_pool() -> ThreadPoolExecutor:
    """One process-wide pool for coding frames (created on first use, one worker per core)."""
    return ThreadPoolExecutor(max_workers=CODING_WORKERS, thread_name_prefix="privbench-codec")


@dataclasses.dataclass
class CodingTally:
    """Bits and times of the frames coded while a :meth:`CodecStage.counting` block is open."""

    bits: int = 0
    frames: int = 0
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0

    def add(self, bits: int, encode_seconds: float, decode_seconds: float) -> None:
        self.bits += bits
        self.frames += 1
        self.encode_seconds += encode_seconds
        self.decode_seconds += decode_seconds


@dataclasses.dataclass
class CodingClock:
    """Process-wide wall time spent coding frames (for benchmarks: the codecs' share of a rate sweep)."""

    seconds: float = 0.0
    frames: int = 0


CLOCK = CodingClock()


def code_frames(codec: Codec, frames: np.ndarray) -> list[tuple[np.ndarray, int, float, float]]:
    """:meth:`Codec.roundtrip_batch` of a batch of frames, split into one chunk per worker of the coding pool
    (order kept)."""
    start = time.perf_counter()
    items = [np.ascontiguousarray(frame) for frame in frames]
    workers = CODING_WORKERS
    if len(items) < 2 or workers < 2:
        results = codec.roundtrip_batch(items)
    else:  # one contiguous chunk per worker: few, large jobs (a job of one small JPEG costs less than its queueing)
        size = -(-len(items) // workers)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        results = [r for part in coding_pool().map(codec.roundtrip_batch, chunks) for r in part]
    CLOCK.seconds += time.perf_counter() - start
    CLOCK.frames += len(items)
    return results


class CodecStage(Stage):
    """Codes what crosses the network with ``codec``; ``clip`` is the features' clipping range (``None`` for
    input coding, whose range is the pixels' [0, 1])."""

    differentiable = False
    approximation = "straight-through"
    stochastic = False

    def __init__(self, codec: Codec, clip: ClipRange | None) -> None:
        super().__init__()
        codec.check_available()
        self.codec = codec
        self.placement = codec.params["placement"]
        if (self.placement == "features") != (clip is not None):
            raise PrivbenchError("internal error: feature coding needs a clipping range, input coding none")
        self.clip = clip or ClipRange(0.0, 1.0, "pixels")
        self.label = f"codec {codec.name}@{self.placement} {codec.quality_param}={codec.quality:g}"
        self.tally: CodingTally | None = None

    @contextlib.contextmanager
    def counting(self) -> Iterator[CodingTally]:
        self.tally = tally = CodingTally()
        try:
            yield tally
        finally:
            self.tally = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clipped = x.clamp(self.clip.low, self.clip.high)
        decoded = self._code(clipped.detach()).to(device=x.device, dtype=x.dtype)
        if torch.is_grad_enabled() and x.requires_grad:
            # straight-through: the forward value is the decoded tensor, the gradient that of the clipping
            return clipped + (decoded - clipped).detach()
        return decoded

    def _code(self, x: torch.Tensor) -> torch.Tensor:
        if self.placement == "input":
            if x.dim() != 4 or x.shape[1] != 3:
                raise PrivbenchError(f"input coding codes N×3×H×W RGB images, got a tensor of shape {tuple(x.shape)}")
            frames = (x * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        else:
            if x.dim() != 4:
                raise PrivbenchError(f"feature coding tiles N×C×H×W features, got a tensor of shape {tuple(x.shape)}")
            frames = tile(quantize(x.float(), self.clip)).cpu().numpy()
        results = code_frames(self.codec, frames)
        if self.tally is not None:
            for _, bits, encode_s, decode_s in results:
                self.tally.add(bits, encode_s, decode_s)
        decoded = torch.from_numpy(np.stack([r[0] for r in results]))
        if self.placement == "input":
            return decoded.permute(0, 3, 1, 2).float().div(255.0)
        return dequantize(untile(decoded, x.shape[1]), self.clip)

    def extra_repr(self) -> str:
        return f"{self.label}, clip=[{self.clip.low:.4g}, {self.clip.high:.4g}]"


def codec_stages(model: SplitModel) -> list[CodecStage]:
    return [s for s in pipeline_stages(model.front) if isinstance(s, CodecStage)]


def with_codec(defended: SplitModel, model: SplitModel, stage: CodecStage) -> SplitModel:
    """The coded pipeline: ``defended`` with ``stage`` at the end of its edge side.

    Feature coding appends the stage to the defended front. Input coding sends the (possibly defended) image:
    the edge side is the defense's input stage, if any, then the codec; the cloud runs the task model's whole
    network (``model``'s front and back) and the split is ``input``. A defense that changes the network beyond
    the input cannot run before input coding and is refused.
    """
    if stage.placement == "features":
        front = nn.Sequential(OrderedDict(edge=defended.front, codec=stage))
        return defended.derive(front, defended.back, input_stage=defended.input_stage)
    if defended is not model and (defended.input_stage is None or defended.back is not model.back):
        raise PrivbenchError("input coding sends the image, so the whole network runs in the cloud: only a defense "
                             "that transforms the image (or none) can run before it")
    edge = stage if defended.input_stage is None else nn.Sequential(OrderedDict(defense=defended.input_stage,
                                                                                codec=stage))
    cloud = nn.Sequential(OrderedDict(front=model.front, back=model.back))
    return model.derive(edge, cloud, split="input", input_stage=edge)
