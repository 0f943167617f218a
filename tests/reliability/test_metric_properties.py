"""Property-based tests of the image-quality metrics: ranges, symmetry where it holds, identity, NaN refused."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privbench.components import load_components
from privbench.engine.scoring import to_uint8_images
from privbench.errors import PrivbenchError
from privbench.metrics.base import MetricContext, PrivacyInputs
from privbench.registry import METRICS

load_components()
FAST = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
CONTEXT = MetricContext(cache=None, device=torch.device("cpu"), seed=0)


@st.composite
def image_pairs(draw):
    n, size = draw(st.integers(1, 3)), draw(st.sampled_from([11, 16]))  # SSIM's window needs ≥ 11 px
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    y = (x + draw(st.floats(0.0, 1.0)) * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    return x, y


def score(name: str, x: torch.Tensor, y: torch.Tensor) -> float:
    return METRICS.create(name).score(PrivacyInputs(x, y, None), CONTEXT).value


@FAST
@given(pair=image_pairs())
def test_ranges_and_symmetry(pair):
    x, y = pair
    psnr, ssim, mse = score("psnr", x, y), score("ssim", x, y), score("mse", x, y)
    assert psnr > 0 and not math.isnan(psnr)
    assert -1.0 <= ssim <= 1.0 + 1e-6
    assert 0.0 <= mse <= 1.0
    assert score("psnr", y, x) == pytest.approx(psnr, rel=1e-5)
    assert score("mse", y, x) == pytest.approx(mse, rel=1e-6, abs=1e-12)
    assert score("ssim", x, x) == pytest.approx(1.0, abs=1e-5)


@FAST
@given(pair=image_pairs(), bad=st.sampled_from([float("nan"), float("inf"), -float("inf")]))
def test_nan_and_inf_are_refused_not_scored(pair, bad):
    x, y = pair
    y = y.clone()
    y[0, 0, 0, 0] = bad
    with pytest.raises(PrivbenchError, match="NaN or infinite"):
        score("psnr", x, y)
    with pytest.raises(PrivbenchError, match="diverged"):
        to_uint8_images(y)
