"""PNG (Pillow, zlib): the lossless reference codec.

The decoded frame equals the coded one bit for bit, so a pipeline coded with ``png`` differs from the uncoded
one only by the 8-bit quantization of the features (at most half a step, ``(max − min)/510``) — the check that
the coding stage itself loses nothing. Its ``quality`` axis is zlib's compression level 0–9: it changes only the
bits and the time, never the decoded frame. Gray frames are coded natively (mode ``L``). The PNG signature and
IHDR/IDAT/IEND chunks cost 57 bytes of a tiny frame's file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privbench.codecs.pillow_codec import PillowCodec
from privbench.registry import CODECS, Param


@CODECS.register("png")
class Png(PillowCodec):
    summary = "PNG via Pillow: lossless (the reference that the coding stage itself loses nothing); quality = zlib level"
    quality_param = "quality"
    higher_is_better = False
    native_gray = True
    requires = "Pillow (a dependency)"
    pillow_format, pillow_feature = "PNG", "zlib"
    quality_meaning = "zlib compression level 0-9 (lossless at every level; higher = fewer bits, slower)"
    params = (Param("quality", int, 6, "zlib compression level (lossless at every level)", low=0, high=9),)

    def save_options(self, frame: np.ndarray) -> dict[str, Any]:
        return {"compress_level": int(self.params["quality"])}
