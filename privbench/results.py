"""The result schema — the long-format table of DESIGN §4, its column groups and its atomic CSV writer — the one
place that lists result columns: every writer and reader (journal, worst case, report, BD, regress, baseline, eval)
takes its columns from here.

One row per (grid point, metric). ``ci_method`` extends the DESIGN schema: it records how the interval
was computed (``normal95``, ``wilson95``...).
"""

from __future__ import annotations

import functools
import io
import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from privbench import __version__
from privbench.cache import atomic_write_text
from privbench.errors import PrivbenchError, first_line

#: which run wrote a row
RUN_COLUMNS = ["run_id", "config_hash", "seed", "privbench_version", "git_sha"]
#: a setting: the defense at a strength, and the codec at a quality (``none`` uncoded)
SETTING_COLUMNS = ["defense", "defense_params", "strength", "codec", "codec_params", "quality"]
#: a grid point but for its attack: the model, where it is split, and the setting
POINT_COLUMNS = ["model", "split", *SETTING_COLUMNS]
#: a value and its interval
SCORE_COLUMNS = ["value", "ci_low", "ci_high"]
COLUMNS = [*RUN_COLUMNS, "dataset", *POINT_COLUMNS, "attack", "metric", "kind", *SCORE_COLUMNS, "ci_method", "n",
           "seconds"]
#: the columns every privbench table has had since its first release (older tables still redraw and compare)
BASIC_COLUMNS = [*RUN_COLUMNS, "dataset", "model", "split", "defense", "defense_params", "strength", "attack",
                 "metric", "kind", *SCORE_COLUMNS]
#: ``kind=cost`` metrics that are timings: they depend on the machine and its load, never on the code alone
TIMING_METRICS = ("edge-latency-ms", "edge-images-per-s", "codec-encode-ms", "codec-decode-ms")
#: Columns stored as floats (``read_csv`` restores them as such).
FLOAT_COLUMNS = ["strength", "value", "ci_low", "ci_high", "seconds"]
#: Columns that identify a grid point + metric (used by regress and worst-case aggregation).
KEY_COLUMNS = ["dataset", *POINT_COLUMNS, "attack", "metric"]
#: what a results table holds once (:func:`check_unique`): a grid point's metric under an attack, per seed — several
#: seeds of one point are replicates, two rows of one point and seed repeat or contradict each other
ROW_KEY = [*KEY_COLUMNS, "seed"]
#: the worst case over attacks is taken per seed, probe set, grid point and metric
WORST_CASE_GROUP = ["seed", "dataset", *POINT_COLUMNS, "metric"]
#: what ``privbench eval`` prints of a run's rows
EVAL_COLUMNS = ["defense", "strength", "codec", "quality", "attack", "dataset", "metric", *SCORE_COLUMNS, "ci_method", "n"]


@functools.cache
def git_sha() -> str:
    """The commit of the privbench source tree when it is a git checkout, else 'unknown'."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def params_json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write the whole table at once through a temp file: never a partial CSV."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.6g")
    atomic_write_text(path, buffer.getvalue())


def read_csv(path: Path) -> pd.DataFrame:
    """The results table at ``path``, with the ``FLOAT_COLUMNS`` as floats, or one PrivbenchError line naming the
    file and what is wrong with it: missing, empty, not UTF-8, no header, not CSV, a number column holding text,
    a basic column missing."""
    path = Path(path)
    if not path.is_file():
        raise PrivbenchError(f"results file not found: {path}")
    if path.stat().st_size == 0:
        raise PrivbenchError(f"{path} is empty: not a privbench results table")
    # The numeric columns are read as floats whatever their values look like: "%.6g" writes 1.0 as "1", and a
    # table whose strengths are all integral would otherwise read back as integers.
    try:
        frame = pd.read_csv(path, encoding="utf-8", keep_default_na=False, na_values=[""],
                            dtype={c: "float64" for c in FLOAT_COLUMNS})
    except UnicodeDecodeError:
        raise PrivbenchError(f"{path} is not a privbench results table: {_not_utf8(path)}") from None
    except pd.errors.EmptyDataError:  # only blank lines
        raise PrivbenchError(f"{path} has no header line (no columns): not a privbench results table") from None
    except ValueError as exc:  # a malformed line (pandas' ParserError) or a number column holding text
        reason = _not_a_number(path) or first_line(exc)
        raise PrivbenchError(f"{path} is not a privbench results table: {reason}") from None
    except OSError as exc:
        raise PrivbenchError(f"cannot read {path} ({exc.strerror or exc})") from None
    missing = [c for c in ("metric", "value", "defense", "attack", "kind") if c not in frame.columns]
    if missing:
        raise PrivbenchError(f"{path} is not a privbench results table (missing column '{missing[0]}')")
    if "codec_params" not in frame.columns and "codec" in frame.columns:
        # tables written before codecs existed (privbench 0.1 engine 2): every row is uncoded
        frame.insert(list(frame.columns).index("codec") + 1, "codec_params", "")
    return frame


def _not_utf8(path: Path) -> str:
    """Where ``path`` stops being UTF-8: its first undecodable byte and the line it is on."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"byte 0x{data[exc.start]:02x} on line {line} is not UTF-8 (privbench writes its tables as UTF-8)"
    return "it is not UTF-8 text"


def _not_a_number(path: Path) -> str | None:
    """The first cell of a ``FLOAT_COLUMNS`` column of ``path`` that is not a number (an empty cell is a missing
    value, the only way a privbench table writes NaN), as "column 'value' holds 'high' on line 4, not a number";
    None when every such cell is a number (the file is malformed in another way)."""

    def number(cell: str) -> bool:
        try:
            return not math.isnan(float(cell))
        except ValueError:
            return False

    try:
        cells = pd.read_csv(path, encoding="utf-8", dtype=str, keep_default_na=False, na_values=[""])
    except ValueError:
        return None
    for column in [c for c in FLOAT_COLUMNS if c in cells.columns]:
        for position, cell in enumerate(cells[column]):
            if isinstance(cell, str) and not number(cell):
                return f"column '{column}' holds {cell!r} on line {position + 2}, not a number"
    return None


def key_text(value: object) -> str:
    """A key value as text: NaN is '', an integral float is written without '.0' (pandas may have guessed a
    float column for what another table holds as text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number_text(value: object) -> str:
    """A number as ``%g`` (``0.5``, ``1``, ``1e-05``, ``nan``), anything else as :func:`key_text`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return key_text(value)


def describe_point(row: Mapping[str, Any], seed: bool = False) -> str:
    """A row's key in words, for messages: ``synth-faces noise=1 rmle psnr``, then the codec and quality of a coded
    point and, with ``seed``, the seed: ``synth-faces noise=1 rmle psnr (codec=jpeg, quality=20, seed=0)``."""
    point = f"{row['dataset']} {row['defense']}={_number_text(row['strength'])} {row['attack']} {row['metric']}"
    extra = [f"{k}={key_text(row.get(k))}" for k in ("codec", "quality") if key_text(row.get(k)) not in ("", "none")]
    if seed:
        extra.append(f"seed={key_text(row.get('seed'))}")
    return point + (f" ({', '.join(extra)})" if extra else "")


def check_unique(frame: pd.DataFrame, label: str, key: Sequence[str] = tuple(ROW_KEY)) -> None:
    """Refuse a table that holds one ``key`` twice — by default :data:`ROW_KEY`, one row per grid point, attack,
    metric and seed — with one PrivbenchError line naming ``label``, the first such key and its values: a reader
    would otherwise average the rows or keep one of them, silently. Keys compare as text (:func:`key_text`: ``1``
    and ``1.0`` are one strength); a key column the table lacks is left out."""
    columns = [c for c in key if c in frame.columns]
    keys = pd.DataFrame({c: [key_text(v) for v in frame[c]] for c in columns}, index=frame.index)
    shared = keys.duplicated(keep=False).to_numpy()
    if not shared.any():
        return
    first = keys[shared].iloc[0]
    same = (keys == first).all(axis=1).to_numpy()
    example = describe_point(frame[shared].iloc[0], seed="seed" in columns)
    values = f": values {', '.join(_number_text(v) for v in frame.loc[same, 'value'])}" \
        if "value" in frame.columns else ""
    raise PrivbenchError(f"{label} has {int(shared.sum())} rows sharing a key, e.g. {example}{values}")


def base_row(**fields: Any) -> dict[str, Any]:
    row = {c: "" for c in COLUMNS}
    row.update(privbench_version=__version__, git_sha=git_sha())
    row.update(fields)
    return row


def with_setting_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its setting columns as plain keys — an uncoded row has codec ``none`` and empty codec params
    and quality (a CSV reads those as NaN, which groupby and pivot_table would drop) — and a ``pipeline`` label:
    the defense, then the codec and what it codes."""
    out = frame.copy()
    if "codec_params" not in out.columns:
        out["codec_params"] = ""
    out["codec"] = out["codec"].astype(object).fillna("none").replace("", "none")
    out["codec_params"] = out["codec_params"].astype(object).fillna("")  # an all-empty column reads as float NaN
    out["quality"] = pd.to_numeric(out["quality"].replace("", float("nan")), errors="coerce")
    placement = out["codec_params"].map(lambda p: json.loads(p).get("placement", "") if p else "")
    coded = out["codec"] != "none"
    out["pipeline"] = out["defense"].where(~coded, out["defense"] + " + " + out["codec"] + "@" + placement)
    out["quality"] = out["quality"].astype(object).where(coded, "")
    return out


def has_codecs(frame: pd.DataFrame) -> bool:
    return bool((frame["codec"].fillna("none").replace("", "none") != "none").any())
