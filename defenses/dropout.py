"""Dropout defense: zero each element with probability ``rate`` at every inference.

He, Zhang & Lee's code uses an *unscaled* Bernoulli mask (z' = m ⊙ z); the autoencoder paper's code
(paper 000) uses ``F.dropout``, which rescales survivors by 1/(1 − rate). ``rescale`` selects between them.
"""

from __future__ import annotations

import torch

from privbench.defenses.base import PLACEMENT_PARAM, DefenseStage, TransformDefense
from privbench.registry import DEFENSES, Param


class DropoutStage(DefenseStage):
    stochastic = True

    def __init__(self, rate: float, rescale: bool) -> None:
        super().__init__()
        self.rate = rate
        self.rescale = rescale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.rand(x.shape, dtype=x.dtype, device=x.device) >= self.rate  # layout-independent draw
        out = x * keep
        return out / (1.0 - self.rate) if self.rescale else out

    def extra_repr(self) -> str:
        return f"rate={self.rate}, rescale={self.rescale}"


@DEFENSES.register("dropout")
class Dropout(TransformDefense):
    summary = "random zeroing at inference (He et al. 2019: unscaled; paper 000 code: rescaled); strength = rate"
    strength_param = "rate"
    params = (
        Param("rate", float, 0.5, "probability of zeroing each element", low=0.0, high=0.99),
        Param("rescale", bool, False, "divide survivors by 1-rate (F.dropout) instead of an unscaled mask"),
        PLACEMENT_PARAM,
    )

    def is_identity(self) -> bool:
        return self.params["rate"] == 0.0

    def stage(self) -> DropoutStage:
        return DropoutStage(self.params["rate"], self.params["rescale"])
