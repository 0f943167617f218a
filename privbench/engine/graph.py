"""A run as a graph of artifacts (DESIGN §9): each artifact is a :class:`Node` — its kind, its plain parameters and
the nodes it is made from — and :class:`Graph` makes or fetches it.

A node's cache key is derived in one place, :meth:`Node.key`: its kind, its code version, its parameters and the
*keys* of its inputs (as Bazel keys an action by the hashes of its inputs and its command). So a node's key changes
exactly when one of its inputs or its version changes, and nothing else in privbench builds an engine key by hand.

A node is ``stored`` (its value goes into the :class:`~privbench.cache.Cache` under its key: a trained task model, a
fitted defense or attack, reconstructions, rows) or made in memory from its inputs (a dataset, which caches itself,
the defended pipeline, the features observed on the probe images). Either way a :class:`Graph` keeps what it made
or loaded for the rest of the process (``keep`` bounds how many of a kind), so a shared node — the task model, a
fitted defense used by three attacks, the coded transmission of a probe set — is produced once per process and
stored once, whoever asks for it first.

:attr:`Graph.made` counts the nodes each kind produced here (not loaded): a test of the engine counts work with it.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

from privbench.cache import Cache, spec_hash

#: bump when the engine changes in a way that invalidates every cached node (each node kind also has a version)
ENGINE_VERSION = 6  # 6: keys derived by the graph (Node.key) from the keys of a node's inputs


@dataclasses.dataclass(frozen=True, eq=False)
class Node:
    """One artifact of a run. ``params`` are plain JSON values (what the artifact depends on besides its inputs);
    ``inputs`` the named nodes it is made from; ``version`` the version of the code that makes it; ``produce``
    makes its value from the graph (resolving its inputs there) and ``payload`` carries live objects the producer
    uses (a checked defense, a constructed attack) but the key never reads — their spec is in ``params``."""

    kind: str
    params: Mapping[str, Any]
    produce: Callable[[Graph, Node], Any] = dataclasses.field(repr=False)
    inputs: tuple[tuple[str, Node], ...] = ()
    version: int = 1
    stored: bool = True
    #: how many values of this kind a graph keeps in memory (None: all)
    keep: int | None = None
    payload: Any = dataclasses.field(default=None, repr=False)

    def key(self) -> dict[str, Any]:
        """The node's identity: kind, versions, parameters and its inputs' identities (as digests)."""
        return {"node": self.kind, "engine": ENGINE_VERSION, "version": self.version, "params": self.params,
                "inputs": {name: node.digest for name, node in self.inputs}}

    @functools.cached_property
    def digest(self) -> str:
        """The key as a short hash (what the inputs of a node's key hold)."""
        return spec_hash(self.key(), length=32)

    def input(self, name: str) -> Node:
        for key, node in self.inputs:
            if key == name:
                return node
        raise KeyError(name)


class Graph:
    """Makes nodes: from memory, from the cache, or by their producer (then stored), each once per process."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._values: dict[str, collections.OrderedDict[str, Any]] = {}
        #: per kind, how many nodes this graph produced (rather than found in memory or in the cache)
        self.made: collections.Counter[str] = collections.Counter()

    def get(self, node: Node) -> Any:
        kept = self._values.setdefault(node.kind, collections.OrderedDict())
        digest = node.digest
        if digest in kept:
            kept.move_to_end(digest)
            return kept[digest]

        def make() -> Any:
            self.made[node.kind] += 1
            return node.produce(self, node)

        value = self.cache.get_or_create(node.kind, node.key(), make) if node.stored else make()
        kept[digest] = value
        if node.keep is not None:
            while len(kept) > node.keep:
                kept.popitem(last=False)
        return value

    def has(self, node: Node) -> bool:
        """Whether the node's value is at hand without producing it (in memory, or stored in the cache)."""
        return node.digest in self._values.get(node.kind, {}) or (node.stored and self.cache.has(node.kind, node.key()))



def graph_for(cache: Cache) -> Graph:
    """This process's graph on ``cache``: one per cache object, kept on it, so it lives (with the values it holds)
    exactly as long as the cache object (nodes are keyed by content, so every group and point of a grid share it;
    a ``--jobs`` worker keeps one cache object per folder)."""
    graph = cache.__dict__.get("graph")
    if graph is None:
        graph = cache.__dict__["graph"] = Graph(cache)
    return graph
