"""JPEG (ITU-T T.81 baseline) through Pillow's libjpeg(-turbo) encoder.

- **Quality axis** ``quality`` 1–95: the IJG quality factor, which scales libjpeg's standard quantization tables
  (higher = finer quantization, more bits). Pillow's documentation advises against values above 95 (100 turns
  most of the quantization off and only inflates the file), so the range stops there.
- **Gray** is native: an ``H×W`` frame is saved as mode ``L``, one component, no chroma.
- **RGB** is coded as YCbCr with ``subsampling`` (default ``4:4:4``: no chroma subsampling, as paper 000's input
  baseline codes yuv444; on 32×32 images 4:2:0 caps the PSNR near 24–28 dB whatever the quality).
- **Settings**: ``optimize=True`` (per-image Huffman tables: the same decoded image with fewer bytes; libjpeg's
  standard tables make a 1×1 gray file 172 bytes larger), baseline sequential (progressive mode was measured
  larger on 32×32 to 64×128 frames).
- **Overhead**: Pillow writes a JFIF APP0 segment (18 bytes), the quantization and the Huffman tables. Measured
  file of a 1×1 frame: 159 bytes gray, 282 bytes RGB 4:4:4 — the floor at 32×32 (a 32×32 RGB image at 35 dB is
  about 1.2 kB).

Relies on Pillow's JPEG writer options ``quality``, ``optimize``, ``subsampling`` (Pillow handbook, "Image file
formats: JPEG").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privbench.codecs.pillow_codec import PillowCodec
from privbench.registry import CODECS, Param


@CODECS.register("jpeg")
class Jpeg(PillowCodec):
    summary = "JPEG baseline via Pillow/libjpeg, optimized Huffman tables; gray native; RGB 4:4:4 by default"
    quality_param = "quality"
    higher_is_better = True
    native_gray = True
    requires = "Pillow with JPEG support (in the Pillow wheels)"
    pillow_format, pillow_feature = "JPEG", "jpg"
    quality_meaning = "IJG quality factor 1-95 (scales the quantization tables; higher = more bits, less distortion)"
    params = (
        Param("quality", int, 75, "IJG quality factor (higher = more bits, less distortion)", low=1, high=95),
        Param("subsampling", str, "4:4:4", "chroma subsampling of RGB frames (gray frames have no chroma)",
              choices=("4:4:4", "4:2:2", "4:2:0")),
    )

    def save_options(self, frame: np.ndarray) -> dict[str, Any]:
        return {"quality": int(self.params["quality"]), "optimize": True, "subsampling": self.params["subsampling"]}
