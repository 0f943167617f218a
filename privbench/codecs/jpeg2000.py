"""JPEG 2000 (ISO/IEC 15444-1) through Pillow's OpenJPEG encoder: lossy, irreversible 9/7 wavelet.

- **Quality axis** ``quality``: the **target PSNR in dB** of the single quality layer (OpenJPEG's
  ``quality_mode="dB"``, ``quality_layers=[quality]``). OpenJPEG's rate allocation truncates the code-blocks'
  passes until the layer reaches that PSNR over all samples, so the achieved PSNR lands within a few tenths of a
  dB of the target and the bits rise monotonically with it: a clean rate axis that also lines codecs up at equal
  PSNR. The compression-ratio mode (``"rates"``) was measured worse as an axis: every ratio above about 50 gives
  the same minimal codestream on a 32×32 image (a flat, non-informative end). Valid range 15–60 dB: below about
  18 dB the codestream bottoms out (the headers plus the coarsest coefficients), above about 56 dB the 9/7
  transform saturates (no further bits are spent).
- **Gray** is native (one component). **RGB** is coded as three components; ``mct`` enables the irreversible
  colour transform (ICT, YCbCr). Default off: on the default 32×32 input images it was measured ~4% smaller at
  equal PSNR without it, and then the dB target is the RGB PSNR itself.
- **Container**: the raw codestream (``.j2k``, ``no_jp2=True``) is used; the JP2 box structure adds 85 bytes
  and carries nothing a receiver that knows the frame needs. OpenJPEG always writes a comment marker segment
  ("Created by OpenJPEG version ...", 39 bytes): informative text, not picture data (ISO/IEC 15444-1 A.9.2), so
  it is removed from the main header. Measured codestream of a 1×1 frame: 83 bytes gray, 91 bytes RGB (SIZ,
  COD, QCD with one step size per sub-band, SOT/SOD) — the floor at 32×32.

Relies on Pillow's JPEG 2000 writer options ``irreversible``, ``quality_mode``, ``quality_layers``, ``no_jp2``,
``mct`` (Pillow handbook, "Image file formats: JPEG 2000") and on the marker syntax of ISO/IEC 15444-1 Annex A.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privbench.codecs.pillow_codec import PillowCodec
from privbench.registry import CODECS, Param

_SOC, _SOT, _COM = 0xFF4F, 0xFF90, 0xFF64


def strip_comments(codestream: bytes) -> bytes:
    """The codestream without its main-header COM marker segments (unchanged if its structure is unexpected).

    The main header runs from SOC to the first SOT; every marker segment there is ``marker (2 bytes), length
    Lxxx (2 bytes, counting itself)`` (ISO/IEC 15444-1 A.1.4). Removing a COM segment changes no other field:
    tile-part lengths (Psot) count from their own SOT.
    """
    if len(codestream) < 4 or int.from_bytes(codestream[:2], "big") != _SOC:
        return codestream
    kept, pos = [codestream[:2]], 2
    while pos + 4 <= len(codestream):
        marker = int.from_bytes(codestream[pos:pos + 2], "big")
        if marker == _SOT:
            return b"".join(kept) + codestream[pos:]
        if marker >> 8 != 0xFF:
            return codestream
        end = pos + 2 + int.from_bytes(codestream[pos + 2:pos + 4], "big")
        if end > len(codestream):
            return codestream
        if marker != _COM:
            kept.append(codestream[pos:end])
        pos = end
    return codestream


@CODECS.register("jpeg2000")
class Jpeg2000(PillowCodec):
    summary = "JPEG 2000 (OpenJPEG via Pillow), irreversible 9/7, raw codestream; quality = target PSNR in dB; gray native"
    quality_param = "quality"
    higher_is_better = True
    native_gray = True
    requires = "Pillow with OpenJPEG (in the Pillow wheels)"
    pillow_format, pillow_feature = "JPEG2000", "jpg_2000"
    quality_meaning = "target PSNR in dB of the single quality layer, 15-60 (OpenJPEG rate allocation; higher = more bits)"
    params = (
        Param("quality", float, 35.0, "target PSNR (dB) of the one quality layer", low=15.0, high=60.0),
        Param("mct", bool, False, "RGB frames: code through the irreversible colour transform (YCbCr)"),
    )

    def save_options(self, frame: np.ndarray) -> dict[str, Any]:
        return {"irreversible": True, "no_jp2": True, "quality_mode": "dB",
                "quality_layers": [float(self.params["quality"])],
                "mct": int(bool(self.params["mct"]) and frame.ndim == 3)}

    def finish(self, data: bytes) -> bytes:
        return strip_comments(data)
