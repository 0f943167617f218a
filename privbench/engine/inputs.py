"""What one (model, split, seed) group of a grid is made from: its datasets, its task model and its metrics, as
nodes of the run's graph (:mod:`privbench.engine.graph`). Values load lazily, so a warm run touches none of them.

The datasets are nodes keyed by their specs (a real dataset's spec hashes its files: computed once per group);
the task model is two nodes: its trained weights (stored, when privbench trains it) and the network cut at the
split (in memory, one per process)."""

from __future__ import annotations

import functools
from typing import Any

import torch

from privbench.cache import Cache, canonical_json
from privbench.config import ComponentConfig, RunConfig
from privbench.data.base import ImageSet, concat
from privbench.data.crops import CropView, crop_views
from privbench.device import resolve_device
from privbench.engine.graph import Graph, Node, graph_for
from privbench.metrics.base import Metric, MetricContext
from privbench.models.base import ModelSpec
from privbench.registry import DATASETS, METRICS, MODELS
from privbench.split import SplitModel
from privbench.tasks import Task, get_task


def _load_dataset(graph: Graph, node: Node) -> ImageSet:
    return node.payload.load(graph.cache)  # a dataset caches its own images under kind "data"


def dataset_node(item: ComponentConfig) -> Node:
    dataset = DATASETS.create(item.name, **item.params)
    return Node("dataset", dataset.spec(), _load_dataset, stored=False, payload=dataset)


def _task_weights(graph: Graph, node: Node) -> dict[str, torch.Tensor]:
    from privbench.task_model import train_weights

    inputs: RunInputs = node.payload
    return train_weights(inputs.config.model, graph.get(node.input("train")), inputs.seed, inputs.device)


def _task_model(graph: Graph, node: Node) -> SplitModel:
    from privbench.task_model import build_task_model

    inputs: RunInputs = node.payload
    weights_node = dict(node.inputs).get("weights")
    weights = graph.get(weights_node) if weights_node is not None else None
    return build_task_model(inputs.config.model, graph.get(node.input("train")), inputs.device, weights)


class RunInputs:
    """The inputs of one group of a grid on one cache: the graph nodes of its datasets and task model, and its
    metrics (built once; every setting and attack of the group scores with these objects)."""

    def __init__(self, config: RunConfig, graph: Graph) -> None:
        self.config = config
        self.graph = graph
        self.cache = graph.cache
        self.device = resolve_device(config.device)
        self.seed = config.seed
        self.metrics: list[Metric] = [METRICS.create(m.name, **m.params) for m in config.metrics]
        self.context = MetricContext(cache=self.cache, device=self.device, seed=self.seed, ci_level=config.ci_level)
        #: the settings grid points named, built once per process (:func:`privbench.engine.settings.build_setting`)
        self.settings: dict[Any, Any] = {}
        #: the nodes of the grid's points, built once per process (:func:`privbench.grid.point_node`)
        self.points: dict[Any, Node] = {}
        #: the group's settings and codec problems once checked (:func:`privbench.grid.checked_settings`)
        self.checked: tuple[list, list[str]] | None = None

    # ---- nodes --------------------------------------------------------------------------------------------
    @functools.cached_property
    def train_node(self) -> Node:
        return dataset_node(self.config.task_train)

    @functools.cached_property
    def test_node(self) -> Node:
        return dataset_node(self.config.task_test)

    @functools.cached_property
    def probe_nodes(self) -> list[Node]:
        return [dataset_node(p) for p in self.config.probes]

    @functools.cached_property
    def attacker_nodes(self) -> list[Node]:
        return [dataset_node(d) for d in self.config.attacker_data]

    @functools.cached_property
    def model_spec(self) -> ModelSpec:
        return MODELS.create(self.config.model.name, **self.config.model.params)

    @functools.cached_property
    def model_node(self) -> Node:
        """The task network cut at the split: built from its given weights, or from the weights privbench trains
        (a stored node of its own: the network, its training settings, the training set and the seed)."""
        from privbench.task_model import training_key, trains_here

        cfg = self.config.model
        inputs: tuple[tuple[str, Node], ...] = (("train", self.train_node),)
        if trains_here(cfg, self.model_spec):
            weights = Node("task-model", {**training_key(cfg, self.model_spec), "seed": self.seed,
                                          "device": self.device.type}, _task_weights, inputs, version=2,
                           payload=self)
            inputs += (("weights", weights),)
        return Node("network", {"model": self.model_spec.spec(), "split": cfg.split, "seed": self.seed,
                                "device": self.device.type}, _task_model, inputs, stored=False, payload=self)

    @property
    def model_key_hash(self) -> str:
        """The task model's identity, written into saved defense files and checked when they are loaded."""
        return self.model_node.digest

    @property
    def model_summary(self) -> dict[str, Any]:
        return {"model": self.model_spec.label, "split": self.config.model.split, "seed": self.seed}

    @functools.cached_property
    def task(self) -> Task:
        """The task of the model (classification, detection): its targets, loss and predictions."""
        return get_task(self.model_spec.task)

    # ---- values -------------------------------------------------------------------------------------------
    @property
    def task_train(self) -> ImageSet:
        return self.graph.get(self.train_node)

    @property
    def task_test(self) -> ImageSet:
        return self.graph.get(self.test_node)

    @property
    def probes(self) -> list[ImageSet]:
        return [self.graph.get(node) for node in self.probe_nodes]

    @property
    def model(self) -> SplitModel:
        return self.graph.get(self.model_node)

    @functools.cached_property
    def attacker_images(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(all attacker images, attacker's labelled task images, their labels), floats on CPU."""
        parts = [self.graph.get(node) for node in self.attacker_nodes]
        everything = concat(parts, "attacker").floats()
        task_parts = [p for p, d in zip(parts, self.config.attacker_data, strict=True)
                      if d.name == self.config.task_train.name and all(f in p.labels for f in self.task.requires)]
        if not task_parts:
            return everything, None, None
        task = concat(task_parts, "attacker-task")
        return everything, task.floats(), self.task.targets(task)

    @functools.cached_property
    def probe_views(self) -> list[list[CropView]]:
        """The crop views of every probe set (the faces and plates inside detection scenes; none for other sets)."""
        return [crop_views(probe) for probe in self.probes]

    @functools.cached_property
    def test_views(self) -> list[CropView]:
        return crop_views(self.task_test)

    def probe_name(self, index: int) -> str:
        """The ``dataset`` label of probe set ``index``: its name, ``name#index`` when two probe sets share it, and
        ``name#probe`` when the task's test set has that name too (a detection task whose scenes are also the
        private images): every row then says which set it was scored on."""
        names = [p.name for p in self.config.probes]
        name = names[index]
        if names.count(name) > 1:
            return f"{name}#{index}"
        return f"{name}#probe" if name == self.config.task_test.name else name

    def privacy_sets(self, index: int, name: str, images: ImageSet) -> list[tuple[str, ImageSet, Any]]:
        """(dataset label, image set, crop) of everything privacy metrics score on probe set ``index`` (-1: the
        task's test set) named ``name``: the set itself (``crop`` None) and each of its crop views,
        ``<name>:<view>`` (``crop`` cuts the view's boxes out of any images of the set)."""
        out: list[tuple[str, ImageSet, Any]] = [(name, images, None)]
        for view in self.probe_views[index] if index >= 0 else self.test_views:
            out.append((f"{name}:{view.name}", view.template, view.crop))
        return out

    def metric_specs(self, side: str | None = None) -> list[list[Any]]:
        return [[m.name, m.params, m.version] for m in self.metrics if side is None or m.side == side]


#: the inputs of each group in this process, per (group, cache): datasets' specs are computed once per process
_INPUTS: dict[tuple[str, int], RunInputs] = {}
#: how many groups a process keeps (each holds little: its values live in the graph)
KEPT = 8


def inputs_for(config: RunConfig, cache: Cache) -> RunInputs:
    """The inputs of ``config``'s group on ``cache`` in this process (built once, the most recent kept)."""
    key = (canonical_json(config.raw), id(cache))
    found = _INPUTS.pop(key, None)
    if found is None or found.cache is not cache:
        found = RunInputs(config, graph_for(cache))
    _INPUTS[key] = found  # most recently used last
    while len(_INPUTS) > KEPT:
        del _INPUTS[next(iter(_INPUTS))]
    return found
