"""Defense base classes and the trained-defense lifecycle.

A defense turns a :class:`~privbench.split.SplitModel` into a *defended* SplitModel. Transform defenses
(noise, dropout, blur, ...) insert a :class:`DefenseStage` (a pipeline :class:`~privbench.split.Stage`) at a
placement — the ``input`` image or the ``features`` at the cut — and stay active at inference (a defense is
part of the deployed pipeline, not a training regularizer).

Trained defenses (autoencoder, pruning, ...) follow the lifecycle of attacks (DESIGN §8):

- ``fit(context) -> state``: learn from a typed :class:`FitContext` (the frozen task model, the task's
  training data, device, seed, cache; ``say`` puts its phases on the progress line) — never the engine; the state
  holds tensors and plain containers only (``torch.load(weights_only=True)``-safe);
- ``load_state(state)``: restore a fitted defense (from the cache or a file written by ``privbench defend``);
- ``apply(model) -> SplitModel``: the defended pipeline; a defense may replace the back as well as the
  front (:meth:`SplitModel.with_parts`), e.g. a bottleneck's decoder runs in the cloud.

The engine fits a trained defense once per (task model, defense parameters, training data, seed) and caches
the state under the ``defense`` kind.

Each defense names the parameter that is its one ``strength`` axis for sweeps (``strength_param``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from privbench.cache import Cache
from privbench.data.base import ImageSet
from privbench.errors import PrivbenchError, first_line
from privbench.models.base import ModelSpec
from privbench.progress import note
from privbench.registry import Component, Param
from privbench.split import SplitModel, Stage
from privbench.threat import Access

PLACEMENT_PARAM = Param("placement", str, "features", "where the defense acts: the input image or the "
                        "features at the split", choices=("input", "features"))
#: For defenses defined on images only (blur, pixelate, quantize): the one placement is the input.
INPUT_PLACEMENT_PARAM = Param("placement", str, "input", "where the defense acts: only the input image "
                              "(an image-space transform)", choices=("input",))


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``module``'s state dict: what a trained defense's ``fit`` returns for it."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


class DefenseStage(Stage):
    """A defense's pipeline stage (see :class:`~privbench.split.Stage` for ``differentiable``/``stochastic``)."""

    label: str = "defense"


@dataclasses.dataclass
class FitContext:
    """What a trained defense may use while it is fitted: nothing of the engine, nothing of the probes.

    ``model`` is the undefended task model, frozen (parameters do not require gradients); ``train`` is the
    task's training set (uint8 images and the task labels), the data a defender owns.
    """

    model: SplitModel
    train: ImageSet
    device: torch.device
    seed: int
    cache: Cache | None = None

    def say(self, message: str) -> None:
        """What the fit does now (its phase), on the line of the step that fits the defense
        (:func:`privbench.progress.note`)."""
        note(message)

    @property
    def targets(self):
        """The task's targets of ``train`` (class labels; boxes and classes for a detector), indexed like a tensor."""
        return self.model.task.targets(self.train)


class Defense(Component):
    kind: ClassVar[str] = "defense"
    #: name of the declared parameter that is the sweep axis (``--strength``).
    strength_param: ClassVar[str] = ""
    #: True for defenses that learn (``fit`` / ``load_state``); the engine then caches their state.
    trained: ClassVar[bool] = False
    #: the tasks (:data:`privbench.tasks.TASKS`) whose models this defense can protect
    tasks: ClassVar[tuple[str, ...]] = ("classification", "detection")
    #: the observers the defense's paper protects against (its threat model), as attack access levels; empty = no
    #: paper threat model declared. The report shows the worst case within it beside the worst case over every
    #: attack (:func:`privbench.worst_case.add_paper_worst_case`).
    paper_threat: ClassVar[tuple[Access, ...]] = ()
    #: where the paper states that threat model
    paper_threat_source: ClassVar[str] = ""

    @property
    def strength(self) -> float:
        return float(self.params[self.strength_param]) if self.strength_param else 0.0

    def is_identity(self) -> bool:
        """True when this setting leaves the pipeline unchanged (e.g. noise with σ = 0)."""
        return False

    def spec(self) -> dict[str, Any]:
        """Everything that determines the defended pipeline; identity settings share one spec."""
        if self.is_identity():
            return {"defense": "identity"}
        return {"defense": self.name, "params": self.params}

    def apply(self, model: SplitModel) -> SplitModel:
        raise NotImplementedError

    @property
    def transforms_input(self) -> bool:
        """True when the defense changes the image before the task network (x′ = D(x), an input-placement
        transform, a perturbation generator, an obfuscator); the engine then also scores x′ itself."""
        return self.params.get("placement") == "input"

    def diagnostics(self, defended_inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, tuple[int, int]]:
        """Defense-specific proportions measured on the task test set's defended inputs x′ (float, CPU) and task
        labels, as ``{metric: (successes, n)}`` — e.g. the perturbation generator's own auxiliary classifier's
        accuracy (paper 003). Called after :meth:`apply`; reported as ``kind=input`` rows. A larger proportion must
        mean that x′ reveals more (the regression gate relies on it). Default: none."""
        return {}

    def deployed_split(self, model_split: str) -> str:
        """The layer the defended front ends at (the ``split`` column): the model's split, unless the defense
        deploys another one (PATROL's pruning runs more layers on the edge)."""
        return model_split

    def check_model(self, spec: ModelSpec, model_split: str) -> None:
        """Refuse, before anything is computed, a setting that cannot work with this model (raise
        :class:`PrivbenchError`). Default: every model is fine."""

    def reference_fronts(self, model: SplitModel) -> dict[str, nn.Module]:
        """Other edge sides whose cost the report shows next to the defended one (e.g. the unpruned front at
        the pruned front's split), by label. Default: none."""
        return {}


class TrainedDefense(Defense):
    """A defense with learned parts: ``fit`` → state → ``load_state`` → ``apply``.

    Subclasses implement :meth:`fit` (return the state) and :meth:`build` (the defended model from the
    undefended one and a loaded state). ``state_source`` is an extra part of :meth:`spec` that says where the
    state came from when it was not fitted by this run (the content hash of a ``privbench defend`` file).
    """

    trained: ClassVar[bool] = True

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.state: dict[str, Any] | None = None
        self.state_source: str | None = None

    def spec(self) -> dict[str, Any]:
        spec = super().spec()
        if self.state_source is not None and not self.is_identity():
            spec["state"] = self.state_source
        return spec

    def fit(self, context: FitContext) -> dict[str, Any]:
        raise NotImplementedError

    def load_state(self, state: dict[str, Any]) -> None:
        self.state = state

    def build(self, model: SplitModel, state: dict[str, Any]) -> SplitModel:
        raise NotImplementedError

    @contextlib.contextmanager
    def state_must_fit(self) -> Iterator[None]:
        """Around loading a state in :meth:`build`: a state of another model or other parameters (missing keys,
        wrong shapes, wrong types) becomes one :class:`PrivbenchError` line naming the defense."""
        try:
            yield
        except (KeyError, RuntimeError, TypeError, AttributeError) as exc:
            raise PrivbenchError(f"defense '{self.name}': the state does not fit this model and these parameters "
                                 f"({first_line(exc)})") from None

    def apply(self, model: SplitModel) -> SplitModel:
        if self.is_identity():
            return model
        if self.state is None:
            raise PrivbenchError(f"defense '{self.name}' is trained: fit it (or load its state) before applying it")
        defended = self.build(model, self.state)
        defended.to(model.device).eval()
        for p in defended.parameters():
            p.requires_grad_(False)
        return defended


class TransformDefense(Defense):
    """A fixed transform at the input or at the features: subclasses implement :meth:`stage`."""

    def stage(self) -> DefenseStage:
        raise NotImplementedError

    def apply(self, model: SplitModel) -> SplitModel:
        if self.is_identity():
            return model
        stage = self.stage()
        stage.label = f"{self.name}@{self.params['placement']}"
        if self.params["placement"] == "input":
            return model.with_input_stage(stage)
        return model.with_front(nn.Sequential(OrderedDict(front=model.front, defense=stage)))

