"""Bad results tables, through the real command line: every reader of a results table (``bd``, ``report``,
``regress``) turns a defect into one ``privbench: error:`` line naming the file, with exit status 2 and no
traceback, before any compute; and one rule for duplicate rows: a table holds one row per grid point, attack,
metric and seed (``regress``, which compares one run, per grid point, attack and metric).

The tables are hand-made from the real schema (``base_row``), so nothing here runs a benchmark.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from privbench.report import load_results
from privbench.results import COLUMNS, base_row, write_csv

from .helpers import invoke

BD = ["--anchor", "codec=jpeg", "--test", "codec=webp"]
JOURNAL = ("is the journal of an unfinished run, not a run folder: rerun the same `privbench run` command to resume "
           "it; it publishes the run folder when the grid is complete")


def _row(metric: str, kind: str, value: float, codec: str = "none", quality: float | str = "", seed: int = 0,
         attack: str = "none", dataset: str = "synth-scenes", strength: float = 0.0) -> dict:
    """One row of a results table (a rate or a cost row has no interval)."""
    half = float("nan") if kind in ("rate", "cost") else 0.01
    return base_row(run_id="r", config_hash="h", seed=seed, dataset=dataset, model="vgg-small", split="relu12",
                    defense="noise", defense_params=json.dumps({"scale": strength}), strength=strength, codec=codec,
                    codec_params=json.dumps({"placement": "features"}) if codec != "none" else "", quality=quality,
                    attack=attack, metric=metric, kind=kind, value=value, ci_low=value - half, ci_high=value + half,
                    ci_method="" if kind in ("rate", "cost") else "wilson95", n=200, seconds=0.0)


def _coded(seeds=(0,)) -> pd.DataFrame:
    """Two coded pipelines (jpeg, webp) at three qualities each: a bpp row and an accuracy row per point and seed."""
    rows = []
    for seed in seeds:
        for codec, gain in (("jpeg", 0.0), ("webp", 0.03)):
            for quality, bpp, accuracy in ((20, 0.1, 0.5), (30, 0.2, 0.6), (40, 0.4, 0.7)):
                rows.append(_row("bpp", "rate", bpp, codec, quality, seed))
                rows.append(_row("accuracy", "utility", accuracy + gain + seed / 100, codec, quality, seed))
    return pd.DataFrame(rows, columns=COLUMNS)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(frame, path)
    return path


def _set_cell(path: Path, line: int, column: str, text: str) -> Path:
    """Rewrite one cell of a CSV file (``line`` counts from 1, the header being line 1)."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    rows[line - 1][rows[0].index(column)] = text
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _fails_with(capsys, message: str, *args) -> None:
    """The command fails with exactly ``privbench: error: <message>`` on stderr, exit status 2, no traceback."""
    result = invoke(capsys, *args)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err + result.out
    assert result.err == f"privbench: error: {message}\n", result.err


# ---- privbench bd: the table is read and checked before any compute -------------------------------------------

def test_bd_table_not_utf8(tmp_path, capsys):
    path = tmp_path / "results.csv"
    text = _write(_coded(), path).read_text(encoding="utf-8")
    path.write_bytes(text.replace("jpeg", "jpég").encode("latin-1"))
    _fails_with(capsys, f"{path} is not a privbench results table: byte 0xe9 on line 2 is not UTF-8 (privbench writes "
                        "its tables as UTF-8)", "bd", path, *BD)


def test_bd_table_empty(tmp_path, capsys):
    path = tmp_path / "results.csv"
    path.write_bytes(b"")
    _fails_with(capsys, f"{path} is empty: not a privbench results table", "bd", path, *BD)


def test_bd_table_without_columns(tmp_path, capsys):
    path = tmp_path / "results.csv"
    path.write_text("\n\n")
    _fails_with(capsys, f"{path} has no header line (no columns): not a privbench results table", "bd", path, *BD)


def test_bd_rate_column_with_nan(tmp_path, capsys):
    table = _coded()
    rates = table.index[table["kind"] == "rate"]
    table.loc[rates[:2], "value"] = float("nan")
    path = _write(table, tmp_path / "results.csv")
    _fails_with(capsys, f"{path}: 2 kind=rate rows have no finite value, e.g. synth-scenes noise=0 none bpp "
                        "(codec=jpeg, quality=20, seed=0) = nan (a rate is measured at every coded point)",
                "bd", path, *BD)


def test_bd_value_column_with_text(tmp_path, capsys):
    path = _set_cell(_write(_coded(), tmp_path / "results.csv"), 4, "value", "high")
    _fails_with(capsys, f"{path} is not a privbench results table: column 'value' holds 'high' on line 4, not a number",
                "bd", path, *BD)


def test_bd_refuses_a_point_held_twice(tmp_path, capsys):
    """Two rows of one point and seed used to be averaged into the curve (a conflicting row moved the BD values)."""
    table = _coded()
    conflicting = table[table["metric"] == "accuracy"].iloc[[0]].assign(value=0.99)
    path = _write(pd.concat([table, conflicting], ignore_index=True), tmp_path / "results.csv")
    _fails_with(capsys, f"{path} has 2 rows sharing a key, e.g. synth-scenes noise=0 none accuracy (codec=jpeg, "
                        "quality=20, seed=0): values 0.5, 0.99", "bd", path, *BD)


def test_bd_averages_seeds_of_one_point(tmp_path, capsys):
    """Several seeds of the same point are replicates, not duplicates."""
    path = _write(_coded(seeds=(0, 1)), tmp_path / "results.csv")
    result = invoke(capsys, "bd", path, *BD)
    assert result.code == 0, result.err
    assert "anchor 3→3, test 3→3" in result.out


# ---- privbench report ----------------------------------------------------------------------------------------

def test_report_refuses_a_point_held_twice(tmp_path, capsys):
    """A conflicting duplicate row used to be dropped silently by the report."""
    table = _coded()
    conflicting = table[table["metric"] == "accuracy"].iloc[[1]].assign(value=0.01)
    path = _write(pd.concat([table, conflicting], ignore_index=True), tmp_path / "run" / "results.csv")
    _fails_with(capsys, f"{path} has 2 rows sharing a key, e.g. synth-scenes noise=0 none accuracy (codec=jpeg, "
                        "quality=30, seed=0): values 0.6, 0.01", "report", tmp_path / "run")


def test_report_reads_seeds_of_one_point_as_replicates(tmp_path):
    frame = load_results(_write(_coded(seeds=(0, 1, 2)), tmp_path / "run" / "results.csv"))
    assert sorted(frame["seed"].unique()) == [0, 1, 2]


def test_report_value_column_with_text(tmp_path, capsys):
    """The report reads its table with the same reader as bd: the same message."""
    path = _set_cell(_write(_coded(), tmp_path / "run" / "results.csv"), 3, "value", "high")
    _fails_with(capsys, f"{path} is not a privbench results table: column 'value' holds 'high' on line 3, not a number",
                "report", tmp_path / "run")


def _journal(folder: Path) -> Path:
    """A sweep's journal as an interrupted `privbench run` leaves it: points.jsonl and the rows so far."""
    _write(_coded(), folder / "results.csv")
    (folder / "points.jsonl").write_text(json.dumps({"point": "p0", "rows": [], "notes": []}) + "\n")
    return folder


def test_report_refuses_a_partial_folder(tmp_path, capsys):
    folder = _journal(tmp_path / "out" / "tiny.partial")
    _fails_with(capsys, f"{folder} {JOURNAL}", "report", folder)
    assert sorted(p.name for p in folder.iterdir()) == ["points.jsonl", "results.csv"]  # nothing written into it


def test_report_refuses_a_journal_under_another_name(tmp_path, capsys):
    folder = _journal(tmp_path / "copied")
    _fails_with(capsys, f"{folder} {JOURNAL}", "report", folder)


# ---- privbench regress ---------------------------------------------------------------------------------------

def _gated(strengths=(1.0,)) -> pd.DataFrame:
    return pd.DataFrame([r for s in strengths for r in (
        _row("psnr", "privacy", 12.0, attack="rmle", dataset="synth-faces", strength=s),
        _row("accuracy", "utility", 0.6, strength=s))], columns=COLUMNS)


def test_regress_names_current_values_without_a_baseline_row(tmp_path, capsys):
    base = _write(_gated(), tmp_path / "base.csv")
    now = _write(_gated((1.0, 2.0)), tmp_path / "now.csv")
    result = invoke(capsys, "regress", now, "--baseline", base)
    assert result.code == 0, result.err  # information, not a failure
    assert "Traceback" not in result.err + result.out
    assert result.out.splitlines()[:2] == [
        "compared 2 values: 0 regressed, 0 missing from the current results",
        "note: not compared, no baseline row for 2 current values: synth-faces noise=2 rmle psnr; "
        "synth-scenes noise=2 none accuracy"]


def test_regress_refuses_a_point_held_twice_with_the_shared_rule(tmp_path, capsys):
    base = _write(_gated(), tmp_path / "base.csv")
    twice = _gated()
    now = _write(pd.concat([twice, twice.iloc[[0]].assign(value=12.5)], ignore_index=True), tmp_path / "now.csv")
    _fails_with(capsys, f"current results {now} has 2 rows sharing a key, e.g. synth-faces noise=1 rmle psnr: values "
                        "12, 12.5", "regress", now, "--baseline", base)
