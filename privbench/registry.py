"""Component registry with declared parameters.

Every defense, attack, metric, dataset and model is a class that declares its parameters as a tuple of
:class:`Param` on the class (the habit taken from IBM ART's ``attack_params`` + ``_check_params``), and
registers under a CLI name with ``@DEFENSES.register("noise")``. The CLI, YAML config validation,
``privbench list`` and the sweep grid all read those declarations; nothing else needs editing to add a
component.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from privbench.errors import PrivbenchError

_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


@dataclasses.dataclass(frozen=True)
class Param:
    """One declared parameter: name, type, default, valid range or choices, and help text."""

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None

    def coerce(self, value: Any, owner: str) -> Any:
        """Convert ``value`` (possibly a CLI string) to this parameter's type and check its range."""
        where = f"{owner}: parameter '{self.name}'"
        if isinstance(value, (list, tuple, dict, set)) or value is None:
            # str([0.5]) or str(None) would pass for a string parameter and silently name something else
            raise PrivbenchError(f"{where} expects one {self.type.__name__} value, got {value!r}")
        try:
            if self.type is bool:
                if isinstance(value, bool):
                    converted = value
                elif str(value).strip().lower() in _BOOL_WORDS:
                    converted = _BOOL_WORDS[str(value).strip().lower()]
                else:
                    raise ValueError
            elif self.type is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                converted = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif self.type is float:
                if isinstance(value, bool):
                    raise ValueError
                converted = float(value)
                if not math.isfinite(converted):
                    # NaN passes every range comparison (all are False) and would run, writing NaN rows
                    raise PrivbenchError(f"{where} must be a finite number; got {value!r}")
            else:
                converted = self.type(value)
        except (TypeError, ValueError, OverflowError):
            raise PrivbenchError(f"{where} expects {self.type.__name__}, got {value!r}") from None
        if self.choices is not None and converted not in self.choices:
            options = ", ".join(str(c) for c in self.choices)
            raise PrivbenchError(f"{where} must be one of {options}; got {value!r}")
        if self.low is not None and converted < self.low:
            raise PrivbenchError(f"{where} must be >= {self.low}; got {value!r}")
        if self.high is not None and converted > self.high:
            raise PrivbenchError(f"{where} must be <= {self.high}; got {value!r}")
        return converted

    def describe(self) -> str:
        """A one-line description for ``privbench list`` and ``--help``."""
        bounds = ""
        if self.choices is not None:
            bounds = " {" + "|".join(str(c) for c in self.choices) + "}"
        elif self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            bounds = f" [{lo}, {hi}]"
        return f"{self.name} ({self.type.__name__}{bounds}, default {self.default!r}): {self.help}"


class Component:
    """Base of every registered component: holds validated parameters in ``self.params``.

    Subclasses declare ``params`` (a tuple of :class:`Param`); the constructor accepts only those names
    and checks every value, so a bad configuration fails at construction, not deep inside a run.
    """

    name: ClassVar[str] = "?"
    kind: ClassVar[str] = "component"
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, **values: Any) -> None:
        self.params: dict[str, Any] = resolve_params(self.declared_params(), values, f"{self.kind} '{self.name}'")
        self._check_params()

    @classmethod
    def declared_params(cls) -> tuple[Param, ...]:
        return cls.params

    def _check_params(self) -> None:
        """Cross-parameter checks; raise :class:`PrivbenchError`. Per-parameter ranges are already done."""

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({inner})"


def resolve_params(declared: Iterable[Param], values: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Merge ``values`` over the declared defaults, rejecting unknown names and bad values."""
    by_name = {p.name: p for p in declared}
    unknown = sorted(str(k) for k in set(values) - set(by_name))
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise PrivbenchError(f"{owner}: unknown parameter '{unknown[0]}' (known: {known})")
    resolved = {}
    for name, param in by_name.items():
        resolved[name] = param.coerce(values[name], owner) if name in values else param.default
    return resolved


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """Parse CLI ``--param k=v`` items into a dict of strings (coercion happens in :class:`Param`)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PrivbenchError(f"--param expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


C = TypeVar("C")


class Registry:
    """A named collection of component classes, e.g. all defenses."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type[C]], type[C]]:
        def decorator(cls: type[C]) -> type[C]:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            cls.name = name  # type: ignore[attr-defined]
            cls.kind = self.kind  # type: ignore[attr-defined]
            self._items[name] = cls
            return cls

        return decorator

    def get(self, name: str) -> type:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise PrivbenchError(f"unknown {self.kind} '{name}' (choose from: {known})") from None

    def create(self, name: str, /, **values: Any) -> Any:
        # positional-only: a parameter called 'name' (a config typo) is then an unknown parameter, not a TypeError
        return self.get(name)(**values)

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, type]]:
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items


DEFENSES = Registry("defense")
ATTACKS = Registry("attack")
METRICS = Registry("metric")
DATASETS = Registry("dataset")
MODELS = Registry("model")
CODECS = Registry("codec")

ALL_REGISTRIES: dict[str, Registry] = {
    "defenses": DEFENSES,
    "attacks": ATTACKS,
    "metrics": METRICS,
    "datasets": DATASETS,
    "models": MODELS,
    "codecs": CODECS,
}

