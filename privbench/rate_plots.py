"""Rate–utility and rate–privacy curves of a run, drawn from ``results.csv`` only (paper 000 Fig. 9).

A *pipeline* is a defense setting family with a codec and what it codes (``none + hevc@input``,
``autoencoder + hevc@features``); its points are its settings × qualities. x is the rate (bpp: total bits of
the real bitstreams / total input-image pixels) on the dataset the y value was measured on — the task's test
set for utility, each probe set for privacy (worst-case attack when the run has several attacks).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd

from privbench.cache import Cache
from privbench.report import MARKERS, _digest, _png, _write_figure, pyplot
from privbench.results import SETTING_COLUMNS, with_setting_keys

#: privacy metrics drawn against the rate, when the run scored them
RATE_PRIVACY_METRICS = ("psnr", "face-id", "plate", "par-ma")


def rate_points(frame: pd.DataFrame, metric: str, kinds: tuple[str, ...], attack: str | None) -> pd.DataFrame:
    """(pipeline, dataset, bpp, value) of every coded setting, the rate joined on the setting and dataset."""
    frame = with_setting_keys(frame)
    coded = frame[frame["codec"] != "none"]
    rate = coded[(coded["kind"] == "rate") & (coded["metric"] == "bpp")]
    values = coded[coded["kind"].isin(kinds) & (coded["metric"] == metric)]
    if attack is not None:
        values = values[values["attack"] == attack]
    keys = [*SETTING_COLUMNS, "dataset"]
    merged = values.merge(rate[[*keys, "value"]].rename(columns={"value": "bpp"}), on=keys, how="inner")
    if merged.empty:
        return merged
    merged["curve"] = curve_labels(merged)
    return merged


def curve_labels(points: pd.DataFrame) -> pd.Series:
    """The pipeline label, plus the defense parameters that tell apart two settings families of one pipeline
    (e.g. two autoencoders with different w_cmprs)."""
    labels = points["pipeline"].copy()
    for pipeline, part in points.groupby("pipeline"):
        families = sorted(part["defense_params"].unique())
        if len(families) < 2:
            continue
        parsed = {f: json.loads(f) if f else {} for f in families}
        differing = sorted({k for p in parsed.values() for k in p
                            if len({json.dumps(q.get(k)) for q in parsed.values()}) > 1})
        for family in families:
            extra = ", ".join(f"{k}={parsed[family].get(k)}" for k in differing)
            labels[(points["pipeline"] == pipeline) & (points["defense_params"] == family)] = f"{pipeline} ({extra})"
    return labels


def rate_plots(frame: pd.DataFrame, out_dir: Path, utility_metric: str = "accuracy",
               cache: Cache | None = None) -> list[Path]:
    """``rate_utility.png`` and ``rate_privacy_<metric>.png`` (one panel per probe set) when the run coded what
    crosses the network; nothing otherwise."""
    if "kind" not in frame.columns or not (frame["kind"] == "rate").any():
        return []
    paths = []
    utility = rate_points(frame, utility_metric, ("utility",), None)
    if not utility.empty:
        path = out_dir / "rate_utility.png"
        _draw(path, utility, f"utility: {utility_metric}", "rate–utility (labels: codec quality; points: each "
              "setting of a pipeline)", cache)
        paths.append(path)
    attacks = set(frame.loc[frame["kind"] == "privacy", "attack"])
    attack = "worst" if "worst" in attacks else None
    for metric in RATE_PRIVACY_METRICS:
        points = rate_points(frame, metric, ("privacy", "input"), None)
        if points.empty:
            continue
        # the attack's reconstructions, and for input coding also the decoded image itself (kind=input)
        probes = set(points.loc[points["kind"] == "privacy", "dataset"])
        points = points[points["dataset"].isin(probes)]  # the task's test set has no private content to score
        if attack is not None:
            points = points[(points["kind"] == "input") | (points["attack"] == attack)]
        points = points.assign(curve=points["curve"].where(points["kind"] != "input", points["curve"] + " [x′ itself]"))
        if attack is None:
            points = points.assign(curve=points["curve"].where(points["kind"] == "input",
                                                              points["curve"] + " / " + points["attack"]))
        path = out_dir / f"rate_privacy_{metric}.png"
        who = "worst-case attack" if attack else "each attack"
        _draw(path, points, metric, f"rate–privacy: {metric} of the {who}'s reconstructions vs bpp", cache)
        paths.append(path)
    return paths


def _draw(path: Path, points: pd.DataFrame, ylabel: str, title: str, cache: Cache | None) -> None:
    columns = ["curve", "dataset", "bpp", "value", "quality", "strength"]
    data = points[columns].sort_values(columns).to_csv(index=False)
    _write_figure(path, {"plot": "rate", "title": title, "data": _digest(data)},
                  functools.partial(_figure, points[columns], ylabel, title), cache)


def _figure(points: pd.DataFrame, ylabel: str, title: str) -> bytes:
    datasets = sorted(points["dataset"].unique())
    fig, axes = pyplot().subplots(1, len(datasets), figsize=(4.8 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = points[points["dataset"] == dataset]
        for i, (curve, line) in enumerate(part.groupby("curve", sort=True)):
            for j, (_, series) in enumerate(line.groupby("strength", sort=True)):
                series = series.sort_values("bpp")
                ax.plot(series["bpp"], series["value"], marker=MARKERS[i % len(MARKERS)], color=f"C{i % 10}",
                        label=curve if j == 0 else None)
                for _, r in series.iterrows():
                    ax.annotate(f"{float(r['quality']):g}", (r["bpp"], r["value"]), fontsize=6,
                                textcoords="offset points", xytext=(2, 2))
        ax.set_xscale("log")
        ax.set_title(dataset)
        ax.set_xlabel("rate: bpp (log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    handles: dict[str, object] = {}
    for ax in axes[0]:  # one legend for all panels: a curve may be missing from some of them
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    axes[0][-1].legend(list(handles.values()), list(handles), fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(title, fontsize=9)
    return _png(fig)
