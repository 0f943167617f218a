"""Uniform quantization defense, on the input image.

One of the classic whole-frame obfuscation baselines of paper 004 (De Coninck et al., "Privacy-preserving
visual analysis: training video obfuscation models without sensitive labels", 2024), which quantizes to 8
values. Each pixel value in [0, 1] is rounded to the nearest of ``levels`` evenly spaced values
0, 1/(L−1), ..., 1 (values outside [0, 1] are clipped first), per channel: q(x) = round(x·(L−1)) / (L−1).
Few levels flatten smooth shading into bands and erase the low-contrast detail of a face.

``levels`` is the strength (fewer levels = stronger); it runs from 2 (binary) to 256. levels = 256 is the
identity: the benchmark's images are 8-bit (k/255), which 256-level quantization reproduces bit for bit, so
that setting leaves the pipeline unchanged and is not inserted at all.

Rounding has zero gradient almost everywhere, so the stage declares ``differentiable = False``; its
gradient is the straight-through estimator (Bengio et al. 2013) of x + (q(x) − x).detach(): the value is
q(x), the gradient the identity, for white-box attacks that accept a gradient approximation
(``approximation = "straight-through"``). It is computed as q(x) + (x − x.detach()), which has the same
gradient and whose value is q(x) by construction (x − x.detach() is exactly 0), rather than by relying on
x + (q(x) − x) cancelling exactly in floating point.
"""

from __future__ import annotations

import torch

from privbench.defenses.base import INPUT_PLACEMENT_PARAM, DefenseStage, TransformDefense
from privbench.registry import DEFENSES, Param

#: 8-bit images: 256 levels reproduce them exactly.
IDENTITY_LEVELS = 256


class QuantizeStage(DefenseStage):
    """Round values in [0, 1] to ``levels`` uniform levels; straight-through gradient."""

    differentiable = False
    approximation = "straight-through"

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.levels - 1
        q = torch.round(x.detach().clamp(0.0, 1.0) * steps) / steps
        return q + (x - x.detach())  # value exactly q, gradient the identity (see the module docstring)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


@DEFENSES.register("quantize")
class Quantize(TransformDefense):
    summary = "uniform quantization of input pixel values (paper 004 baseline); strength = number of levels"
    strength_param = "levels"
    params = (
        Param("levels", int, 8, f"number of uniform levels in [0, 1] ({IDENTITY_LEVELS} = 8-bit = no change)",
              low=2, high=IDENTITY_LEVELS),
        INPUT_PLACEMENT_PARAM,
    )

    def is_identity(self) -> bool:
        return self.params["levels"] == IDENTITY_LEVELS

    def stage(self) -> QuantizeStage:
        return QuantizeStage(self.params["levels"])
