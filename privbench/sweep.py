"""A sweep: expand a config into its grid points, run the points an executor gives back, record each as it
finishes (:mod:`privbench.journal`) and assemble the results table in grid order.

The order of the table does not depend on the executor or on which points an interrupted earlier run finished:
rows are assembled point by point in grid order, each point's rows as the journal holds them (through JSON), and
the worst case over attacks is added last. So a serial run, ``--jobs N``, Ray, and a resumed run give the same
table (only the ``seconds`` column and the ``kind=cost`` timings, which are measurements of the machine, differ
between fresh runs).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import torch

from privbench import __version__
from privbench.cache import Cache
from privbench.config import GridConfig, RunConfig
from privbench.engine.setting_rows import INTERCEPTED
from privbench.errors import PrivbenchError
from privbench.executors import PointError, SerialExecutor
from privbench.grid import GridPoint, PointFailed, expand, inputs_for, point_node
from privbench.grid import originals as probe_originals
from privbench.journal import Journal
from privbench.ranking import replication_warnings
from privbench.registry import ATTACKS, DEFENSES, METRICS
from privbench.results import git_sha, to_frame
from privbench.schedule import Task, node_rows, tasks_for
from privbench.worst_case import add_paper_worst_case, add_worst_case


@dataclasses.dataclass
class RunOutput:
    frame: Any  # pandas.DataFrame
    samples: dict[tuple[str, str], dict[str, torch.Tensor]]  # (setting label, attack) -> probe -> x̂
    originals: dict[str, torch.Tensor]  # probe name -> uint8 originals of the first images
    notes: list[str]
    #: (step, reason) of the grid steps that failed under ``keep_going`` (their rows are missing)
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    #: the run manifest (``manifest.json``): config, versions, grid counts, time per stage, each point's status
    manifest: dict[str, Any] = dataclasses.field(default_factory=dict)


class RemoteTraceback(Exception):
    """The traceback of a point that failed in a worker process (chained under :class:`PointFailed`: ``--debug``)."""


def as_grid(config: GridConfig | RunConfig) -> GridConfig:
    if isinstance(config, GridConfig):
        return config
    return GridConfig(config.name, config.raw, (config,))


def versions() -> dict[str, str]:
    from importlib.metadata import version  # not `import torchvision` (~2.5 s: it pulls in torch._dynamo)

    return {"privbench": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": version("torchvision"), "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "threads": str(torch.get_num_threads())}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def run_grid(config: GridConfig | RunConfig, cache: Cache, executor=None, journal: Journal | None = None,
             progress: bool = True, keep_going: bool = False) -> RunOutput:
    """Run every point of ``config`` that ``journal`` does not already hold, on ``executor`` (default serial).

    A failed point stops the sweep with :class:`PointFailed` naming it (finished points stay in the journal and
    the cache), or with ``keep_going`` is recorded in :attr:`RunOutput.failures` and the sweep goes on."""
    from tqdm.auto import tqdm

    grid = as_grid(config)
    executor = executor or SerialExecutor()
    started, clock = _now(), time.perf_counter()
    points = expand(grid, cache, require_codecs=True)
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):
        raise PrivbenchError("internal error: two grid points of this config have the same content key; please "
                             "report it")
    expanded = time.perf_counter() - clock
    grouped = len(grid.groups) > 1
    run_id = f"{grid.name}-{grid.config_hash[:8]}"
    sha = git_sha()

    def annotate(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "run_id": run_id, "config_hash": grid.config_hash, "git_sha": sha, "privbench_version": __version__}

    earlier = journal.finished() if journal is not None else {}
    entries = {p.id: earlier[p.id] for p in points if p.id in earlier}
    if journal is not None:
        journal.start(entries, annotate)
    status = {point_id: "resumed" for point_id in entries}
    seconds: dict[str, float] = {}
    failures: list[tuple[str, str]] = []
    todo = [p for p in points if p.id not in entries]
    tasks = tasks_for(todo, cache)
    node_seconds: dict[str, float] = {}
    # the bar counts estimated work (ETA included), its text the points: "3/44 points, <the last one>"
    with tqdm(total=sum(t.cost for t in tasks), desc=f"privbench {grid.name}", disable=not progress, leave=False,
              bar_format="{l_bar}{bar}| [{elapsed}<{remaining}{postfix}]", postfix=f"0/{len(todo)} points") as bar:
        done = 0
        for task, outcome in executor.run(tasks, cache):
            bar.update(task.cost)
            if not task.is_point:  # a failed node is made again, and named, by the first point that needs it
                if not isinstance(outcome, PointError):
                    node_seconds[task.id] = outcome.seconds
                continue
            point, done = task.point, done + 1
            label = point.label(grouped)
            if isinstance(outcome, PointError):
                if not keep_going:
                    cause = outcome.exception or (RemoteTraceback(outcome.remote_traceback)
                                                  if outcome.remote_traceback else None)
                    kept = ("finished points are kept: fix it and run again to resume" if entries else
                            "no point had finished: fix it and run again")
                    raise PointFailed(f"grid point {label} failed: {outcome.why} ({kept}, or --keep-going to record it "
                                      f"and go on; --debug shows the traceback)") from cause
                failures.append((label, outcome.why))
                status[point.id] = "failed"
            else:
                if journal is not None:
                    entries[point.id] = journal.append(point.id, outcome.rows, outcome.notes, outcome.samples,
                                                       annotate)
                else:  # the same JSON round trip as the journal's, so both paths give identical rows
                    entries[point.id] = {**json.loads(json.dumps({"rows": outcome.rows, "notes": outcome.notes})),
                                         "samples": outcome.samples}
                status[point.id], seconds[point.id] = outcome.status, outcome.seconds
            bar.set_postfix_str(f"{done}/{len(todo)} points, {label}", refresh=False)

    rows: list[dict[str, Any]] = []
    samples: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    notes: list[str] = []
    for point in points:
        entry = entries.get(point.id)
        if entry is None:
            continue
        rows += [annotate(row) for row in entry["rows"]]
        for note in entry["notes"]:
            note = _in_group(note, point.group_label) if grouped else note
            if note not in notes:
                notes.append(note)
        if point.attack is not None and entry["samples"]:
            setting = f"[{point.group_label}] {point.setting}" if grouped else point.setting
            samples[(setting, point.attack.column)] = entry["samples"]
    notes += [f"FAILED: grid point {step}: {why}" for step, why in failures]
    frame = to_frame(rows)
    if any(len(g.attacks) > 1 for g in grid.groups) or (frame["attack"] == INTERCEPTED).any():
        frame = add_worst_case(frame, METRICS)
        frame = add_paper_worst_case(frame, METRICS, *paper_threats(grid))
    notes += replication_warnings(frame)
    originals = probe_originals(grid.groups[0], cache)
    manifest = _manifest(grid, executor, points, status, seconds, started, expanded, time.perf_counter() - clock,
                         grouped, tasks, node_seconds)
    return RunOutput(frame, samples, originals, notes, failures, manifest)


def paper_threats(grid: GridConfig) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(access levels each defense's paper considers, by defense name; access level of each attack, by its rows'
    ``attack`` column) for :func:`~privbench.worst_case.add_paper_worst_case`."""
    threats: dict[str, list[str]] = {}
    access: dict[str, str] = {}
    for group in grid.groups:
        for sweep in group.defenses:
            if sweep.name in DEFENSES:
                threats[sweep.name] = [level.value for level in DEFENSES.get(sweep.name).paper_threat]
        for attack in group.attacks:
            access[attack.column] = ATTACKS.get(attack.name).access.value
    return threats, access


def _in_group(note: str, group: str) -> str:
    """``note`` naming the (model, split, seed) group it comes from; a warning stays a warning."""
    text = f"[{group}] {note.removeprefix('WARNING: ')}"
    return f"WARNING: {text}" if note.startswith("WARNING: ") else text


def _stage(point: GridPoint) -> str:
    return "setting rows (utility, rate, edge cost, x′)" if point.attack is None else f"attack {point.attack.column}"


#: the manifest's stage of each kind of node task (a point's own time is in the stage of the point)
NODE_STAGES = {"task-model": "task model", "defense": "defense fits", "attacker": "fit", "recon": "reconstruct"}


def _task_stage(task: Task) -> str:
    stage = NODE_STAGES.get(task.kind, task.kind)
    attack = task.point.attack
    return f"attack {attack.column} {stage}" if task.kind in ("attacker", "recon") and attack else stage


def _manifest(grid: GridConfig, executor, points: list[GridPoint], status: dict[str, str],
              seconds: dict[str, float], started: str, expanded: float, wall: float, grouped: bool,
              tasks: list[Task], node_seconds: dict[str, float]) -> dict[str, Any]:
    stages: dict[str, float] = {"expand and check the grid": round(expanded, 3)}
    for task in tasks:
        if not task.is_point and task.id in node_seconds:
            stages[_task_stage(task)] = round(stages.get(_task_stage(task), 0.0) + node_seconds[task.id], 3)
    for point in points:
        if point.id in seconds:
            stages[_stage(point)] = round(stages.get(_stage(point), 0.0) + seconds[point.id], 3)
    counts = {s: sum(1 for v in status.values() if v == s) for s in ("computed", "cached", "resumed", "failed")}
    return {
        "name": grid.name, "config_hash": grid.config_hash, "config": grid.raw, "seeds": grid.seeds,
        "grid": {"points": len(points), "evaluated": counts["computed"] + counts["cached"], **counts},
        "executor": executor.name, "jobs": executor.jobs, "threads_per_point": getattr(executor, "threads", None),
        "git_sha": git_sha(), "versions": versions(),
        "started": started, "finished": _now(), "wall_seconds": round(wall, 3),
        "stages": [{"stage": k, "seconds": v} for k, v in stages.items()],
        "points": [{"id": p.id, "point": p.label(grouped), "status": status.get(p.id, "not run"),
                    "seconds": seconds.get(p.id)} for p in points],
        "nodes": node_rows(tasks, node_seconds),
    }


def dry_run(config: GridConfig | RunConfig, cache: Cache, journal: Journal | None = None) -> Any:
    """The expanded grid as a table — model, split, seed, setting, attack — and each point's state: ``finished``
    (in the journal of an interrupted run), ``cached`` (its rows are in the cache) or ``to run``. Nothing is
    trained: only the inputs are checked (as a real run does first)."""
    import pandas as pd

    grid = as_grid(config)
    points = expand(grid, cache)
    done = set(journal.finished()) if journal is not None else set()
    return pd.DataFrame([{"point": p.index, "model": p.model, "split": p.split, "seed": p.seed, "setting": p.setting,
                          "attack": p.attack.column if p.attack else "(utility, rate, cost)",
                          "state": "finished" if p.id in done else "cached" if cache.has(p.kind, p.spec()) else "to run"}
                         for p in points])


def nodes_to_compute(config: GridConfig | RunConfig, cache: Cache) -> Any:
    """The nodes a run of ``config`` would produce (inputs before what is made from them; each once), with their
    kind, what they are for and an estimated cost (:mod:`privbench.engine.plan`)."""
    import pandas as pd

    from privbench.engine.plan import cost, describe, pending

    grid = as_grid(config)
    seen: set[str] = set()
    rows = []
    for point in expand(grid, cache):
        inputs = inputs_for(point.group, cache)
        for _, node in pending(inputs.graph, [point_node(inputs, point.choice, point.attack)], seen):
            if cost(node):
                rows.append({"node": node.kind, "for": describe(node) or point.group_label, "cost": cost(node),
                             "stored": "yes" if node.stored else "memory"})
    return pd.DataFrame(rows, columns=["node", "for", "cost", "stored"])


def run_benchmark(config: GridConfig | RunConfig, cache: Cache, progress: bool = True, keep_going: bool = False,
                  executor=None) -> RunOutput:
    """Run a config in this process (no journal): the library entry point."""
    grid = as_grid(config)
    if any(not g.defenses for g in grid.groups):
        raise PrivbenchError("config has no defenses to evaluate")
    return run_grid(grid, cache, executor, None, progress, keep_going)


def echo_notes(notes: list[str], echo: Callable[[str], None]) -> None:
    for note in notes:
        warning = note.removeprefix("WARNING: ")
        echo(f"privbench: warning: {warning}" if warning != note else f"note: {note}")
