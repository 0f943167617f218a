"""The answer a report opens with: every setting's utility and worst-case leakage, ranked, with which differences
are significant.

One row per setting (defense and strength; with codecs the pipeline and quality): the task utility, then for each
headline privacy column — the identity metrics (face-id, plate, par-ma: what an attacker learns about a person) and
the PSNR of each probe set — the worst case over attacks as ``mean ±half-width`` over the run's seeds (the seed
interval of :mod:`privbench.replication`: where a run at another seed lands; at one seed the probe interval).
Marks, from paired differences of the means on the same seeds (:func:`privbench.replication.paired_difference`):

- ``↓`` leaks significantly less than the undefended setting (the identity setting: a defense at a strength that
  changes nothing, e.g. noise σ 0), ``↑`` significantly more;
- ``best`` the least-leaking setting of the column, ``≈best`` a setting not significantly different from it.

Settings are ranked by their mean rank over the headline privacy columns (least leakage first); utility stands
beside, so a private but useless setting is visible as such.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from privbench.components import load_components
from privbench.errors import PrivbenchError
from privbench.registry import DEFENSES, METRICS
from privbench.replication import paired_difference, summarize
from privbench.results import SETTING_COLUMNS, with_setting_keys
from privbench.worst_case import PAPER_WORST, WORST, add_worst_case, higher_is_leakier

#: privacy metrics that read who or what is in the image (the headline families beside PSNR)
IDENTITY_METRICS = ("face-id", "plate", "par-ma")
#: what tells two settings of a table apart: the model and the split the defended front ends at, and the setting
SETTING_KEYS = ["model", "split", *SETTING_COLUMNS]


def is_undefended(defense: str, params: str, codec: str) -> bool:
    """Whether a setting changes nothing: no codec, and a registered defense that is the identity at these
    parameters (noise σ 0, dropout 0, ...). A defense privbench cannot build here is not assumed undefended."""
    if codec not in ("", "none") or not isinstance(defense, str):
        return False
    if defense == "none":
        return True
    load_components()
    try:
        return bool(DEFENSES.create(defense, **(json.loads(params) if params else {})).is_identity())
    except (PrivbenchError, KeyError, TypeError, ValueError):
        return False


def headline_columns(privacy: pd.DataFrame) -> list[tuple[str, str]]:
    """(dataset, metric) of the headline privacy columns present in ``privacy`` (worst-case rows)."""
    present = set(zip(privacy["dataset"], privacy["metric"], strict=True))
    datasets = sorted({d for d, _ in present})
    columns = [(d, m) for d in datasets for m in IDENTITY_METRICS if (d, m) in present]
    return columns + [(d, "psnr") for d in datasets if (d, "psnr") in present]


def _cell(value: float, low: float, high: float) -> str:
    if not np.isfinite(value):
        return ""
    half = (high - low) / 2 if np.isfinite(low) and np.isfinite(high) else float("nan")
    return f"{value:.3g} ±{half:.2g}" if np.isfinite(half) and half > 0 else f"{value:.3g}"


def ranked_summary(frame: pd.DataFrame, utility: str = "accuracy", level: float = 0.95) -> pd.DataFrame:
    """The ranked summary table of a results table (one or several seeds); empty without utility or privacy rows."""
    load_components()  # the metrics' directions and the defenses' identity settings
    framed = with_setting_keys(add_worst_case(frame, METRICS))
    framed["seed"] = framed["seed"].astype(str)
    util = framed[(framed["kind"] == "utility") & (framed["metric"] == utility)]
    privacy = framed[(framed["kind"] == "privacy") & (framed["attack"] == WORST)]
    if util.empty or privacy.empty:
        return pd.DataFrame()
    columns = headline_columns(privacy)
    summary = with_setting_keys(summarize(pd.concat([util, privacy[privacy[["dataset", "metric"]].apply(
        tuple, axis=1).isin(columns)]])))
    settings = summary[(summary["kind"] == "utility")].copy()
    settings["undefended"] = [is_undefended(d, p, c) for d, p, c in
                              zip(settings["defense"], settings["defense_params"], settings["codec"], strict=True)]
    table = pd.DataFrame({"setting": _labels(settings),
                          utility: [_cell(r.value, r.ci_low, r.ci_high) for r in settings.itertuples()],
                          "n_seeds": settings["n_seeds"].to_numpy()})
    ranks = []
    per_seed = privacy.set_index([*SETTING_KEYS, "dataset", "metric"]).sort_index()
    for dataset, metric in columns:
        part = summary[(summary["dataset"] == dataset) & (summary["metric"] == metric)]
        merged = settings[SETTING_KEYS].merge(part, on=SETTING_KEYS, how="left")
        leakier = higher_is_leakier(METRICS, metric)
        values = merged["value"].to_numpy(float)
        ranks.append(pd.Series(values if leakier else -values).rank().to_numpy())
        order = np.where(np.isfinite(values), values if leakier else -values, np.inf)
        best_index = int(np.argmin(order)) if np.isfinite(order).any() else None
        best = _rows(per_seed, settings.iloc[[best_index]], dataset, metric) if best_index is not None else None
        cells = []
        for i, (_, setting) in enumerate(settings.iterrows()):
            r = merged.iloc[i]
            own = _rows(per_seed, settings.iloc[[i]], dataset, metric)
            marks = []
            if not setting["undefended"]:
                base = _rows(per_seed, _undefended_for(settings, setting), dataset, metric)
                marks.append(_mark_against(own, base, leakier, level, ("↓", "↑")))
            if best_index == i:
                marks.append("best")
            elif best is not None and own is not None and _mark_against(own, best, leakier, level, ("", "")) is None:
                marks.append("≈best")
            cells.append(" ".join([_cell(r["value"], r["ci_low"], r["ci_high"]), *(m for m in marks if m)]))
        table[f"{metric} ({dataset})"] = cells
    # a setting with no value in any column (a failed grid point) ranks last
    mean_rank = pd.DataFrame(np.vstack(ranks)).mean(axis=0) if ranks else pd.Series(np.zeros(len(table)))
    table.insert(0, "rank", mean_rank.rank(method="min", na_option="bottom").astype(int).to_numpy())
    return table.sort_values(["rank", "setting"]).reset_index(drop=True)


def paper_threat_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """For each setting whose defense's paper declares a threat model (the ``worst-paper`` rows of
    :func:`privbench.worst_case.add_paper_worst_case`): the observers that paper considers, and per headline privacy
    column the worst case within that threat model beside the worst case over every attack of the run (mean
    ±half-width of the seed interval, as in the ranked summary). Empty when no setting has such rows."""
    load_components()
    framed = with_setting_keys(add_worst_case(frame, METRICS))
    framed["seed"] = framed["seed"].astype(str)
    within = framed[(framed["kind"] == "privacy") & (framed["attack"] == PAPER_WORST)]
    if within.empty:
        return pd.DataFrame()
    columns = headline_columns(within)
    shown = framed[(framed["kind"] == "privacy") & framed["attack"].isin([WORST, PAPER_WORST])
                   & framed[["dataset", "metric"]].apply(tuple, axis=1).isin(columns)]
    shown = shown.merge(within[SETTING_KEYS].drop_duplicates(), on=SETTING_KEYS)
    summary = with_setting_keys(summarize(shown))
    settings = summary[summary["attack"] == PAPER_WORST].drop_duplicates(SETTING_KEYS).reset_index(drop=True)
    table = pd.DataFrame({"setting": _labels(settings), "the paper's observers": [
        ", ".join(level.value for level in DEFENSES.get(d).paper_threat) if d in DEFENSES else ""
        for d in settings["defense"]]})
    for dataset, metric in columns:
        part = summary[(summary["dataset"] == dataset) & (summary["metric"] == metric)]
        for attack, heading in ((PAPER_WORST, "within"), (WORST, "all attacks")):
            merged = settings[SETTING_KEYS].merge(part[part["attack"] == attack], on=SETTING_KEYS, how="left")
            table[f"{metric} ({dataset}) {heading}"] = [_cell(r.value, r.ci_low, r.ci_high)
                                                          for r in merged.itertuples()]
    return table


def _undefended_for(settings: pd.DataFrame, setting: pd.Series) -> pd.DataFrame:
    """The undefended setting a setting is compared with: of the same model and split, else of the same model (a
    defense that deploys a deeper split, as PATROL does, against its model's undefended cut)."""
    same_model = settings[settings["undefended"] & (settings["model"] == setting["model"])]
    same_split = same_model[same_model["split"] == setting["split"]]
    return same_split if not same_split.empty else same_model


def _labels(settings: pd.DataFrame) -> list[str]:
    """Each setting's name: the pipeline and strength (codec quality), with the model when the table has several
    and the split where it is not the table's usual one (several splits, or a defense that deploys its own)."""
    usual = settings["split"].mode().iloc[0] if len(settings) else ""
    several_models = settings["model"].nunique() > 1
    labels = []
    for _, row in settings.iterrows():
        text = _label(row)
        if row["split"] != usual:
            text += f" @{row['split']}"
        labels.append(f"{row['model']}: {text}" if several_models else text)
    return labels


def _label(row: pd.Series) -> str:
    strength = row["strength"]
    text = f"{row['pipeline']} {strength:g}" if isinstance(strength, float) and np.isfinite(strength) else row["pipeline"]
    return f"{text} q{float(row['quality']):g}" if row["quality"] not in ("", None) else text


def _rows(per_seed: pd.DataFrame, setting: pd.DataFrame, dataset: str, metric: str) -> pd.DataFrame | None:
    """The per-seed worst-case rows of one setting (the first of ``setting``'s rows) for (dataset, metric)."""
    if setting.empty:
        return None
    key = (*(setting.iloc[0][c] for c in SETTING_KEYS), dataset, metric)
    try:
        rows = per_seed.loc[[key]]
    except KeyError:
        return None
    return rows.reset_index().sort_values("seed")


def _mark_against(own: pd.DataFrame | None, other: pd.DataFrame | None, leakier: bool, level: float,
                  marks: tuple[str, str]) -> str | None:
    """``marks[0]`` when ``own`` leaks significantly less than ``other`` (paired on their common seeds),
    ``marks[1]`` when significantly more, None when not significantly different or not comparable."""
    if own is None or other is None:
        return None
    common = sorted(set(own["seed"]) & set(other["seed"]))
    if not common:
        return None
    a = own.set_index("seed").loc[common].reset_index()
    b = other.set_index("seed").loc[common].reset_index()
    _, low, high = paired_difference(a, b, level)
    if low > 0:
        return marks[1] if leakier else marks[0]
    if high < 0:
        return marks[0] if leakier else marks[1]
    return None


#: the undefended utility may move this much between seeds before a report warns (the default benchmark's task
#: model: 0.024 over seeds 0–4, benchmarks/task_model_stability.py)
UNSTABLE_SPREAD = 0.05


def replication_warnings(frame: pd.DataFrame, utility: str = "accuracy") -> list[str]:
    """Warnings about what the run's seeds show: the undefended setting's utility moving more than
    :data:`UNSTABLE_SPREAD` between seeds (its differences between defenses may be seed noise)."""
    if frame.empty or "seed" not in frame.columns:
        return []
    util = frame[(frame["kind"] == "utility") & (frame["metric"] == utility)]
    undefended = util[[is_undefended(d, p, c) for d, p, c in zip(
        util["defense"], util["defense_params"].fillna(""), util["codec"].fillna("none"), strict=True)]]
    if undefended.empty:
        return []
    by_seed = undefended.groupby(undefended["seed"].astype(str))["value"].first()
    if len(by_seed) < 2:
        return []
    spread = float(by_seed.max() - by_seed.min())
    if spread <= UNSTABLE_SPREAD:
        return []
    listing = ", ".join(f"{v:.3f}" for v in by_seed)
    return [f"WARNING: the undefended task model is unstable across seeds: {utility} {listing} (spread {spread:.3f}, "
            f"over the {UNSTABLE_SPREAD} privbench accepts); differences between defenses of that size are seed "
            "noise — train it longer or on more data"]
