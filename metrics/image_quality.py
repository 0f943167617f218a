"""Full-reference image quality as privacy metrics: PSNR, SSIM (piq), edge-PSNR, MSE.

All are computed per image on [0, 1] images (RGB, all channels together) and averaged over images, with a
normal confidence interval over the per-image values.
"""

from __future__ import annotations

import math

import torch

from privbench.imaging import luma, sobel_gradients
from privbench.metrics.base import Metric, MetricContext, PrivacyInputs, Score
from privbench.registry import METRICS

# Largest possible Sobel gradient magnitude of a [0, 1] image: |gx| = |gy| = 4 at most.
_SOBEL_MAX = 4.0 * math.sqrt(2.0)


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Gradient-magnitude image of the luma, scaled to [0, 1] by the largest possible magnitude."""
    gx, gy = sobel_gradients(luma(x))
    return (gx.square() + gy.square()).sqrt() / _SOBEL_MAX


class _PerImage(Metric):
    side = "privacy"
    params = ()

    def per_image(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, inputs: PrivacyInputs, context: MetricContext) -> Score:
        # PrivacyInputs already holds float images in [0, 1] (clamped once on construction).
        return Score.from_values(self.per_image(inputs.originals, inputs.reconstructions), context.ci_level)


@METRICS.register("psnr")
class PSNR(_PerImage):
    summary = "PSNR (dB) between original and reconstruction, per image on [0,1] RGB (piq.psnr)"
    unit = "dB"

    def per_image(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        import piq  # imported on use: it pulls in torchvision and torch._dynamo (~2.5 s at start-up)

        return piq.psnr(y, x, data_range=1.0, reduction="none")


@METRICS.register("ssim")
class SSIM(_PerImage):
    summary = "SSIM between original and reconstruction (piq.ssim, 11×11 Gaussian window, σ 1.5)"

    def per_image(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        import piq

        return piq.ssim(y, x, data_range=1.0, reduction="none")


@METRICS.register("edge-psnr")
class EdgePSNR(_PerImage):
    summary = "edge-PSNR (paper 001): PSNR of Sobel gradient-magnitude images of the luma"
    unit = "dB"

    def per_image(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        import piq

        return piq.psnr(sobel_magnitude(y).clamp(0, 1), sobel_magnitude(x).clamp(0, 1), data_range=1.0,
                        reduction="none")


@METRICS.register("mse")
class MSE(_PerImage):
    summary = "mean squared error per image on [0,1] RGB (lower = more revealed)"
    higher_is_leakier = False

    def per_image(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x - y).square().flatten(1).mean(dim=1)



