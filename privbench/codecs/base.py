"""Codec base class: a real image codec that turns one 8-bit frame into a bitstream and back.

One small base class, as in CompressAI's ``utils/bench/codecs.py``: a codec encodes a ``uint8`` frame — a
grayscale ``H×W`` frame (tiled, quantized features) or an ``H×W×3`` RGB image (input coding) — into the bytes
a receiver needs to decode it, and decodes them back. Bits are always counted from those real bytes
(``8·len(bitstream)``), never estimated.

Each codec declares

- its quality axis (``quality_param``: the declared parameter a sweep varies, e.g. ``quality`` or ``qp``) and
  its direction (``higher_is_better``: ``True`` when a larger value gives more bits and less distortion);
- ``native_gray``: whether it codes a single luma plane natively (otherwise a gray frame is coded as RGB with
  equal planes — chroma then costs a few bits — and the luma of the decoded frame is used);
- ``requires``: what must be installed (a Python package, a Debian package, a binary named by path); a codec
  whose requirement is missing raises one clear :class:`PrivbenchError` line from :meth:`check_available`.

The coding-stage parameters (``placement``, ``clip_sigma``, ``clip_min``/``clip_max``) are declared here for
every codec: what is coded (the features at the split, or the input image) and how features are clipped
before 8-bit quantization (paper 000 §V: ±6σ of the coded tensor). The codec itself never sees them.
"""

from __future__ import annotations

import math
import time
from typing import ClassVar

import numpy as np

from privbench.errors import PrivbenchError
from privbench.registry import Component, Param

#: Parameters of the coding stage, common to every codec (see :mod:`privbench.codecs.stage`).
STAGE_PARAMS = (
    Param("placement", str, "features", "what is coded and sent: the features at the split (clipped, 8-bit "
          "quantized, tiled into one gray frame) or the input image itself (RGB; the cloud runs the whole "
          "network)", choices=("features", "input")),
    Param("clip_sigma", float, 6.0, "features are clipped to mean ± clip_sigma·σ of the coded tensor on the task's "
          "training set, intersected with the range observed there (paper 000: ±6σ)", low=0.1, high=1000.0),
    Param("clip_min", float, None, "explicit lower clipping bound of the features (with clip_max; replaces "
          "clip_sigma)"),
    Param("clip_max", float, None, "explicit upper clipping bound of the features (with clip_min)"),
)


class Codec(Component):
    """A real image codec. Subclasses implement :meth:`encode` and :meth:`decode` (and may override
    :meth:`check_available`); the quality axis is the declared parameter named ``quality_param``."""

    kind: ClassVar[str] = "codec"
    #: the declared parameter that is the sweep axis (``qualities:`` in a config)
    quality_param: ClassVar[str] = "quality"
    #: True when a larger quality value means more bits and less distortion (False for a QP)
    higher_is_better: ClassVar[bool] = True
    #: True when a gray frame is coded as one luma plane (no chroma)
    native_gray: ClassVar[bool] = False
    #: what must be installed for this codec, for ``privbench list codecs`` and error messages
    requires: ClassVar[str] = ""
    #: what the quality axis means, for ``privbench list codecs``
    quality_meaning: ClassVar[str] = ""

    @classmethod
    def declared_params(cls) -> tuple[Param, ...]:
        return (*cls.params, *STAGE_PARAMS)

    def _check_params(self) -> None:
        low, high = self.params["clip_min"], self.params["clip_max"]
        if (low is None) != (high is None):
            raise PrivbenchError(f"codec '{self.name}': give both clip_min and clip_max, or neither")
        if low is not None:
            for bound in (low, high):
                if not isinstance(bound, (int, float)) or isinstance(bound, bool) or not math.isfinite(bound):
                    raise PrivbenchError(f"codec '{self.name}': clip_min and clip_max must be finite numbers")
            if not low < high:
                raise PrivbenchError(f"codec '{self.name}': clip_min ({low:g}) must be below clip_max ({high:g})")
            self.params["clip_min"], self.params["clip_max"] = float(low), float(high)

    @property
    def quality(self) -> float:
        return float(self.params[self.quality_param])

    def check_available(self) -> None:
        """Raise one clear :class:`PrivbenchError` line when the library or binary this codec needs is missing."""

    def version(self) -> str:
        """The versions of what does the coding (library, binary): part of every cache key downstream of the codec,
        so results coded by another encoder build are recomputed, never reused."""
        return ""

    def encode(self, frame: np.ndarray) -> bytes:
        """The bitstream of one ``uint8`` frame (``H×W`` gray or ``H×W×3`` RGB, C-contiguous)."""
        raise NotImplementedError

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """The decoded ``uint8`` frame of ``shape`` (the shape given to :meth:`encode`)."""
        raise NotImplementedError

    def roundtrip(self, frame: np.ndarray) -> tuple[np.ndarray, int, float, float]:
        """Encode and decode one frame: (decoded frame, bits, encode seconds, decode seconds)."""
        start = time.perf_counter()
        data = self.encode(frame)
        encoded = time.perf_counter()
        decoded = self.decode(data, frame.shape)
        done = time.perf_counter()
        if decoded.shape != frame.shape or decoded.dtype != np.uint8:
            raise PrivbenchError(f"codec '{self.name}' decoded a {decoded.dtype} frame of shape {decoded.shape}, "
                                 f"expected uint8 {frame.shape}")
        return decoded, 8 * len(data), encoded - start, done - encoded


    def roundtrip_batch(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, int, float, float]]:
        """:meth:`roundtrip` of several frames of one shape, each coded on its own (an intra picture each: the
        bits of each are what sending it alone costs). Codecs with a per-call cost (an external process) override
        it to code the frames in one call; the times are then the call's shared equally."""
        return [self.roundtrip(frame) for frame in frames]


def check_frame(frame: np.ndarray, owner: str) -> None:
    """A frame a codec accepts: uint8, ``H×W`` or ``H×W×3``, at least 1×1."""
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] != 3):
        raise PrivbenchError(f"codec '{owner}' codes uint8 H×W or H×W×3 frames, got {frame.dtype} {frame.shape}")
