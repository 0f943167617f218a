"""Pixelation defense, on the input image.

One of the classic whole-frame obfuscation baselines of paper 004 (De Coninck et al., "Privacy-preserving
visual analysis: training video obfuscation models without sensitive labels", 2024), which pixelates by
"reducing the image size by one-third" (block = 3 here). Each non-overlapping ``block``×``block`` cell is
replaced by its mean colour and shown at the original resolution (nearest-neighbour upsampling), so the
edge network sees an image of the same size but only (H/block)×(W/block) distinct colours.

``block`` is the strength: the side of a cell in input pixels; block = 1 is the identity.

Sizes not divisible by ``block``: cells are laid out from the top-left corner, and the last row/column of
cells is cut by the image border. Such a partial cell is the exact mean of the pixels it covers (average
pooling with ``ceil_mode=True`` and no padding divides by the in-image count), and the upsampled image is
cropped back to H×W — so the output has the input's size, no pixel is invented by padding, and every cell,
full or partial, is constant. The stage is averaging plus copying, hence exactly differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from privbench.defenses.base import INPUT_PLACEMENT_PARAM, DefenseStage, TransformDefense
from privbench.registry import DEFENSES, Param


class PixelateStage(DefenseStage):
    """Block-average N×C×H×W images over ``block``×``block`` cells, then repeat each cell back to H×W."""

    def __init__(self, block: int) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.block == 1:
            return x
        h, w = x.shape[-2:]
        cells = F.avg_pool2d(x, self.block, stride=self.block, ceil_mode=True)
        up = cells.repeat_interleave(self.block, dim=-2).repeat_interleave(self.block, dim=-1)
        return up[..., :h, :w]

    def extra_repr(self) -> str:
        return f"block={self.block}"


@DEFENSES.register("pixelate")
class Pixelate(TransformDefense):
    summary = "block-average pixelation of the input image (paper 004 baseline); strength = block side in pixels"
    strength_param = "block"
    params = (
        Param("block", int, 3, "side of the averaged cells in input pixels (1 = no pixelation)",
              low=1, high=512),
        INPUT_PLACEMENT_PARAM,
    )

    def is_identity(self) -> bool:
        return self.params["block"] == 1

    def stage(self) -> PixelateStage:
        return PixelateStage(self.params["block"])
