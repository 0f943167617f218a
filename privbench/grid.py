"""Grid points as values (DESIGN §8): a frozen :class:`GridPoint` per cell of model × split × seed × defense
setting × codec quality × attack, and :func:`evaluate`, the one function that turns a point into its rows.

A point is plain data: its group (the single-valued :class:`~privbench.config.RunConfig` of its model, split and
seed), the index of its setting in that group, its attack (``None``: the setting's own rows — utility, rate, edge
cost, the defended image x′) and its :meth:`GridPoint.spec`, the content key of its rows in the cache. An executor
can pickle it, run it in another process or on another machine and get the same rows: :func:`evaluate` reads and
writes nothing but the cache, and every random step inside is seeded from the run seed and the step's name.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from privbench.cache import Cache, canonical_json, spec_hash
from privbench.config import ComponentConfig, GridConfig, RunConfig
from privbench.errors import PrivbenchError

#: cache kind of a setting's own rows (the rows of an attack point are kind ``point``)
SETTING_KIND = "setting"
POINT_KIND = "point"


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One cell of the grid. ``model``, ``split``, ``seed``, ``setting`` and ``attack`` say what it is; ``key`` is
    its content identity (:meth:`spec`), computed when the grid is expanded."""

    index: int
    model: str
    split: str
    seed: int
    setting: str  # the setting's label: defense=strength [codec@placement quality]
    columns: str  # canonical JSON of the setting's result columns (defense, params, strength, codec, quality)
    attack: ComponentConfig | None
    setting_index: int
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
    rows then one point per attack). Each group's inputs are checked first (``Benchmark.check_inputs``: files,
    recognizers, image sizes, saved defenses), so a bad grid fails before any point runs. A codec whose library
    or binary this machine lacks fails the expansion only with ``require_codecs`` (a run); listing the grid
    (``--dry-run``, a test of a preset) needs no codec binary: :func:`codec_problems` says what is missing."""
    points: list[GridPoint] = []
    for group in grid.groups:
        engine = engine_for(group, cache)
        if require_codecs:
            engine.require_codecs()
        for i, setting in enumerate(engine.grid_settings()):
            columns = canonical_json(setting.columns())
            common = dict(model=engine.model_spec.label, split=group.model.split, seed=group.seed,
                          setting=setting.label, columns=columns, setting_index=i, group=group)
            points.append(GridPoint(index=len(points), attack=None, key=engine.setting_key(setting), **common))
            for attack in group.attacks:
                points.append(GridPoint(index=len(points), attack=attack, key=engine.point_key(setting, attack),
                                        **common))
    return points


#: engines of this process, per (group, cache folder): the datasets and the task model load once per process
_ENGINES: dict[tuple[str, str, bool], Any] = {}
#: how many engines a process keeps (the most recently used; each holds its datasets and task model)
KEPT_ENGINES = 4


def engine_for(group: RunConfig, cache: Cache):
    """The :class:`~privbench.runner.Benchmark` of ``group`` in this process (built once per process; it only
    memoizes what the cache would give it anyway). Its settings are checked once, when it is built."""
    from privbench.runner import Benchmark

    key = (canonical_json(group.raw), str(cache.root), cache.enabled)
    engine = _ENGINES.get(key)
    if engine is None or engine.cache is not cache:
        engine = Benchmark(group, cache)
        engine.grid_settings()
    _ENGINES.pop(key, None)
    _ENGINES[key] = engine  # most recently used last
    while len(_ENGINES) > KEPT_ENGINES:
        del _ENGINES[next(iter(_ENGINES))]
    return engine


def codec_problems(grid: GridConfig, cache: Cache) -> list[str]:
    """Why codecs of ``grid`` cannot run on this machine (one line each, no repeats); empty when all can."""
    found: list[str] = []
    for group in grid.groups:
        found += [p for p in engine_for(group, cache).codec_problems if p not in found]
    return found


def evaluate(point: GridPoint, cache: Cache) -> PointResult:
    """The rows of ``point``: from the cache under :meth:`GridPoint.spec`, or computed (and stored there)."""
    engine = engine_for(point.group, cache)
    setting = engine.grid_settings()[point.setting_index]
    if canonical_json(setting.columns()) != point.columns:
        raise PrivbenchError(f"internal error: grid point {point.step} does not match the setting it names; "
                             "please report it")
    hits, misses = cache.hits, cache.misses
    start = time.perf_counter()
    if point.attack is None:
        def compute() -> dict[str, Any]:
            return {"rows": engine.setting_rows(setting), "notes": [w] if (w := engine.model_check()) else []}

        value = cache.get_or_create(SETTING_KIND, point.spec(), compute)
        rows, samples, notes = value["rows"], {}, value["notes"]
    else:
        out = engine.point(setting, point.attack)
        rows, samples, notes = out.rows, out.samples, out.notes
    status = "computed" if cache.misses > misses or not cache.enabled else "cached"
    return PointResult(rows=rows, samples=samples, notes=notes, status=status,
                       seconds=round(time.perf_counter() - start, 3), hits=cache.hits - hits,
                       misses=cache.misses - misses)
