"""Regression gate for CI: compare a results table with a committed baseline.

A grid point regressed when its privacy got worse (the attack reveals more: a higher PSNR or
identification accuracy, a lower MSE) or its utility got worse, by more than the tolerance. Tolerances
are absolute, per metric (``--tol psnr=0.5``) with a default for the rest; ``--use-ci`` additionally
requires the confidence intervals of baseline and current not to overlap, so sampling noise alone does
not fail a build. Timing rows (``edge-latency-ms``, ``edge-images-per-s``) are not compared: they measure the
machine; parameter and MAC counts are (a defense that grew on the edge is a regression).
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from privbench.components import load_components
from privbench.errors import PrivbenchError
from privbench.registry import METRICS
from privbench.results import KEY_COLUMNS, TIMING_METRICS

DEFAULT_TOLERANCE = {"psnr": 0.5, "edge-psnr": 0.5, "ssim": 0.02, "mse": 0.002, "accuracy": 0.02}


@dataclasses.dataclass
class Verdict:
    table: pd.DataFrame  # one row per compared (grid point, metric)
    regressions: pd.DataFrame
    missing: pd.DataFrame  # baseline rows the current table lacks

    @property
    def ok(self) -> bool:
        return self.regressions.empty and self.missing.empty


def _worse_direction(metric: str, kind: str) -> int:
    """+1 when a larger value is worse, -1 when a smaller value is worse."""
    if kind == "utility":
        return -1
    try:
        return 1 if METRICS.get(metric).higher_is_leakier else -1
    except PrivbenchError:
        return 1


def compare(current: pd.DataFrame, baseline: pd.DataFrame, tolerances: dict[str, float] | None = None,
            default_tolerance: float = 0.02, use_ci: bool = False) -> Verdict:
    load_components()
    tolerances = {**DEFAULT_TOLERANCE, **(tolerances or {})}
    # Timings measure the machine, not the code: a gate on them would fail on every slower or busier CPU.
    current = current[~current["metric"].isin(TIMING_METRICS)].copy()
    baseline = baseline[~baseline["metric"].isin(TIMING_METRICS)].copy()
    keys = [k for k in KEY_COLUMNS if k in current.columns and k in baseline.columns]
    cols = keys + ["kind", "value", "ci_low", "ci_high"]
    for frame in (current, baseline):
        for k in keys:
            frame[k] = frame[k].astype(str)
    merged = baseline[cols].merge(current[cols], on=keys + ["kind"], how="left", suffixes=("_base", "_now"),
                                  indicator=True)
    missing = merged[merged["_merge"] == "left_only"][keys]
    both = merged[merged["_merge"] == "both"].copy()
    both["direction"] = [_worse_direction(m, k) for m, k in zip(both["metric"], both["kind"], strict=True)]
    both["tolerance"] = [tolerances.get(m, default_tolerance) for m in both["metric"]]
    both["worse_by"] = (both["value_now"] - both["value_base"]) * both["direction"]
    regressed = both["worse_by"] > both["tolerance"]
    if use_ci:
        separated = (both["ci_low_now"] > both["ci_high_base"]) | (both["ci_high_now"] < both["ci_low_base"])
        regressed &= separated
    both["regressed"] = regressed
    return Verdict(both, both[regressed], missing)


def format_verdict(verdict: Verdict, limit: int = 40) -> str:
    lines = [f"compared {len(verdict.table)} values: {len(verdict.regressions)} regressed, "
             f"{len(verdict.missing)} missing from the current results"]
    if not verdict.regressions.empty:
        lines.append("regressions (worse by more than the tolerance):")
        for _, r in verdict.regressions.head(limit).iterrows():
            lines.append(f"  {r['dataset']} {r['defense']}={r['strength']} {r['attack']} {r['metric']}: "
                         f"{r['value_base']:.4g} -> {r['value_now']:.4g} (worse by {r['worse_by']:.4g} > "
                         f"tol {r['tolerance']:g})")
    if not verdict.missing.empty:
        lines.append("missing:")
        for _, r in verdict.missing.head(limit).iterrows():
            lines.append(f"  {r['dataset']} {r['defense']}={r['strength']} {r['attack']} {r['metric']}")
    return "\n".join(lines)
