"""Component discovery: import every built-in component package so that its registrations run.

The registry (:mod:`privbench.registry`) knows nothing of the packages that register into it; discovery sits
above both, and the command line (and the config parser, which validates names against the registries) call
:func:`load_components` at start.
"""

from __future__ import annotations


def load_components() -> None:
    """Import every built-in component module so that their registrations run (idempotent)."""
    import privbench.attacks  # noqa: F401
    import privbench.codecs  # noqa: F401
    import privbench.data  # noqa: F401
    import privbench.defenses  # noqa: F401
    import privbench.metrics  # noqa: F401
    import privbench.models  # noqa: F401
