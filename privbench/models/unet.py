"""U-Net image-to-image network (Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical
Image Segmentation", MICCAI 2015), as the protective perturbation generator U(·) of paper 003 (Ye et al.,
"Visual Privacy Protection in Mobile Image Recognition Using Protective Perturbation", MMSys '22, §3.2).

Settings from paper 003's public code (``REFERENCES.md``, "Protective perturbation"): widths 32-64-128-256-512,
each level a block of (3×3 conv + BatchNorm + LeakyReLU 0.2) × 2, and a 1×1 output convolution. The depth
follows ``len(widths)``: the contracting path applies the first block at full resolution and, for every further
width, a 2×2 max-pooling then a block; the expanding path mirrors it with a 2×2 stride-2 transposed convolution
("up-conv", halving the channels as in Ronneberger et al.), the concatenation of the skip connection of the same
resolution, and a block. The output has no activation: it is the residual δ that the caller adds to the image.
The input side must be divisible by ``2 ** (len(widths) - 1)`` (32×32 with five widths ends at 2×2).
"""

from __future__ import annotations

import torch
from torch import nn

from privbench.errors import PrivbenchError

PAPER_WIDTHS = (32, 64, 128, 256, 512)


class ConvBlock(nn.Sequential):
    """(3×3 conv + BatchNorm + LeakyReLU) × 2; the convolutions have no bias (BatchNorm follows)."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.2) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
                         nn.LeakyReLU(negative_slope),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.LeakyReLU(negative_slope))


class UNet(nn.Module):
    """``UNet(x) -> δ``: an image of ``out_channels`` channels at the input's resolution (no output activation)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, widths: tuple[int, ...] = PAPER_WIDTHS,
                 negative_slope: float = 0.2) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 1 or min(widths) < 1:
            raise PrivbenchError(f"U-Net: widths must be one or more positive channel counts, got {widths}")
        self.widths = widths
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.down.append(ConvBlock(previous, width, negative_slope))
            previous = width
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for deeper, width in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(nn.ConvTranspose2d(deeper, width, 2, stride=2))
            self.merge.append(ConvBlock(2 * width, width, negative_slope))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    @property
    def multiple(self) -> int:
        """The input height and width must be multiples of this (one halving per pooling)."""
        return 2 ** (len(self.widths) - 1)

    def check_size(self, height: int, width: int) -> None:
        """Refuse an input size the poolings cannot halve exactly (the skips would not line up)."""
        m = self.multiple
        if height % m or width % m:
            raise PrivbenchError(f"U-Net with {len(self.widths)} levels needs an input whose height and width are "
                                 f"multiples of {m} (2^{len(self.widths) - 1}); got {height}×{width}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(int(x.shape[-2]), int(x.shape[-1]))
        skips = []
        h = x
        for level, block in enumerate(self.down):
            if level > 0:
                h = self.pool(h)
            h = block(h)
            skips.append(h)
        skips.pop()  # the bottom level has no skip: it is h itself
        for up, merge in zip(self.up, self.merge, strict=True):
            h = merge(torch.cat([skips.pop(), up(h)], dim=1))
        return self.head(h)
