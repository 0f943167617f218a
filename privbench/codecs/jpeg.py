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

import io

import numpy as np
from PIL import Image, features

from privbench.codecs.base import Codec, check_frame
from privbench.errors import PrivbenchError
from privbench.registry import CODECS, Param


@CODECS.register("jpeg")
class Jpeg(Codec):
    summary = "JPEG baseline via Pillow/libjpeg, optimized Huffman tables; gray native; RGB 4:4:4 by default"
    quality_param = "quality"
    higher_is_better = True
    native_gray = True
    requires = "Pillow with JPEG support (in the Pillow wheels)"
    quality_meaning = "IJG quality factor 1-95 (scales the quantization tables; higher = more bits, less distortion)"
    params = (
        Param("quality", int, 75, "IJG quality factor (higher = more bits, less distortion)", low=1, high=95),
        Param("subsampling", str, "4:4:4", "chroma subsampling of RGB frames (gray frames have no chroma)",
              choices=("4:4:4", "4:2:2", "4:2:0")),
    )

    def check_available(self) -> None:
        if not features.check("jpg"):
            raise PrivbenchError("codec 'jpeg' needs Pillow built with libjpeg (pip install --force-reinstall pillow)")

    def encode(self, frame: np.ndarray) -> bytes:
        check_frame(frame, self.name)
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=int(self.params["quality"]), optimize=True,
                                    subsampling=self.params["subsampling"])
        return buffer.getvalue()

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("L" if len(shape) == 2 else "RGB"), dtype=np.uint8).copy()
