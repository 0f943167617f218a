"""Codecs: each module registers one real image codec with ``@CODECS.register(name)``.

Pillow's ``png`` (lossless reference), ``jpeg``, ``jpeg2000``, ``webp`` and ``avif``; ``hevc`` (x265 through
ffmpeg or pillow-heif) and ``vvc`` (an external VVenC binary named by path). See :mod:`privbench.codecs.base`.
"""

from privbench.codecs import avif, hevc, jpeg, jpeg2000, png, vvc, webp  # noqa: F401  (registrations)
from privbench.codecs.base import Codec  # noqa: F401
