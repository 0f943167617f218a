"""report.html: the run's report as one self-contained page, written beside report.md.

Everything the page shows is inside the file — figures as base64 ``data:`` URIs, the CSS in a ``<style>`` —
so it can be mailed, attached to a CI job or opened from an archive years later with nothing to fetch. A
Content-Security-Policy in the page itself makes a browser refuse anything else (``default-src 'none'``), and
every text from the run (names, notes, config) goes through :func:`html.escape`. The page reads without
JavaScript; its one small script only records, on load, the decoded size of each image (``data-natural``), which
is how the tests check in a real browser that every figure decoded.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import struct
from pathlib import Path

import pandas as pd
import yaml

from privbench.cache import atomic_write_text
from privbench.errors import PrivbenchError
from privbench.report import (
    NOT_RECORDED,
    _utility_dataset,
    manifest_facts,
    report_tables,
    report_view,
    stage_table,
)
from privbench.results import has_codecs, with_setting_keys
from privbench.worst_case import WORST

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2329; background: #fff;
       max-width: 72rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; padding-bottom: 0.2rem; border-bottom: 2px solid #d0d7de; }
h3 { font-size: 1rem; margin-top: 1.2rem; }
.run { color: #57606a; margin: 0 0 0.6rem; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0.3rem 1rem; }
a { color: #0b5cad; }
code, pre { font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: 0.6rem 0.8rem; overflow-x: auto; }
.scroll { overflow-x: auto; margin: 0.6rem 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 0.2rem 0.5rem; text-align: left; white-space: nowrap; }
th { background: #f0f3f6; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #f8fafc; }
table.facts th { text-align: left; width: 9rem; position: static; }
table.facts td { white-space: normal; }
figure { margin: 1rem 0 1.6rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 13px; margin-top: 0.3rem; }
.none { color: #57606a; font-style: italic; }
"""

#: the page's only script: the decoded size of each image, recorded on load (the browser test reads it back)
SCRIPT = """
window.addEventListener("load", function () {
  for (const img of document.images) { img.dataset.natural = img.naturalWidth + "x" + img.naturalHeight; }
  document.body.dataset.styled = getComputedStyle(document.body).maxWidth !== "none" ? "yes" : "no";
  document.body.dataset.loaded = "yes";
});
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


#: nothing loads but the page's own style, its own script and data: images (CSP hashes of the exact texts)
CSP = f"default-src 'none'; img-src data:; style-src {_csp_hash(CSS)}; script-src {_csp_hash(SCRIPT)}"


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _cell(value) -> str:
    if isinstance(value, bool):
        return f"<td>{_e(value)}</td>"
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return "<td></td>"
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return f'<td class="num">{_e(text)}</td>'
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "<td></td>"
    return f"<td>{_e(value)}</td>"


def html_table(table: pd.DataFrame) -> str:
    """A pandas table as an HTML table: numbers to 4 significant digits (as in report.md) and right-aligned,
    missing values blank, every header and cell escaped."""
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    rows = ["<tr>" + "".join(_cell(v.item() if hasattr(v, "item") else v) for v in row) + "</tr>"
            for row in table.itertuples(index=False, name=None)]
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def worst_case_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, probe set): the task utility (and rate) of the setting, then each privacy metric's
    ``attack=worst`` value — what the most revealing attack achieved, the number a setting is judged by.

    The setting is the defense and strength (with codecs: the pipeline and quality); the defense parameters,
    model, split and seed are added as columns when they tell settings apart, as when tables of several runs are
    concatenated. Empty when the table has no ``attack=worst`` rows.
    """
    framed = with_setting_keys(report_view(frame))
    worst = framed[(framed["kind"] == "privacy") & (framed["attack"] == WORST)]
    if worst.empty:
        return pd.DataFrame()
    keys = ["defense", "strength"] + (["pipeline", "quality"] if has_codecs(frame) else [])
    if (framed.groupby(keys, dropna=False)["defense_params"].nunique(dropna=False) > 1).any():
        keys.append("defense_params")  # two families of one defense at one strength (e.g. two w_cmprs)
    keys += [c for c in ("model", "split") if framed[c].nunique(dropna=False) > 1]
    table = worst.groupby([*keys, "dataset", "metric"], dropna=False, sort=True)["value"].first().unstack("metric")
    table = table.reset_index()
    util = framed[framed["kind"].isin(["utility", "rate"]) & (framed["dataset"] == _utility_dataset(frame))]
    if not util.empty:
        u = util.groupby([*keys, "metric"], dropna=False, sort=True)["value"].first().unstack("metric")
        u = u.rename(columns={c: f"{c} (test set)" if c in table.columns else c for c in u.columns})
        table = table.merge(u.reset_index(), on=keys, how="left")
        privacy = [c for c in table.columns if c not in keys and c != "dataset" and c not in u.columns]
        table = table[[*keys, "dataset", *u.columns, *privacy]]
    table.columns.name = None
    return table


def _png_data_uri(path: Path) -> tuple[str, int, int]:
    """The PNG at ``path`` as a data: URI, with its width and height (from the IHDR chunk)."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE) or len(data) < 24 or data[12:16] != b"IHDR":
        raise PrivbenchError(f"{path} is not a PNG image: cannot embed it in report.html")
    width, height = struct.unpack(">II", data[16:24])
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), width, height


def caption(path: Path) -> str:
    """What a figure shows, from its file name (the names report.py and rate_plots.py give them)."""
    stem = Path(path).stem
    if stem.startswith("privacy_utility_"):
        what = f"privacy ({stem.removeprefix('privacy_utility_')}) against task utility, a curve per pipeline and attack"
    elif stem == "rate_utility":
        what = "task utility against the rate (bpp), a curve per coded pipeline"
    elif stem.startswith("rate_privacy_"):
        what = f"privacy ({stem.removeprefix('rate_privacy_')}) against the rate (bpp), a curve per coded pipeline"
    elif stem == "reconstructions":
        what = "originals (top row) beside the reconstructions of each setting and attack"
    else:
        what = stem.replace("_", " ")
    return f"{Path(path).name}: {what}"


def _figure(path: Path) -> str:
    uri, width, height = _png_data_uri(path)
    return (f'<figure><img src="{uri}" width="{width}" height="{height}" alt="{_e(Path(path).stem)}">'
            f"<figcaption>{_e(caption(path))}</figcaption></figure>")


def _none(text: str) -> str:
    return f'<p class="none">{_e(text)}</p>'


def _manifest_section(manifest: dict | None, config_text: str | None) -> list[str]:
    out = ['<section id="manifest"><h2>Run manifest</h2>']
    if manifest is None:
        out.append(_none("No run manifest was recorded: this run folder has no manifest.json (runs made before "
                         "privbench wrote one). The run line above comes from results.csv."))
        manifest = {}
    else:
        rows = [f"<tr><th>{_e(label)}</th><td>{f'<code>{_e(text)}</code>' if code and text != NOT_RECORDED else _e(text)}"
                "</td></tr>" for label, text, code in manifest_facts(manifest)]
        out.append(f'<table class="facts"><tbody>{"".join(rows)}</tbody></table>')
        stages = stage_table(manifest)
        out.append("<h3>Time per stage</h3>")
        out.append(html_table(stages) if not stages.empty else _none(f"time per stage: {NOT_RECORDED}"))
    out.append("<h3>Configuration</h3>")
    config = manifest.get("config")
    if isinstance(config, dict):
        text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    else:
        text = config_text if config_text and config_text.strip() else None
    out.append(f"<pre>{_e(text.strip())}</pre>" if text else _none(f"configuration: {NOT_RECORDED}"))
    out.append("</section>")
    return out


def _anchor(heading: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in heading.lower()).strip("-")


def write_html(frame: pd.DataFrame, out_dir: Path, manifest: dict | None, plots: list[Path], grid: Path | None,
               notes: list[str], *, config_text: str | None = None) -> Path:
    """Write ``out_dir/report.html`` (atomically) and return its path.

    ``frame`` is the run's results table, ``manifest`` its manifest.json mapping (None: a run without one; a
    missing key is shown as "not recorded"), ``plots`` the PNGs of the privacy–utility and rate curves,
    ``grid`` the reconstruction grid PNG, ``notes`` the run's notes. The configuration shown is the manifest's
    ``config`` when recorded, else ``config_text`` (report.md's YAML).
    """
    out_dir = Path(out_dir)
    first = frame.iloc[0] if len(frame) else None
    name = (manifest or {}).get("name") or (first["run_id"] if first is not None else out_dir.name)
    tables = report_tables(frame)
    summary, tables = (tables[:1], tables[1:]) if tables and tables[0][0] == "Summary" else ([], tables)
    worst = worst_case_table(frame)
    privacy_plots = [p for p in plots if Path(p).stem.startswith("privacy_utility_")
                     and not Path(p).stem.endswith("_attacks")]
    attack_plots = [p for p in plots if Path(p).stem.startswith("privacy_utility_") and p not in privacy_plots]
    rate_plots = [p for p in plots if Path(p).stem.startswith("rate_")]
    other_plots = [p for p in plots if p not in privacy_plots + attack_plots + rate_plots]
    sections = [(_anchor(heading), heading) for heading, _, _ in summary]
    sections += [("privacy-utility", "Privacy–utility curves"), ("worst-case", "Worst case")]
    sections += [(_anchor(heading), heading) for heading, _, _ in tables]
    sections += [("per-attack", "Per attack")] if attack_plots else []
    sections += [("rate-utility", "Rate–utility curves")]
    sections += [("other-figures", "Other figures")] if other_plots else []
    sections += [("reconstructions", "Reconstructions"), ("notes", "Notes"), ("manifest", "Run manifest")]

    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
           f"<title>privbench report: {_e(name)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
           f"<header><h1>privbench report</h1><p class=\"run\">run <strong>{_e(name)}</strong></p>"]
    if first is not None:
        out.append(f"<ul><li>run <code>{_e(first['run_id'])}</code> (config hash <code>{_e(first['config_hash'])}"
                   f"</code>, seed {_e(first['seed'])}, privbench {_e(first['privbench_version'])}, git "
                   f"<code>{_e(first['git_sha'])}</code>)</li><li>model <code>{_e(first['model'])}</code> cut at "
                   f"<code>{_e(frame['split'].mode().iloc[0])}</code> (a defense may deploy another split: see the "
                   "split column)</li></ul>")
    out.append("<p>Privacy metrics are scored on reconstructions by each attack, fitted against each defended "
               "pipeline (adaptive attacker). Utility is the defended pipeline's task score.</p>")
    out.append("<nav><ul>" + "".join(f'<li><a href="#{a}">{_e(h)}</a></li>' for a, h in sections) + "</ul></nav>")
    out.append("</header>")

    def table_section(heading: str, intro: str, table: pd.DataFrame) -> list[str]:
        return [f'<section id="{_anchor(heading)}"><h2>{_e(heading)}</h2>', *([f"<p>{_e(intro)}</p>"] if intro else []),
                html_table(table), "</section>"]

    for heading, intro, table in summary:
        out += table_section(heading, intro, table)
    out.append('<section id="privacy-utility"><h2>Privacy–utility curves</h2>')
    out += [_figure(p) for p in privacy_plots] or [_none("No privacy–utility curves: the run has no privacy metric "
                                                         "with a utility score.")]
    out.append("</section>")

    out.append('<section id="worst-case"><h2>Worst case</h2>')
    if worst.empty:
        out.append(_none("No attack=worst rows: this run scored no privacy metric."))
    else:
        out.append("<p>Each setting's privacy is what the most revealing attack achieved (the attack=worst rows of "
                   "each privacy metric, per probe set), beside the setting's task utility on the test set; means over "
                   "the run's seeds.</p>")
        out.append(html_table(worst))
    out.append("</section>")

    for heading, intro, table in tables:
        out += table_section(heading, intro, table)
    if attack_plots:
        out += ['<section id="per-attack"><h2>Per attack</h2>', *[_figure(p) for p in attack_plots], "</section>"]
    out.append('<section id="rate-utility"><h2>Rate–utility curves</h2>')
    out += [_figure(p) for p in rate_plots] or [_none("No rate curves: this run did not code what crosses the "
                                                      "network.")]
    out.append("</section>")
    if other_plots:
        out += ['<section id="other-figures"><h2>Other figures</h2>', *[_figure(p) for p in other_plots], "</section>"]
    out.append('<section id="reconstructions"><h2>Reconstructions</h2>')
    out.append(_figure(grid) if grid else _none("No reconstruction grid: the run saved no reconstruction samples."))
    out.append("</section>")
    out.append('<section id="notes"><h2>Notes</h2>')
    out.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>" if notes else _none("No notes."))
    out.append("</section>")
    out += _manifest_section(manifest, config_text)
    out += [f"<script>{SCRIPT}</script>", "</body>", "</html>", ""]
    path = out_dir / "report.html"
    atomic_write_text(path, "\n".join(out))
    return path
