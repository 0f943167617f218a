"""Regression gate for CI: compare a results table with a committed baseline, on any machine.

Training differs in the last bits from one CPU to another, so a rerun never reproduces a baseline exactly.
The gate therefore compares against *measured* run-to-run variation: a baseline written by
``privbench baseline`` holds, per (grid point, metric), the mean over several seeds, the observed spread
(max − min over those seeds) and the widest confidence-interval half-width. A point regresses only when it
moved in its bad direction by more than its allowance::

    allowance = max(floor, 1.5 × spread + half_width(baseline) + half_width(current))

``spread`` covers what retraining changes (weights, attack fits); the two half-widths cover which probe images
happened to be scored; ``floor`` is the per-metric absolute tolerance (``--tol METRIC=X``, defaults in
:data:`DEFAULT_TOLERANCE`), so a metric whose CI and spread are both 0 (parameter and MAC counts) still has one.

Why 1.5 × spread (:data:`SPREAD_FACTOR`): the range of 3 seeds is a noisy estimate of the run-to-run σ (1.69 σ
on average, often much less), while a new run differs from the 3-seed mean by 1.15 σ (sd). Measured on the
quick preset (``benchmarks/gate_check.py``, 63 gated values per run): with factor 1 an unchanged run under
seed 4 already failed one point (its move was 1.05× the allowance); with 1.5 the largest unchanged move was
0.86× the allowance, and a defense with σ halved still failed 3 points (up to 1.30× the allowance).
The bad direction is per metric: a higher value of a leak metric whose ``higher_is_leakier`` is
true (psnr, ssim, face-id, plate, par-ma), a lower value of one whose flag is false (mse, lpips), a lower
utility (accuracy), a larger edge cost (params, MACs). Timings (``TIMING_METRICS``) measure the machine and
are not compared.

A legacy baseline (a plain ``results.csv`` of one run, without ``spread``/``seeds``) is read with spread 0 and
1 seed: the gate then rests on the CIs and floors alone, which is what it was before, and the output says so.

Both tables are validated first; every defect (missing file, 0-byte or malformed CSV, missing column, no rows,
duplicated key, NaN value) is one :class:`~privbench.errors.PrivbenchError` line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from privbench.components import load_components
from privbench.errors import PrivbenchError
from privbench.registry import METRICS
from privbench.results import FLOAT_COLUMNS, KEY_COLUMNS, TIMING_METRICS, check_unique, describe_point, key_text

#: Absolute floors of the allowance, per metric; other metrics get ``default_tolerance``.
DEFAULT_TOLERANCE = {"psnr": 0.5, "edge-psnr": 0.5, "ssim": 0.02, "mse": 0.002, "accuracy": 0.02}
#: Multiplier of the measured spread in the allowance (see the module docstring for the measurement).
SPREAD_FACTOR = 1.5
#: Columns a table must have to be compared.
REQUIRED_COLUMNS = [*KEY_COLUMNS, "kind", "value", "ci_low", "ci_high"]
#: Key columns compared as text (``strength`` is compared as a float).
TEXT_KEYS = [k for k in KEY_COLUMNS if k not in FLOAT_COLUMNS]
#: Metric kinds whose rows carry no confidence interval (a count or a timing has no sampling error).
NO_CI_KINDS = ("cost", "rate")


@dataclasses.dataclass
class Verdict:
    table: pd.DataFrame  # one row per compared (grid point, metric)
    regressions: pd.DataFrame
    missing: pd.DataFrame  # baseline rows the current table lacks
    legacy_baseline: bool = False  # the baseline has no measured spread (one run)
    #: current rows the baseline lacks (new points: not gated, which the output says)
    unbaselined: pd.DataFrame = dataclasses.field(default_factory=lambda: pd.DataFrame(columns=KEY_COLUMNS))

    @property
    def ok(self) -> bool:
        return self.regressions.empty and self.missing.empty


def read_table(path: Path, label: str) -> pd.DataFrame:
    """Read a results or baseline CSV with typed columns (floats in ``FLOAT_COLUMNS``, text keys as text), so
    ``1`` and ``1.0`` are the same strength and a quality of ``75`` is not a float in one table and an int in
    the other. Every read failure becomes one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise PrivbenchError(f"{label} file not found: {path}")
    if path.stat().st_size == 0:
        raise PrivbenchError(f"{label} {path} is empty (0 bytes): not a results table")
    dtypes: dict[str, str] = {c: "float64" for c in [*FLOAT_COLUMNS, "spread"]}
    dtypes.update({c: "str" for c in [*TEXT_KEYS, "kind"]})
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values={c: [""] for c in dtypes if dtypes[c] == "float64"},
                            dtype=dtypes)
    except pd.errors.EmptyDataError:
        raise PrivbenchError(f"{label} {path} has no header: not a results table") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PrivbenchError(f"{label} {path} is not a valid results CSV ({reason})") from None
    if "codec_params" not in frame.columns and "codec" in frame.columns:
        frame["codec_params"] = ""  # written before codecs existed: every row is uncoded
    return validate(frame, f"{label} {path}")


def validate(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """``frame`` with typed keys, or one PrivbenchError line for the first defect found."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise PrivbenchError(f"{label} is not a privbench results table (missing column '{missing[0]}')")
    if frame.empty:
        raise PrivbenchError(f"{label} has no rows: nothing to compare")
    out = frame.copy()
    for column in TEXT_KEYS + ["kind"]:
        out[column] = [key_text(v) for v in out[column]]
    for column in ["strength", "value", "ci_low", "ci_high", *(["spread"] if "spread" in out.columns else [])]:
        try:
            out[column] = pd.to_numeric(out[column], errors="raise").astype("float64")
        except (ValueError, TypeError):
            raise PrivbenchError(f"{label}: column '{column}' holds a value that is not a number") from None
    out = out[~out["metric"].isin(TIMING_METRICS)]
    if out.empty:
        raise PrivbenchError(f"{label} has only timing rows: nothing to compare")
    check_unique(out, label, KEY_COLUMNS)  # one value per point to compare: a table of several seeds is refused too
    checked = ["strength", "value"] + (["spread"] if "spread" in out.columns else [])
    for column in checked:
        bad = out[column].isna()
        if bad.any():
            example = describe_point(out[bad].iloc[0])
            raise PrivbenchError(f"{label}: {int(bad.sum())} rows have no {column}, e.g. {example}")
    with_ci = ~out["kind"].isin(NO_CI_KINDS)
    for column in ("ci_low", "ci_high"):
        bad = with_ci & out[column].isna()
        if bad.any():
            example = describe_point(out[bad].iloc[0])
            raise PrivbenchError(f"{label}: {int(bad.sum())} rows have no {column}, e.g. {example}")
    return out


def worse_direction(metric: str, kind: str) -> int:
    """+1 when a larger value is worse, -1 when a smaller value is worse (one rule per metric kind)."""
    if kind == "utility":
        return -1  # accuracy: lower is worse
    if kind in ("cost", "rate"):
        return 1  # parameters, MACs on the edge, bits per pixel: more is worse
    if kind == "input" and metric not in METRICS:
        return 1  # a defense's own diagnostic of x′ (e.g. aux-acc): by convention, higher = x′ reveals more
    try:
        return 1 if METRICS.get(metric).higher_is_leakier else -1
    except PrivbenchError:
        raise PrivbenchError(f"metric '{metric}' is not registered: cannot tell which direction leaks more") from None


def _half_width(frame: pd.DataFrame) -> pd.Series:
    return ((frame["ci_high"] - frame["ci_low"]) / 2).fillna(0.0).abs()


def compare(current: pd.DataFrame, baseline: pd.DataFrame, tolerances: dict[str, float] | None = None,
            default_tolerance: float = 0.02, spread_factor: float = SPREAD_FACTOR) -> Verdict:
    """Match the tables on typed keys and flag every point that moved past its allowance in its bad
    direction (see the module docstring for the rule)."""
    load_components()
    floors = {**DEFAULT_TOLERANCE, **(tolerances or {})}
    base = validate(baseline, "baseline")
    now = validate(current, "current results")
    legacy = "spread" not in base.columns
    base["spread"] = base["spread"] if not legacy else 0.0
    base["seeds"] = pd.to_numeric(base["seeds"], errors="coerce").fillna(1) if "seeds" in base.columns else 1
    base["half_width"] = _half_width(base)
    now["half_width"] = _half_width(now)
    base_cols = [*KEY_COLUMNS, "kind", "value", "spread", "seeds", "half_width"]
    now_cols = [*KEY_COLUMNS, "kind", "value", "half_width"]
    merged = base[base_cols].merge(now[now_cols], on=KEY_COLUMNS, how="left", suffixes=("_base", "_now"),
                                   indicator=True, validate="one_to_one")
    missing = merged[merged["_merge"] == "left_only"][KEY_COLUMNS].reset_index(drop=True)
    known = now[KEY_COLUMNS].merge(base[KEY_COLUMNS], on=KEY_COLUMNS, how="left", indicator=True)
    unbaselined = known[known["_merge"] == "left_only"][KEY_COLUMNS].reset_index(drop=True)
    both = merged[merged["_merge"] == "both"].drop(columns=["_merge"]).reset_index(drop=True)
    kind_changed = both["kind_base"] != both["kind_now"]
    if kind_changed.any():
        example = describe_point(both[kind_changed].iloc[0])
        raise PrivbenchError(f"metric kind differs between the tables for {example}")
    both = both.rename(columns={"kind_base": "kind"}).drop(columns=["kind_now"])
    both["direction"] = [worse_direction(m, k) for m, k in zip(both["metric"], both["kind"], strict=True)]
    both["floor"] = [floors.get(m, default_tolerance) for m in both["metric"]]
    allowance = spread_factor * both["spread"] + both["half_width_base"] + both["half_width_now"]
    both["allowance"] = allowance.clip(lower=both["floor"])
    both["worse_by"] = (both["value_now"] - both["value_base"]) * both["direction"]
    both["regressed"] = both["worse_by"] > both["allowance"] + 1e-12
    return Verdict(both, both[both["regressed"]], missing, legacy, unbaselined)


#: how many keys of current values without a baseline row :func:`format_verdict` names
UNBASELINED_SHOWN = 3


def format_verdict(verdict: Verdict, limit: int = 40) -> str:
    """A summary line; a note naming the current values the baseline has no row for (not gated, so the exit status
    does not change); then one line per regressed point: the value, the baseline mean ± spread, both CIs, the
    allowance and by how much the point passed it."""
    lines = [f"compared {len(verdict.table)} values: {len(verdict.regressions)} regressed, "
             f"{len(verdict.missing)} missing from the current results"]
    extra = verdict.unbaselined
    if not extra.empty:
        shown = "; ".join(describe_point(r) for _, r in extra.head(UNBASELINED_SHOWN).iterrows())
        more = f"; ... and {len(extra) - UNBASELINED_SHOWN} more" if len(extra) > UNBASELINED_SHOWN else ""
        plural = "s" if len(extra) != 1 else ""
        lines.append(f"note: not compared, no baseline row for {len(extra)} current value{plural}: {shown}{more}")
    if verdict.legacy_baseline:
        lines.append("note: the baseline is a single run (no spread/seeds columns): allowances are the CIs and "
                     "floors only; write one with `privbench baseline CONFIG --seeds 0,1,2`")
    if not verdict.regressions.empty:
        lines.append(f"regressions (moved the bad way past {SPREAD_FACTOR:g} × spread + both CI half-widths, "
                     "or the --tol floor):")
        ordered = verdict.regressions.assign(past=verdict.regressions["worse_by"] - verdict.regressions["allowance"])
        for _, r in ordered.sort_values("past", ascending=False).head(limit).iterrows():
            way = "higher" if r["direction"] > 0 else "lower"
            lines.append(
                f"  {describe_point(r)}: {r['value_now']:.4g} vs baseline {r['value_base']:.4g} ± spread "
                f"{r['spread']:.3g} ({int(r['seeds'])} seeds); CI ±{r['half_width_base']:.3g} base, "
                f"±{r['half_width_now']:.3g} now; {way} by {r['worse_by']:.4g} > allowance {r['allowance']:.4g} "
                f"(floor {r['floor']:g}): past it by {r['past']:.4g}")
        if len(ordered) > limit:
            lines.append(f"  ... and {len(ordered) - limit} more")
    if not verdict.missing.empty:
        lines.append("missing:")
        for _, r in verdict.missing.head(limit).iterrows():
            lines.append(f"  {describe_point(r)}")
        if len(verdict.missing) > limit:
            lines.append(f"  ... and {len(verdict.missing) - limit} more")
    return "\n".join(lines)
