"""Tasks: what a split network is *for*, and how its outputs are trained and scored (DESIGN §8, "Tasks").

A :class:`Task` owns everything that differs between a classifier and a detector, so the engine, the defenses
and the attacks never branch on which one they hold:

- ``targets(images)``: the training/evaluation targets of an :class:`~privbench.data.base.ImageSet`, as an object
  indexed like a tensor (``targets[idx].to(device)``) — a label tensor, or :class:`DetectionTargets`;
- ``loss(outputs, targets)``: the training loss of the back's outputs (cross-entropy; the detector's own
  RPN + box-head losses);
- ``predictions(outputs)``: what is scored (logits; per-image boxes, scores and labels), on the CPU, and
  ``gather`` to join batches of them;
- ``sanity(predictions, targets, level)``: whether the undefended task model does its task at all (the run warns
  when it does not: every utility figure would then mean nothing).

A detector's back returns :class:`DetectorOutputs`-like objects (features plus the heads that read them), so that
the same ``task_loss(back(z), targets)`` trains a detector as it trains a classifier
(:mod:`privbench.models.detection`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol

import torch
from torch.nn import functional as F

from privbench.errors import PrivbenchError


@dataclasses.dataclass(frozen=True)
class Sanity:
    """The undefended task model's headline utility on the test set against what doing nothing would score."""

    metric: str
    value: float
    low: float  # lower confidence bound (the value itself where there is no interval)
    floor: float  # chance level / useless level
    n: int

    @property
    def useless(self) -> bool:
        return self.low <= self.floor

    @property
    def weak(self) -> bool:
        """Above chance but within a quarter of the way from chance to perfect (classification: below 0.325 of 10
        classes): differences between defenses at this utility say little."""
        return not self.useless and self.value < self.floor + 0.25 * (1.0 - self.floor)


class Task:
    """Base of the tasks; see the module docstring."""

    name: ClassVar[str] = ""
    #: label fields a task dataset must carry
    requires: ClassVar[tuple[str, ...]] = ()

    def check_data(self, images: Any, role: str) -> None:
        """Refuse a task dataset without this task's labels (before any training)."""
        missing = [f for f in self.requires if f not in images.labels]
        if missing:
            raise PrivbenchError(f"{role} set '{images.name}' has no '{missing[0]}' labels, which a {self.name} "
                                 f"model needs (a {self.name} dataset provides {', '.join(self.requires)})")

    def num_classes(self, images: Any) -> int:
        raise NotImplementedError

    def targets(self, images: Any) -> Any:
        raise NotImplementedError

    def loss(self, outputs: Any, targets: Any) -> torch.Tensor:
        raise NotImplementedError

    def predictions(self, outputs: Any) -> Any:
        raise NotImplementedError

    def gather(self, parts: list[Any]) -> Any:
        raise NotImplementedError

    def sanity(self, predictions: Any, targets: Any, level: float, num_classes: int) -> Sanity:
        raise NotImplementedError


class Classification(Task):
    """K-way image classification: logits, cross-entropy, top-1 accuracy (chance 1/K)."""

    name = "classification"
    requires = ("label",)

    def num_classes(self, images: Any) -> int:
        return len(images.meta.get("classes", [])) or int(images.labels["label"].max()) + 1

    def targets(self, images: Any) -> torch.Tensor:
        return torch.as_tensor(images.labels["label"])

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.detach().cpu()

    def gather(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts)

    def sanity(self, predictions: torch.Tensor, targets: torch.Tensor, level: float, num_classes: int) -> Sanity:
        from privbench.metrics.statistics import wilson_ci

        correct = int((predictions.argmax(1) == targets).sum())
        value, low, _, n = wilson_ci(correct, len(targets), level)
        return Sanity("accuracy", value, low, 1.0 / num_classes, n)


@dataclasses.dataclass
class DetectionTargets:
    """Ground truth of a detection set: per image, boxes (float K×4, xyxy pixels) and class labels (int64 K, 1..C;
    0 is background). Indexed like a tensor (``targets[idx]``) and moved like one (``.to(device)``), so the
    training loops that take label tensors take these too."""

    boxes: list[torch.Tensor]
    classes: list[torch.Tensor]

    def __post_init__(self) -> None:
        if len(self.boxes) != len(self.classes):
            raise PrivbenchError(f"detection targets: {len(self.boxes)} box lists for {len(self.classes)} label lists")
        for i, (b, c) in enumerate(zip(self.boxes, self.classes, strict=True)):
            if b.ndim != 2 or b.shape[1] != 4 or len(b) != len(c):
                raise PrivbenchError(f"detection targets: image {i} has boxes of shape {tuple(b.shape)} for "
                                     f"{len(c)} labels (expected K×4 and K)")
            if len(b) and not bool((b[:, 2:] > b[:, :2]).all()):
                raise PrivbenchError(f"detection targets: image {i} has a box of zero or negative size")

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: torch.Tensor | list[int] | slice) -> DetectionTargets:
        if isinstance(index, slice):
            return DetectionTargets(self.boxes[index], self.classes[index])
        picked = torch.as_tensor(index).tolist()
        return DetectionTargets([self.boxes[i] for i in picked], [self.classes[i] for i in picked])

    def to(self, device: torch.device | str) -> DetectionTargets:
        return DetectionTargets([b.to(device) for b in self.boxes], [c.to(device) for c in self.classes])

    def as_dicts(self) -> list[dict[str, torch.Tensor]]:
        """torchvision's (and torchmetrics') target format."""
        return [{"boxes": b.float(), "labels": c.long()} for b, c in zip(self.boxes, self.classes, strict=True)]


class DetectorOutputs(Protocol):
    """What a detector's back returns: its features, and the heads that turn them into losses or detections."""

    def losses(self, targets: DetectionTargets) -> dict[str, torch.Tensor]: ...

    def detections(self) -> list[dict[str, torch.Tensor]]: ...


#: the undefended detector is "useless" at or below this mAP@0.5 on its own test set
USELESS_MAP50 = 0.05


class Detection(Task):
    """Object detection: per-image boxes, scores and labels; the detector's own training losses (summed, as
    torchvision's reference training does); utility as COCO mAP (:mod:`privbench.metrics.detection`)."""

    name = "detection"
    requires = ("boxes", "classes")

    def num_classes(self, images: Any) -> int:
        """Classes including background (torchvision's convention)."""
        names = images.meta.get("classes")
        if names:
            return len(names)
        return max((int(c.max()) for c in images.labels["classes"] if len(c)), default=0) + 1

    def targets(self, images: Any) -> DetectionTargets:
        return DetectionTargets([torch.as_tensor(b, dtype=torch.float32) for b in images.labels["boxes"]],
                                [torch.as_tensor(c, dtype=torch.int64) for c in images.labels["classes"]])

    def loss(self, outputs: DetectorOutputs, targets: DetectionTargets) -> torch.Tensor:
        return sum(outputs.losses(targets).values())

    def predictions(self, outputs: DetectorOutputs) -> list[dict[str, torch.Tensor]]:
        return [{k: v.detach().cpu() for k, v in d.items()} for d in outputs.detections()]

    def gather(self, parts: list[list[dict[str, torch.Tensor]]]) -> list[dict[str, torch.Tensor]]:
        return [d for part in parts for d in part]

    def sanity(self, predictions: list[dict[str, torch.Tensor]], targets: DetectionTargets, level: float,
               num_classes: int) -> Sanity:
        from privbench.metrics.detection import mean_average_precision

        value = mean_average_precision(predictions, targets)["map_50"]
        return Sanity("mAP@0.5", value, value, USELESS_MAP50, len(targets))


TASKS: dict[str, Task] = {task.name: task for task in (Classification(), Detection())}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise PrivbenchError(f"unknown task '{name}' (choose from: {', '.join(TASKS)})")
    return TASKS[name]
