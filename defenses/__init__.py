"""Defenses: each module registers one defense with ``@DEFENSES.register(name)``."""

from privbench.defenses import (  # noqa: F401  (registrations)
    autoencoder,
    blur,
    dropout,
    noise,
    none,
    obfuscator,
    perturbation,
    pixelate,
    pruning,
    quantize,
)
from privbench.defenses.base import Defense, DefenseStage, TransformDefense  # noqa: F401
