"""YAML as privbench reads a config: ``yaml.safe_load``, except that a key written twice in one mapping is an error.

Plain ``safe_load`` keeps the last of two equal keys, so a config that says ``seed: 0`` and, further down, ``seed: 3``
runs seed 3 without a word. Light on purpose (only PyYAML): the warm-rerun path (:mod:`privbench.run_record`) reads
configs with it before importing anything heavy.
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKey(yaml.YAMLError):
    """A mapping of a YAML document names one key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (plain ``safe_load`` keeps the last one,
    so ``seed: 0`` … ``seed: 3`` would run seed 3 without a word)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys in its own words
            if key in seen:
                raise DuplicateKey(f"the key '{key}' is written twice (line {seen[key] + 1} and line "
                                   f"{key_node.start_mark.line + 1})")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def safe_load_unique(text: str) -> Any:
    """``yaml.safe_load`` that raises :class:`DuplicateKey` for a key written twice in a mapping."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
