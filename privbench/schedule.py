"""A run's work as tasks for an executor: the expensive nodes of the graph (a task model, a defense fit, an attack
fit, reconstructions) each as a task of its own, and every grid point as a task after the nodes it needs.

Executors schedule these tasks, not points: a task runs once every task it waits for has finished, so independent
fits run side by side under ``--jobs`` and on Ray (two attacks of one setting, the attacks of two settings, four
trained defenses), where scheduling whole points had workers wait on the lock of the shared fit the other one was
computing. A task names its node by the path of input names from its point's node (:class:`Task`), so it can be
pickled to another process, which builds the point's node and walks there.

Serially the tasks run in the order listed (a node's inputs before it); the numbers do not depend on the order: every
node is keyed by content and seeded by name."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from privbench.cache import Cache
from privbench.engine.plan import cost, describe, pending
from privbench.grid import GridPoint, inputs_for, point_node

#: node kinds worth a task of their own (the rest is made by the task that first needs it)
HEAVY = ("task-model", "defense", "attacker", "recon")


@dataclasses.dataclass(frozen=True)
class Task:
    """One unit of work: a grid point (``path`` empty) or the node at ``path`` under the point's node."""

    id: str
    point: GridPoint
    path: tuple[str, ...]
    kind: str
    #: what it is for, e.g. ``noise=0.5 / rmle`` (a node) or the point's label
    what: str
    #: rough cost (:func:`privbench.engine.plan.cost`): of the node; a point's, of the nodes it makes on the way
    cost: int
    #: ids of the tasks that must finish first
    after: tuple[str, ...] = ()

    @property
    def is_point(self) -> bool:
        return not self.path


@dataclasses.dataclass
class NodeDone:
    """What running a node task gives back (its value stays in the cache and in the worker's graph)."""

    seconds: float
    hits: int = 0
    misses: int = 0


def tasks_for(points: list[GridPoint], cache: Cache) -> list[Task]:
    """The tasks of ``points``: each expensive node that neither the cache nor this process holds, once, before
    the tasks that need it; then the point. A point whose rows are cached is one task of cost 1."""
    tasks: list[Task] = []
    seen: set[str] = set()
    #: digest of a node to produce -> the heavy tasks it waits for (itself when it is one); held nodes wait for none
    needs_of: dict[str, frozenset[str]] = {}
    for point in points:
        inputs = inputs_for(point.group, cache)
        root = point_node(inputs, point.choice, point.attack)
        light = 0  # what the point's task makes on the way: the nodes that are no task of their own
        for path, node in pending(inputs.graph, [root], seen):
            needs = frozenset().union(*(needs_of.get(child.digest, frozenset()) for _, child in node.inputs))
            if path and node.kind in HEAVY:
                tasks.append(Task(node.digest, point, path, node.kind, describe(node) or point.group_label,
                                  cost(node), tuple(sorted(needs))))
                needs = frozenset({node.digest})
            else:
                light += cost(node)
            needs_of[node.digest] = needs
        after = tuple(sorted(needs_of.get(root.digest, frozenset())))
        tasks.append(Task(point.id, point, (), point.kind, point.step, max(1, light), after))
    return tasks


def run_node(task: Task, cache: Cache) -> NodeDone:
    """Make the node of a node task (from the cache when another process already stored it)."""
    inputs = inputs_for(task.point.group, cache)
    node = point_node(inputs, task.point.choice, task.point.attack)
    for name in task.path:
        node = node.input(name)
    hits, misses = cache.hits, cache.misses
    start = time.perf_counter()
    inputs.graph.get(node)
    return NodeDone(round(time.perf_counter() - start, 3), cache.hits - hits, cache.misses - misses)


def node_rows(tasks: list[Task], seconds: dict[str, float]) -> list[dict[str, Any]]:
    """The manifest's per-node table: each node task's kind, what it is for, estimated cost and seconds."""
    return [{"node": t.kind, "for": t.what, "cost": t.cost, "seconds": seconds.get(t.id)}
            for t in tasks if not t.is_point]
