"""The pipeline of a setting as nodes: the trained defense's fitted state (stored), the defended pipeline (in
memory, once per process), the clipping range of coded features (stored) and the coded pipeline.

Every setting is measured against one task model: a defense that wrote into it would silently change every later
row, so the task network is compared with a snapshot taken before the first defense touched it."""

from __future__ import annotations

import copy
import dataclasses

import torch

from privbench.codecs.stage import CodecStage, with_codec
from privbench.codecs.tiling import ClipRange, FeatureStats
from privbench.defenses.base import Defense, FitContext, TrainedDefense
from privbench.device import derive_seed, seed_everything
from privbench.engine.graph import Graph, Node
from privbench.engine.inputs import RunInputs
from privbench.errors import PrivbenchError
from privbench.progress import step
from privbench.setting import Setting
from privbench.split import SplitModel


def _snapshot(graph: Graph, node: Node) -> dict[str, torch.Tensor]:
    model: SplitModel = graph.get(node.input("model"))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _fit(graph: Graph, node: Node) -> dict:
    inputs, defense = node.payload
    context = FitContext(model=graph.get(node.input("model")), train=graph.get(node.input("train")),
                         device=inputs.device, seed=derive_seed(inputs.seed, "defense"), cache=graph.cache)
    strength = f" ({defense.strength_param}={defense.strength:g})" if defense.strength_param else ""
    with step(f"fitting the {defense.name} defense{strength}"):
        return defense.fit(context)


def needs_fit(defense: Defense) -> bool:
    """A trained defense whose state this run must fit (not loaded from a saved file; not the identity)."""
    return isinstance(defense, TrainedDefense) and defense.state is None and not defense.is_identity()


def fit_node(inputs: RunInputs, defense: Defense) -> Node:
    """The fitted state of a trained defense: once per (task model, defense parameters, training data)."""
    return Node("defense", defense.spec(), _fit, (("model", inputs.model_node), ("train", inputs.train_node)),
                version=2, payload=(inputs, defense))


def _defended(graph: Graph, node: Node) -> SplitModel:
    defense: Defense = node.payload
    model: SplitModel = graph.get(node.input("model"))
    snapshot = graph.get(node.input("snapshot"))  # taken before any defense is applied
    if needs_fit(defense):  # on a copy: the setting's defense stays as configured, so its nodes' keys do not change
        defense = copy.copy(defense)
        defense.load_state(graph.get(node.input("fit")))
    defended = defense.apply(model)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, snapshot[k])]
    if changed:
        raise PrivbenchError(f"internal error: fitting and applying defense '{defense.name}' changed the task "
                             f"model's '{changed[0]}' (every later result would be wrong); please report it")
    return defended


def defended_node(inputs: RunInputs, defense: Defense) -> Node:
    """The defended (uncoded) pipeline: the task model with the defense applied (its state fitted or loaded)."""
    snapshot = Node("network-snapshot", {}, _snapshot, (("model", inputs.model_node),), stored=False)
    parts: tuple[tuple[str, Node], ...] = (("model", inputs.model_node), ("snapshot", snapshot))
    if needs_fit(defense):
        parts += (("fit", fit_node(inputs, defense)),)
    return Node("pipeline", defense.spec(), _defended, parts, stored=False, payload=defense)


def _feature_stats(graph: Graph, node: Node) -> dict[str, float]:
    inputs, defense = node.payload
    defended: SplitModel = graph.get(node.input("pipeline"))
    seed_everything(derive_seed(inputs.seed, "codec-range", defense.spec()))
    return dataclasses.asdict(FeatureStats.of(defended.features(graph.get(node.input("train")).floats())))


def _coded(graph: Graph, node: Node) -> SplitModel:
    setting: Setting = node.payload
    defended = graph.get(node.input("pipeline"))
    params = setting.codec.params
    clip = None
    if not setting.coded_input:
        if params["clip_min"] is not None:
            clip = ClipRange(params["clip_min"], params["clip_max"])
        else:
            clip = FeatureStats(**graph.get(node.input("stats"))).sigma_range(params["clip_sigma"])
    return with_codec(defended, graph.get(node.input("model")), CodecStage(setting.codec, clip))


def pipeline_node(inputs: RunInputs, setting: Setting) -> Node:
    """The deployed pipeline of a setting — defended, then coded when the setting has a codec. Coded features are
    clipped to the range in the codec's parameters, or to mean ± kσ of the defended features on the task's
    training set (paper 000: k = 6; a stored node per defense, shared by every quality)."""
    defended = defended_node(inputs, setting.defense)
    if setting.codec is None:
        return defended
    parts: tuple[tuple[str, Node], ...] = (("pipeline", defended), ("model", inputs.model_node))
    if not setting.coded_input and setting.codec.params["clip_min"] is None:
        stats = Node("feature-stats", {}, _feature_stats, (("pipeline", defended), ("train", inputs.train_node)),
                     payload=(inputs, setting.defense))
        parts += (("stats", stats),)
    return Node("coded-pipeline", setting.spec(), _coded, parts, stored=False, payload=setting)
