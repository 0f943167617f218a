"""Metric base class and the inputs metrics receive.

A privacy metric compares reconstructions x̂ with the originals x and with the probe set's private labels
(identities, plate strings, attributes); a utility metric scores the task outputs. Every score carries n
and a confidence interval with the method that produced it.

A metric that reads private labels needs a recognizer, and the built-in ones are trained on the synthetic
families only. :meth:`Metric.check` says, before anything is computed and from what is known without loading
an image (is the probe set synthetic?), whether the metric can score a probe set with its parameters; when it
cannot it raises :class:`RecognizerMissing`, which carries the ways to provide the missing recognizer so that
the command the user typed can print them in its own terms (``--param k=v`` for ``eval``, ``params:`` for a
config).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch

from privbench.cache import Cache
from privbench.data.base import ImageSet
from privbench.errors import MetricUnavailable, PrivbenchError
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
    """Float images clamped to [0, 1]; returned as they are (no copy) when already in range. NaN or ±inf is
    refused: clamping would turn it into a plausible pixel and the score into a number that means nothing."""
    images = images.float()
    if not bool(torch.isfinite(images).all()):
        raise PrivbenchError("images to score contain NaN or infinite values")
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
    outputs: Any  # the task's predictions (:meth:`privbench.tasks.Task.predictions`): logits, or detections
    targets: Any  # the task's targets: class labels, or :class:`~privbench.tasks.DetectionTargets`
    classes: Sequence[str] = ()  # the task's class names, by label (index 0 = background for a detector)
    #: evaluations shared by the metrics that score these inputs (e.g. one COCO evaluation for map50, map, ap)
    memo: dict[Any, Any] = dataclasses.field(default_factory=dict)


#: where a :class:`RecognizerMissing` is shown: ``eval`` on image folders (where ``--synthetic`` applies), another
#: command line (``--param k=v``), or about a YAML config (``params:``)
Style = Literal["folders", "cli", "config"]


@dataclasses.dataclass(frozen=True)
class Remedy:
    """One way to give a metric the recognizer it lacks: parameters to set on the metric, and what they are
    (or, with no parameters, something to do, such as putting a checkpoint file in a folder)."""

    params: dict[str, str]
    means: str = ""

    def render(self, metric: str, style: Style) -> str:
        if not self.params:
            return self.means
        if style != "config":
            where = " ".join(f"--param {k}={v}" for k, v in self.params.items())
        else:
            inner = ", ".join(f"{k}: {v}" for k, v in self.params.items())
            where = f"metrics: [{{name: {metric}, params: {{{inner}}}}}]"
        return f"{where} ({self.means})" if self.means else where


class RecognizerMissing(MetricUnavailable):
    """A metric has no honest recognizer for a probe set; the message says how to provide one.

    A :class:`MetricUnavailable`, so code that records unavailable metrics as notes keeps working; the
    commands that can stop before computing anything (``run``'s pre-flight, ``eval``) turn it into a
    :class:`~privbench.errors.PrivbenchError` rendered with :meth:`message` for the place the user fixes it.
    ``real_images`` says the trouble is real images meeting a synthetic-only recognizer: on the command line
    the message then also offers ``--synthetic FAMILY`` (``family``: the one whose built-in recognizer would
    apply), for folders that do hold a synthetic family's images; a config's datasets say what they are.
    """

    def __init__(self, metric: str, reason: str, remedies: Sequence[Remedy], *, real_images: bool = False,
                 family: str = "", lead: str = "to provide it") -> None:
        self.metric, self.reason, self.remedies = metric, reason, tuple(remedies)
        self.real_images, self.family, self.lead = real_images, family, lead
        super().__init__(self.message("folders"))

    def message(self, style: Style) -> str:
        ways = [r.render(self.metric, style) for r in self.remedies]
        if style == "config":
            ways.append(f"drop {self.metric} from metrics")
        elif style == "folders" and self.real_images:
            ways.append(f"--synthetic {self.family} if the images are {self.family}' (its built-in recognizer, "
                        "trained on synthetic images)" if self.family else "--synthetic FAMILY if the images are "
                        "a synthetic family's (privbench list datasets)")
        return f"metric '{self.metric}': {self.reason}" + (f"; {self.lead}: {'; or '.join(ways)}" if ways else "")


class Metric(Component):
    kind: ClassVar[str] = "metric"
    #: "privacy", "utility" or "rate"
    side: ClassVar[str] = "privacy"
    #: label fields a probe set must carry for this metric to apply
    requires: ClassVar[tuple[str, ...]] = ()
    #: True when a larger value means more is revealed (PSNR, identification accuracy); False for MSE
    higher_is_leakier: ClassVar[bool] = True
    unit: ClassVar[str] = ""
    #: bump when the metric (or its built-in recognizer) changes its scores: part of every cached point's key
    version: ClassVar[int] = 1

    #: the synthetic family the built-in recognizer is trained on ("" when unknown or none)
    synthetic_family: ClassVar[str] = ""
    #: the tasks (:data:`privbench.tasks.TASKS`) this metric can score (a utility metric reads the task's outputs)
    tasks: ClassVar[tuple[str, ...]] = ("classification", "detection")

    @property
    def label(self) -> str:
        """The ``metric`` column of this metric's rows (its name; a parametrized metric may say more)."""
        return self.name

    def applies_to(self, probes: ImageSet) -> bool:
        return all(field in probes.labels for field in self.requires)

    def builtin_recognizer(self) -> bool:
        """Whether scoring, with these parameters, trains a built-in recognizer on a synthetic family's clean
        ``train`` subset at the probes' resolution.

        By default a metric that reads private labels (``requires``) does, and one that compares pixels does
        not; metrics that can load a pretrained recognizer (facenet, LPRNet) say False when told to.
        ``eval --synthetic`` resizes folder images to the family's resolution only for such metrics.
        """
        return bool(self.requires)

    def real_data_remedies(self) -> list[Remedy]:
        """The parameters that replace the built-in recognizer by a real one (none by default)."""
        return []

    def check(self, probes: str, synthetic: bool) -> None:
        """Raise :class:`RecognizerMissing` when this metric cannot score probe set ``probes``.

        Called before any compute (``run``'s pre-flight, ``eval``), so it must decide from the parameters and
        from whether the probes are synthetic, never from their images. The default refuses real images for
        a metric whose recognizer is a built-in (synthetic-only) one; metrics override it to check their
        pretrained weights or to accept real data through a protocol that trains on the probes.
        """
        if not synthetic and self.builtin_recognizer():
            raise RecognizerMissing(self.name, f"'{probes}' holds real images and the built-in recognizer is "
                                    "trained on synthetic data only", self.real_data_remedies(),
                                    real_images=True, family=self.synthetic_family, lead="to score them")

    def score(self, inputs: Any, context: MetricContext) -> Score:
        raise NotImplementedError
