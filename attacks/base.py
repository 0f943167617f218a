"""Attack base class.

An attack declares its access level (``access``, a :class:`~privbench.threat.Access`) and parameters; the
pipeline hands :meth:`Attack.fit` an :class:`~privbench.threat.AttackerView` for exactly that level, then
calls :meth:`Attack.reconstruct` on the features observed for the probe images. Attacks that learn
weights expose them through :meth:`state` / :meth:`load_state` so a fitted attacker is cached and reused.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from privbench.errors import PrivbenchError
from privbench.registry import Component
from privbench.threat import Access, AttackerView


class Attack(Component):
    kind: ClassVar[str] = "attack"
    access: ClassVar[Access] = Access.BLACK_BOX
    #: gradient approximations of non-differentiable stages this (white-box) attack accepts, e.g.
    #: ``("straight-through",)``; see :func:`privbench.threat.attacker_view`
    approximations: ClassVar[tuple[str, ...]] = ()
    #: a query-free attack that learns from the features the cloud intercepts from the victims' traffic
    #: (:attr:`~privbench.threat.AttackerView.intercepted`); the pipeline computes them only when asked
    uses_intercepted: ClassVar[bool] = False

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.view: AttackerView | None = None

    def spec(self) -> dict[str, Any]:
        return {"attack": self.name, "params": self.params}

    def warm_starts(self) -> bool:
        """Whether this attack, against a defended pipeline, starts from its own fit against the undefended one
        (:attr:`~privbench.threat.AttackerView.warm_start`). Default: no."""
        return False

    def fit(self, view: AttackerView) -> None:
        """Prepare the attack from what the attacker holds (train an inverse network, a shadow model...)."""
        if view.access is not self.access:
            raise PrivbenchError(f"attack '{self.name}' is {self.access.value} but was handed a "
                                 f"{view.access.value} view")
        self.view = view
        self._fit(view)

    def _fit(self, view: AttackerView) -> None:
        """Subclasses: learn from ``view``. Default: nothing to learn."""

    def reconstruct(self, features: torch.Tensor) -> torch.Tensor:
        """Reconstruct images in [0, 1] (N×3×H×W, CPU) from observed features."""
        raise NotImplementedError

    def state(self) -> dict[str, Any] | None:
        """Learned state to cache (tensors and plain containers), or ``None`` when nothing is learned."""
        return None

    def load_state(self, view: AttackerView, state: dict[str, Any]) -> None:
        """Restore a fitted attack from :meth:`state` without refitting."""
        self.view = view
