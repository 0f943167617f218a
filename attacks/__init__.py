"""Attacks: each module registers one model-inversion attack with ``@ATTACKS.register(name)``."""

from privbench.attacks import (
    fora,  # noqa: F401  (registration)
    inverse_net,  # noqa: F401  (registrations)
    rmle,  # noqa: F401  (registration)
    shadow,  # noqa: F401  (registration)
)
from privbench.attacks.base import Attack  # noqa: F401
