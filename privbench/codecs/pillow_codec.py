"""The Pillow codecs' common part: save a frame to an in-memory file with Pillow, open it back.

A Pillow codec names its Pillow format and feature (``PIL.features.check``) and says which writer options a frame
is saved with (:meth:`PillowCodec.save_options`); the bitstream is the bytes Pillow writes (a codec may trim what is
not picture data in :meth:`PillowCodec.finish`). Gray frames decode as mode ``L`` — the exact value when a codec
that is not natively gray coded three equal planes — and RGB frames as ``RGB``.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import numpy as np
import PIL
from PIL import Image, features

from privbench.codecs.base import Codec, check_frame
from privbench.errors import PrivbenchError


class PillowCodec(Codec):
    #: Pillow's format name (``Image.save(format=...)``) and the feature that must be compiled in
    pillow_format: ClassVar[str] = ""
    pillow_feature: ClassVar[str] = ""
    #: how to get the feature when it is missing (the error message's advice)
    install_hint: ClassVar[str] = "pip install --force-reinstall pillow"

    def check_available(self) -> None:
        if not features.check(self.pillow_feature):
            raise PrivbenchError(f"codec '{self.name}' needs Pillow built with {self.pillow_feature} "
                                 f"({self.install_hint})")

    def version(self) -> str:
        return f"Pillow {PIL.__version__}, {self.pillow_feature} {features.version(self.pillow_feature)}"

    def save_options(self, frame: np.ndarray) -> dict[str, Any]:
        """Pillow writer options for ``frame`` (its quality among them)."""
        raise NotImplementedError

    def image(self, frame: np.ndarray) -> Image.Image:
        """The image Pillow saves (a codec without native gray converts here)."""
        return Image.fromarray(frame)

    def finish(self, data: bytes) -> bytes:
        """The bitstream from what Pillow wrote (default: all of it)."""
        return data

    def encode(self, frame: np.ndarray) -> bytes:
        check_frame(frame, self.name)
        buffer = io.BytesIO()
        self.image(frame).save(buffer, format=self.pillow_format, **self.save_options(frame))
        return self.finish(buffer.getvalue())

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        with Image.open(io.BytesIO(data), formats=[self.pillow_format]) as image:
            return np.asarray(image.convert("L" if len(shape) == 2 else "RGB"), dtype=np.uint8).copy()
