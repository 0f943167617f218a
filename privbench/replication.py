"""Seeds as the unit of replication: the mean of a value over seeds with an interval that covers both the
seed-to-seed variation and the probe sampling inside each seed, and paired differences between settings.

A run at several seeds has, per (setting, attack, dataset, metric), one row per seed: the value measured on the
probe set and its within-seed interval (``ci_low``/``ci_high``, ``ci_method``, ``n``). The interval over seeds is a
**two-level bootstrap** (hierarchical resampling; Davison & Hinkley 1997, §3.8): each replicate draws the seeds
with replacement and then, inside each drawn seed, the probe-set value from its sampling distribution — for a
proportion (``wilson`` rows: identification, plate and task accuracy) the binomial count of ``n`` probes drawn with
replacement, ``Binomial(n, p̂)/n``, which is exactly what resampling the seed's 0/1 probe outcomes gives; for a mean
of per-image values (``normal`` rows: PSNR, SSIM, ...) the normal law of the resampled mean, with the standard error
the row's own interval implies (the bootstrap mean's distribution for n ≥ 30 probes, by the central limit theorem).
Rows with no within-seed interval (costs, rates) vary between seeds only. Two intervals come out of the same
replicates (:func:`two_level_intervals`): the **seed interval**, of one drawn seed's value — where a run at another
seed lands, the interval a report prints beside a value — and the **interval of the mean**, of the mean of as many
drawn seeds as the run has — what a difference between means is judged by.

At one seed there is nothing to resample between seeds: the interval is the row's own (probes only), and
:func:`summarize` says so with ``n_seeds = 1``.

Paired differences (:func:`paired_difference`) compare two settings **on the same seeds**: a replicate draws seeds
once and uses the same drawn seeds for both settings, so what the seeds share (the task model, the probe set)
cancels; each setting's probe-level draw is independent, which is conservative where the two settings' errors on
the same probes are positively correlated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from privbench.errors import PrivbenchError
from privbench.results import KEY_COLUMNS, key_text

#: bootstrap replicates per interval (percentile ends move by < 0.1 % of the spread between two draws of 4000)
REPLICATES = 4000


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2.0))


def probe_draws(values: np.ndarray, low: np.ndarray, high: np.ndarray, n: np.ndarray, methods: Sequence[str],
                level: float, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` draws of each seed's probe-set value (shape ``(size, seeds)``), from the sampling distribution its
    row states: binomial for a proportion, normal for a mean, the value itself for a row with no interval."""
    draws = np.repeat(values[None, :].astype(float), size, axis=0)
    for j, method in enumerate(methods):
        method = str(method or "")
        count = int(n[j]) if np.isfinite(n[j]) else 0
        if method.startswith("wilson") and count > 0 and np.isfinite(values[j]):
            p = float(np.clip(values[j], 0.0, 1.0))
            draws[:, j] = rng.binomial(count, p, size) / count
        elif method.startswith("normal") and np.isfinite(low[j]) and np.isfinite(high[j]) and high[j] > low[j]:
            se = (high[j] - low[j]) / (2 * _z(_row_level(method, level)))
            draws[:, j] = rng.normal(values[j], se, size)
    return draws


def _row_level(method: str, default: float) -> float:
    """The confidence level a ``ci_method`` names (``wilson95`` → 0.95), else ``default``."""
    digits = "".join(ch for ch in method if ch.isdigit() or ch == ".")
    try:
        return float(digits) / 100 if digits else default
    except ValueError:
        return default


def _seed_sample(seeds: int, rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, seeds, (size, seeds))


def row_draws(rows: pd.DataFrame, level: float, rng: np.random.Generator, size: int) -> np.ndarray:
    """:func:`probe_draws` of the rows of a results table (one per seed), from their own columns."""
    return probe_draws(rows["value"].to_numpy(float), rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float),
                       rows["n"].to_numpy(float), list(rows["ci_method"]), level, rng, size)


def interval_of_resampled_means(draws: np.ndarray, rng: np.random.Generator, level: float) -> tuple[float, float]:
    """The percentile interval of the mean over seeds drawn with replacement: ``draws`` holds one column of
    probe-level draws per seed (one row per replicate)."""
    picked = _seed_sample(draws.shape[1], rng, draws.shape[0])
    means = np.take_along_axis(draws, picked, axis=1).mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def two_level_intervals(rows: pd.DataFrame, level: float = 0.95, seed: int = 0, replicates: int = REPLICATES
                        ) -> tuple[float, tuple[float, float], tuple[float, float]]:
    """(mean over seeds, the seed interval, the interval of the mean) of one setting's rows (one per seed), by the
    two-level bootstrap: a replicate draws a seed, then that seed's probe-set value (:func:`probe_draws`).

    - **seed interval**: the percentile interval of one drawn seed's value — where a run at another seed lands, with
      its seed-to-seed and its probe variation (what a reader of one run's number should allow for);
    - **interval of the mean**: the percentile interval of the mean of as many drawn seeds as there are — how
      precisely the mean over this run's seeds is known (what a difference between means is tested against,
      :func:`paired_difference`)."""
    rng = np.random.default_rng(seed)
    values = rows["value"].to_numpy(float)
    draws = row_draws(rows, level, rng, replicates)
    picked = _seed_sample(len(values), rng, replicates)
    resampled = np.take_along_axis(draws, picked, axis=1)
    ends = [(1 - level) / 2, (1 + level) / 2]
    one_seed = np.quantile(resampled[:, 0], ends)
    mean = np.quantile(resampled.mean(axis=1), ends)
    return float(values.mean()), (float(one_seed[0]), float(one_seed[1])), (float(mean[0]), float(mean[1]))


def two_level_interval(rows: pd.DataFrame, level: float = 0.95, seed: int = 0,
                       replicates: int = REPLICATES) -> tuple[float, float, float]:
    """(mean over seeds, low, high) of the interval of the mean (:func:`two_level_intervals`)."""
    value, _, (low, high) = two_level_intervals(rows, level, seed, replicates)
    return value, low, high


def paired_difference(a: pd.DataFrame, b: pd.DataFrame, level: float = 0.95, seed: int = 0,
                      replicates: int = REPLICATES) -> tuple[float, float, float]:
    """(mean of a − b over seeds, low, high): ``a`` and ``b`` hold one row per seed of two settings, aligned on the
    same seeds (the caller joins them); a replicate draws the seeds once for both."""
    if len(a) != len(b):
        raise ValueError("paired rows must cover the same seeds")
    rng = np.random.default_rng(seed)
    diff = row_draws(a, level, rng, replicates) - row_draws(b, level, rng, replicates)
    low, high = interval_of_resampled_means(diff, rng, level)
    point = float(a["value"].to_numpy(float).mean() - b["value"].to_numpy(float).mean())
    return point, low, high


#: what identifies one replicated value: the results' key columns and the row's kind
SUMMARY_KEYS = [*KEY_COLUMNS, "kind"]


def replicated_method(level: float) -> str:
    return f"bootstrap2-{100 * level:g}"


def summarize(frame: pd.DataFrame, level: float = 0.95, replicates: int = REPLICATES) -> pd.DataFrame:
    """One row per (grid point, attack, dataset, metric) of a results table holding one row per seed: the mean over
    seeds (``value``); ``ci_low``/``ci_high`` the **seed interval** of :func:`two_level_intervals` (where a run at
    another seed lands: seed and probe variation; ``ci_method`` ``bootstrap2-95``); ``mean_low``/``mean_high`` the
    interval of the mean; ``n_seeds``, the ``seeds`` and their ``spread`` (max − min). At one seed a row keeps its own
    (probe) interval and method, the interval of the mean being the same. A key seen twice at one seed is refused (the
    table mixes runs)."""
    extra = ("n_seeds", "spread", "mean_low", "mean_high")
    if frame.empty:
        return frame.assign(**{c: pd.Series(dtype=float) for c in extra})
    table = frame.copy()
    keys = [k for k in SUMMARY_KEYS if k in table.columns]
    text_keys = [k for k in keys if k != "strength"]
    for column in text_keys:
        table[column] = [key_text(v) for v in table[column]]
    table["strength"] = pd.to_numeric(table["strength"], errors="coerce")
    table["seed"] = table["seed"].astype(str)
    if table.duplicated([*keys, "seed"]).any():
        raise PrivbenchError("the results table holds one grid point twice at the same seed (two runs mixed?)")
    out = []
    for _, rows in table.groupby(keys, sort=False, dropna=False):
        rows = rows.sort_values("seed")
        first = rows.iloc[0].to_dict()
        seeds = list(rows["seed"])
        if len(rows) == 1:
            first.update(n_seeds=1, spread=0.0, seed=seeds[0], mean_low=first["ci_low"], mean_high=first["ci_high"])
            out.append(first)
            continue
        value, (low, high), (mean_low, mean_high) = two_level_intervals(rows, level, replicates=replicates)
        values = rows["value"].to_numpy(float)
        first.update(value=value, ci_low=low, ci_high=high, ci_method=replicated_method(level), mean_low=mean_low,
                     mean_high=mean_high, n_seeds=len(rows), spread=float(np.nanmax(values) - np.nanmin(values)),
                     seed=" ".join(seeds))
        out.append(first)
    return pd.DataFrame(out, columns=[*table.columns, *(c for c in extra if c not in table.columns)])
