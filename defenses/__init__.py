"""Defenses: each module registers one defense with ``@DEFENSES.register(name)``."""

from privbench.defenses import dropout, noise  # noqa: F401  (registrations)
from privbench.defenses.base import Defense, DefenseStage, TransformDefense  # noqa: F401
