"""Confidence intervals for reported means and proportions.

- Means of per-image values (PSNR, SSIM, ...): normal interval mean ± z·s/√n (paper 000 reports 99.9%
  normal intervals from the sample mean and standard deviation). Method name ``normal``.
- Proportions (accuracies): Wilson score interval, which behaves at 0 %, 100 % and small n where the
  normal interval does not. Method name ``wilson``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch


def z_value(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def mean_ci(values: torch.Tensor, level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of a 1-D tensor with a normal interval; infinities are dropped first."""
    v = values.detach().double().flatten()
    v = v[torch.isfinite(v)]
    n = int(v.numel())
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(v.mean())
    if n == 1:
        return mean, mean, mean, 1
    half = z_value(level) * float(v.std(unbiased=True)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float, int]:
    """(proportion, low, high, n) with the Wilson score interval."""
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    z = z_value(level)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The interval always contains p; at p = 0 or 1 rounding would otherwise leave an end ~1e-17 past it.
    return p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)), n
