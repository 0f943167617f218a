"""Shipped presets: the YAML configs ``privbench run <name>`` finds by name (``quick``, ``default``, ``compression``,
``detection`` and each paper's experiment at CPU scale). Each file's header says what it reproduces and how long it
takes on a 2-core CPU; the README's "Presets" table lists them."""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable

#: the preset ``privbench run`` runs with no argument
DEFAULT = "default"


def _folder() -> Traversable:
    return importlib.resources.files(__name__)


def names() -> list[str]:
    """The shipped presets' names, sorted."""
    return sorted(p.name.removesuffix(".yaml") for p in _folder().iterdir() if p.name.endswith(".yaml"))


def find(name: str) -> Traversable | None:
    """The preset file called ``name`` (``None`` when there is none)."""
    path = _folder().joinpath(f"{name}.yaml")
    return path if path.is_file() else None


def text(name: str = DEFAULT) -> str:
    """The YAML text of a preset (the embedded default when no name is given)."""
    path = find(name)
    if path is None:
        raise KeyError(name)
    return path.read_text()
