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
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from privbench import __version__
from privbench.cache import atomic_write_text

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
    from privbench.errors import PrivbenchError

    if not Path(path).is_file():
        raise PrivbenchError(f"results file not found: {path}")
    # The numeric columns are read as floats whatever their values look like: "%.6g" writes 1.0 as "1", and a
    # table whose strengths are all integral would otherwise read back as integers.
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""],
                        dtype={c: "float64" for c in FLOAT_COLUMNS})
    missing = [c for c in ("metric", "value", "defense", "attack", "kind") if c not in frame.columns]
    if missing:
        raise PrivbenchError(f"{path} is not a privbench results table (missing column '{missing[0]}')")
    if "codec_params" not in frame.columns and "codec" in frame.columns:
        # tables written before codecs existed (privbench 0.1 engine 2): every row is uncoded
        frame.insert(list(frame.columns).index("codec") + 1, "codec_params", "")
    return frame


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
