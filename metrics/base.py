"""Metric base class and the inputs metrics receive.

A privacy metric compares reconstructions x̂ with the originals x and with the probe set's private labels
(identities, plate strings, attributes); a utility metric scores the task outputs. Every score carries n
and a confidence interval with the method that produced it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch

from privbench.cache import Cache
from privbench.data.base import ImageSet
from privbench.metrics.statistics import mean_ci, wilson_ci
from privbench.registry import Component


@dataclasses.dataclass(frozen=True)
class Score:
    value: float
    ci_low: float
    ci_high: float
    n: int
    ci_method: str

    @classmethod
    def from_values(cls, values: torch.Tensor, level: float) -> Score:
        mean, low, high, n = mean_ci(values, level)
        return cls(mean, low, high, n, f"normal{int(round(level * 1000)) / 10:g}")

    @classmethod
    def from_proportion(cls, successes: int, n: int, level: float) -> Score:
        p, low, high, n = wilson_ci(successes, n, level)
        return cls(p, low, high, n, f"wilson{int(round(level * 1000)) / 10:g}")


@dataclasses.dataclass
class MetricContext:
    """Shared services for metrics that need trained recognizers: cache, device, seed, CI level."""

    cache: Cache
    device: torch.device
    seed: int = 0
    ci_level: float = 0.95
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)


def unit_range(images: torch.Tensor) -> torch.Tensor:
    """Float images clamped to [0, 1]; returned as they are (no copy) when already in range."""
    images = images.float()
    low, high = torch.aminmax(images)
    return images if bool(low >= 0) and bool(high <= 1) else images.clamp(0, 1)


@dataclasses.dataclass
class PrivacyInputs:
    originals: torch.Tensor  # float [0, 1], N×3×H×W
    reconstructions: torch.Tensor  # float [0, 1], N×3×H×W
    probes: ImageSet  # labels of the probe images (identities, strings, attributes)

    def __post_init__(self) -> None:
        # Checked (and clamped if needed) once here, not again in every metric that scores these images.
        self.originals = unit_range(self.originals)
        self.reconstructions = unit_range(self.reconstructions)


@dataclasses.dataclass
class UtilityInputs:
    outputs: torch.Tensor  # task outputs (logits)
    targets: torch.Tensor


class Metric(Component):
    kind: ClassVar[str] = "metric"
    #: "privacy", "utility" or "rate"
    side: ClassVar[str] = "privacy"
    #: label fields a probe set must carry for this metric to apply
    requires: ClassVar[tuple[str, ...]] = ()
    #: True when a larger value means more is revealed (PSNR, identification accuracy); False for MSE
    higher_is_leakier: ClassVar[bool] = True
    unit: ClassVar[str] = ""

    def applies_to(self, probes: ImageSet) -> bool:
        return all(field in probes.labels for field in self.requires)

    def score(self, inputs: Any, context: MetricContext) -> Score:
        raise NotImplementedError
