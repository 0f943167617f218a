"""AVIF (AV1 intra frame in a HEIF container) through Pillow's native AVIF plugin (libavif + libaom).

- **Quality axis** ``quality`` 0–100: libavif's quality (mapped onto the AV1 quantizer index; higher = more bits,
  less distortion; 100 is lossless for gray frames). ``speed`` 0–10 is libaom's speed preset via libavif (0 =
  slowest, smallest; Pillow's default 6).
- **Gray is native**: Pillow 13 saves a mode ``L`` image as a monochrome AV1 image (``subsampling`` defaults to
  ``4:0:0`` for gray modes in ``AvifImagePlugin._save``) and decodes it back as ``L``. (Older Pillow releases
  converted non-RGB modes to RGB; the installed 13.0 does not — checked: decoded mode ``L``.)
- **RGB** is coded as YCbCr with ``subsampling`` (default ``4:4:4``, as paper 000's yuv444 input baseline; 4:2:0
  caps the PSNR of 32×32 images near 24–29 dB), full range.
- **Threads**: the encoder runs on one thread (``max_threads=1``, Pillow's default is all cores) so that frames
  coded in parallel by the coding stage do not oversubscribe the cores and results do not depend on the machine.
- **Overhead**: the HEIF boxes (ftyp, meta with hdlr/pitm/iloc/iinf/iprp: av1C, ispe, pixi, colr) and the AV1
  sequence header. Measured file of a 1×1 frame: 294 bytes gray, 304 bytes RGB —
  a third of a 32×32 RGB image's ~900 bytes at 35 dB.

Relies on Pillow's AVIF writer options ``quality``, ``speed``, ``subsampling``, ``max_threads`` (Pillow handbook,
"Image file formats: AVIF", and ``PIL/AvifImagePlugin.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privbench.codecs.pillow_codec import PillowCodec
from privbench.registry import CODECS, Param


@CODECS.register("avif")
class Avif(PillowCodec):
    summary = "AVIF (AV1-Intra, libaom) via Pillow's native plugin; gray native (4:0:0); RGB 4:4:4 by default"
    quality_param = "quality"
    higher_is_better = True
    native_gray = True
    requires = "Pillow >= 11.3 with AVIF support (in the Pillow wheels)"
    pillow_format, pillow_feature, install_hint = "AVIF", "avif", "pip install -U 'pillow>=11.3'"
    quality_meaning = "libavif quality 0-100 (maps to the AV1 quantizer; higher = more bits, less distortion)"
    params = (
        Param("quality", int, 75, "libavif quality (higher = more bits, less distortion)", low=0, high=100),
        Param("speed", int, 6, "libaom speed preset (0 = slowest, smallest; 10 = fastest)", low=0, high=10),
        Param("subsampling", str, "4:4:4", "chroma subsampling of RGB frames (gray frames are coded 4:0:0)",
              choices=("4:4:4", "4:2:2", "4:2:0")),
    )

    def save_options(self, frame: np.ndarray) -> dict[str, Any]:
        return {"quality": int(self.params["quality"]), "speed": int(self.params["speed"]), "max_threads": 1,
                "subsampling": "4:0:0" if frame.ndim == 2 else self.params["subsampling"]}
