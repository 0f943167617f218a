"""Pre-flight checks of a run: refuse, before anything is computed, a grid that could only crash or mislead.

Both checks decide from the config alone. Dataset and metric components are constructed (which validates
their parameters and that real data's paths exist) but no image is loaded, so a warm run pays nothing and a
cold one fails in a second instead of after the task model has trained.

**Resolution.** The task model is trained at the task train set's image size; the attacks are fitted on the
attacker's images through it and reconstruct the probes through it. A set of another size either crashes deep
in the run (rMLE optimizes images of the model's input size) or is scored meaninglessly (an inverse network
trained on features of one size, applied to features of another). Every dataset's ``size`` parameter must
therefore agree. privbench refuses instead of resizing: a resized probe set is no longer the data the
researcher named, its fine detail (what identity metrics read) depends on the resampling, and ``size`` on the
dataset is a one-word fix.

**Recognizers.** An identity metric that applies to a real probe set must be able to score it
(:meth:`~privbench.metrics.base.Metric.check`): the built-in recognizers are trained on the synthetic families
only, so real faces need facenet weights and real plates an LPRNet state dict; pretrained weights
(facenet, LPIPS' backbone) must be on disk. Whether a metric applies to a real set is read from the label
fields its loader declares (:attr:`privbench.data.real.RealDataset.label_fields`). Datasets that are not real
loaders are generated ones, which the built-in recognizers know; for them only the weights are checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from privbench.config import ComponentConfig, RunConfig
from privbench.data.base import ImageSet
from privbench.data.real import RealDataset
from privbench.errors import MetricUnavailable, PrivbenchError
from privbench.metrics.base import Metric, RecognizerMissing, Style
from privbench.registry import DATASETS, METRICS


def check_grid(config: RunConfig, metrics: Sequence[Metric] | None = None) -> None:
    """Raise :class:`PrivbenchError` (one line, how to fix it) for mismatched image sizes or an identity
    metric that cannot score a probe set; ``metrics`` defaults to the config's, constructed here."""
    check_sizes(config)
    check_recognizers(config, metrics)


def dataset_sets(config: RunConfig) -> list[tuple[str, ComponentConfig]]:
    """Every dataset of the config with the config key that names it (``probes[1]``, ...)."""
    sets = [("task.train", config.task_train), ("task.test", config.task_test)]
    sets += [(f"attacker_data[{i}]", d) for i, d in enumerate(config.attacker_data)]
    sets += [(f"probes[{i}]", d) for i, d in enumerate(config.probes)]
    return sets


def check_sizes(config: RunConfig) -> None:
    """Every dataset at the task train set's size (datasets without a ``size`` parameter are not compared)."""
    reference = config.task_train.params.get("size")
    if reference is None:
        return
    wrong = [(where, item.name, int(item.params["size"])) for where, item in dataset_sets(config)
             if item.params.get("size") not in (None, reference)]
    if wrong:
        listed = ", ".join(f"{where} {name} is {s}x{s}" for where, name, s in wrong)
        raise PrivbenchError(f"image sizes differ: the task model takes {reference}x{reference} (task.train "
                             f"{config.task_train.name}) but {listed}; give every dataset the same size "
                             f"(params: {{size: {reference}}}); privbench does not resize them for you")


def _label_stub(dataset: RealDataset, name: str) -> ImageSet:
    """An empty set with the label fields ``dataset`` declares: asks ``Metric.applies_to`` without loading."""
    fields: dict[str, Any] = {f: [] for f in dataset.label_fields}
    return ImageSet(name, torch.zeros((0, 3, 1, 1), dtype=torch.uint8), fields, {"synthetic": False})


def check_recognizers(config: RunConfig, metrics: Sequence[Metric] | None = None, style: Style = "config") -> None:
    """Every privacy metric can score every probe set it applies to (``style``: how the fix is worded)."""
    if metrics is None:
        metrics = [METRICS.create(m.name, **m.params) for m in config.metrics]
    privacy = [m for m in metrics if m.side == "privacy"]
    names = [p.name for p in config.probes]
    for i, item in enumerate(config.probes):
        name = item.name if names.count(item.name) == 1 else f"{item.name}#{i}"
        dataset = DATASETS.create(item.name, **item.params)
        real = isinstance(dataset, RealDataset)
        for metric in privacy:
            if real and not metric.applies_to(_label_stub(dataset, name)):
                continue
            try:
                metric.check(name, synthetic=not real)
            except RecognizerMissing as exc:
                raise PrivbenchError(exc.message(style)) from None
            except MetricUnavailable as exc:
                raise PrivbenchError(f"metric '{metric.name}' cannot score probes[{i}] {name}: {exc}") from None
