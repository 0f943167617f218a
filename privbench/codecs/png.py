"""PNG (Pillow, zlib): the lossless reference codec.

The decoded frame equals the coded one bit for bit, so a pipeline coded with ``png`` differs from the uncoded
one only by the 8-bit quantization of the features (at most half a step, ``(max − min)/510``) — the check that
the coding stage itself loses nothing. Its ``quality`` axis is zlib's compression level 0–9: it changes only the
bits and the time, never the decoded frame. Gray frames are coded natively (mode ``L``). The PNG signature and
IHDR/IDAT/IEND chunks cost 57 bytes of a tiny frame's file.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from privbench.codecs.base import Codec, check_frame
from privbench.registry import CODECS, Param


@CODECS.register("png")
class Png(Codec):
    summary = "PNG via Pillow: lossless (the reference that the coding stage itself loses nothing); quality = zlib level"
    quality_param = "quality"
    higher_is_better = False
    native_gray = True
    requires = "Pillow (a dependency)"
    quality_meaning = "zlib compression level 0-9 (lossless at every level; higher = fewer bits, slower)"
    params = (Param("quality", int, 6, "zlib compression level (lossless at every level)", low=0, high=9),)

    def encode(self, frame: np.ndarray) -> bytes:
        check_frame(frame, self.name)
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG", compress_level=int(self.params["quality"]))
        return buffer.getvalue()

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("L" if len(shape) == 2 else "RGB"), dtype=np.uint8).copy()
