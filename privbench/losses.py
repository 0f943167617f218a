"""Training losses shared by attacks and defenses (an inverse network and paper 000's RecNet minimize the
same reconstruction loss; the autoencoder maximizes it).

- :func:`reconstruction_loss` — ``mse``, ``l1``, or paper 000's edge-centric ``l1+edge`` (eq. 13).
- :func:`compressibility_loss` — paper 000's rate proxy L_cmprs (eq. 12, borrowed from Alvar & Bajić 2019).

Written by hand: no library implements these losses.
"""

from __future__ import annotations

import functools
import math

import torch
from torch.nn import functional as F

from privbench.errors import PrivbenchError
from privbench.imaging import luma, sobel_gradients

RECONSTRUCTION_LOSSES = ("mse", "l1", "l1+edge")


def edge_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ℓ1 of the horizontal + vertical Sobel responses of the luma (the β-terms of paper 000 eq. 13)."""
    ox, oy = sobel_gradients(luma(output))
    tx, ty = sobel_gradients(luma(target))
    return F.l1_loss(ox, tx) + F.l1_loss(oy, ty)


def reconstruction_loss(name: str, output: torch.Tensor, target: torch.Tensor,
                        beta: float = 5.0) -> torch.Tensor:
    """``mse``, ``l1``, or ``l1+edge`` = ℓ1 + β·(ℓ1 of Sobel Gx + ℓ1 of Sobel Gy) on luma (paper 000 eq. 13,
    β = 5 there; the paper's 1/n normalizes each term by its own element count, i.e. a mean)."""
    if name == "mse":
        return F.mse_loss(output, target)
    if name == "l1":
        return F.l1_loss(output, target)
    if name == "l1+edge":
        return F.l1_loss(output, target) + beta * edge_l1(output, target)
    raise PrivbenchError(f"unknown reconstruction loss '{name}' (choose from: {', '.join(RECONSTRUCTION_LOSSES)})")


@functools.lru_cache(maxsize=32)
def _dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix D (n×n): D[k, m] = √(2/n)·c_k·cos(π(2m+1)k / 2n), c_0 = 1/√2."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    m = torch.arange(n, dtype=torch.float64).view(1, -1)
    d = math.sqrt(2.0 / n) * torch.cos(math.pi * (2 * m + 1) * k / (2 * n))
    d[0] /= math.sqrt(2.0)
    return d.float()


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Full-frame orthonormal 2-D DCT-II over the last two dimensions (D_H · X · D_Wᵀ), differentiable."""
    dh = _dct_matrix(x.shape[-2]).to(x)
    dw = _dct_matrix(x.shape[-1]).to(x)
    return dh @ x @ dw.T


def prediction_residual(z: torch.Tensor) -> torch.Tensor:
    """Z of paper 000 eq. 12: the mean of the horizontal and vertical first-difference (prediction) residuals
    of every channel, ½·((z[i, j+1] − z[i, j]) + (z[i+1, j] − z[i, j])), on the (H−1)×(W−1) positions where
    both predictions exist."""
    horizontal = z[..., :-1, 1:] - z[..., :-1, :-1]
    vertical = z[..., 1:, :-1] - z[..., :-1, :-1]
    return 0.5 * (horizontal + vertical)


def compressibility_loss(z: torch.Tensor) -> torch.Tensor:
    """L_cmprs of paper 000 eq. 12: (1 / H·W·C) Σ_i ‖DCT(Z_i)‖₁ with Z_i the prediction residual of channel i,
    averaged over the batch — the ℓ1 norm of transform coefficients after intra prediction, a differentiable
    proxy for what an intra codec spends on the feature channels."""
    if z.ndim != 4 or z.shape[-1] < 2 or z.shape[-2] < 2:
        raise PrivbenchError(f"compressibility loss needs N×C×H×W features with H, W ≥ 2, got {tuple(z.shape)}")
    return dct2(prediction_residual(z)).abs().mean()
