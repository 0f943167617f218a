"""Utility metrics: how well the defended pipeline still does its task."""

from __future__ import annotations

from privbench.metrics.base import Metric, MetricContext, Score, UtilityInputs
from privbench.registry import METRICS


@METRICS.register("accuracy")
class Accuracy(Metric):
    summary = "top-1 task accuracy of the defended pipeline (Wilson interval)"
    side = "utility"
    tasks = ("classification",)

    def score(self, inputs: UtilityInputs, context: MetricContext) -> Score:
        correct = int((inputs.outputs.argmax(dim=1) == inputs.targets).sum())
        return Score.from_proportion(correct, len(inputs.targets), context.ci_level)
