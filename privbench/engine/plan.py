"""What a run still has to compute: the nodes under its grid points that neither the cache nor this process holds,
each once, with a rough cost — for ``--dry-run`` and for the run's bar (which counts estimated work, not points)."""

from __future__ import annotations

from collections.abc import Iterable

from privbench.engine.graph import Graph, Node

#: rough cost of producing a node of each kind, in units of a setting's own rows (~0.2 s on 2 cores for the quick
#: preset); a task model costs this much per epoch of its training. Kinds not listed cost 1.
COST = {"task-model": 15, "defense": 50, "attacker": 6, "recon": 3, "dataset": 0, "network": 0,
        "network-snapshot": 0, "pipeline": 0, "coded-pipeline": 0, "model-check": 0, "originals": 0}


def cost(node: Node) -> int:
    base = COST.get(node.kind, 1)
    return base * int(node.params.get("epochs", 1)) if node.kind == "task-model" else base


def pending(graph: Graph, roots: Iterable[Node], seen: set[str] | None = None) -> list[tuple[tuple[str, ...], Node]]:
    """The nodes ``roots`` need that ``graph`` would have to produce, inputs before the nodes made from them, each
    once (``seen``: digests already counted, updated), with the path of input names from its root to it. A node
    held in memory or in the cache needs none of its inputs."""
    seen = set() if seen is None else seen
    out: list[tuple[tuple[str, ...], Node]] = []

    def visit(node: Node, path: tuple[str, ...]) -> None:
        if node.digest in seen:
            return
        seen.add(node.digest)
        if graph.has(node):
            return
        for name, child in node.inputs:
            visit(child, (*path, name))
        out.append((path, node))

    for root in roots:
        visit(root, ())
    return out


def describe(node: Node) -> str:
    """A short text of what a node is made for (its setting, defense, attack), for the dry run's table."""
    from privbench.attacks.base import Attack
    from privbench.defenses.base import Defense
    from privbench.setting import Setting

    parts = node.payload if isinstance(node.payload, tuple) else (node.payload,)
    words = []
    for part in parts:
        if isinstance(part, Setting):
            words.append(part.label)
        elif isinstance(part, Defense):
            words.append(Setting(part).label)
        elif isinstance(part, Attack | str):
            words.append(part if isinstance(part, str) else part.name)
    if not words and node.kind == "dataset":
        words.append(str(node.params.get("name", node.params.get("dataset", ""))))
    return " / ".join(words)
