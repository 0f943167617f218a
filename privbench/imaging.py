"""Small image operators shared by metrics, losses, attacks and defenses: BT.709 luma and Sobel filters.

They sit at the bottom of the package so that metrics (edge-PSNR) and training losses (paper 000 eq. 13)
compute the very same edges.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

# BT.709 luma, as in the L_rec of paper 000 (eq. 13).
LUMA = (0.2126, 0.7152, 0.0722)
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def luma(x: torch.Tensor) -> torch.Tensor:
    """N×1×H×W luma of N×3×H×W RGB images."""
    weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def sobel_gradients(gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical Sobel responses of N×1×H×W images (replicate padding)."""
    kx = _SOBEL_X.to(gray).view(1, 1, 3, 3)
    padded = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kx), F.conv2d(padded, kx.transpose(2, 3))
