"""Bjøntegaard-Delta (BD) comparison of coded pipelines from a results table (``privbench bd``).

Bjøntegaard (VCEG-M33, 2001) summarises how far apart two rate–metric curves are with two numbers:

- **BD-rate (%)**: the average bit-rate difference of the *test* against the *anchor* at equal metric value —
  log10(rate) is interpolated as a function of the metric over the part of the metric axis both curves cover,
  the mean gap is turned into a percentage, ``(10**gap − 1)·100``. **Negative = the test needs fewer bits** for
  the same metric value.
- **BD-metric** (BD-PSNR, BD-mAP, BD-accuracy, ...): the mean vertical gap ``test − anchor`` of the metric over
  the part of the log10(rate) axis both curves cover. **Positive = the test has a higher metric at equal rate.**

What is "good" depends on the metric. For utility (accuracy, mAP) a negative BD-rate and a positive BD-metric
are good, as in paper 000's Table I (the proposed pipeline against "Benchmark-input": BD-rate −19.4 %, BD-mAP
+1.9). For a privacy metric where a higher value reveals more (PSNR of the reconstruction, face-id rank-1,
plate accuracy) a positive BD-metric means the test *leaks more* at the same rate (paper 000 marks BD-PSNR "↓")
and a negative BD-rate means the test reaches the same leakage with fewer bits. For privacy metrics where a
lower value reveals more (MSE, LPIPS) the signs of the metric turn around: a negative BD-metric leaks more.
Paper 000 takes its BD-PSNR on the privacy–utility plane (its Fig. 9b); privbench always takes BD values
against the rate column given (``bpp`` by default), like BD-PSNR in codec comparisons.

The numbers themselves come from the ``bjontegaard`` package (``bd_rate`` / ``bd_psnr``, methods ``pchip``
— the JVET spreadsheet's —, ``akima`` and ``cubic``) called on each pipeline's **Pareto front**: when one
pipeline is several settings (paper 000's (w_rec, w_cmprs, QP) triplets; here every grid point a selector
matches), its curve is the front of those points (paper 000 §VI-B: "The Pareto front of these points represents
the performance of our proposed method"), which is also what makes the metric strictly monotonic, as pchip and
akima require. What is hand-written here is only what the package does not do: reading the table, the front,
and the checks (enough points, overlap of the two curves) that turn the package's NaN-with-a-warning into a
stated reason.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privbench.errors import PrivbenchError
from privbench.results import POINT_COLUMNS, check_unique, describe_point

#: result columns a selector may name directly (besides ``defense.<param>`` and ``codec.<param>``)
SELECTOR_COLUMNS = ["dataset", *POINT_COLUMNS, "seed", "run_id", "config_hash"]
#: ``defense.<param>`` / ``codec.<param>`` look inside the JSON of these columns
PARAM_PREFIXES = {"defense": "defense_params", "codec": "codec_params"}
#: fewest points a front needs per interpolation method: a piecewise cubic (pchip) and Akima's spline need two
#: (``bjontegaard`` falls back to linear interpolation for akima below three), the global cubic fit of VCEG-M33
#: (``np.polyfit(deg=3)``) needs four to be determined
METHOD_MIN_POINTS = {"pchip": 2, "akima": 2, "cubic": 4}
METHODS = tuple(METHOD_MIN_POINTS)
#: ``bjontegaard``'s default: below this relative overlap it warns
DEFAULT_MIN_OVERLAP = 0.75
REQUIRED_COLUMNS = ["dataset", "defense", "codec", "attack", "metric", "kind", "value"]


# ---- selectors --------------------------------------------------------------------------------------------------
def _as_number(text: str) -> float | None:
    """``text`` as a number when it reads as one (NaN does not: it equals nothing), else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _text(value: Any) -> str:
    """A table or JSON value as selector text: missing is '', booleans and null as in JSON, 32.0 as '32'."""
    if value is None:
        return "null"
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _matches(actual: str, wanted: str) -> bool:
    """Numbers compare as numbers when both sides read as numbers (``1`` == ``1.0``), anything else as text
    (``true``/``false`` case-insensitively, since JSON writes them lower-case)."""
    a, w = _as_number(actual), _as_number(wanted)
    if a is not None and w is not None:
        return math.isclose(a, w, rel_tol=1e-9, abs_tol=1e-12)
    if actual in ("true", "false"):
        return actual == wanted.lower()
    return actual == wanted


@dataclass(frozen=True)
class Condition:
    """One ``key=value`` of a selector: ``column`` is the result column read, ``param`` the JSON key inside it
    (for ``defense.<param>`` / ``codec.<param>``), else None."""

    key: str
    value: str
    column: str
    param: str | None = None


@dataclass(frozen=True)
class Selector:
    """A set of grid points: the rows whose columns match every condition (logical AND)."""

    text: str
    conditions: tuple[Condition, ...]

    def __str__(self) -> str:
        return self.text

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        """Which rows of ``frame`` match. A ``defense.<param>`` / ``codec.<param>`` that no row's parameters
        hold is an unknown key (PrivbenchError listing the keys the table has)."""
        keep = pd.Series(True, index=frame.index)
        for cond in self.conditions:
            if cond.column not in frame.columns:
                raise PrivbenchError(f"selector '{self.text}': the table has no column '{cond.column}'")
            column = frame[cond.column]
            if cond.param is None:
                verdict = {v: _matches(_text(v), cond.value) for v in column.unique()}
                keep &= column.map(verdict).astype(bool)
                continue
            parsed = {v: _params(v, cond.column) for v in column.unique()}
            known = sorted({k for params in parsed.values() for k in params})
            if cond.param not in known:
                valid = ", ".join(f"{cond.key.split('.')[0]}.{k}" for k in known) or "(none: no row has parameters)"
                raise PrivbenchError(f"selector '{self.text}': unknown key '{cond.key}' (the table's "
                                     f"{cond.column} hold: {valid})")
            verdict = {v: cond.param in p and _matches(_text(p[cond.param]), cond.value) for v, p in parsed.items()}
            keep &= column.map(verdict).astype(bool)
        return keep


def _params(value: Any, column: str) -> dict[str, Any]:
    text = _text(value)
    if text in ("", "null"):
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError:
        raise PrivbenchError(f"column {column} holds {text!r}, which is not JSON") from None
    return params if isinstance(params, dict) else {}


def valid_keys() -> str:
    return ", ".join([*SELECTOR_COLUMNS, "defense.<param>", "codec.<param>"])


def parse_selector(text: str) -> Selector:
    """Parse ``key=value[,key=value...]`` into a :class:`Selector`.

    Keys are result columns (:data:`SELECTOR_COLUMNS`: ``defense``, ``codec``, ``quality``, ``strength``,
    ``split``, ``model``, ``dataset``, ...) or ``defense.<param>`` / ``codec.<param>``, matched inside the JSON of
    ``defense_params`` / ``codec_params`` (e.g. ``codec=hevc,codec.placement=input``). A value is compared as a
    number when both it and the table's value read as numbers (``strength=1`` matches 1.0), else as text. An
    unknown key, a part without ``=`` or a key given twice is a PrivbenchError naming it.
    """
    if not isinstance(text, str) or not text.strip():
        raise PrivbenchError(f"empty selector: give key=value[,key=value...] with keys from {valid_keys()}")
    conditions: list[Condition] = []
    for part in text.split(","):
        if not part.strip():
            raise PrivbenchError(f"selector '{text}': empty part between commas")
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise PrivbenchError(f"selector '{text}': '{part.strip()}' is not key=value")
        if any(c.key == key for c in conditions):
            raise PrivbenchError(f"selector '{text}': key '{key}' is given twice")
        prefix, dot, param = key.partition(".")
        if dot:
            if prefix not in PARAM_PREFIXES or not param:
                raise PrivbenchError(f"selector '{text}': unknown key '{key}' (valid keys: {valid_keys()})")
            conditions.append(Condition(key, value, PARAM_PREFIXES[prefix], param))
        elif key in SELECTOR_COLUMNS:
            conditions.append(Condition(key, value, key))
        else:
            raise PrivbenchError(f"selector '{text}': unknown key '{key}' (valid keys: {valid_keys()})")
    return Selector(text.strip(), tuple(conditions))


def _as_selector(selector: Selector | str) -> Selector:
    return selector if isinstance(selector, Selector) else parse_selector(selector)


# ---- the table -----------------------------------------------------------------------------------------------------
def prepare(frame: pd.DataFrame, source: str = "the table") -> pd.DataFrame:
    """``frame`` with text keys (``32.0`` and ``32`` alike, missing as '') and numeric values, or one
    PrivbenchError line naming ``source`` (the file the table was read from) and what is wrong: a missing column,
    a value that is not a number, a ``kind=rate`` row without a finite value (a rate is measured at every coded
    point: a NaN there is a damaged table, not a point to leave out), a row key held twice (one row per grid point,
    attack, metric and seed: :func:`privbench.results.check_unique`; seeds of one point are averaged). Idempotent."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise PrivbenchError(f"{source} is not a privbench results table (missing column '{missing[0]}')")
    out = frame.copy()
    for column in [*POINT_COLUMNS, "dataset", "attack", "metric", "kind", "seed"]:
        if column not in out.columns:
            out[column] = ""
        out[column] = [_text(v) for v in out[column]]
    try:
        out["value"] = pd.to_numeric(out["value"], errors="raise").astype("float64")
    except (ValueError, TypeError):
        bad = next((v for v in out["value"] if _as_float(v) is None), "?")
        raise PrivbenchError(f"{source}: column 'value' holds {bad!r}, not a number") from None
    rates = out[out["kind"] == "rate"]
    unmeasured = rates[~np.isfinite(rates["value"].to_numpy())]
    if not unmeasured.empty:
        example = f"{describe_point(unmeasured.iloc[0], seed=True)} = {unmeasured['value'].iloc[0]}"
        raise PrivbenchError(f"{source}: {len(unmeasured)} kind=rate rows have no finite value, e.g. {example} "
                             "(a rate is measured at every coded point)")
    check_unique(out, source)
    return out


def _as_float(value: Any) -> float | None:
    """``value`` as a float when it is one or reads as one, else None."""
    try:
        return float(value)
    except (ValueError, TypeError):
        return None


def _describe_point(row: Mapping[str, Any]) -> str:
    text = f"{row['defense']}={_text(row['strength'])}"
    if row.get("codec", "none") not in ("", "none"):
        text += f" {row['codec']}@{row['quality']}"
    return text


def _direction(kind: str, metric: str) -> bool:
    """True when a larger value is "better" for the party the metric speaks for: utility → the defender's
    task (higher is better); privacy → the attacker (higher is better when higher reveals more)."""
    if kind == "utility":
        return True
    # the built-in metrics register when privbench.metrics is imported (the part of load_components() that fills
    # METRICS; the other component packages are not needed to read a table)
    import privbench.metrics  # noqa: F401
    from privbench.registry import METRICS
    from privbench.worst_case import higher_is_leakier

    return higher_is_leakier(METRICS, metric)


# ---- curves and fronts ----------------------------------------------------------------------------------------------
def pareto_front(points: pd.DataFrame | Iterable[tuple[float, float]], higher_is_better: bool = True) -> pd.DataFrame:
    """The Pareto front of rate–metric points: those no other point dominates, sorted by rate.

    With ``higher_is_better`` (the default) it is the **upper envelope**: the points for which no other point has
    a rate ≤ and a metric ≥ (one of them strictly); the result is strictly increasing in both rate and metric.
    For a utility metric that is the best the pipeline achieves at each rate (paper 000 §VI-B takes the front of
    its (w_rec, w_cmprs, QP) points as its method's curve). For a privacy metric where higher reveals more it is
    the **most revealing** setting at each rate — the worst case for the defender, as ``attack=worst`` is over
    attacks. With ``higher_is_better=False`` (privacy metrics where lower reveals more: MSE, LPIPS) it is the lower
    envelope, strictly increasing in rate and strictly decreasing in the metric: again the most revealing.

    ``points`` is a frame with columns ``rate`` and ``value`` (other columns are kept), or (rate, value) pairs.
    """
    frame = points if isinstance(points, pd.DataFrame) else pd.DataFrame(list(points), columns=["rate", "value"])
    if frame.empty:
        return frame.copy()
    finite = np.isfinite(frame["rate"].to_numpy(float)) & np.isfinite(frame["value"].to_numpy(float))
    if not finite.all():
        raise PrivbenchError(f"pareto_front: {int((~finite).sum())} points have no finite rate or value")
    sign = 1.0 if higher_is_better else -1.0
    order = frame.assign(_score=sign * frame["value"]).sort_values(["rate", "_score"], ascending=[True, False],
                                                                    kind="mergesort")
    keep, best = [], -math.inf
    for index, score in zip(order.index, order["_score"], strict=True):
        if score > best:  # strictly better than every point of lower or equal rate
            keep.append(index)
            best = score
    return frame.loc[keep].reset_index(drop=True)


@dataclass(frozen=True)
class Curve:
    """One pipeline's rate–metric points and their Pareto front.

    ``points`` has one row per grid point (:data:`POINT_COLUMNS`, ``dataset``, ``rate``, ``value``, ``seeds``:
    how many seeds were averaged); ``front`` is :func:`pareto_front` of them in the metric's direction
    (``higher_is_better``). ``notes`` say what was left out and why."""

    label: str
    metric: str
    rate: str
    dataset: str
    attack: str
    kind: str
    higher_is_better: bool
    points: pd.DataFrame
    front: pd.DataFrame
    notes: tuple[str, ...] = ()

    @property
    def dropped(self) -> int:
        """How many points the front left out (dominated by another setting of the same pipeline)."""
        return len(self.points) - len(self.front)

    @property
    def reduction(self) -> str:
        """``7→5``: the points and the front's size."""
        return f"{len(self.points)}→{len(self.front)}"

    def rates(self) -> np.ndarray:
        return self.front["rate"].to_numpy(dtype=float)

    def values(self) -> np.ndarray:
        return self.front["value"].to_numpy(dtype=float)


def _listing(values: Iterable[Any]) -> str:
    return ", ".join(sorted({str(v) for v in values})) or "(none)"


def curve(frame: pd.DataFrame, selector: Selector | str, metric: str, rate: str = "bpp", attack: str = "worst",
          dataset: str | None = None) -> Curve:
    """The rate–``metric`` curve of the grid points ``selector`` matches.

    Per grid point (:data:`POINT_COLUMNS`) and seed the ``kind=rate`` row named ``rate`` is joined with the
    metric's row on the grid point **and the dataset**: a privacy metric on the face probes is paired with the bpp
    of coding the faces, a utility metric with the bpp of the task's test set. The pairs are then averaged over
    seeds. A utility metric is read at ``attack=none``; a privacy metric at ``attack`` (default ``worst``: the
    most revealing attack per point, see :mod:`privbench.worst_case`). When the metric is on several datasets,
    ``dataset`` must name one. Uncoded rows (``codec=none``) have no rate and are left out.

    Every way this can go wrong (no row matches, no coded point, the metric or attack or dataset missing, a
    rate ≤ 0) is one PrivbenchError naming the selector (a defect of the table itself — a rate that is not finite,
    a row key held twice — is :func:`prepare`'s); points without a finite metric value are left out with a note.
    """
    sel = _as_selector(selector)
    table = prepare(frame)
    rows = table[sel.mask(table)]
    if rows.empty:
        hints = "; ".join(f"{c.key.split('.')[0]}: {_listing(table[c.column])}" for c in sel.conditions
                          if c.param is None and c.column in table.columns)
        raise PrivbenchError(f"selector '{sel}' matches no rows" + (f" (the table's {hints})" if hints else ""))
    rated = rows[rows["kind"] == "rate"]
    if rated.empty:
        raise PrivbenchError(f"selector '{sel}' matches no coded grid point (rows with kind=rate)")
    rate_rows = rated[rated["metric"] == rate]
    if rate_rows.empty:
        raise PrivbenchError(f"selector '{sel}': no rate '{rate}' (rate metrics here: {_listing(rated['metric'])})")

    scored = rows[rows["kind"].isin(["utility", "privacy"])]
    metric_rows = scored[scored["metric"] == metric]
    if metric_rows.empty:
        other = rows[rows["metric"] == metric]
        why = f" (only as kind={_listing(other['kind'])})" if not other.empty else ""
        raise PrivbenchError(f"selector '{sel}': no utility or privacy metric '{metric}'{why} (metrics here: "
                             f"{_listing(scored['metric'])})")
    kinds = set(metric_rows["kind"])
    if len(kinds) > 1:
        raise PrivbenchError(f"metric '{metric}' is both utility and privacy in the table: cannot tell its direction")
    kind = kinds.pop()
    used_attack = "none" if kind == "utility" else attack
    by_attack = metric_rows[metric_rows["attack"] == used_attack]
    if by_attack.empty:
        raise PrivbenchError(f"selector '{sel}': no {metric} rows at attack={used_attack} (attacks here: "
                             f"{_listing(metric_rows['attack'])}); choose one with --attack")
    coded = by_attack[by_attack["codec"] != "none"]
    if coded.empty:
        raise PrivbenchError(f"selector '{sel}' matches no coded grid point with {metric} (every {metric} row "
                             "has codec=none)")
    datasets = sorted(set(coded["dataset"]))
    if dataset is not None:
        if dataset not in datasets:
            raise PrivbenchError(f"selector '{sel}': {metric} is not on dataset '{dataset}' (it is on: "
                                 f"{', '.join(datasets)})")
        chosen = dataset
    elif len(datasets) > 1:
        raise PrivbenchError(f"selector '{sel}': {metric} is on several datasets ({', '.join(datasets)}): "
                             "name one with --dataset")
    else:
        chosen = datasets[0]
    coded = coded[coded["dataset"] == chosen]
    rate_rows = rate_rows[rate_rows["dataset"] == chosen]
    if rate_rows.empty:
        raise PrivbenchError(f"selector '{sel}': no {rate} rows on dataset '{chosen}' to pair with {metric} (rate "
                             f"rows are on: {_listing(rated[rated['metric'] == rate]['dataset'])})")

    keys = [*POINT_COLUMNS, "dataset", "seed"]
    left = rate_rows.groupby(keys, sort=False, dropna=False)["value"].mean().rename("rate")
    right = coded.groupby(keys, sort=False, dropna=False)["value"].mean().rename("value")
    paired = pd.concat([left, right], axis=1, join="inner").reset_index()
    notes: list[str] = []
    unpaired = len(right) - len(paired)
    if unpaired:
        notes.append(f"{sel}: {unpaired} (point, seed) {metric} values without a {rate} row were left out")
    if paired.empty:
        raise PrivbenchError(f"selector '{sel}': no grid point has both {rate} and {metric} on {chosen}")
    bad_rate = paired["rate"].notna() & np.isfinite(paired["rate"]) & (paired["rate"] <= 0)
    if bad_rate.any():
        example = paired[bad_rate].iloc[0]
        raise PrivbenchError(f"selector '{sel}': {rate} must be positive (a log rate axis), but "
                             f"{_describe_point(example)} has {example['rate']:g}")
    finite = np.isfinite(paired["rate"]) & np.isfinite(paired["value"])
    if not finite.all():
        notes.append(f"{sel}: {int((~finite).sum())} (point, seed) pairs without a finite {rate} or {metric} "
                     "were left out")
        paired = paired[finite]
    if paired.empty:
        raise PrivbenchError(f"selector '{sel}': no grid point has a finite {rate} and {metric} on {chosen}")
    grouped = paired.groupby([*POINT_COLUMNS, "dataset"], sort=False, dropna=False)
    points = grouped[["rate", "value"]].mean()
    points["seeds"] = grouped["seed"].nunique()
    points = points.reset_index().sort_values(["rate", "value"], kind="mergesort").reset_index(drop=True)
    higher = _direction(kind, metric)
    front = pareto_front(points, higher_is_better=higher)
    return Curve(sel.text, metric, rate, chosen, used_attack, kind, higher, points, front, tuple(notes))


# ---- BD values ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BDResult:
    """BD values of ``test`` against ``anchor`` (None when they cannot be computed; ``notes`` say why).

    ``bd_rate``: % bit-rate difference at equal metric (negative = the test needs fewer bits);
    ``bd_metric``: mean metric difference test − anchor at equal log rate (positive = the test is higher).
    ``overlap_metric`` / ``overlap_rate``: the fraction of the union of the two fronts' ranges that both cover,
    on the metric axis (BD-rate's integral) and on the log10-rate axis (BD-metric's), as ``bjontegaard`` computes
    it."""

    anchor: Curve
    test: Curve
    method: str
    bd_rate: float | None
    bd_metric: float | None
    overlap_metric: float | None
    overlap_rate: float | None
    notes: tuple[str, ...] = ()

    @property
    def computed(self) -> bool:
        return self.bd_rate is not None or self.bd_metric is not None


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(overlap fraction, common low, common high) of the ranges of ``a`` and ``b`` — ``bjontegaard``'s own
    definition: common length / union length."""
    low, high = max(a.min(), b.min()), min(a.max(), b.max())
    total = max(a.max(), b.max()) - min(a.min(), b.min())
    return (max(high - low, 0.0) / total if total > 0 else 0.0), low, high


def _span(values: np.ndarray) -> str:
    return f"{values.min():.4g}–{values.max():.4g}"


def _delta(label: str, axis: str, anchor_axis: np.ndarray, test_axis: np.ndarray, overlap: float, min_overlap: float,
           compute: Callable[[], float], log: bool = False) -> tuple[float | None, list[str]]:
    """One Bjøntegaard delta (``compute()``) guarded by the overlap of the two curves on the axis it integrates
    over: none → no value and a note naming both ranges; below ``min_overlap`` → the value and a warning note;
    a non-finite answer → no value and a note (never NaN)."""
    if overlap == 0:
        return None, [f"{label}: no overlap in {axis}: anchor {_span(anchor_axis)}, test {_span(test_axis)}"]
    notes = []
    if overlap < min_overlap:
        scale = "log " if log else ""
        notes.append(f"{label}: the {scale}{axis} ranges overlap only {100 * overlap:.0f} % "
                     f"(< {100 * min_overlap:.0f} %): "
                     f"anchor {_span(anchor_axis)}, test {_span(test_axis)}; the value averages over the common part")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overlap is reported in our words
        value = float(compute())
    if not math.isfinite(value):
        return None, [*notes, f"{label}: bjontegaard gave no finite value ({value})"]
    return value, notes


def bd(anchor: Curve, test: Curve, method: str = "pchip", min_overlap: float = DEFAULT_MIN_OVERLAP) -> BDResult:
    """BD-rate and BD-metric of ``test`` against ``anchor`` (Bjøntegaard, VCEG-M33) on their Pareto fronts.

    The values are exactly ``bjontegaard.bd_rate`` / ``bjontegaard.bd_psnr`` called on the two fronts (with
    ``require_matching_points=False``: fronts rarely have the same size). Before calling, this checks what the
    package would otherwise answer with NaN or an exception: each front has the points ``method`` needs
    (:data:`METHOD_MIN_POINTS`: pchip 2, akima 2, cubic 4); the fronts overlap on the metric axis (for BD-rate)
    and on the log10-rate axis (for BD-metric). No overlap → that value is None with a note such as "no overlap
    in accuracy: anchor 0.31–0.52, test 0.60–0.71"; an overlap below ``min_overlap`` → the value and a warning
    note. The curves must be of the same metric, rate, dataset and attack.
    """
    if method not in METHOD_MIN_POINTS:
        raise PrivbenchError(f"unknown BD interpolation method '{method}' (choose from {', '.join(METHODS)})")
    if not 0.0 <= min_overlap <= 1.0:
        raise PrivbenchError(f"min_overlap must be between 0 and 1, got {min_overlap:g}")
    for what in ("metric", "rate", "dataset", "attack"):
        if getattr(anchor, what) != getattr(test, what):
            raise PrivbenchError(f"cannot compare curves of different {what}s: anchor '{anchor.label}' has "
                                 f"{getattr(anchor, what)}, test '{test.label}' has {getattr(test, what)}")
    metric = anchor.metric
    needed = METHOD_MIN_POINTS[method]
    short = [f"{who} front has {len(c.front)} point{'s' if len(c.front) != 1 else ''}"
             for who, c in (("anchor", anchor), ("test", test)) if len(c.front) < needed]
    if short:
        hint = " (pchip or akima need 2)" if method == "cubic" else ""
        note = f"{metric}: too few points for {method}, which needs {needed} per curve: {'; '.join(short)}{hint}"
        return BDResult(anchor, test, method, None, None, None, None, (note,))

    import bjontegaard

    # bjontegaard interpolates rate over metric for BD-rate, so both arrays go in metric order (a lower envelope
    # is decreasing in the metric, which its interpolate() would refuse in rate order); BD-metric in rate order.
    # The integrals are the same for any order of the same points.
    a_by_m, t_by_m = anchor.front.sort_values("value"), test.front.sort_values("value")
    ra, ma = a_by_m["rate"].to_numpy(float), a_by_m["value"].to_numpy(float)
    rt, mt = t_by_m["rate"].to_numpy(float), t_by_m["value"].to_numpy(float)
    over_m, _, _ = _overlap(ma, mt)
    bd_rate, notes = _delta("BD-rate", metric, ma, mt, over_m, min_overlap, lambda: bjontegaard.bd_rate(
        ra, ma, rt, mt, method=method, require_matching_points=False, min_overlap=min_overlap))
    ra, ma, rt, mt = anchor.rates(), anchor.values(), test.rates(), test.values()
    over_r, _, _ = _overlap(np.log10(ra), np.log10(rt))
    bd_metric, more = _delta(f"BD-{metric}", anchor.rate, ra, rt, over_r, min_overlap, lambda: bjontegaard.bd_psnr(
        ra, ma, rt, mt, method=method, require_matching_points=False, min_overlap=min_overlap), log=True)
    return BDResult(anchor, test, method, bd_rate, bd_metric, over_m, over_r, tuple(notes + more))


def interpolation_weights(x: np.ndarray, at: float) -> np.ndarray:
    """Weights ``w`` with ``w @ y`` = the piecewise-linear interpolation at ``at`` of the points (``x``, ``y``), in
    the order given; points at the same ``x`` are averaged; outside the range the nearest end is held."""
    x = np.asarray(x, float)
    levels, group = np.unique(x, return_inverse=True)
    averaging = np.zeros((len(levels), len(x)))
    averaging[group, np.arange(len(x))] = 1.0
    averaging /= averaging.sum(axis=1, keepdims=True)
    basis = np.array([np.interp(at, levels, np.eye(len(levels))[j]) for j in range(len(levels))])
    return basis @ averaging


def mean_gap_weights(x_a: np.ndarray, x_b: np.ndarray, samples: int = 257) -> tuple[np.ndarray, np.ndarray] | None:
    """Weights (``w_a``, ``w_b``) with ``w_a @ y_a − w_b @ y_b`` = the Bjøntegaard-style mean vertical gap of two
    curves over the x range both cover (VCEG-M33's BD-metric, with linear interpolation between the measured points
    instead of a fitted cubic: the curves need not be monotonic); None when the ranges do not overlap. The mean is
    the trapezoid integral over ``samples`` evenly spaced x values divided by the range, exact for linear pieces up to
    the position of their joints on that grid."""
    _, low, high = _overlap(np.asarray(x_a, float), np.asarray(x_b, float))
    if not high > low:
        return None
    grid = np.linspace(low, high, samples)
    step = np.full(samples, 1.0 / (samples - 1))
    step[[0, -1]] /= 2
    w_a = sum(s * interpolation_weights(x_a, g) for s, g in zip(step, grid, strict=True))
    w_b = sum(s * interpolation_weights(x_b, g) for s, g in zip(step, grid, strict=True))
    return w_a, w_b


# ---- tables and plots --------------------------------------------------------------------------------------------
@dataclass
class BDReport:
    """What ``privbench bd`` prints and writes: the table, every curve per metric (anchor first), the notes."""

    table: pd.DataFrame
    curves: dict[str, list[Curve]] = field(default_factory=dict)
    results: list[BDResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def computed(self) -> int:
        """How many BD values (BD-rate or BD-metric) were computed."""
        return sum((r.bd_rate is not None) + (r.bd_metric is not None) for r in self.results)


def rate_column(metric: str) -> str:
    return f"bd_rate_{metric} (%)"


def metric_column(metric: str) -> str:
    return f"bd_{metric}"


def _dataset_for(dataset: str | Mapping[str, str] | None, metric: str, kind: str) -> str | None:
    if isinstance(dataset, Mapping):
        return dataset.get(metric)
    # a single name is the probe set of the privacy metrics; a utility metric is on the task's test set
    return dataset if kind == "privacy" else None


def _metric_kind(frame: pd.DataFrame, metric: str) -> str:
    kinds = set(frame.loc[(frame["metric"] == metric) & frame["kind"].isin(["utility", "privacy"]), "kind"])
    if not kinds:
        raise PrivbenchError(f"no utility or privacy metric '{metric}' in the table (metrics: "
                             f"{_listing(frame.loc[frame['kind'].isin(['utility', 'privacy']), 'metric'])})")
    return "utility" if kinds == {"utility"} else "privacy"


def bd_report(frame: pd.DataFrame, anchor_sel: Selector | str, test_sels: Sequence[Selector | str],
              metrics: Sequence[str] = ("accuracy",), rate: str = "bpp", method: str = "pchip",
              attack: str = "worst", dataset: str | Mapping[str, str] | None = None,
              min_overlap: float = DEFAULT_MIN_OVERLAP) -> BDReport:
    """BD values of every test pipeline against the anchor for every metric (see :func:`bd_table`)."""
    if method not in METHOD_MIN_POINTS:
        raise PrivbenchError(f"unknown BD interpolation method '{method}' (choose from {', '.join(METHODS)})")
    if not test_sels:
        raise PrivbenchError("give at least one test selector")
    if not metrics:
        raise PrivbenchError("give at least one metric")
    if len(set(metrics)) != len(metrics):
        raise PrivbenchError(f"a metric is given twice: {', '.join(metrics)}")
    table = prepare(frame)
    anchor_s = _as_selector(anchor_sel)
    tests = [_as_selector(s) for s in test_sels]
    report = BDReport(pd.DataFrame())
    rows: list[dict[str, Any]] = [{"test": t.text, "anchor": anchor_s.text} for t in tests]
    points: list[list[str]] = [[] for _ in tests]
    row_notes: list[list[str]] = [[] for _ in tests]
    for metric in metrics:
        kind = _metric_kind(table, metric)
        chosen = _dataset_for(dataset, metric, kind)
        anchor = curve(table, anchor_s, metric, rate, attack, chosen)
        chosen = anchor.dataset  # the tests are read on the anchor's dataset
        curves = [anchor]
        for i, sel in enumerate(tests):
            test = curve(table, sel, metric, rate, attack, chosen)
            curves.append(test)
            result = bd(anchor, test, method, min_overlap)
            report.results.append(result)
            rows[i][rate_column(metric)] = result.bd_rate if result.bd_rate is not None else np.nan
            rows[i][metric_column(metric)] = result.bd_metric if result.bd_metric is not None else np.nan
            reduction = f"anchor {anchor.reduction}, test {test.reduction}"
            points[i].append(reduction if len(metrics) == 1 else f"{metric}: {reduction}")
            row_notes[i].extend(result.notes)
        report.curves[metric] = curves
        where = f"{chosen}" + (f", attack={anchor.attack}" if kind == "privacy" else "")
        for c in curves:
            report.notes.extend(c.notes)
            if c.dropped:
                report.notes.append(f"{metric} ({where}) '{c.label}': {len(c.points)} points -> Pareto front of "
                                    f"{len(c.front)} ({c.dropped} dominated point{'s' if c.dropped != 1 else ''} "
                                    f"dropped)")
    for i, t in enumerate(tests):
        rows[i]["points"] = "; ".join(points[i])
        rows[i]["method"] = method
        rows[i]["note"] = "; ".join(row_notes[i])
        report.notes.extend(f"test '{t.text}': {n}" for n in row_notes[i])
    columns = ["test", "anchor", *[c for m in metrics for c in (rate_column(m), metric_column(m))], "points",
               "method", "note"]
    report.table = pd.DataFrame(rows, columns=columns)
    return report


def bd_table(frame: pd.DataFrame, anchor_sel: Selector | str, test_sels: Sequence[Selector | str],
             metrics: Sequence[str] = ("accuracy",), rate: str = "bpp", method: str = "pchip", attack: str = "worst",
             dataset: str | Mapping[str, str] | None = None,
             min_overlap: float = DEFAULT_MIN_OVERLAP) -> pd.DataFrame:
    """A BD table shaped like paper 000's Tables I and III: one row per test pipeline against one anchor.

    Columns: ``test``, ``anchor`` (the selectors), then per metric ``bd_rate_<metric> (%)`` (negative = the test
    needs fewer bits at equal metric) and ``bd_<metric>`` (positive = the test's metric is higher at equal rate;
    for privacy metrics where higher reveals more that is *more leakage*), ``points`` (each curve's points → its
    Pareto front, e.g. "anchor 7→5, test 9→4"), ``method`` and ``note`` (why a value is missing, overlap
    warnings). A value that cannot be computed is NaN *with* its note — never silently. ``dataset`` names the probe
    set of the privacy metrics (utility metrics are read on the task's test set), or maps metric → dataset.
    """
    return bd_report(frame, anchor_sel, test_sels, metrics, rate, method, attack, dataset, min_overlap).table


def plot_fronts(curves: Sequence[Curve], path: Path, log_rate: bool = True, title: str | None = None,
                labels: Sequence[str] | None = None) -> Path:
    """Draw rate–metric curves to a PNG at ``path`` (written atomically): every grid point faint, each
    pipeline's Pareto front as a line with markers, one colour per pipeline; log rate axis by default (BD
    values are taken on log10 rate)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from privbench.cache import atomic_write_bytes

    if not curves:
        raise PrivbenchError("no curve to plot")
    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colours = [f"C{i % 10}" for i in range(len(curves))]
    markers = "osD^v<>P*X"
    names = list(labels) if labels is not None else [c.label for c in curves]
    for i, (c, colour, name) in enumerate(zip(curves, colours, names, strict=True)):
        ax.scatter(c.points["rate"], c.points["value"], color=colour, alpha=0.25, s=18, linewidths=0)
        ax.plot(c.front["rate"], c.front["value"], color=colour, marker=markers[i % len(markers)], markersize=5,
                label=f"{name} ({c.reduction})")
    first = curves[0]
    if log_rate:
        ax.set_xscale("log")
    ax.set_xlabel(f"{first.rate}" + (" (log)" if log_rate else ""))
    leak = "" if first.kind == "utility" else (", higher = leakier" if first.higher_is_better else ", lower = leakier")
    ax.set_ylabel(f"{first.metric} ({first.kind}{leak})")
    where = first.dataset + (f", attack={first.attack}" if first.kind == "privacy" else "")
    ax.set_title(title or f"{first.metric} vs {first.rate} on {where}: Pareto fronts (faint: all points)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path
