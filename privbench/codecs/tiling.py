"""Feature frames: clip, 8-bit quantize and tile a C×H×W feature tensor into one gray frame, and back.

Paper 000 §IV–V (and its public code): the to-be-coded features are clipped to [min, max] — by default
±6σ of the coded tensor measured on data the defender owns —, quantized to 8 bits with
``q = round((t − min)·255 / (max − min))``, and their channels tiled row-major into a near-square
grayscale mosaic (64 channels → 8×8 tiles, 192 → 16×12) that an image codec codes as one luma-only frame.
The cloud decodes the frame, cuts it back into channels and dequantizes ``t̂ = q·(max − min)/255 + min``.

With a lossless codec the round trip differs from the clipped tensor by at most half a quantization step,
``(max − min) / 510``. Everything here is batched tensor work; only the codec itself runs per frame.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from privbench.errors import PrivbenchError

LEVELS = 255


@dataclasses.dataclass(frozen=True)
class ClipRange:
    """The clipping range of the coded tensor (and where it came from, for the record)."""

    low: float
    high: float
    how: str = "explicit"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or not self.low < self.high:
            raise PrivbenchError(f"feature coding: the clipping range [{self.low:g}, {self.high:g}] is empty or "
                                 f"not finite (the coded features are constant or NaN on the training set?)")

    @property
    def step(self) -> float:
        """One quantization step in the units of the features."""
        return (self.high - self.low) / LEVELS


@dataclasses.dataclass(frozen=True)
class FeatureStats:
    """Summary of the coded tensor on the task's training set, from which the default range is taken."""

    mean: float
    std: float
    min: float
    max: float

    @classmethod
    def of(cls, features: torch.Tensor) -> FeatureStats:
        values = features.detach().double()
        if not bool(torch.isfinite(values).all()):
            raise PrivbenchError("feature coding: the features to be coded contain NaN or infinite values")
        return cls(float(values.mean()), float(values.std(unbiased=False)), float(values.min()), float(values.max()))

    def sigma_range(self, k: float) -> ClipRange:
        """mean ± k·σ (paper 000: k = 6), intersected with the observed [min, max]: levels outside what the
        training features ever reach (e.g. negative values after a ReLU) would only waste code values."""
        low = max(self.min, self.mean - k * self.std)
        high = min(self.max, self.mean + k * self.std)
        return ClipRange(low, high, f"mean±{k:g}σ ∩ observed range on the task's training features")


def grid_shape(channels: int) -> tuple[int, int]:
    """(rows, cols) of the near-square tiling of ``channels`` tiles, rows ≤ cols.

    The most square exact factorization (64 → 8×8, 192 → 12×16, 8 → 2×4); when that is more than twice as wide
    as high (a prime count such as 7 → 1×7), the smallest ⌈√C⌉-wide grid with empty tiles at the end instead.
    """
    if channels < 1:
        raise PrivbenchError(f"feature coding needs at least one channel, got {channels}")
    rows = max(r for r in range(1, math.isqrt(channels) + 1) if channels % r == 0)
    cols = channels // rows
    if cols > 2 * rows:
        cols = math.ceil(math.sqrt(channels))
        rows = math.ceil(channels / cols)
    return rows, cols


def quantize(features: torch.Tensor, clip: ClipRange) -> torch.Tensor:
    """Clip to ``clip`` and map to 8-bit levels (uint8, same shape)."""
    scaled = (features.clamp(clip.low, clip.high) - clip.low) * (LEVELS / (clip.high - clip.low))
    return scaled.round().clamp(0, LEVELS).to(torch.uint8)


def dequantize(levels: torch.Tensor, clip: ClipRange, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return levels.to(dtype) * ((clip.high - clip.low) / LEVELS) + clip.low


def tile(levels: torch.Tensor) -> torch.Tensor:
    """N×C×H×W uint8 → N×(rows·H)×(cols·W) frames, channel k at tile (k // cols, k % cols); empty tiles are 0."""
    n, channels, height, width = levels.shape
    rows, cols = grid_shape(channels)
    padded = levels.new_zeros(n, rows * cols, height, width)
    padded[:, :channels] = levels
    return padded.view(n, rows, cols, height, width).permute(0, 1, 3, 2, 4).reshape(n, rows * height, cols * width)


def untile(frames: torch.Tensor, channels: int) -> torch.Tensor:
    """The inverse of :func:`tile`: N×(rows·H)×(cols·W) → N×C×H×W."""
    n, frame_h, frame_w = frames.shape
    rows, cols = grid_shape(channels)
    if frame_h % rows or frame_w % cols:
        raise PrivbenchError(f"feature coding: a {frame_h}×{frame_w} frame is not a {rows}×{cols} tiling")
    height, width = frame_h // rows, frame_w // cols
    grid = frames.reshape(n, rows, height, cols, width).permute(0, 1, 3, 2, 4).reshape(n, rows * cols, height, width)
    return grid[:, :channels]
