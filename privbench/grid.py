"""Grid points as values (DESIGN §8): a frozen :class:`GridPoint` per cell of model × split × seed × defense
setting × codec quality × attack, and :func:`evaluate`, the one function that turns a point into its rows.

A point is plain data: its group (the single-valued :class:`~privbench.config.RunConfig` of its model, split and
seed), its setting as plain values (the defense and the codec with their parameters), its attack (``None``: the
setting's own rows — utility, rate, edge cost, the defended image x′) and :meth:`GridPoint.spec`, the key of its
rows' node in the run's graph (:mod:`privbench.engine`). An executor can pickle it, run it in another process or
on another machine and get the same rows: :func:`evaluate` reads and writes nothing but the cache, and every
random step inside is seeded from the run seed and the step's name.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from privbench.cache import Cache, canonical_json, spec_hash
from privbench.config import ComponentConfig, GridConfig, RunConfig
from privbench.engine.graph import Node
from privbench.engine.inputs import RunInputs, inputs_for
from privbench.engine.settings import SettingChoice, build_setting, check_inputs
from privbench.errors import PrivbenchError
from privbench.registry import ATTACKS
from privbench.setting import Setting

#: cache kind of a setting's own rows (the rows of an attack point are kind ``point``)
SETTING_KIND = "setting"
POINT_KIND = "point"


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One cell of the grid, as plain values: its group (the single-valued :class:`~privbench.config.RunConfig` of
    its model, split and seed: datasets, metrics, attacks), its setting (:class:`SettingChoice`: the defense and
    codec with their parameters, not an index into the config), its attack (``None``: the setting's own rows) and
    ``key``, the identity of its rows' node (:meth:`spec`), computed when the grid is expanded."""

    index: int
    model: str
    split: str
    seed: int
    setting: str  # the setting's label: defense=strength [codec@placement quality]
    columns: str  # canonical JSON of the setting's result columns (defense, params, strength, codec, quality)
    attack: ComponentConfig | None
    choice: SettingChoice
    key: dict[str, Any] = dataclasses.field(repr=False, compare=False)
    group: RunConfig = dataclasses.field(repr=False, compare=False)

    def spec(self) -> dict[str, Any]:
        """The cache key of the point's rows (kind :attr:`kind`)."""
        return self.key

    @property
    def kind(self) -> str:
        return SETTING_KIND if self.attack is None else POINT_KIND

    @property
    def id(self) -> str:
        """A short stable name of the point's content (the journal's and the manifest's point id)."""
        return spec_hash({"kind": self.kind, **self.key}, length=16)

    @property
    def step(self) -> str:
        """How messages name the point: ``noise=1 / inverse-net`` (``noise=1 utility, rate and edge cost``)."""
        return f"{self.setting} / {self.attack.column}" if self.attack else f"{self.setting} utility, rate and edge cost"

    def label(self, grouped: bool) -> str:
        """:attr:`step`, prefixed with the model, split and seed when the grid has more than one of them."""
        return f"[{self.group_label}] {self.step}" if grouped else self.step

    @property
    def group_label(self) -> str:
        return f"{self.model} {self.split} seed {self.seed}"


@dataclasses.dataclass
class PointResult:
    """What evaluating one point gives back to the executor (all picklable; tensors are uint8 on the CPU)."""

    rows: list[dict[str, Any]]
    samples: dict[str, Any]  # probe name -> uint8 reconstructions of its first images (attack points only)
    notes: list[str]
    #: ``computed`` (its rows were not in the cache) or ``cached``
    status: str
    seconds: float
    hits: int = 0
    misses: int = 0


def expand(grid: GridConfig, cache: Cache, require_codecs: bool = False) -> list[GridPoint]:
    """Every point of ``grid``, in grid order (group by group; in a group setting by setting, the setting's own
    rows then one point per attack). Each group's inputs are checked first (:func:`~privbench.engine.settings.
    check_inputs`: files, recognizers, image sizes, saved defenses), so a bad grid fails before any point runs. A
    codec whose library or binary this machine lacks fails the expansion only with ``require_codecs`` (a run);
    listing the grid (``--dry-run``, a test of a preset) needs no codec binary: :func:`codec_problems` says what
    is missing."""
    points: list[GridPoint] = []
    for group in grid.groups:
        inputs = inputs_for(group, cache)
        settings, problems = checked_settings(inputs)
        if require_codecs and problems:
            raise PrivbenchError(problems[0])
        for setting, file in settings:
            choice = SettingChoice.of(setting, file)
            inputs.settings[choice] = setting
            common = dict(model=inputs.model_spec.label, split=group.model.split, seed=group.seed,
                          setting=setting.label, columns=canonical_json(setting.columns()), choice=choice, group=group)
            for attack in (None, *group.attacks):
                node = point_node(inputs, choice, attack)
                points.append(GridPoint(index=len(points), attack=attack, key=node.key(), **common))
    return points


def checked_settings(inputs: RunInputs) -> tuple[list[tuple[Setting, str | None]], list[str]]:
    """The group's settings and codec problems, checked once per process (:func:`check_inputs`)."""
    if inputs.checked is None:
        inputs.checked = check_inputs(inputs)
    return inputs.checked


def point_node(inputs: RunInputs, choice: SettingChoice, attack: ComponentConfig | None) -> Node:
    """The node of a point's rows, built once per process (:func:`rows_node`): its attack is constructed once."""
    key = (choice, None if attack is None else canonical_json([attack.name, attack.params, attack.label]))
    node = inputs.points.get(key)
    if node is None:
        node = inputs.points[key] = rows_node(inputs, build_setting(inputs, choice), attack)
    return node


def rows_node(inputs: RunInputs, setting: Setting, attack: ComponentConfig | None) -> Node:
    """The node of the rows of ``attack`` against ``setting`` (``None``: the setting's own rows), its attack
    constructed now."""
    from privbench.engine.attack_rows import point_node as attack_point
    from privbench.engine.setting_rows import setting_node

    if attack is None:
        return setting_node(inputs, setting)
    return attack_point(inputs, setting, attack, ATTACKS.create(attack.name, **attack.params))


def group_settings(inputs: RunInputs) -> list[Setting]:
    """The checked settings of a group (for scripts that drive the engine setting by setting)."""
    return [setting for setting, _ in checked_settings(inputs)[0]]


def rows_of(inputs: RunInputs, setting: Setting, attack: ComponentConfig | None) -> dict[str, Any]:
    """The value of one point's node — ``rows`` (and, for an attack, ``samples``) and ``notes`` — for any setting
    and attack, in the grid or not (benchmarks sweep an attack's parameters through the engine with it)."""
    return inputs.graph.get(rows_node(inputs, setting, attack))


class PointFailed(PrivbenchError):
    """A grid step raised: the message names the step and the cause; the cause is chained (``--debug``)."""


def originals(group: RunConfig, cache: Cache) -> dict[str, Any]:
    """uint8 originals of the first images of every probe set (probe name -> images), for the reconstruction grid."""
    from privbench.engine.attack_rows import originals_node

    inputs = inputs_for(group, cache)
    return inputs.graph.get(originals_node(inputs))


def codec_problems(grid: GridConfig, cache: Cache) -> list[str]:
    """Why codecs of ``grid`` cannot run on this machine (one line each, no repeats); empty when all can."""
    found: list[str] = []
    for group in grid.groups:
        found += [p for p in checked_settings(inputs_for(group, cache))[1] if p not in found]
    return found


def evaluate(point: GridPoint, cache: Cache) -> PointResult:
    """The rows of ``point``: from the cache under :meth:`GridPoint.spec`, or computed (and stored there)."""
    inputs = inputs_for(point.group, cache)
    node = point_node(inputs, point.choice, point.attack)
    if node.key() != point.key:
        raise PrivbenchError(f"internal error: grid point {point.step} does not match the node it names; please "
                             "report it")
    hits, misses = cache.hits, cache.misses
    start = time.perf_counter()
    value = inputs.graph.get(node)
    rows, samples, notes = value["rows"], value.get("samples", {}), value["notes"]
    status = "computed" if cache.misses > misses or not cache.enabled else "cached"
    return PointResult(rows=rows, samples=samples, notes=notes, status=status,
                       seconds=round(time.perf_counter() - start, 3), hits=cache.hits - hits,
                       misses=cache.misses - misses)
