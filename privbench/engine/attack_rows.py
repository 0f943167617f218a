"""An attack against a setting as nodes: the fitted attacker (stored), the reconstructions of every probe set from
the setting's observation (stored, 8-bit) and the privacy rows of the grid point (stored).

The attacker gets the view its access level allows (:func:`privbench.threat.attacker_view`); a query-free attack
also gets the victims' traffic the cloud intercepts (the task's test images through the deployed pipeline)."""

from __future__ import annotations

import copy
import time
from typing import Any

import torch

from privbench import __version__
from privbench.attacks.base import Attack
from privbench.config import ComponentConfig
from privbench.device import derive_seed, seed_everything
from privbench.engine.graph import Graph, Node
from privbench.engine.inputs import RunInputs
from privbench.engine.observation import EVAL_BATCH, observation_node
from privbench.engine.pipelines import pipeline_node
from privbench.engine.scoring import row, score_privacy, to_uint8_images
from privbench.engine.settings import setting_labels
from privbench.errors import MetricUnavailable
from privbench.progress import step
from privbench.registry import DEFENSES
from privbench.setting import Setting
from privbench.split import batches
from privbench.threat import AttackerView, attacker_view

#: how many images of each probe set are kept for the reconstruction grid
SAMPLES_PER_PROBE = 3


def _view(graph: Graph, node: Node) -> AttackerView:
    inputs, setting, attack = node.payload
    defended = graph.get(node.input("pipeline"))
    data, task_data, task_labels = inputs.attacker_images
    intercepted = None
    if attack.uses_intercepted:
        # The victims' inference traffic the cloud receives: the task's test images through the deployed
        # (defended) pipeline, fresh defense randomness as in deployment.
        seed_everything(derive_seed(inputs.seed, "intercepted", setting.spec()))
        intercepted = defended.features(graph.get(node.input("intercepted")).floats(inputs.device)).cpu()
    warm = dict(node.inputs).get("warm")
    return attacker_view(attack.access, defended, data, inputs.device,
                         derive_seed(inputs.seed, "attack", attack.name, setting.spec()),
                         task_data=task_data, task_labels=task_labels, intercepted=intercepted,
                         approximations=attack.approximations,
                         warm_start=graph.get(warm) if warm is not None else None)


def _fit_attack(graph: Graph, node: Node) -> dict[str, Any] | None:
    _, setting, attack = node.payload
    view = _view(graph, node)
    seed_everything(view.seed)
    with step(f"fitting the {attack.name} attack against {setting.label}"):
        attack.fit(view)
    return attack.state()


def attacker_node(inputs: RunInputs, setting: Setting, attack: Attack) -> Node:
    """The learned state of ``attack`` against ``setting`` (None for an attack that learns nothing)."""
    parts: tuple[tuple[str, Node], ...] = (("pipeline", pipeline_node(inputs, setting)),)
    parts += tuple((f"attacker{i}", node) for i, node in enumerate(inputs.attacker_nodes))
    if attack.uses_intercepted:
        parts += (("intercepted", inputs.test_node),)
    if attack.warm_starts() and not (setting.defense.is_identity() and setting.codec is None):
        undefended = Setting(DEFENSES.create("none"))  # the same attack's fit against the undefended pipeline
        parts += (("warm", attacker_node(inputs, undefended, copy.deepcopy(attack))),)
    return Node("attacker", attack.spec(), _fit_attack, parts, version=2, payload=(inputs, setting, attack))


def fitted_attack(graph: Graph, node: Node) -> Attack:
    """The attack of ``node`` (an :func:`attacker_node`), fitted here or restored from its stored state."""
    attack: Attack = node.payload[2]
    state = graph.get(node)
    if attack.view is None:  # not fitted by this process just now
        if state is None:
            attack.fit(_view(graph, node))  # it learns nothing: fitting only hands it the view
        else:
            attack.load_state(_view(graph, node), state)
    return attack


def reconstruct_together(attack: Attack, observed: list[tuple[str, torch.Tensor]], batch: int,
                         device: torch.device) -> dict[str, torch.Tensor]:
    """uint8 reconstructions of every probe set from its observed features (``observed``: (set name, features)
    parts in order). The observations of all sets are reconstructed together, ``batch`` at a time per feature shape:
    an optimizing attack (rMLE) then takes its steps once for all probe sets instead of once per set (its per-image
    losses are summed, so each image still gets its own gradient; on a deterministic pipeline the images are the
    ones each set gets alone). The default run's rMLE stage: 236 → 210 s on a 2-core CPU (issue 28)."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, (_, features) in enumerate(observed):
        by_shape.setdefault(tuple(features.shape[1:]), []).append(index)
    pieces: list[torch.Tensor | None] = [None] * len(observed)
    for indices in by_shape.values():
        features = torch.cat([observed[i][1] for i in indices])
        x_hat = torch.cat([to_uint8_images(attack.reconstruct(features[part].to(device))).cpu()
                           for part in batches(len(features), batch)])
        for i, piece in zip(indices, x_hat.split([len(observed[i][1]) for i in indices]), strict=True):
            pieces[i] = piece
    out: dict[str, list[torch.Tensor]] = {}
    for (name, _), piece in zip(observed, pieces, strict=True):
        out.setdefault(name, []).append(piece)
    return {name: torch.cat(parts) for name, parts in out.items()}


def _reconstruct(graph: Graph, node: Node) -> dict[str, torch.Tensor]:
    inputs, setting, attack = node.payload
    fitted = fitted_attack(graph, node.input("attacker"))
    observation = graph.get(node.input("observation"))
    with step(f"reconstructing the probe images with {attack.name} against {setting.label}"):
        return reconstruct_together(fitted, observation.parts, EVAL_BATCH, inputs.device)


def recon_node(inputs: RunInputs, setting: Setting, attack: Attack) -> Node:
    """uint8 reconstructions of every probe set (name -> images)."""
    return Node("recon", {}, _reconstruct, (("attacker", attacker_node(inputs, setting, attack)),
                                             ("observation", observation_node(inputs, setting))),
                version=2, payload=(inputs, setting, attack))


def _point_rows(graph: Graph, node: Node) -> dict[str, Any]:
    inputs, setting, column = node.payload
    start = time.perf_counter()
    recon = graph.get(node.input("recon"))
    metrics = [m for m in inputs.metrics if m.side == "privacy"]
    rows, notes, samples = [], [], {}
    for i, probe in enumerate(inputs.probes):
        name = inputs.probe_name(i)
        x_hat = recon[name].float().div(255.0)
        samples[name] = recon[name][:SAMPLES_PER_PROBE].clone()
        for label, metric, score in score_privacy(inputs, metrics, i, name, probe, probe.floats(), x_hat):
            if isinstance(score, MetricUnavailable):
                notes.append(f"{metric.name} on {label}: unavailable ({score})")
                continue
            rows.append(row(inputs, setting, column, label, metric.name, metric.side, score, 0.0))
    seconds = round(time.perf_counter() - start, 3)
    for item in rows:
        item["seconds"] = seconds
    return {"rows": rows, "samples": samples, "notes": notes}


def point_node(inputs: RunInputs, setting: Setting, attack_cfg: ComponentConfig, attack: Attack) -> Node:
    """The rows of one grid point — the privacy metrics of ``attack`` against ``setting`` on every probe set — with
    the first reconstructions of each set and notes on metrics that could not score."""
    params = {"metrics": inputs.metric_specs("privacy"), "ci": inputs.config.ci_level,
              "labels": setting_labels(setting), "column": attack_cfg.column, "version": __version__}
    return Node("point", params, _point_rows, (("recon", recon_node(inputs, setting, attack)),),
                payload=(inputs, setting, attack_cfg.column))


def _originals(graph: Graph, node: Node) -> dict[str, torch.Tensor]:
    return {name: graph.get(probe).images[:SAMPLES_PER_PROBE].clone()
            for name, (_, probe) in zip(node.params["names"], node.inputs, strict=True)}


def originals_node(inputs: RunInputs) -> Node:
    """The first :data:`SAMPLES_PER_PROBE` originals of every probe set, by probe name."""
    names = [inputs.probe_name(i) for i in range(len(inputs.config.probes))]
    return Node("originals", {"k": SAMPLES_PER_PROBE, "names": names}, _originals,
                tuple((f"probe{i}", node) for i, node in enumerate(inputs.probe_nodes)))
