"""Defense base classes.

A defense turns a :class:`~privbench.split.SplitModel` into a *defended* SplitModel. Transform defenses
(noise, dropout, blur, ...) insert a :class:`DefenseStage` at a placement — the ``input`` image or the
``features`` at the cut — and stay active at inference (a defense is part of the deployed pipeline, not
a training regularizer). Learned defenses (autoencoder, pruning, ...) override :meth:`Defense.apply`.

Each defense names the parameter that is its one ``strength`` axis for sweeps (``strength_param``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

from torch import nn

from privbench.registry import Component, Param
from privbench.split import SplitModel

PLACEMENT_PARAM = Param("placement", str, "features", "where the defense acts: the input image or the "
                        "features at the split", choices=("input", "features"))


class DefenseStage(nn.Module):
    """A module inserted into the defended front.

    ``differentiable`` tells white-box attacks whether gradients through the stage are exact;
    ``stochastic`` tells them whether expectation over the defense's randomness is needed (EOT).
    Stages act in both train and eval mode.
    """

    differentiable: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False
    label: str = "defense"


class Defense(Component):
    kind: ClassVar[str] = "defense"
    #: name of the declared parameter that is the sweep axis (``--strength``).
    strength_param: ClassVar[str] = ""

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

    def apply(self, model: SplitModel, context: Any = None) -> SplitModel:
        raise NotImplementedError


class TransformDefense(Defense):
    """A fixed transform at the input or at the features: subclasses implement :meth:`stage`."""

    def stage(self) -> DefenseStage:
        raise NotImplementedError

    def apply(self, model: SplitModel, context: Any = None) -> SplitModel:
        if self.is_identity():
            return model
        stage = self.stage()
        stage.label = f"{self.name}@{self.params['placement']}"
        if self.params["placement"] == "input":
            front = nn.Sequential(OrderedDict(defense=stage, front=model.front))
        else:
            front = nn.Sequential(OrderedDict(front=model.front, defense=stage))
        return model.with_front(front)


def defense_stages(module: nn.Module) -> list[DefenseStage]:
    """All defense stages inside a (defended) front, in order."""
    return [m for m in module.modules() if isinstance(m, DefenseStage)]
