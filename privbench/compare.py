"""Which defense protects more **at the same utility**: paired comparisons of every pair of defenses in a run
(``privbench compare``).

Papers 000, 002 and 004 claim in words that a defense is "more private at equal utility"; this module computes it.
A run's settings are grouped into pipelines (a defense, with its codec when coded); a pipeline swept over strengths
is a privacy–utility curve per seed, x = the task utility, y = the worst-case privacy value over attacks. For two
pipelines A and B:

- two curves: the **Bjøntegaard-style mean difference** of A − B over the utility range both cover (Bjøntegaard,
  VCEG-M33: the mean vertical gap of two curves over their common horizontal range, here with linear interpolation
  between measured points, which needs no monotonic curve — :func:`privbench.metrics.bd.mean_gap_weights`);
- ``--at U``: A − B with each curve read at utility U by linear interpolation;
- a curve and a single setting: the curve read at the single setting's utility, minus it (matched utility);
- two single settings: their paired difference, with the utility gap stated beside it (not matched).

Every difference is paired: computed per seed on the same probes, then replicated over seeds with the two-level
bootstrap of :mod:`privbench.replication` (seeds drawn once for both pipelines). Each comparison is linear in the
measured values (interpolation weights fixed by the seed's utilities), so a replicate is a weighted sum of drawn
values. ``significant`` only where the interval excludes zero.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from privbench.components import load_components
from privbench.errors import PrivbenchError
from privbench.metrics.bd import interpolation_weights, mean_gap_weights
from privbench.registry import METRICS
from privbench.replication import REPLICATES, interval_of_resampled_means, row_draws
from privbench.results import SETTING_COLUMNS, with_setting_keys
from privbench.worst_case import WORST, add_worst_case, higher_is_leakier

COMPARE_COLUMNS = ["dataset", "metric", "a", "b", "comparison", "utility_a", "utility_b", "difference", "ci_low",
                   "ci_high", "n_seeds", "significant", "more_private"]
SCORE_FIELDS = ["value", "ci_low", "ci_high", "n", "ci_method"]


@dataclass(frozen=True)
class Points:
    """One pipeline at one seed: its settings' utilities and worst-case privacy rows (one per strength/quality)."""

    utility: np.ndarray
    rows: pd.DataFrame

    def draws(self, level: float, rng: np.random.Generator, size: int) -> np.ndarray:
        return row_draws(self.rows, level, rng, size)


def pipelines(frame: pd.DataFrame, metric: str, utility: str) -> dict[str, dict[str, dict[str, Points]]]:
    """{dataset: {pipeline: {seed: Points}}} of ``metric`` (worst case over attacks) against ``utility``."""
    frame = with_setting_keys(add_worst_case(frame, METRICS))
    frame["seed"] = frame["seed"].astype(str)
    keys = ["seed", "pipeline", *SETTING_COLUMNS]
    util = frame[(frame["kind"] == "utility") & (frame["metric"] == utility)]
    if util.empty:
        known = sorted(frame.loc[frame["kind"] == "utility", "metric"].unique())
        raise PrivbenchError(f"the run has no utility metric '{utility}' (it has: {', '.join(known) or 'none'})")
    privacy = frame[(frame["kind"] == "privacy") & (frame["metric"] == metric) & (frame["attack"] == WORST)]
    if privacy.empty:
        known = sorted(frame.loc[frame["kind"] == "privacy", "metric"].unique())
        raise PrivbenchError(f"the run has no privacy metric '{metric}' (it has: {', '.join(known) or 'none'})")
    if util.duplicated(keys).any() or privacy.duplicated([*keys, "dataset"]).any():
        raise PrivbenchError("the run holds one setting twice at the same seed: compare needs one row per setting "
                             "and seed (one run, or runs at different seeds)")
    merged = privacy.merge(util[[*keys, "value"]].rename(columns={"value": "utility"}), on=keys, how="inner")
    out: dict[str, dict[str, dict[str, Points]]] = {}
    for (dataset, pipeline, seed), rows in merged.groupby(["dataset", "pipeline", "seed"], sort=True):
        rows = rows.sort_values("utility")
        out.setdefault(dataset, {}).setdefault(pipeline, {})[seed] = Points(
            rows["utility"].to_numpy(float), rows[SCORE_FIELDS].reset_index(drop=True))
    return out


def _weights(a: Points, b: Points, at: float | None) -> tuple[np.ndarray, np.ndarray, str] | str:
    """The weights that make ``a`` − ``b`` at one seed a weighted sum of their values, and what they compute; or
    why the two cannot be compared that way."""
    curve_a, curve_b = len(a.utility) > 1, len(b.utility) > 1
    if at is not None:
        if not (curve_a and curve_b):
            return "a single setting is not a curve to read at a utility level"
        outside = [f"{lo:.3g}–{hi:.3g}" for lo, hi in ((a.utility.min(), a.utility.max()),
                                                       (b.utility.min(), b.utility.max())) if not lo <= at <= hi]
        if outside:
            return f"utility {at:g} is outside a curve's range ({', '.join(outside)})"
        return interpolation_weights(a.utility, at), interpolation_weights(b.utility, at), f"at utility {at:g}"
    if curve_a and curve_b:
        weights = mean_gap_weights(a.utility, b.utility)
        if weights is None:
            return "the curves share no utility range"
        return weights[0], weights[1], "mean gap over common utility"
    if curve_a != curve_b:
        curve, single = (a, b) if curve_a else (b, a)
        u = float(single.utility[0])
        if curve.utility.min() <= u <= curve.utility.max():
            w_curve, w_single = interpolation_weights(curve.utility, u), np.ones(1)
            return (w_curve, w_single, "curve at the single setting's utility") if curve_a else \
                (w_single, w_curve, "curve at the single setting's utility")
    return np.ones(len(a.utility)) / len(a.utility), np.ones(len(b.utility)) / len(b.utility), "unmatched utility"


def compare_pair(a: dict[str, Points], b: dict[str, Points], at: float | None, level: float = 0.95,
                 replicates: int = REPLICATES, seed: int = 0) -> dict:
    """A − B (mean over the seeds both have) with its paired two-level bootstrap interval."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return {"comparison": "no common seed", "difference": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                "n_seeds": 0}
    rng = np.random.default_rng(seed)
    per_seed, point, modes = [], [], set()
    for s in seeds:
        weights = _weights(a[s], b[s], at)
        if isinstance(weights, str):
            return {"comparison": weights, "difference": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                    "n_seeds": len(seeds)}
        wa, wb, mode = weights
        modes.add(mode)
        per_seed.append(a[s].draws(level, rng, replicates) @ wa - b[s].draws(level, rng, replicates) @ wb)
        point.append(a[s].rows["value"].to_numpy(float) @ wa - b[s].rows["value"].to_numpy(float) @ wb)
    low, high = interval_of_resampled_means(np.stack(per_seed, axis=1), rng, level)
    mode = modes.pop() if len(modes) == 1 else "mixed: " + "; ".join(sorted(modes))
    return {"comparison": mode, "difference": float(np.mean(point)), "ci_low": low, "ci_high": high,
            "n_seeds": len(seeds)}


def compare(frame: pd.DataFrame, metric: str = "face-id", utility: str = "accuracy", at: float | None = None,
            level: float = 0.95, replicates: int = REPLICATES) -> pd.DataFrame:
    """The comparison table of every pair of pipelines of a run (one row per dataset and pair; :data:`COMPARE_COLUMNS`).
    ``difference`` is a − b of ``metric``; ``more_private`` names the pipeline that leaks less where ``significant``."""
    load_components()  # the metric's direction
    leakier = higher_is_leakier(METRICS, metric)
    rows = []
    for dataset, by_pipeline in pipelines(frame, metric, utility).items():
        for name_a, name_b in itertools.combinations(sorted(by_pipeline), 2):
            a, b = by_pipeline[name_a], by_pipeline[name_b]
            result = compare_pair(a, b, at, level, replicates)
            significant = bool(np.isfinite(result["difference"]) and
                               (result["ci_low"] > 0 or result["ci_high"] < 0))
            a_leaks_less = (result["difference"] < 0) == leakier
            rows.append({"dataset": dataset, "metric": metric, "a": name_a, "b": name_b,
                         "utility_a": _mean_utility(a), "utility_b": _mean_utility(b), **result,
                         "significant": significant,
                         "more_private": (name_a if a_leaks_less else name_b) if significant else ""})
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


def _mean_utility(points: dict[str, Points]) -> float:
    """Mean utility over seeds of a pipeline (its settings' mean for a curve)."""
    return float(np.mean([p.utility.mean() for p in points.values()]))


def verdict_text(row: pd.Series) -> str:
    """One sentence for a comparison row."""
    if not np.isfinite(row["difference"]):
        return f"not compared: {row['comparison']}"
    interval = f"{row['difference']:+.3g} [{row['ci_low']:+.3g}, {row['ci_high']:+.3g}]"
    if row["significant"]:
        return f"{row['more_private']} more private: {interval}"
    return f"no significant difference: {interval}"


def compare_figure(table: pd.DataFrame, metric: str, path) -> None:
    """A forest plot of ``table``: one line per pair with its paired interval, a panel per probe set; significant
    differences drawn solid, the others hollow; zero marked."""
    from privbench.cache import atomic_write_bytes
    from privbench.report import _png, pyplot

    shown = table[np.isfinite(table["difference"].astype(float))]
    datasets = sorted(shown["dataset"].unique()) or ["(none)"]
    rows = max((len(shown[shown["dataset"] == d]) for d in datasets), default=1)
    fig, axes = pyplot().subplots(1, len(datasets), figsize=(5.2 * len(datasets), 0.8 + 0.28 * max(rows, 1)),
                                  squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = shown[shown["dataset"] == dataset].reset_index(drop=True)
        for i, r in part.iterrows():
            colour = "tab:red" if r["significant"] else "tab:gray"
            ax.plot([r["ci_low"], r["ci_high"]], [i, i], color=colour, lw=2)
            ax.plot(r["difference"], i, "o", color=colour, mfc=colour if r["significant"] else "white")
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_yticks(range(len(part)), [f"{a} − {b}" for a, b in zip(part["a"], part["b"], strict=True)], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(dataset, fontsize=9)
        ax.set_xlabel(f"Δ {metric} (a − b), paired interval")
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"{metric} at matched utility: red = interval excludes 0", fontsize=9)
    fig.tight_layout()
    atomic_write_bytes(path, _png(fig))
