"""Worst case over attacks: privacy of a setting is what the *strongest* configured attack achieves.

DESIGN §1 ("Adaptive attacker by default"): for every defense setting the report shows, next to each
attack, an ``attack=worst`` row per privacy metric holding the value of the most revealing attack — the
largest value for metrics where higher means more is revealed (PSNR, SSIM, identification accuracy), the
smallest otherwise (MSE). The row copies that attack's confidence interval, n and CI method, so the worst
case is reported with the uncertainty of the attack that produced it; the plots draw it dashed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from privbench.registry import Registry
from privbench.results import WORST_CASE_GROUP

WORST = "worst"
#: the worst case within the threat model of the defense's paper (:attr:`privbench.defenses.base.Defense.paper_threat`)
PAPER_WORST = "worst-paper"
#: attack labels that are derived rows, not attacks
DERIVED = (WORST, PAPER_WORST)


def higher_is_leakier(metrics_registry: Registry, name: str) -> bool:
    """Whether a larger value of metric ``name`` means more is revealed (unknown metrics: True)."""
    if name in metrics_registry:
        return bool(getattr(metrics_registry.get(name), "higher_is_leakier", True))
    return True


def add_worst_case(frame: pd.DataFrame, metrics_registry: Registry) -> pd.DataFrame:
    """``frame`` plus one ``attack=worst`` row per (grid point, privacy metric) that has ≥ 1 attack.

    The new row is a copy of the most revealing attack's row (so every column — run id, CI, n,
    ci_method — stays compatible) with ``attack`` set to ``worst``. Existing ``worst`` rows are replaced,
    so the function is idempotent. NaN values never win.
    """
    if frame.empty or "kind" not in frame.columns:
        return frame
    frame = frame.reset_index(drop=True)  # rows are picked by index label below: labels must be unique
    base = frame[frame["attack"] != WORST]
    privacy = base[(base["kind"] == "privacy") & base["value"].notna() & ~base["attack"].isin(DERIVED)]
    if privacy.empty:
        return base.reset_index(drop=True)
    return pd.concat([base, _most_revealing(privacy, metrics_registry, WORST)], ignore_index=True)


def _most_revealing(privacy: pd.DataFrame, metrics_registry: Registry, label: str) -> pd.DataFrame:
    """Per (grid point, metric) group of ``privacy`` rows, a copy of the most revealing one, labelled ``label``."""
    keys = [c for c in WORST_CASE_GROUP if c in privacy.columns]
    chosen = []
    # dropna=False: empty-string / missing key fields (e.g. quality) still form groups
    for _, group in privacy.groupby(keys, sort=False, dropna=False):
        metric = group["metric"].iloc[0]
        values = pd.to_numeric(group["value"], errors="coerce")
        best = values.idxmax() if higher_is_leakier(metrics_registry, metric) else values.idxmin()
        chosen.append(best)
    worst = privacy.loc[chosen].copy()
    worst["attack"] = label
    return worst


def add_paper_worst_case(frame: pd.DataFrame, metrics_registry: Registry, threats: Mapping[str, Iterable[str]],
                         access: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` plus one ``attack=worst-paper`` row per (grid point, privacy metric) of a defense whose paper
    declares a threat model: the most revealing of the attacks whose access level it names.

    ``threats`` maps a defense name to the access levels its paper considers (``"white-box"``, ``"black-box"``,
    ``"query-free"``; :attr:`~privbench.defenses.base.Defense.paper_threat`), ``access`` an attack column (label or
    name) to its access level. Defenses not in ``threats`` get no such row; nor does a point none of whose attacks
    is within the paper's threat model. Existing ``worst-paper`` rows are replaced (idempotent)."""
    if frame.empty or "kind" not in frame.columns:
        return frame
    frame = frame[frame["attack"] != PAPER_WORST].reset_index(drop=True)
    allowed = {defense: set(levels) for defense, levels in threats.items() if levels}
    within = pd.Series([defense in allowed and access.get(attack) in allowed[defense]
                        for defense, attack in zip(frame["defense"], frame["attack"], strict=True)], index=frame.index)
    privacy = frame[within & (frame["kind"] == "privacy") & frame["value"].notna()]
    if privacy.empty:
        return frame
    return pd.concat([frame, _most_revealing(privacy, metrics_registry, PAPER_WORST)], ignore_index=True)
