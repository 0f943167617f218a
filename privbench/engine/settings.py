"""The settings of a group (each defense setting crossed with each codec quality that applies to it), checked
before any compute, and the plain value a grid point carries to name its setting (:class:`SettingChoice`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from privbench.cache import canonical_json
from privbench.config import NO_CODEC, DefenseSweep
from privbench.defenses.base import Defense
from privbench.defenses.saved import SavedDefense, read_defense
from privbench.engine.inputs import RunInputs
from privbench.errors import PrivbenchError
from privbench.registry import CODECS, DEFENSES
from privbench.setting import Setting


@dataclasses.dataclass(frozen=True)
class SettingChoice:
    """A setting as plain data (what a grid point carries to another process): the defense's name and parameters
    (its strength among them) or the saved file it comes from, and the codec's name and parameters (its quality
    among them), ``None`` when uncoded."""

    defense: str
    defense_params: str  # canonical JSON
    file: str | None
    codec: str | None
    codec_params: str  # canonical JSON ("" when uncoded)

    @classmethod
    def of(cls, setting: Setting, file: str | None) -> SettingChoice:
        codec = setting.codec
        return cls(setting.defense.name, canonical_json(setting.defense.params), file,
                   codec.name if codec else None, canonical_json(codec.params) if codec else "")


def saved_defense(inputs: RunInputs, sweep: DefenseSweep) -> SavedDefense:
    """A ``privbench defend`` file of the config, checked against this group's task model."""
    assert sweep.file is not None
    saved = read_defense(sweep.file)
    saved.check_model(inputs.model_key_hash, inputs.model_summary)
    return saved


def defense_settings(inputs: RunInputs) -> list[tuple[Defense, str | None]]:
    """Every defense setting of the group with the saved file it comes from (``None``: configured); saved defense
    files are read and checked here, before compute."""
    settings: list[tuple[Defense, str | None]] = []
    for sweep in inputs.config.defenses:
        if sweep.file is not None:
            settings.append((saved_defense(inputs, sweep).defense(), sweep.file))
            continue
        settings += [(defense, None) for defense in sweep.built]  # as the config built them
    return settings


def crossed_with_codecs(inputs: RunInputs, defenses: list[tuple[Defense, str | None]]
                        ) -> list[tuple[Setting, str | None]]:
    """Each defense crossed with each codec entry that applies to it, at each of the entry's qualities (``none`` =
    uncoded); a setting listed twice is refused."""
    out: list[tuple[Setting, str | None]] = []
    for defense, file in defenses:
        for sweep in inputs.config.codecs:
            if not sweep.applies_to(defense.name):
                continue
            if sweep.name == NO_CODEC:
                out.append((Setting(defense), file))
                continue
            out += [(Setting(defense, codec), file) for codec in sweep.built]  # as the config built them
    seen: set[str] = set()
    for setting, _ in out:
        key = canonical_json(setting.columns())
        if key in seen:
            raise PrivbenchError(f"config: the setting {setting.label} is listed twice (two codec entries apply to it)")
        seen.add(key)
    return out


def build_setting(inputs: RunInputs, choice: SettingChoice) -> Setting:
    """The :class:`Setting` a grid point names, built from its plain value (a saved defense from its file, checked
    against the task model)."""
    import json

    built = inputs.settings.get(choice)
    if built is not None:
        return built
    if choice.file is not None:
        defense: Defense = saved_defense(inputs, DefenseSweep(choice.defense, {}, (0.0,), choice.file)).defense()
    else:
        defense = DEFENSES.create(choice.defense, **json.loads(choice.defense_params))
    codec = CODECS.create(choice.codec, **json.loads(choice.codec_params)) if choice.codec else None
    built = inputs.settings[choice] = Setting(defense, codec)
    return built


def check_network(inputs: RunInputs) -> None:
    """Build the task network once, on the CPU, when it comes from the user — given weights (that must load into
    it) or a model factory (that must run and output K logits) — so that such a problem stops the run before any
    compute rather than when the first grid point starts. Built-in networks privbench trains are not built here."""
    from privbench.task_model import build_task_model

    cfg = inputs.config.model
    if inputs.model_spec.given_weights or cfg.name == "custom":
        build_task_model(cfg, inputs.graph.get(inputs.train_node), torch.device("cpu"), None)


def check_inputs(inputs: RunInputs) -> tuple[list[tuple[Setting, str | None]], list[str]]:
    """Refuse, before any training, a grid that could only crash or mislead: image sizes and recognizers (from the
    config alone, :mod:`privbench.preflight`), every dataset's files (their specs: a missing file stops here),
    the probe sets themselves (unreadable images, the metrics' protocol preconditions, e.g. face-id's two images
    per identity), saved defense files, each defense and metric against the model, input coding only after
    image-space defenses. Returns the group's settings and why its codecs cannot run here (a missing library or
    binary: refused when the grid runs, only reported when it is listed)."""
    from privbench.preflight import check_grid

    check_grid(inputs.config, inputs.metrics)
    check_network(inputs)
    task = inputs.model_spec.task
    for metric in inputs.metrics:
        if task not in metric.tasks:
            raise PrivbenchError(f"metric '{metric.name}' scores {' or '.join(metric.tasks)} models; model "
                                 f"'{inputs.model_spec.label}' is a {task} model")
    defenses = defense_settings(inputs)
    for defense, _ in defenses:
        if task not in defense.tasks:
            raise PrivbenchError(f"defense '{defense.name}' protects {' or '.join(defense.tasks)} models; model "
                                 f"'{inputs.model_spec.label}' is a {task} model")
        defense.check_model(inputs.model_spec, inputs.config.model.split)
    settings = crossed_with_codecs(inputs, defenses)
    problems: list[str] = []
    checked: set[str] = set()
    for setting, _ in settings:
        setting.check()
        codec = setting.codec
        if codec is None:
            continue
        which = canonical_json([codec.name, {k: v for k, v in codec.params.items() if k != codec.quality_param}])
        if which not in checked:
            checked.add(which)
            try:
                codec.check_available()
            except PrivbenchError as exc:
                if str(exc) not in problems:
                    problems.append(str(exc))
    inputs.train_node, inputs.test_node, inputs.attacker_nodes  # noqa: B018 - their specs: a missing file fails here
    for metric in inputs.metrics:
        if (check_probes := getattr(metric, "check_probes", None)) is not None:
            for i, probe in enumerate(inputs.probes):
                for _, images, _ in inputs.privacy_sets(i, inputs.probe_name(i), probe):
                    if metric.applies_to(images):
                        check_probes(images)
    inputs.probes  # noqa: B018 - loaded now, so that an unreadable probe image fails before training
    return settings, problems


def setting_labels(setting: Setting) -> list[Any]:
    """What the rows of a setting are labelled with beyond its effective spec (part of their nodes' keys)."""
    labels: list[Any] = [setting.defense.name, setting.defense.params]
    if setting.codec is not None:
        labels.append([setting.codec.name, setting.codec.params])
    return labels
