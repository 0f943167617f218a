"""Detection utility: COCO mean average precision of the defended detector (paper 000 reports mAP@0.5 and
mAP@0.5:0.95; paper 004 person AP).

Computed by torchmetrics' ``MeanAveragePrecision`` (``iou_type="bbox"``, boxes xyxy in input pixels) with the
``pycocotools`` backend: it is the COCO reference evaluation itself (101-point interpolated precision, area
ranges, at most 100 detections per image), the one published numbers come from; ``faster_coco_eval`` re-implements
it faster, which does not matter at the few hundred images of a privbench test set. torchmetrics' caveat with that
backend — ``max_detection_thresholds`` other than the default (1, 10, 100) gives −1 (its issue 2560) — is avoided
by keeping the default and capping the detector at 100 detections per image (the detectors' ``detections`` param).

One evaluation per (predictions, IoU setting) is shared by every metric that reads it (:attr:`UtilityInputs.memo`).
mAP has no closed-form interval: rows carry ``n`` (the number of test images) and no CI.
"""

from __future__ import annotations

from typing import Any

import torch

from privbench.errors import PrivbenchError
from privbench.metrics.base import Metric, MetricContext, Score, UtilityInputs
from privbench.registry import METRICS, Param

#: IoU settings: COCO's 0.50:0.05:0.95 and the single 0.5 threshold (PASCAL VOC's, paper 000's mAP@0.5)
IOU_SETTINGS = {"coco": None, "0.5": [0.5]}


def mean_average_precision(predictions: list[dict[str, torch.Tensor]], targets: Any, iou: str = "coco",
                           per_class: bool = False) -> dict[str, Any]:
    """COCO evaluation of ``predictions`` (per image: ``boxes`` xyxy, ``scores``, ``labels``) against ``targets``
    (:class:`~privbench.tasks.DetectionTargets`): ``map``, ``map_50`` and, with ``per_class``, ``per_class``
    {label: AP} over the classes present in the ground truth or the predictions (AP −1 = no ground truth)."""
    from torchmetrics.detection import MeanAveragePrecision

    if len(predictions) != len(targets):
        raise PrivbenchError(f"mAP: {len(predictions)} predictions for {len(targets)} images")
    for i, p in enumerate(predictions):
        if not bool(torch.isfinite(p["boxes"]).all()) or not bool(torch.isfinite(p["scores"]).all()):
            raise PrivbenchError(f"mAP: the detections of image {i} contain NaN or infinite values")
    evaluator = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", iou_thresholds=IOU_SETTINGS[iou],
                                     class_metrics=per_class, backend="pycocotools")
    evaluator.update([{"boxes": p["boxes"].float(), "scores": p["scores"].float(), "labels": p["labels"].long()}
                      for p in predictions], targets.as_dicts())
    result = evaluator.compute()
    out: dict[str, Any] = {"map": float(result["map"]), "map_50": float(result["map_50"])}
    if per_class:
        classes = result["classes"].reshape(-1).tolist()
        values = result["map_per_class"].reshape(-1).tolist()
        out["per_class"] = dict(zip((int(c) for c in classes), values, strict=True))
    return out


def _evaluation(inputs: UtilityInputs, iou: str, per_class: bool) -> dict[str, Any]:
    key = ("map", iou, per_class)
    if key not in inputs.memo:
        inputs.memo[key] = mean_average_precision(inputs.outputs, inputs.targets, iou, per_class)
    return inputs.memo[key]


class _DetectionMetric(Metric):
    side = "utility"
    tasks = ("detection",)
    unit = "mAP"
    #: the entry of :func:`mean_average_precision`'s result this metric reports
    entry = ""

    def score(self, inputs: UtilityInputs, context: MetricContext) -> Score:
        value = _evaluation(inputs, "coco", False)[self.entry]
        return Score(value, float("nan"), float("nan"), len(inputs.targets), "")


@METRICS.register("map50")
class MAP50(_DetectionMetric):
    summary = "detection mAP at IoU 0.5 of the defended pipeline (COCO evaluation, pycocotools)"
    entry = "map_50"


@METRICS.register("map")
class MAP(_DetectionMetric):
    summary = "detection mAP averaged over IoU 0.50:0.05:0.95 (COCO's headline mAP, pycocotools)"
    entry = "map"


@METRICS.register("ap")
class ClassAP(_DetectionMetric):
    """The AP of one class (row name ``ap-<class>``, e.g. ``ap-person``)."""

    summary = "average precision of one class (row ap-<class>; IoU 0.50:0.95 or 0.5)"
    params = (
        Param("class", str, "person", "class name (the task dataset's class names) or label number"),
        Param("iou", str, "coco", "IoU thresholds: coco (0.50:0.05:0.95) or 0.5", choices=tuple(IOU_SETTINGS)),
    )

    @property
    def label(self) -> str:
        suffix = "" if self.params["iou"] == "coco" else "50"
        return f"ap{suffix}-{self.params['class']}"

    def class_label(self, names: list[str]) -> int:
        wanted = self.params["class"]
        if wanted in names:
            return names.index(wanted)
        if wanted.isdigit():
            return int(wanted)
        known = ", ".join(n for n in names[1:] if n)
        raise PrivbenchError(f"metric 'ap': unknown class '{wanted}' (the task's classes: {known})")

    def score(self, inputs: UtilityInputs, context: MetricContext) -> Score:
        label = self.class_label(list(inputs.classes))
        per_class = _evaluation(inputs, self.params["iou"], True)["per_class"]
        value = per_class.get(label, -1.0)
        if value < 0:
            raise PrivbenchError(f"metric '{self.label}': the test set has no '{self.params['class']}' box")
        n = sum(int((c == label).sum()) for c in inputs.targets.classes)
        return Score(value, float("nan"), float("nan"), n, "")
