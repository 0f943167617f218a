"""What crosses the network for the probe images of a setting: their features through the deployed pipeline (the
defense's randomness drawn per probe set and batch) and, when the setting codes them, the real bitstreams' tally.

One node per setting, shared: the setting's rate rows measure bpp on this very transmission, and every attack of
the setting reconstructs from it — each probe set is coded once per setting, not once for the rate and again for
every attack (issue 28)."""

from __future__ import annotations

import contextlib
import dataclasses
import time

import torch

from privbench.codecs.stage import CodingTally, codec_stages
from privbench.device import derive_seed, seed_everything
from privbench.engine.graph import Graph, Node
from privbench.engine.inputs import RunInputs
from privbench.engine.pipelines import pipeline_node
from privbench.setting import Setting
from privbench.split import batches

#: probe images observed and reconstructed together: each probe set streams through the defended pipeline in batches
#: of this many, and the observations of all probe sets reach the attack this many at a time, so a run's peak memory
#: does not grow with its probe sets (issue 16). A set of this size or smaller is observed in one batch; later
#: batches draw their defense randomness from seeds of their own.
EVAL_BATCH = 256
#: how many settings' observations a process keeps in memory (a setting's points run one after the other)
KEPT = 2


@dataclasses.dataclass
class Observation:
    #: (probe set name, features) in order, at most :data:`EVAL_BATCH` images a part
    parts: list[tuple[str, torch.Tensor]]
    #: per probe set, the bitstreams' tally when the setting codes (empty otherwise)
    tallies: dict[str, CodingTally]
    #: per probe set, the seconds its observation took
    seconds: dict[str, float]


def _observe(graph: Graph, node: Node) -> Observation:
    inputs, setting = node.payload
    pipeline = graph.get(node.input("pipeline"))
    stages = codec_stages(pipeline)
    parts: list[tuple[str, torch.Tensor]] = []
    tallies: dict[str, CodingTally] = {}
    seconds: dict[str, float] = {}
    for i, name in enumerate(node.params["names"]):
        start = time.perf_counter()
        images = graph.get(node.input(f"probe{i}")).floats()
        with stages[0].counting() if stages else contextlib.nullcontext() as tally:
            for b, part in enumerate(batches(len(images), EVAL_BATCH)):
                seed_everything(derive_seed(inputs.seed, "observe", setting.spec(), name, *([b] if b else [])))
                parts.append((name, pipeline.features(images[part].to(inputs.device)).cpu()))
        if tally is not None:
            tallies[name] = tally
        seconds[name] = time.perf_counter() - start
    return Observation(parts, tallies, seconds)


def observation_node(inputs: RunInputs, setting: Setting) -> Node:
    names = [inputs.probe_name(i) for i in range(len(inputs.config.probes))]
    probes = tuple((f"probe{i}", node) for i, node in enumerate(inputs.probe_nodes))
    return Node("observation", {"names": names, "eval_batch": EVAL_BATCH}, _observe,
                (("pipeline", pipeline_node(inputs, setting)), *probes), stored=False, keep=KEPT,
                payload=(inputs, setting))
