"""Confidence intervals over the probes of one run, from ``scipy.stats``.

- Means of per-image values (PSNR, SSIM, ...): the normal interval mean ± z·s/√n (paper 000 reports 99.9%
  normal intervals from the sample mean and standard deviation), ``scipy.stats.norm.interval``. Method ``normal``.
- Proportions (accuracies): the Wilson score interval, which behaves at 0 %, 100 % and small n where the
  normal interval does not: ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``. Method ``wilson``.

Across seeds, :mod:`privbench.replication` resamples seeds and, inside each, draws from the laws these intervals
state.
"""

from __future__ import annotations

import math

import torch
from scipy import stats


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
    sd = float(v.std(unbiased=True))
    if sd == 0.0:
        return mean, mean, mean, n
    low, high = stats.norm.interval(level, loc=mean, scale=sd / math.sqrt(n))
    return mean, float(low), float(high), n


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float, int]:
    """(proportion, low, high, n) with the Wilson score interval."""
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    p = successes / n
    interval = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    # The interval always contains p; at p = 0 or 1 rounding would otherwise leave an end ~1e-17 past it.
    return p, min(p, max(0.0, float(interval.low))), max(p, min(1.0, float(interval.high))), n
