"""Baselines with measured run-to-run spread, for the regression gate (``privbench baseline``).

One run cannot tell the gate how much a value moves when nothing but the seed (or the CPU, which changes
training in the last bits) changes. A baseline therefore runs the config once per seed and keeps, per
(grid point, metric): the mean over seeds (``value``), the observed ``spread`` (max − min over seeds), the
number of ``seeds``, and a CI of the widest half-width seen, centred on the mean (``ci_low``/``ci_high``).
The other columns of the results schema are kept (``seed`` lists the seeds, ``seconds`` is the mean).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from privbench.cache import Cache
from privbench.config import load_config
from privbench.errors import PrivbenchError
from privbench.results import COLUMNS, KEY_COLUMNS, key_text, write_csv
from privbench.sweep import run_benchmark

#: The columns a baseline adds to the results schema.
BASELINE_COLUMNS = [*COLUMNS, "spread", "seeds"]


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2]; at least two distinct non-negative seeds, or there is no spread to measure."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise PrivbenchError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if any(s < 0 for s in seeds):
        raise PrivbenchError(f"{option}: seeds are non-negative integers, got {text!r}")
    if len(seeds) != len(set(seeds)):
        raise PrivbenchError(f"{option}: {text!r} repeats a seed")
    if len(seeds) < 2:
        raise PrivbenchError(f"{option}: give at least two seeds (e.g. 0,1,2): one run has no spread")
    return seeds


def aggregate(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One baseline table from the result tables of the same config under different seeds."""
    if len(frames) < 2:
        raise PrivbenchError("a baseline needs at least two runs")
    stacked = pd.concat(frames, ignore_index=True)
    stacked["strength"] = stacked["strength"].astype("float64")
    keys = list(KEY_COLUMNS)
    text_keys = [k for k in keys if k != "strength"]
    for column in text_keys:
        stacked[column] = [key_text(v) for v in stacked[column]]
    stacked["half_width"] = ((stacked["ci_high"] - stacked["ci_low"]) / 2).abs()
    grouped = stacked.groupby(keys, sort=False, dropna=False)
    counts = grouped.size()
    if counts.nunique() != 1 or counts.iloc[0] != len(frames):
        raise PrivbenchError("the runs of a baseline do not share one grid (a point is missing from some seed)")
    first = grouped.first()
    out = first[[c for c in COLUMNS if c not in keys]].copy()
    out["value"] = grouped["value"].mean()
    out["spread"] = grouped["value"].max() - grouped["value"].min()
    out["seeds"] = len(frames)
    widest = grouped["half_width"].max()
    out["ci_low"] = out["value"] - widest
    out["ci_high"] = out["value"] + widest
    out["seconds"] = grouped["seconds"].mean()
    out["seed"] = " ".join(str(s) for s in pd.unique(stacked["seed"].astype(str)))
    out = out.reset_index()
    return out[BASELINE_COLUMNS]


def build_baseline(config_path: str | Path | None, seeds: Sequence[int], out: Path, cache: Cache,
                   progress: bool = False, echo: Callable[[str], None] = lambda _: None) -> pd.DataFrame:
    """Run ``config_path`` once per seed, aggregate, write ``out``; returns the baseline table.

    The run name stays the config's so every seed shares the cache entries that do not depend on the seed.
    """
    frames = []
    for seed in seeds:
        config = load_config(config_path, {"seed": seed})
        output = run_benchmark(config, cache, progress=progress)
        echo(f"seed {seed}: {len(output.frame)} rows")
        frames.append(output.frame)
    table = aggregate(frames)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(table, out)
    return table
