"""WebP lossy (VP8 key frame in a RIFF container) through Pillow's libwebp encoder.

- **Quality axis** ``quality`` 0–100: libwebp's quality factor (maps to the VP8 quantizer; higher = more bits,
  less distortion). ``method`` 0–6 is the encoder effort (libwebp ``-m``; default 4, 6 = smallest files, slowest).
- **Gray is not native**: Pillow converts a mode ``L`` image to RGB before encoding (``WebPImagePlugin``
  ``_convert_frame``), and lossy WebP is always YUV 4:2:0 (limited range, BT.601), so the chroma planes are flat
  and cost only a few bytes. The decoded RGB is turned back into gray with Pillow's ``convert("L")`` (ITU-R 601-2
  luma, L = (299 R + 587 G + 114 B)/1000), which returns the common value exactly where the three planes are equal.
- **RGB** is coded 4:2:0 (the only lossy mode of VP8): on 32×32 images the chroma subsampling caps the PSNR near
  24–29 dB whatever the quality, so WebP cannot reach 35 dB on the default input images.
- **Overhead**: RIFF/WEBP/VP8 chunk headers and the VP8 frame header. Measured file of a 1×1 frame: 44 bytes.

Relies on Pillow's WebP writer options ``quality``, ``method``, ``lossless`` (Pillow handbook, "Image file
formats: WebP").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from privbench.codecs.pillow_codec import PillowCodec
from privbench.registry import CODECS, Param


@CODECS.register("webp")
class Webp(PillowCodec):
    summary = "WebP lossy (VP8, 4:2:0) via Pillow/libwebp; gray coded as RGB (flat chroma), luma returned"
    quality_param = "quality"
    higher_is_better = True
    native_gray = False
    requires = "Pillow with libwebp (in the Pillow wheels)"
    pillow_format, pillow_feature = "WEBP", "webp"
    quality_meaning = "libwebp quality factor 0-100 (higher = more bits, less distortion)"
    params = (
        Param("quality", int, 75, "libwebp quality factor (higher = more bits, less distortion)", low=0, high=100),
        Param("method", int, 4, "encoder effort (0 = fastest, 6 = smallest files)", low=0, high=6),
    )

    def image(self, frame: np.ndarray) -> Image.Image:
        return Image.fromarray(frame).convert("RGB")  # lossy WebP has no gray mode: three equal planes

    def save_options(self, frame: np.ndarray) -> dict[str, Any]:
        return {"lossless": False, "quality": int(self.params["quality"]), "method": int(self.params["method"])}
