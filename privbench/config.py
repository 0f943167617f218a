"""Run configuration: YAML files (``yaml.safe_load``) validated against the components' declarations.

A config names components (defenses, attacks, metrics, datasets, models) with their parameters; each is
checked by constructing it, so an unknown name, an unknown parameter or an out-of-range value fails here
with one clear line, before anything runs.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import yaml

from privbench.cache import canonical_json, spec_hash
from privbench.components import load_components
from privbench.errors import PrivbenchError
from privbench.registry import ATTACKS, CODECS, DATASETS, DEFENSES, METRICS, MODELS
from privbench.worst_case import DERIVED
from privbench.yaml_unique import DuplicateKey, safe_load_unique

TOP_KEYS = {"name", "seed", "device", "ci_level", "model", "task", "attacker_data", "probes", "defenses",
            "codecs", "attacks", "metrics"}
MODEL_KEYS = {"name", "params", "split", "epochs", "lr", "batch_size", "augment_blur", "fine_tune"}
DATASET_KEYS = {"name", "params"}
DEFENSE_KEYS = {"name", "params", "strengths"}
DEFENSE_FILE_KEYS = {"file"}
METRIC_KEYS = {"name", "params"}
#: an attack may carry a ``label``: the name its rows carry in the ``attack`` column (default: its name), so one
#: attack can appear twice with other params (``shadow`` at its defaults and at He et al.'s settings)
ATTACK_KEYS = {"name", "params", "label"}
CODEC_KEYS = {"name", "params", "qualities", "defenses"}
#: the codec entry that means "no codec" (what crosses the network is sent as it is)
NO_CODEC = "none"


@dataclasses.dataclass(frozen=True)
class ComponentConfig:
    name: str
    params: dict[str, Any]
    #: what the rows call it (the ``attack`` column); ``None``: its name
    label: str | None = None

    @property
    def column(self) -> str:
        """The value of the component's result column: its label, else its name."""
        return self.label or self.name

    def as_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "params": dict(self.params)}
        if self.label is not None:
            out["label"] = self.label
        return out


@dataclasses.dataclass(frozen=True)
class DefenseSweep:
    name: str
    params: dict[str, Any]
    strengths: tuple[float, ...]
    #: a defense fitted by ``privbench defend --save FILE``: the one setting it holds (``strengths`` has one value)
    file: str | None = None
    #: the defense at each strength, as the config built (and so validated) it: the engine uses these objects
    built: tuple[Any, ...] = dataclasses.field(default=(), compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class CodecSweep:
    """A codec at a list of qualities (a grid axis, like a defense's strengths); ``name`` ``none`` = uncoded.
    ``defenses``: the names of the config's defenses this entry is crossed with (``None`` = all of them)."""

    name: str
    params: dict[str, Any]
    qualities: tuple[float, ...]
    defenses: tuple[str, ...] | None = None
    #: the codec at each quality, as the config built (and so validated) it: the engine uses these objects
    built: tuple[Any, ...] = dataclasses.field(default=(), compare=False, repr=False)

    def applies_to(self, defense: str) -> bool:
        return self.defenses is None or defense in self.defenses


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str
    params: dict[str, Any]
    split: str
    epochs: int
    lr: float
    batch_size: int
    #: largest σ (pixels) of the random Gaussian blur applied to half of every training batch (0 = off)
    augment_blur: float = 0.0
    #: train given weights further for ``epochs`` (by default given weights are used as they are)
    fine_tune: bool = False


@dataclasses.dataclass(frozen=True)
class RunConfig:
    name: str
    seed: int
    device: str
    ci_level: float
    model: ModelConfig
    task_train: ComponentConfig
    task_test: ComponentConfig
    attacker_data: tuple[ComponentConfig, ...]
    probes: tuple[ComponentConfig, ...]
    defenses: tuple[DefenseSweep, ...]
    codecs: tuple[CodecSweep, ...]
    attacks: tuple[ComponentConfig, ...]
    metrics: tuple[ComponentConfig, ...]
    raw: dict[str, Any]

    @property
    def config_hash(self) -> str:
        return spec_hash(self.raw, length=12)


def default_config_text() -> str:
    """The embedded default benchmark's YAML (the ``default`` preset)."""
    from privbench import presets

    return presets.text(presets.DEFAULT)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise PrivbenchError(f"config file not found: {path}")
    try:
        data = safe_load_unique(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise PrivbenchError(f"config {path} is not a UTF-8 text file") from None
    except OSError as exc:
        raise PrivbenchError(f"cannot read config {path} ({exc.strerror or exc})") from None
    except DuplicateKey as exc:
        raise PrivbenchError(f"config {path}: {exc}; write each key once") from None
    except yaml.YAMLError as exc:
        first = [line for line in str(exc).splitlines() if line.strip()]
        raise PrivbenchError(f"config {path} is not valid YAML: {first[0] if first else 'parse error'}") from None
    if not isinstance(data, dict):
        raise PrivbenchError(f"config {path} must be a mapping at the top level")
    return data


def _mapping(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PrivbenchError(f"config: '{where}' must be a mapping, got {type(value).__name__}")
    unknown = sorted(str(k) for k in set(value) - allowed)  # YAML keys may be numbers: compare as text
    if unknown:
        raise PrivbenchError(f"config: unknown key '{unknown[0]}' in '{where}' (allowed: {', '.join(sorted(allowed))})")
    return value


def _component(value: Any, where: str, registry, allowed: set[str] = DATASET_KEYS) -> ComponentConfig:
    if isinstance(value, str):
        value = {"name": value}
    value = _mapping(value, where, allowed)
    if "name" not in value:
        raise PrivbenchError(f"config: '{where}' needs a 'name'")
    params = _params(value.get("params"), where)
    instance = registry.create(str(value["name"]), **params)  # validates names and values
    label = value.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip() or "," in label):
        raise PrivbenchError(f"config: '{where}.label' must be a non-empty string without commas, got {label!r}")
    if label is not None and label != instance.name and (label in registry or label in DERIVED):
        raise PrivbenchError(f"config: '{where}.label' {label!r} names another {registry.kind} (or the worst-case "
                             f"rows): its rows would read as that one's; choose another label")
    return ComponentConfig(instance.name, dict(instance.params), label)


def _params(value: Any, where: str) -> dict[str, Any]:
    """A component's ``params``: a mapping of parameter names (strings: they become keyword arguments)."""
    params = value or {}
    if not isinstance(params, dict):
        raise PrivbenchError(f"config: '{where}.params' must be a mapping, got {type(params).__name__}")
    bad = [k for k in params if not isinstance(k, str)]
    if bad:
        raise PrivbenchError(f"config: '{where}.params' has a parameter name that is not a string: {bad[0]!r}")
    return dict(params)


def _number(value: Any, where: str, kind: type, low: float, high: float | None = None):
    """``value`` as a finite ``kind`` in [low, high]. NaN would pass the range test (every comparison with it is
    false) and ``int(2.5)`` would silently train 2 epochs, so both are refused."""
    try:
        if isinstance(value, (bool, list, dict)):
            raise ValueError
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            out = int(value.strip()) if isinstance(value, str) else int(value)
        else:
            out = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise PrivbenchError(f"config: '{where}' must be a {kind.__name__}, got {value!r}") from None
    if not math.isfinite(out):
        raise PrivbenchError(f"config: '{where}' must be a finite number, got {value!r}")
    if out < low or (high is not None and out > high):
        raise PrivbenchError(f"config: '{where}' must be in [{low}, {high if high is not None else 'inf'}], got {value!r}")
    return out


#: a run name is one plain folder name: it becomes OUT/NAME, so a separator, '..' or an absolute path would
#: write outside --out
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def run_name(value: Any) -> str:
    """``value`` checked as a run name: letters, digits, '-', '_', '.', not '.' or '..', at most 128 characters."""
    name = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if name is None or not _PLAIN_NAME.fullmatch(name) or name in {".", ".."} or len(name) > 128:
        raise PrivbenchError(f"run name {value!r} is not a plain name: use letters, digits, '-', '_' and '.' "
                             "(not '.' or '..'); it names the folder OUT/NAME")
    return name


def _unique(items: list[Any], key, what: str, hint: str = "") -> None:
    """Refuse a repeated grid entry: its rows would be written twice under the same key columns."""
    seen: set[str] = set()
    for item in items:
        k = key(item)
        if k in seen:
            raise PrivbenchError(f"config: {what} {k} is listed twice (each would write the same rows{hint})")
        seen.add(k)


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise PrivbenchError(f"config: '{where}' must be true or false, got {value!r}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise PrivbenchError(f"config: '{where}' must be a non-empty list")
    return value


def _saved_defense(path: Any) -> DefenseSweep:
    """A ``{file: PATH}`` defense entry: read (and validate) the file now, before anything runs."""
    from privbench.defenses.saved import read_defense

    saved = read_defense(str(path))
    defense = saved.defense()
    params = dict(defense.params)
    strength = float(params.pop(defense.strength_param)) if defense.strength_param else 0.0
    return DefenseSweep(defense.name, params, (strength,), file=str(path))


_ABSENT = object()


def _axis_values(cls: type, params: dict[str, Any], axis: str, values: Any, where: str) -> list[tuple[float, Any]]:
    """The values of a sweep axis (a defense's strengths, a codec's qualities), each with the component
    constructed (so checked) with it; absent = the configured or declared value alone."""
    values = [params.get(axis)] if values is _ABSENT else values
    if not isinstance(values, list) or not values:
        raise PrivbenchError(f"config: '{where}' must be a non-empty list")
    checked: list[tuple[float, Any]] = []
    for v in values:
        instance = cls(**{**params, axis: v}) if v is not None else cls(**params)
        value = float(instance.params[axis])
        if value in [c[0] for c in checked]:
            raise PrivbenchError(f"config: '{where}' lists {value:g} twice (it would write the same rows twice)")
        checked.append((value, instance))
    return checked


def _codecs(value: Any, defense_names: set[str]) -> tuple[CodecSweep, ...]:
    """The ``codecs`` axis: absent = no coding; each entry a codec (or ``none``) at a list of qualities."""
    if value is None:
        return (CodecSweep(NO_CODEC, {}, ()),)
    sweeps = []
    for i, item in enumerate(_list(value, "codecs")):
        where = f"codecs[{i}]"
        item = _mapping(item, where, CODEC_KEYS)
        name = str(item.get("name"))
        only = item.get("defenses")
        if only is not None:
            if not isinstance(only, list) or not only or not all(isinstance(n, str) for n in only):
                raise PrivbenchError(f"config: '{where}.defenses' must be a non-empty list of defense names")
            unknown = sorted(set(only) - defense_names)
            if unknown:
                raise PrivbenchError(f"config: '{where}.defenses' names '{unknown[0]}', which is not among the "
                                     f"config's defenses ({', '.join(sorted(defense_names))})")
            only = tuple(only)
        if name == NO_CODEC:
            if set(item) - {"name", "defenses"}:
                raise PrivbenchError(f"config: '{where}' (no codec) takes no params or qualities")
            sweeps.append(CodecSweep(NO_CODEC, {}, (), only))
            continue
        cls = CODECS.get(name)
        params = _params(item.get("params"), where)
        checked = _axis_values(cls, params, cls.quality_param, item.get("qualities", _ABSENT),
                               f"{where}.qualities")
        # unset optional parameters (None) are left out: they are the defaults, and None is no value to pass
        base = {k: v for k, v in cls(**params).params.items() if v is not None and k != cls.quality_param}
        sweeps.append(CodecSweep(cls.name, base, tuple(q for q, _ in checked), only, tuple(c for _, c in checked)))
    _unique([(c.name, c.params, c.defenses) for c in sweeps],
            lambda t: f"'{t[0]}' with params {t[1]}" + (f" for defenses {list(t[2])}" if t[2] else ""), "the codec entry")
    return tuple(sweeps)


def parse_config(data: dict[str, Any]) -> RunConfig:
    """Validate a config mapping (already merged with defaults) into a :class:`RunConfig`."""
    load_components()
    data = _mapping(data, "top level", TOP_KEYS)
    model_entry = data.get("model")
    if isinstance(model_entry, list) or isinstance(data.get("seed"), list) or (
            isinstance(model_entry, dict) and isinstance(model_entry.get("split"), list)):
        raise PrivbenchError("config: it lists several models, splits or seeds (a grid); `privbench run` runs a "
                             "grid, this command takes one model, split and seed")
    missing = sorted(TOP_KEYS - set(data) - {"ci_level", "device", "seed", "name", "codecs"})
    if missing:
        raise PrivbenchError(f"config: missing key '{missing[0]}'")

    model = _mapping(data["model"], "model", MODEL_KEYS)
    model_spec = _component({"name": model.get("name"), "params": model.get("params") or {}}, "model", MODELS)
    model_cls = MODELS.get(model_spec.name)
    split = str(model.get("split") or model_cls.default_split)
    if model_cls.strict_splits and split not in model_cls.splits:
        raise PrivbenchError(f"unknown split '{split}' for model {model_spec.name} "
                             f"(choose from: {', '.join(model_cls.splits)})")
    model_cfg = ModelConfig(model_spec.name, model_spec.params, split,
                            _number(model.get("epochs", 5), "model.epochs", int, 0, 10_000),
                            _number(model.get("lr", 1e-3), "model.lr", float, 1e-7, 10.0),
                            _number(model.get("batch_size", 64), "model.batch_size", int, 1, 65_536),
                            _number(model.get("augment_blur", 0.0), "model.augment_blur", float, 0.0, 10.0),
                            _flag(model.get("fine_tune", False), "model.fine_tune"))
    if model_cfg.fine_tune and not model_spec.params.get("weights"):
        raise PrivbenchError("config: 'model.fine_tune' needs weights to fine-tune (model params: weights=PATH)")

    task = _mapping(data["task"], "task", {"train", "test"})
    if "train" not in task or "test" not in task:
        raise PrivbenchError("config: 'task' needs 'train' and 'test' datasets")

    defenses = []
    for i, item in enumerate(_list(data["defenses"], "defenses")):
        if isinstance(item, dict) and "file" in item:
            defenses.append(_saved_defense(_mapping(item, f"defenses[{i}]", DEFENSE_FILE_KEYS)["file"]))
            continue
        item = _mapping(item, f"defenses[{i}]", DEFENSE_KEYS)
        cls = DEFENSES.get(str(item.get("name")))
        params = _params(item.get("params"), f"defenses[{i}]")
        if not cls.strength_param:  # a defense without a strength axis (``none``): one setting
            if "strengths" in item:
                raise PrivbenchError(f"config: defense '{cls.name}' has no strength to sweep; drop "
                                     f"'defenses[{i}].strengths'")
            single = cls(**params)
            defenses.append(DefenseSweep(cls.name, single.params, (0.0,), built=(single,)))
            continue
        checked = _axis_values(cls, params, cls.strength_param, item.get("strengths", _ABSENT),
                               f"defenses[{i}].strengths")
        base = cls(**params).params
        base.pop(cls.strength_param, None)
        defenses.append(DefenseSweep(cls.name, base, tuple(s for s, _ in checked), built=tuple(d for _, d in checked)))

    settings = [(d.name, d.params, s) for d in defenses for s in d.strengths]
    _unique(settings, lambda t: f"'{t[0]}' at strength {t[2]:g} with params {t[1]}", "the defense setting")
    codecs = _codecs(data.get("codecs"), {d.name for d in defenses})
    config = RunConfig(
        name=run_name(data.get("name", "run")),
        seed=_number(data.get("seed", 0), "seed", int, 0, 2**63 - 1),
        device=str(data.get("device", "auto")),
        ci_level=_number(data.get("ci_level", 0.95), "ci_level", float, 0.5, 0.9999),
        model=model_cfg,
        task_train=_component(task["train"], "task.train", DATASETS),
        task_test=_component(task["test"], "task.test", DATASETS),
        attacker_data=tuple(_component(d, f"attacker_data[{i}]", DATASETS)
                            for i, d in enumerate(_list(data["attacker_data"], "attacker_data"))),
        probes=tuple(_component(d, f"probes[{i}]", DATASETS) for i, d in enumerate(_list(data["probes"], "probes"))),
        defenses=tuple(defenses),
        codecs=codecs,
        attacks=tuple(_component(a, f"attacks[{i}]", ATTACKS, ATTACK_KEYS)
                      for i, a in enumerate(_list(data["attacks"], "attacks"))),
        metrics=tuple(_component(m, f"metrics[{i}]", METRICS, METRIC_KEYS)
                      for i, m in enumerate(_list(data["metrics"], "metrics"))),
        raw=data,
    )
    # rows are keyed by the attack column (an attack's label, else its name), so one given twice is ambiguous
    _unique(list(config.attacks), lambda a: f"'{a.column}'", "attack",
            "; give one of them a 'label'")
    # keyed by the rows' metric label: one metric twice with other params writes the same rows, unless its label
    # says the params (ap of two classes: ap-person, ap-car)
    _unique(list(config.metrics), lambda m: f"'{METRICS.create(m.name, **m.params).label}'", "metric")
    _unique(list(config.probes), lambda p: f"'{p.name}' with params {p.params}", "probe set")
    return config


@dataclasses.dataclass(frozen=True)
class GridConfig:
    """A run's whole grid: its ``groups`` are single-valued :class:`RunConfig` s, one per (model, split, seed) the
    config lists (``model`` may be a list of models, ``model.split`` a list of splits, ``seed`` a list of seeds);
    each group crosses its defenses × codecs × attacks. ``raw`` is the config as written (lists kept)."""

    name: str
    raw: dict[str, Any]
    groups: tuple[RunConfig, ...]

    @property
    def config_hash(self) -> str:
        return spec_hash(self.raw, length=12)

    @property
    def seeds(self) -> list[int]:
        return list(dict.fromkeys(g.seed for g in self.groups))

    @property
    def single(self) -> RunConfig:
        """The one group of a grid over one model, split and seed (for the commands that run one point)."""
        if len(self.groups) != 1:
            raise PrivbenchError(f"config: this command takes one model, split and seed; the config lists "
                                 f"{len(self.groups)} (model × split × seed) combinations — use `privbench run`")
        return self.groups[0]


def _as_list(value: Any, where: str) -> list[Any]:
    """A grid axis written as one value or a list of values."""
    if isinstance(value, list):
        if not value:
            raise PrivbenchError(f"config: '{where}' must be a value or a non-empty list")
        return value
    return [value]


def parse_grid(data: dict[str, Any]) -> GridConfig:
    """Validate a config mapping whose ``model``, ``model.split`` and ``seed`` may each be a list into the grid's
    groups: every (model, split, seed) combination is checked as its own :class:`RunConfig` (so an unknown split
    of the second model fails here, naming it), and a combination listed twice is refused."""
    data = _mapping(data, "top level", TOP_KEYS)
    models = _as_list(data.get("model"), "model")
    seeds = _as_list(data.get("seed", 0), "seed")
    groups: list[RunConfig] = []
    seen: set[str] = set()
    for i, model in enumerate(models):
        where = "model" if len(models) == 1 else f"model[{i}]"
        if not isinstance(model, dict):
            raise PrivbenchError(f"config: '{where}' must be a mapping, got {type(model).__name__}")
        splits = _as_list(model.get("split"), f"{where}.split")
        if len(splits) != len(set(map(str, splits))):
            raise PrivbenchError(f"config: '{where}.split' lists a split twice (it would write the same rows twice)")
        for split in splits:
            for seed in seeds:
                single = {**data, "model": {**model, **({"split": split} if split is not None else {})},
                          "seed": seed}
                group = parse_config(single)
                key = canonical_json([group.model.name, group.model.params, group.model.split, group.seed,
                                      group.model.epochs, group.model.lr, group.model.batch_size])
                if key in seen:
                    raise PrivbenchError(f"config: model '{group.model.name}' at split '{group.model.split}' with "
                                         f"seed {group.seed} is listed twice (it would write the same rows twice)")
                seen.add(key)
                groups.append(group)
    return GridConfig(run_name(data.get("name", "run")), data, tuple(groups))


def load_grid(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> GridConfig:
    """:func:`load_config` for a whole grid (several models, splits or seeds allowed)."""
    data = config_data(path)
    if overrides:
        data.update(overrides)
    return parse_grid(data)


def config_data(path: str | Path | None = None) -> dict[str, Any]:
    """The raw mapping of the default config updated by a YAML file (its top-level keys replace)."""
    data = yaml.safe_load(default_config_text())
    if path is not None:
        data.update(read_yaml(path))
    return data


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The default config, updated by a YAML file (top-level keys replace), then by ``overrides``."""
    data = config_data(path)
    if overrides:
        data.update(overrides)
    return parse_config(data)


def configured_params(entries: list[Any], name: str) -> dict[str, Any]:
    """The parameters the config gives the first component called ``name`` in ``entries`` ({} if none), so a
    single point (``privbench attack``) uses the same settings as the run it belongs to."""
    for entry in entries or []:
        if entry == name:
            return {}
        if isinstance(entry, dict) and entry.get("name") == name:
            return dict(entry.get("params") or {})
    return {}


def with_model(model: dict[str, Any], name: str | None = None, split: str | None = None) -> dict[str, Any]:
    """The config's ``model`` entry with a model named on the command line (a registered name, or
    ``module:factory`` / ``file.py:factory`` for your own) and/or a split. Naming the config's own model keeps
    its parameters (its weights); another model starts from its own defaults and its own default split; the
    training settings (epochs, lr, ...) stay."""
    if not isinstance(model, dict):
        raise PrivbenchError("--model / --split: the config lists several models; choose them in its 'model' list")
    out = dict(model)
    if name:
        new_name, params = ("custom", {"factory": name}) if ":" in name else (name, {})
        old_params = out.get("params") or {}
        same = out.get("name") == new_name and (new_name != "custom" or old_params.get("factory") == name)
        if not same:
            out.update(name=new_name, params=params)
            out.pop("split", None)
    if split:
        out["split"] = split
    return out
