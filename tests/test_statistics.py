"""Confidence intervals: they contain the estimate, stay in range and shrink with n."""

import math

import pytest

from privbench.metrics.statistics import wilson_ci


@pytest.mark.parametrize("successes,n", [(0, 40), (40, 40), (0, 1), (7, 9), (1, 1000)])
def test_wilson_interval_contains_the_proportion_and_stays_in_unit_range(successes, n):
    p, low, high, count = wilson_ci(successes, n)
    assert count == n and p == successes / n
    assert 0.0 <= low <= p <= high <= 1.0


def test_wilson_matches_the_textbook_value_and_narrows_with_n():
    # 8 of 10, 95%: Wilson interval (0.490, 0.943) (Newcombe 1998, method 3)
    _, low, high, _ = wilson_ci(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    _, low_big, high_big, _ = wilson_ci(80, 100)
    assert high_big - low_big < high - low


def test_empty_sample_has_no_interval():
    assert all(math.isnan(v) for v in wilson_ci(0, 0)[:3])
