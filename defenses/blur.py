"""Gaussian blur defense, on the input image.

One of the classic whole-frame obfuscation baselines that paper 004 (De Coninck et al., "Privacy-preserving
visual analysis: training video obfuscation models without sensitive labels", 2024) compares its learned
obfuscator against; they blur with a 9×9 Gaussian kernel, which under the kernel rule below is σ ≈ 1.33 px
(radius 4). Blurring removes high spatial frequencies — the fine detail (edges, texture) that identifies a
face — before the image reaches the edge network.

``sigma`` is the strength: the standard deviation of the Gaussian in pixels of the input image, with the
kernel of :func:`privbench.data.base.gaussian_blur` (side 2·max(1, round(3σ)) + 1, reflect padding);
σ = 0 is the identity. The blur is a fixed linear filter, so the stage is exactly differentiable.
"""

from __future__ import annotations

import torch

from privbench.data.base import gaussian_blur
from privbench.defenses.base import INPUT_PLACEMENT_PARAM, DefenseStage, TransformDefense
from privbench.registry import DEFENSES, Param


class BlurStage(DefenseStage):
    """Gaussian blur of N×C×H×W images with standard deviation ``sigma`` pixels."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sigma == 0.0:
            return x
        radius = max(1, int(round(3 * self.sigma)))
        if radius < min(x.shape[-2:]):
            return gaussian_blur(x, self.sigma)
        # Reflect padding needs a radius below the image side: for a σ this large relative to the image, the
        # kernel is truncated to the largest radius that fits (it is renormalized, so it still averages).
        from torchvision.transforms.functional import gaussian_blur as blur

        side = 2 * (min(x.shape[-2:]) - 1) + 1
        return blur(x, [side, side], [self.sigma, self.sigma])

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


@DEFENSES.register("blur")
class Blur(TransformDefense):
    summary = "Gaussian blur of the input image (paper 004 baseline); strength = σ in pixels"
    strength_param = "sigma"
    params = (
        Param("sigma", float, 1.5, "standard deviation of the Gaussian in input pixels (0 = no blur)",
              low=0.0, high=64.0),
        INPUT_PLACEMENT_PARAM,
    )

    def is_identity(self) -> bool:
        return self.params["sigma"] == 0.0

    def stage(self) -> BlurStage:
        return BlurStage(self.params["sigma"])
