"""Defenses: each module registers one defense with ``@DEFENSES.register(name)``."""

from privbench.defenses import autoencoder, blur, dropout, noise, pixelate, quantize  # noqa: F401  (registrations)
from privbench.defenses.base import Defense, DefenseStage, TransformDefense  # noqa: F401
