"""A setting's own rows, which need no attack, as nodes: utility (and, coded, the rate and codec time on the task's
test set), the rate of every probe set (measured on the setting's observation: the transmission the attacks see),
the edge cost, the image x′ itself and, for input coding, that image as the intercepted observation; and the check
that the undefended task model does its task."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any

import torch

from privbench import __version__
from privbench.codecs.stage import codec_stages
from privbench.device import derive_seed, seed_everything
from privbench.engine.graph import Graph, Node
from privbench.engine.inputs import RunInputs
from privbench.engine.observation import observation_node
from privbench.engine.pipelines import defended_node, pipeline_node
from privbench.engine.scoring import coded_rows, row, score_privacy, to_uint8_images
from privbench.engine.settings import setting_labels
from privbench.errors import MetricUnavailable
from privbench.metrics.base import Score, UtilityInputs
from privbench.setting import Setting
from privbench.tasks import Sanity

#: the attack column of the privacy rows of an image that crosses the network as it is (input coding)
INTERCEPTED = "intercepted"
#: cost rows: metric name -> (field of :class:`~privbench.edge_cost.EdgeCost`, unit)
COST_METRICS = {"edge-params": "params", "edge-macs": "macs", "edge-latency-ms": "latency_ms",
                "edge-images-per-s": "images_per_s"}


def _utility(graph: Graph, node: Node) -> list[dict[str, Any]]:
    inputs, setting = node.payload
    start = time.perf_counter()
    defended = graph.get(node.input("pipeline"))
    test = graph.get(node.input("test"))
    seed_everything(derive_seed(inputs.seed, "utility", setting.spec()))
    x = test.floats()
    stages = codec_stages(defended)
    with stages[0].counting() if stages else contextlib.nullcontext() as tally:
        outputs = defended.predict(x)
    scored = UtilityInputs(outputs, inputs.task.targets(test), test.meta.get("classes", ()))
    name = inputs.config.task_test.name
    rows = [row(inputs, setting, "none", name, m.label, m.side, m.score(scored, inputs.context),
                time.perf_counter() - start) for m in inputs.metrics if m.side == "utility"]
    if tally is not None:
        rows += coded_rows(inputs, setting, name, x, tally, time.perf_counter() - start, timing=True)
    return rows


def _cost(graph: Graph, node: Node) -> list[list[Any]]:
    from privbench.edge_cost import edge_cost

    inputs, setting = node.payload
    defended, model = graph.get(node.input("pipeline")), graph.get(node.input("model"))
    if setting.coded_input:  # the image is sent: the edge runs only an image-space defense, if any
        fronts = {"edge": defended.input_stage if defended.input_stage is not None else torch.nn.Identity()}
    else:
        fronts = {"edge": defended.front}
        fronts.update({f"edge-{label}": front for label, front in setting.defense.reference_fronts(model).items()})
    numbers = []
    for dataset, front in fronts.items():
        start = time.perf_counter()
        cost = edge_cost(front, model.input_shape, inputs.device)
        seconds = time.perf_counter() - start
        numbers += [[dataset, metric, float(getattr(cost, field)), seconds] for metric, field in COST_METRICS.items()]
    return numbers


def _input(graph: Graph, node: Node) -> list[dict[str, Any]]:
    inputs, setting = node.payload
    defense = setting.defense
    start = time.perf_counter()
    defended = graph.get(node.input("pipeline"))
    metrics = [m for m in inputs.metrics if m.side == "privacy"]
    rows = []
    sets = [(-1, inputs.config.task_test.name, inputs.task_test)]
    sets += [(i, inputs.probe_name(i), probe) for i, probe in enumerate(inputs.probes)]
    for index, name, images in sets:
        seed_everything(derive_seed(inputs.seed, "input", setting.spec(), name))
        x = images.floats()
        x_prime = to_uint8_images(defended.defended_input(x)).float().div(255.0)
        if index < 0 and not defense.is_identity() and defense.transforms_input:
            for metric, (hits, n) in defense.diagnostics(x_prime, inputs.task.targets(images)).items():
                rows.append(row(inputs, setting, "none", name, metric, "input",
                                Score.from_proportion(hits, n, inputs.config.ci_level), 0.0))
        for label, metric, score in score_privacy(inputs, metrics, index, name, images, x, x_prime):
            if isinstance(score, MetricUnavailable):
                raise score
            rows.append(row(inputs, setting, "none", label, metric.name, "input", score, 0.0))
    seconds = round(time.perf_counter() - start, 3)
    for item in rows:
        item["seconds"] = seconds
    return rows


def _model_check(graph: Graph, node: Node) -> dict[str, Any]:
    inputs: RunInputs = node.payload
    test = graph.get(node.input("test"))
    predictions = graph.get(node.input("model")).predict(test.floats())
    found = inputs.task.sanity(predictions, inputs.task.targets(test), inputs.config.ci_level,
                               inputs.model.num_classes)
    return dataclasses.asdict(found)


def model_check_node(inputs: RunInputs) -> Node:
    """Whether the undefended task model does its task on the test set (classification: its Wilson interval clears
    chance 1/K; detection: mAP@0.5 above 0.05)."""
    return Node("model-check", {"task": inputs.task.name, "ci": inputs.config.ci_level}, _model_check,
                (("model", inputs.model_node), ("test", inputs.test_node)), version=2, payload=inputs)


def model_warning(found: Sanity) -> str | None:
    if found.useless:
        return (f"WARNING: the task model is at chance: {found.metric} {found.value:.3f} on {found.n} test images, "
                f"chance {found.floor:.3f}; train it longer (model.epochs) or check its weights and data — its "
                f"privacy–utility figures mean nothing")
    if found.weak:
        return (f"WARNING: the task model is near chance: {found.metric} {found.value:.3f} on {found.n} test images, "
                f"chance {found.floor:.3f}; train it longer (model.epochs) or on more data — differences between "
                f"defenses at this utility say little")
    return None


def _setting_rows(graph: Graph, node: Node) -> dict[str, Any]:
    inputs, setting = node.payload
    parts = dict(node.inputs)
    rows: list[dict[str, Any]] = []
    if "utility" in parts:
        rows += graph.get(parts["utility"])
    if "observation" in parts:  # bpp of every probe set, on the transmission the attacks reconstruct from
        observation = graph.get(parts["observation"])
        for i, probe in enumerate(inputs.probes):
            name = inputs.probe_name(i)
            rows += coded_rows(inputs, setting, name, probe.images, observation.tallies[name],
                               observation.seconds[name])
    rows += [row(inputs, setting, "none", dataset, metric, "cost", Score(value, float("nan"), float("nan"), 1, ""),
                 seconds) for dataset, metric, value, seconds in graph.get(parts["cost"])]
    if "input" in parts:
        seen = graph.get(parts["input"])
        rows += seen
        if setting.coded_input:
            rows += intercepted_rows(inputs, seen)
    warning = model_warning(Sanity(**graph.get(parts["check"])))
    return {"rows": rows, "notes": [warning] if warning else []}


def intercepted_rows(inputs: RunInputs, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """With input coding the decoded image itself crosses the network: an observer needs no inversion. Its privacy
    metrics on every probe set (the ``kind=input`` rows ``seen``) are then also the rows of an attack named
    ``intercepted`` (``kind=privacy``), so the worst case of the setting includes them — as paper 000 scores its
    "Benchmark-input" pipeline on the decoded image."""
    probes = {label for i, probe in enumerate(inputs.probes)
              for label, _, _ in inputs.privacy_sets(i, inputs.probe_name(i), probe)}
    privacy = {m.name for m in inputs.metrics if m.side == "privacy"}
    return [{**r, "kind": "privacy", "attack": INTERCEPTED} for r in seen
            if r["dataset"] in probes and r["metric"] in privacy]


def setting_node(inputs: RunInputs, setting: Setting) -> Node:
    """The rows of a setting that need no attack, and a warning when the task model is at chance."""
    labels = setting_labels(setting)
    pipeline = pipeline_node(inputs, setting)
    utility = [m for m in inputs.metrics if m.side == "utility"]
    parts: list[tuple[str, Node]] = []
    if utility or setting.codec is not None:
        parts.append(("utility", Node("utility", {"metrics": inputs.metric_specs("utility"),
                                                  "ci": inputs.config.ci_level, "labels": labels}, _utility,
                                      (("pipeline", pipeline), ("test", inputs.test_node)),
                                      version=2, payload=(inputs, setting))))
    if setting.codec is not None:
        parts.append(("observation", observation_node(inputs, setting)))
    edge = "input" if setting.coded_input else "split"
    parts.append(("cost", Node("edge-cost", {"device": inputs.device.type, "edge": edge,
                                             "labels": [setting.defense.name, setting.defense.params]}, _cost,
                               (("pipeline", defended_node(inputs, setting.defense)), ("model", inputs.model_node)),
                               version=2, payload=(inputs, setting))))
    if setting.transforms_input:
        probes = tuple((f"probe{i}", node) for i, node in enumerate(inputs.probe_nodes))
        parts.append(("input", Node("input", {"metrics": inputs.metric_specs("privacy"), "ci": inputs.config.ci_level,
                                              "labels": labels, "version": __version__}, _input,
                                    (("pipeline", pipeline), ("test", inputs.test_node), *probes),
                                    version=2, payload=(inputs, setting))))
    parts.append(("check", model_check_node(inputs)))
    return Node("setting", {"labels": labels, "metrics": inputs.metric_specs(), "ci": inputs.config.ci_level,
                            "version": __version__}, _setting_rows, tuple(parts), version=2,
                payload=(inputs, setting))
