"""Reports made from the result table only: privacy–utility plots, a reconstruction grid, report.md.

Like CompressAI's plot tool, every figure is drawn from ``results.csv`` (plus the saved reconstruction
samples for the picture grid), so ``privbench report RUN_DIR`` can redraw them at any time.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from pathlib import Path

import matplotlib
import pandas as pd
import torch

from privbench.cache import Cache, atomic_write_bytes, atomic_write_text
from privbench.errors import PrivbenchError
from privbench.results import BASIC_COLUMNS, SETTING_COLUMNS, has_codecs, with_setting_keys
from privbench.worst_case import PAPER_WORST, WORST

MARKERS = "osD^v<>P*X"
#: bump when a change to the drawing code changes the figures (part of the figure cache key)
FIGURE_VERSION = 3  # 2: pipelines (defense + codec) and codec qualities; 3: worst case only, seeds averaged
#: the columns a privacy–utility figure is drawn from (its cache key hashes exactly these)
PLOT_COLUMNS = ["metric", "dataset", "pipeline", "attack", "strength", "quality", "value", "ci_low", "ci_high", "utility",
                "utility_low", "utility_high"]


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display), imported on first use: a run whose figures are all
    cached never imports it (~0.5 s of a warm re-run's start-up)."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return buffer.getvalue()


def _write_figure(path: Path, key: dict, draw, cache: Cache | None) -> None:
    """Write the PNG that ``draw()`` renders to ``path``; with a cache, a figure of the same content (``key``:
    the data it is drawn from, the drawing code's version, matplotlib's) is copied instead of redrawn —
    drawing the eight figures of the default run was two thirds of a warm run's time."""
    if cache is None:
        atomic_write_bytes(path, draw())
        return
    full = {**key, "figure": FIGURE_VERSION, "matplotlib": matplotlib.__version__}
    stored = cache.get_or_create("figure", full, lambda: torch.frombuffer(bytearray(draw()), dtype=torch.uint8))
    atomic_write_bytes(path, stored.numpy().tobytes())


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
    return h.hexdigest()


def report_view(frame: pd.DataFrame) -> pd.DataFrame:
    """What a report shows of a results table: the worst case over attacks taken per seed, then every value as its
    mean over the run's seeds with the two-level bootstrap interval (:func:`privbench.replication.summarize`; at one
    seed the rows as they are, with ``n_seeds`` 1)."""
    from privbench.registry import METRICS
    from privbench.replication import summarize
    from privbench.worst_case import add_worst_case

    if frame.empty or "seed" not in frame.columns:
        return frame
    return summarize(add_worst_case(frame, METRICS))


def privacy_utility_plots(frame: pd.DataFrame, out_dir: Path, utility_metric: str = "accuracy",
                          cache: Cache | None = None) -> list[Path]:
    """Per privacy metric, ``privacy_utility_<metric>.png``: the worst case over attacks, one line per pipeline
    (defense, with its codec), a panel per probe set, x = task utility and y = the metric, each point its mean over
    seeds with its interval (both axes) and labelled with the strength; and ``privacy_utility_<metric>_attacks.png``:
    the same lines per attack, a panel per (probe set, attack). With ``cache``, a figure whose data did not change is
    copied from the cache (kind ``figure``)."""
    frame = with_setting_keys(report_view(frame))
    privacy = frame[frame["kind"] == "privacy"]
    util = frame[(frame["kind"] == "utility") & (frame["metric"] == utility_metric)]
    util = util[SETTING_COLUMNS + ["value", "ci_low", "ci_high"]].rename(
        columns={"value": "utility", "ci_low": "utility_low", "ci_high": "utility_high"})
    if privacy.empty or util.empty:
        return []
    merged = privacy.merge(util, on=SETTING_COLUMNS, how="inner")
    paths = []
    for metric, by_metric in merged.groupby("metric", sort=True):
        data = _digest(by_metric[PLOT_COLUMNS].to_csv(index=False))
        for suffix, part, by_attack in (("", by_metric[by_metric["attack"] == WORST], False),
                                        ("_attacks", by_metric[by_metric["attack"] != WORST], True)):
            if part.empty:
                continue
            path = out_dir / f"privacy_utility_{metric}{suffix}.png"
            _write_figure(path, {"plot": f"privacy-utility{suffix}", "utility": utility_metric, "data": data},
                          functools.partial(_privacy_utility_figure, part, metric, utility_metric, by_attack), cache)
            paths.append(path)
    return paths


def _privacy_utility_figure(by_metric: pd.DataFrame, metric: str, utility_metric: str, by_attack: bool) -> bytes:
    datasets = sorted(by_metric["dataset"].unique())
    attacks = sorted(by_metric["attack"].unique()) if by_attack else [WORST]
    pipelines = sorted(by_metric["pipeline"].unique())
    colours = {p: f"C{i % 10}" for i, p in enumerate(pipelines)}
    markers = {p: MARKERS[i % len(MARKERS)] for i, p in enumerate(pipelines)}
    fig, axes = pyplot().subplots(len(attacks), len(datasets), figsize=(4.4 * len(datasets), 3.4 * len(attacks)),
                                  squeeze=False, sharex=True)
    for row, attack in enumerate(attacks):
        for ax, dataset in zip(axes[row], datasets, strict=True):
            part = by_metric[(by_metric["dataset"] == dataset) & (by_metric["attack"] == attack)]
            for pipeline, curve in part.groupby("pipeline", sort=True):
                curve = curve.sort_values("utility")
                yerr = [(curve["value"] - curve["ci_low"]).clip(lower=0), (curve["ci_high"] - curve["value"]).clip(lower=0)]
                xerr = [(curve["utility"] - curve["utility_low"]).clip(lower=0).fillna(0),
                        (curve["utility_high"] - curve["utility"]).clip(lower=0).fillna(0)]
                ax.errorbar(curve["utility"], curve["value"], yerr=yerr, xerr=xerr, fmt="-", color=colours[pipeline],
                            marker=markers[pipeline], capsize=2, lw=1.2, ms=4, elinewidth=0.8, label=pipeline)
                for _, r in curve.iterrows():
                    text = f"{r['strength']:g}" if r["quality"] == "" else f"q{float(r['quality']):g}"
                    ax.annotate(text, (r["utility"], r["value"]), fontsize=6, textcoords="offset points",
                                xytext=(3, 3), color=colours[pipeline])
            title = {PAPER_WORST: "worst case within the paper's threat model"}.get(attack, attack)
            ax.set_title(f"{dataset}" + (f" — {title}" if by_attack else " — worst case"), fontsize=9)
            ax.set_xlabel(f"utility: {utility_metric}")
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
    handles = [pyplot().Line2D([], [], color=colours[p], marker=markers[p], label=p) for p in pipelines]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(pipelines), 6), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    what = "each attack" if by_attack else "the worst case over attacks"
    fig.suptitle(f"privacy ({metric}) vs utility, {what}: mean over seeds with intervals; labels are strengths",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _png(fig)


def tile(images: torch.Tensor, per_row: int, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """N×C×H×W images laid out ``per_row`` to a row, ``padding`` pixels of ``pad_value`` around each: the
    layout of torchvision's ``make_grid``, without importing torchvision (and torch._dynamo with it), which
    was 3 of a warm run's 8 seconds."""
    n, channels, height, width = images.shape
    per_row = min(per_row, n)
    rows = -(-n // per_row)
    cells = torch.full((rows * per_row, channels, height + padding, width + padding), pad_value)
    cells[:n, :, :height, :width] = images  # each cell: the image, then padding to its right and below
    grid = cells.view(rows, per_row, channels, height + padding, width + padding).permute(2, 0, 3, 1, 4)
    grid = grid.reshape(channels, rows * (height + padding), per_row * (width + padding))
    return torch.nn.functional.pad(grid, (padding, 0, padding, 0), value=pad_value)


def reconstruction_grid(originals: dict[str, torch.Tensor], samples: dict[tuple[str, str], dict[str, torch.Tensor]],
                        out_dir: Path, cache: Cache | None = None) -> Path | None:
    """Originals (top row) beside reconstructions at each (setting, attack), one row each."""
    if not samples:
        return None
    names = list(originals)
    top = torch.cat([originals[n] for n in names])
    rows, labels = [top], ["original"]
    for (setting, attack), recon in samples.items():
        rows.append(torch.cat([recon[n] for n in names]))
        labels.append(f"{setting} / {attack}")
    images = torch.cat(rows)
    path = out_dir / "reconstructions.png"
    key = {"plot": "reconstructions", "names": names, "labels": labels, "shape": list(images.shape),
           "data": _digest(images.contiguous().numpy().tobytes())}
    _write_figure(path, key, functools.partial(_reconstruction_figure, images, top, names, labels), cache)
    return path


def _reconstruction_figure(images: torch.Tensor, top: torch.Tensor, names: list[str], labels: list[str]) -> bytes:
    per_row = top.shape[0]
    grid = tile(images.float() / 255.0, per_row)
    h_cell = top.shape[2] + 2
    fig_h = max(2.0, 0.32 * len(labels) * top.shape[2] / 32)
    fig, ax = pyplot().subplots(figsize=(max(4.0, per_row * top.shape[3] / 40 + 2.2), fig_h))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_yticks([h_cell * (i + 0.5) for i in range(len(labels))], labels, fontsize=7)
    ax.set_xticks([])
    ax.set_title("probes: " + ", ".join(names), fontsize=8)
    return _png(fig)


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (defense, strength, [codec pipeline, quality,] split, attack, dataset); columns are metrics."""
    keys = ["defense", "strength"] + (["pipeline", "quality"] if has_codecs(frame) else [])
    frame = with_setting_keys(frame)
    privacy = frame[frame["kind"] == "privacy"]
    util = frame[frame["kind"].isin(["utility", "rate"]) & (frame["dataset"] == _utility_dataset(frame))]
    table = privacy.pivot_table(index=[*keys, "split", "attack", "dataset"], columns="metric",
                                values="value", aggfunc="first").reset_index()
    if not util.empty:
        u = util.pivot_table(index=keys, columns="metric", values="value", aggfunc="first")
        table = table.merge(u.reset_index(), on=keys, how="left")
    return table


def _utility_dataset(frame: pd.DataFrame) -> str:
    """The task's test set: the dataset of the utility rows."""
    util = frame[frame["kind"] == "utility"]
    return str(util["dataset"].iloc[0]) if not util.empty else ""


def cost_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (defense, strength, front): the ``kind=cost`` figures (parameters, MACs, latency) of the edge
    side (``edge``) and of any reference front a defense reports (``edge-unpruned``)."""
    return _kind_table(frame, "cost")


def input_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (defense, strength, dataset): the ``kind=input`` metrics of the defended image x′ itself."""
    return _kind_table(frame, "input")


def _kind_table(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    keys = ["defense", "strength"] + (["pipeline", "quality"] if has_codecs(frame) else [])
    part = with_setting_keys(frame[frame["kind"] == kind])
    if part.empty:
        return part
    return part.pivot_table(index=[*keys, "split", "dataset"], columns="metric", values="value",
                            aggfunc="first").reset_index()


def markdown_table(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_tables(frame: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """The report's tables in order, as (heading, what the table shows, table); empty ones are left out. The first
    is the ranked summary (:func:`privbench.ranking.ranked_summary`); the others show every value as its mean over
    the run's seeds (:func:`report_view`).

    report.md and report.html both draw these, so the two pages always show the same tables.
    """
    from privbench.ranking import paper_threat_summary, ranked_summary

    view = report_view(frame)
    seeds = int(view["n_seeds"].max()) if "n_seeds" in view.columns and len(view) else 1
    over = (f"mean over {seeds} seeds ±half-width of its seed interval: where a run at another seed lands, by a "
            "two-level bootstrap of seeds, then probes within a seed"
            if seeds > 1 else "one seed: ±half-width of the interval over probes only, which says nothing of "
            "seed-to-seed variation (list several seeds to replicate)")
    tables = []
    ranked = ranked_summary(frame)
    if not ranked.empty:
        tables.append(("Summary", f"Each setting's task utility and the worst case over attacks of each privacy "
                       f"family ({over}). ↓/↑: leaks significantly less/more than the undefended setting; best: the "
                       "least leakage of the column; ≈best: not significantly different from it (paired intervals "
                       "on the same seeds). Ranked by the mean rank over the privacy columns.", ranked))
    within = paper_threat_summary(frame)
    if not within.empty:
        tables.append(("Within each paper's threat model", "The worst case over the attacks the defense's paper "
                       "protects against (its observers: white-box on the edge model, black-box queries, or "
                       "query-free: the traffic only), beside the worst case over every attack of this run (the "
                       f"Summary's; {over}). A defense is judged by its paper within the first; the second is "
                       "what an observer outside that threat model gets.", within))
    replicated = f"mean over {seeds} seeds" if seeds > 1 else "one seed"
    tables.append(("Results", f"Every attack and metric ({replicated}; the intervals are in results.csv and the "
                   "figures).", summary_table(view)))
    costs = cost_table(view)
    if not costs.empty:
        tables.append(("Edge cost", "Front + edge stages of each defended pipeline: parameters, multiply–"
                       "accumulates per image (torch's FlopCounterMode: convolutions and matrix products; elementwise "
                       "ops, pooling and normalization count zero), batch-1 latency and batched throughput on this "
                       "run's device (one CPU thread).", costs))
    seen = input_table(view)
    if not seen.empty:
        tables.append(("The defended image itself", "For defenses that transform the image (x′ = D(x)): the "
                       "privacy metrics of x′ against x with no inversion — what an observer of x′ learns, as papers "
                       "003 and 004 score it (there, x′ is what crosses the network) — and the defense's own "
                       "diagnostics.", seen))
    return tables


#: what the report says for a manifest key the run did not record
NOT_RECORDED = "not recorded"


def _recorded(manifest: dict, key: str):
    value = manifest.get(key)
    return None if value is None or value == "" else value


def _seconds(value) -> str:
    return f"{float(value):.1f} s" if isinstance(value, int | float) else str(value)


def manifest_facts(manifest: dict) -> list[tuple[str, str, bool]]:
    """The run manifest as (label, text, is_code) lines, "not recorded" for each missing key: report.md and
    report.html list the same facts. ``is_code`` marks identifiers (hashes, SHAs) shown in code type."""

    def text(key: str, render=str) -> str:
        value = _recorded(manifest, key)
        return NOT_RECORDED if value is None else render(value)

    grid = _recorded(manifest, "grid")
    if isinstance(grid, dict):
        parts = {k: grid.get(k, NOT_RECORDED) for k in ("points", "evaluated", "resumed")}
        grid_text = f"{parts['points']} points ({parts['evaluated']} evaluated, {parts['resumed']} resumed from the cache)"
    else:
        grid_text = NOT_RECORDED if grid is None else str(grid)
    executor = text("executor")
    jobs = _recorded(manifest, "jobs")
    if jobs is not None:
        executor += f", {jobs} job{'s' if jobs != 1 else ''}"
    versions = _recorded(manifest, "versions")
    if isinstance(versions, dict) and versions:
        versions_text = "; ".join(f"{k} {v}" for k, v in versions.items())
    else:
        versions_text = NOT_RECORDED if not versions else str(versions)
    seeds = text("seeds", lambda v: ", ".join(str(s) for s in v) if isinstance(v, list) else str(v))
    return [("name", text("name"), False), ("config hash", text("config_hash"), True), ("seeds", seeds, False),
            ("grid", grid_text, False), ("executor", executor, False), ("git SHA", text("git_sha"), True),
            ("versions", versions_text, False), ("started", text("started"), False),
            ("finished", text("finished"), False), ("wall time", text("wall_seconds", _seconds), False)]


def stage_table(manifest: dict) -> pd.DataFrame:
    """Time per stage of the run (stage, seconds, share of the wall time); empty when no stages were recorded.

    The share is of ``wall_seconds`` when recorded, else of the stages' sum; with parallel workers the stages
    can add up to more than the wall time.
    """
    stages = [s for s in (_recorded(manifest, "stages") or []) if isinstance(s, dict)]
    if not stages:
        return pd.DataFrame()
    seconds = [float(s["seconds"]) if isinstance(s.get("seconds"), int | float) else float("nan") for s in stages]
    wall = _recorded(manifest, "wall_seconds")
    total = float(wall) if isinstance(wall, int | float) and wall > 0 else sum(x for x in seconds if x == x)
    share = [f"{100 * x / total:.0f}%" if total > 0 and x == x else "" for x in seconds]
    return pd.DataFrame({"stage": [str(s.get("stage", "")) for s in stages], "seconds": seconds,
                         "share of wall" if isinstance(wall, int | float) and wall > 0 else "share": share})


def manifest_markdown(manifest: dict) -> list[str]:
    """The "Run manifest" section of report.md."""
    lines = ["## Run manifest", ""]
    for label, text, code in manifest_facts(manifest):
        lines.append(f"- {label}: `{text}`" if code and text != NOT_RECORDED else f"- {label}: {text}")
    stages = stage_table(manifest)
    if stages.empty:
        return lines + [f"- time per stage: {NOT_RECORDED}", ""]
    return lines + ["", "Time per stage:", "", markdown_table(stages), ""]


def write_report(frame: pd.DataFrame, out_dir: Path, config_text: str, plots: list[Path], grid: Path | None,
                 notes: list[str], *, manifest: dict | None = None) -> Path:
    """Write ``out_dir/report.md``; ``manifest`` is the run's manifest.json mapping, None for a run that has none.
    Returns the path of report.md. (The command line writes the self-contained ``report.html`` of the same run
    beside it: :func:`privbench.html_report.write_html`.)"""
    first = frame.iloc[0] if len(frame) else None
    lines = ["# privbench report", ""]
    if first is not None:
        seeds = ", ".join(str(x) for x in pd.unique(frame["seed"].astype(str)))
        lines += [f"- run: `{first['run_id']}` (config hash `{first['config_hash']}`, seed{'s' if ',' in seeds else ''}"
                  f" {seeds}, privbench {first['privbench_version']}, git `{first['git_sha']}`)",
                  f"- model: `{first['model']}` cut at `{frame['split'].mode().iloc[0]}` (a defense may deploy "
                  f"another split: see the `split` column)", ""]
    lines += ["Privacy metrics are scored on reconstructions by each attack, fitted against each defended pipeline "
              "(adaptive attacker). Utility is the defended pipeline's task score.", ""]
    tables = report_tables(frame)
    privacy_plots = [p for p in plots if p.stem.startswith("privacy_utility_") and not p.stem.endswith("_attacks")]
    for heading, intro, table in tables[:1]:
        lines += [f"## {heading}", ""] + ([intro, ""] if intro else []) + [markdown_table(table), ""]
    if privacy_plots:
        lines += ["## Privacy–utility (worst case)", ""] + [f"![{p.stem}]({p.name})" for p in privacy_plots] + [""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    for heading, intro, table in tables[1:]:
        lines += [f"## {heading}", ""] + ([intro, ""] if intro else []) + [markdown_table(table), ""]
    others = [p for p in plots if p not in privacy_plots]
    if others or grid:
        lines += ["## More figures", ""] + [f"![{p.stem}]({p.name})" for p in others]
        if grid:
            lines.append(f"![reconstructions]({grid.name})")
        lines.append("")
    if manifest is not None:
        lines += manifest_markdown(manifest)
    lines += ["## Configuration", "", "```yaml", config_text.strip(), "```", ""]
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def save_samples(originals, samples, out_dir: Path) -> None:
    """Keep the grid's images next to the CSV so ``privbench report`` can redraw it."""
    from privbench.cache import atomic_torch_save

    flat = {json.dumps([setting, attack]): v for (setting, attack), v in samples.items()}
    atomic_torch_save({"originals": originals, "samples": flat}, out_dir / "samples.pt")


def load_samples(out_dir: Path) -> tuple[dict[str, torch.Tensor], dict[tuple[str, str], dict[str, torch.Tensor]]]:
    """The grid's images saved by :func:`save_samples` (none when there is no ``samples.pt``).

    A file that is not what ``save_samples`` writes (truncated, another format, images that do not line up
    with the originals) is one :class:`PrivbenchError` line: the grid cannot be drawn from it.
    """
    path = Path(out_dir) / "samples.pt"
    if not path.exists():
        return {}, {}

    def refuse(why: str) -> PrivbenchError:
        return PrivbenchError(f"{path} is not a privbench samples file ({why}); delete it to redraw the report "
                              "without the reconstruction grid, or run the benchmark again")

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated, empty, another format, or pickled code (refused by weights_only)
        raise refuse("not a weights-only torch file") from None
    if not isinstance(state, dict) or not isinstance(state.get("originals"), dict) \
            or not isinstance(state.get("samples"), dict):
        raise refuse("no 'originals' and 'samples' tables")
    originals = state["originals"]
    if not all(isinstance(v, torch.Tensor) and v.dim() == 4 for v in originals.values()):
        raise refuse("an original is not an N×C×H×W image tensor")
    samples = {}
    for key, recon in state["samples"].items():
        try:
            parts = json.loads(key)
            if len(parts) == 3:  # written before codecs: [defense, strength, attack]
                label = (f"{parts[0]}={float(parts[1]):g}", str(parts[2]))
            else:
                setting, attack = parts
                label = (str(setting), str(attack))
        except (TypeError, ValueError):
            raise refuse(f"bad grid key {key!r}") from None
        if not isinstance(recon, dict) or not set(originals) <= set(recon) or any(
                not isinstance(recon[n], torch.Tensor) or recon[n].shape != originals[n].shape for n in originals):
            raise refuse(f"the reconstructions of {key} do not match the originals")
        samples[label] = recon
    return originals, samples


#: manifest.json keys the report reads, with the JSON types each may have (every key is optional; null = missing)
MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "config_hash": (str,), "config": (dict,), "seeds": (list,), "grid": (dict,), "executor": (str,),
    "jobs": (int,), "git_sha": (str,), "versions": (dict,), "started": (str,), "finished": (str,),
    "wall_seconds": (int, float), "stages": (list,)}


def load_manifest(run_dir: Path) -> dict | None:
    """``RUN_DIR/manifest.json`` (None when there is none: a run made before privbench wrote one).

    A file that is not a JSON object, or whose known keys do not have the types privbench writes, is one
    :class:`PrivbenchError` line: the report would otherwise show wrong or garbled facts about the run.
    """
    path = Path(run_dir) / "manifest.json"
    if not path.exists():
        return None

    def refuse(why: str) -> PrivbenchError:
        return PrivbenchError(f"{path} is not a privbench run manifest ({why}); delete it to redraw the report "
                              "without the manifest, or run the benchmark again")

    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PrivbenchError(f"cannot read {path} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise refuse("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise refuse(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(manifest, dict):
        raise refuse(f"a JSON {type(manifest).__name__}, not an object")
    for key, types in MANIFEST_TYPES.items():
        value = manifest.get(key)
        # bool is an int in Python, never a count or a duration in a manifest
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            raise refuse(f"'{key}' is a {type(value).__name__}")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in manifest.get("seeds") or []):
        raise refuse("'seeds' is not a list of integers")
    for stage in manifest.get("stages") or []:
        if not isinstance(stage, dict) or not isinstance(stage.get("stage"), str) \
                or not isinstance(stage.get("seconds"), int | float) or isinstance(stage.get("seconds"), bool):
            raise refuse("a 'stages' entry is not {\"stage\": name, \"seconds\": number}")
    return manifest


def load_results(path: Path) -> pd.DataFrame:
    """``results.csv`` for the report, refused with one line when it cannot be what privbench wrote: the journal of
    an unfinished run (:func:`refuse_journal`), a file cut short, a file :func:`~privbench.results.read_csv` cannot
    read, a basic column missing, no rows, a row without metric, kind, defense or attack, a row key held twice
    (:func:`~privbench.results.check_unique`: a report would draw one of the rows and drop the other).

    privbench writes the table in one atomic step, ending in a newline; a file without it was cut short (a
    copy or a transfer interrupted), and its last row would be drawn with missing values.
    """
    from privbench.results import check_unique, read_csv

    path = Path(path)
    refuse_journal(path.parent)
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(size - 1, 0))
            last = fh.read(1)
    except FileNotFoundError:
        raise PrivbenchError(f"results file not found: {path}") from None
    except OSError as exc:
        raise PrivbenchError(f"cannot read {path} ({exc.strerror or exc})") from None
    if size and last != b"\n":
        raise PrivbenchError(f"{path} is truncated (its last row is cut short): run the benchmark again")
    frame = read_csv(path)
    missing = [c for c in BASIC_COLUMNS if c not in frame.columns]
    if missing:
        raise PrivbenchError(f"{path} is not a privbench results table (missing column '{missing[0]}')")
    if frame.empty:
        raise PrivbenchError(f"{path} has no rows: nothing to report")
    blank = frame[["metric", "kind", "defense", "attack"]].isna().any(axis=1)
    if blank.any():
        raise PrivbenchError(f"{path}: row {int(blank.to_numpy().argmax()) + 2} has no metric, kind, defense or "
                             "attack: not a complete privbench results table")
    check_unique(frame, str(path))
    return frame


def refuse_journal(folder: Path) -> None:
    """Refuse a running or interrupted sweep's journal, ``OUT/NAME.partial/`` (:mod:`privbench.journal`: a folder
    of that name, or one holding ``points.jsonl`` but no ``manifest.json``): its ``results.csv`` holds only the
    points finished so far, and a report of it would pass for the run's."""
    from privbench.journal import POINTS

    folder = Path(folder)
    if (folder / "manifest.json").is_file():
        return
    if folder.name.endswith(".partial") or (folder / POINTS).is_file():
        raise PrivbenchError(f"{folder} is the journal of an unfinished run, not a run folder: rerun the same "
                             "`privbench run` command to resume it; it publishes the run folder when the grid is "
                             "complete")
