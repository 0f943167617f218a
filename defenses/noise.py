"""Additive noise defense (Gaussian or Laplacian), at the input or at the features.

He, Zhang & Lee (ACSAC 2019) and paper 000 §VI use it as a baseline: z' = z + n with n ~ N(0, σ²) or
n ~ Laplace(0, b), i.i.d. per element, fresh at every inference. ``scale`` is σ or b, in the units of the
tensor it is added to (pixel values in [0, 1] at the input; raw activations at the features).
"""

from __future__ import annotations

import torch

from privbench.defenses.base import PLACEMENT_PARAM, DefenseStage, TransformDefense
from privbench.registry import DEFENSES, Param


class NoiseStage(DefenseStage):
    stochastic = True

    def __init__(self, distribution: str, scale: float) -> None:
        super().__init__()
        self.distribution = distribution
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Noise is drawn in the standard contiguous layout whatever x's memory format: the draw is then
        # independent of the layout, and randn on a channels-last tensor was measured 7× slower on CPU.
        if self.distribution == "gaussian":
            noise = torch.randn(x.shape, dtype=x.dtype, device=x.device)
        else:  # Laplace(0, 1) by inverse CDF of a uniform on (-1/2, 1/2)
            u = torch.rand(x.shape, dtype=x.dtype, device=x.device) - 0.5
            noise = -torch.sign(u) * torch.log1p(-2.0 * u.abs().clamp(max=0.5 - 1e-7))
        return x + self.scale * noise

    def extra_repr(self) -> str:
        return f"{self.distribution}, scale={self.scale}"


@DEFENSES.register("noise")
class Noise(TransformDefense):
    summary = "additive Gaussian or Laplacian noise (He et al. 2019 baseline); strength = σ or b"
    strength_param = "scale"
    params = (
        Param("scale", float, 0.5, "σ (gaussian) or b (laplacian), in the units of the noised tensor",
              low=0.0, high=100.0),
        Param("distribution", str, "gaussian", "noise distribution", choices=("gaussian", "laplacian")),
        PLACEMENT_PARAM,
    )

    def is_identity(self) -> bool:
        return self.params["scale"] == 0.0

    def stage(self) -> NoiseStage:
        return NoiseStage(self.params["distribution"], self.params["scale"])
