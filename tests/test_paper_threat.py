"""Each defense under the threat model its paper assumes (issue 31): the worst case within the paper's observers
beside the worst case over every attack, in the rows, the report's table and the config's reserved labels."""

from __future__ import annotations

import pandas as pd
import pytest

from privbench.components import load_components
from privbench.config import load_config
from privbench.errors import PrivbenchError
from privbench.metrics.base import Score
from privbench.ranking import paper_threat_summary
from privbench.registry import DEFENSES, METRICS
from privbench.results import COLUMNS, base_row
from privbench.threat import Access
from privbench.worst_case import PAPER_WORST, WORST, add_paper_worst_case, add_worst_case

ACCESS = {"rmle": "white-box", "inverse-net": "black-box", "shadow": "query-free"}
#: face-id rank-1 per (defense, attack): PATROL's white-box attack is the strongest, outside its paper's threat model
LEAK = {("noise", "rmle"): 0.7, ("noise", "inverse-net"): 0.6, ("noise", "shadow"): 0.2,
        ("pruning", "rmle"): 0.6, ("pruning", "inverse-net"): 0.3, ("pruning", "shadow"): 0.1}


def frame(seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        for defense in ("noise", "pruning"):
            strength = 0.0 if defense == "noise" else 0.0004
            common = dict(seed=seed, model="m", split="relu12", defense=defense, defense_params="{}",
                          strength=strength, codec="none", codec_params="", quality="", seconds=0.0)
            score = Score.from_proportion(90 - seed, 100, 0.95)
            rows.append(base_row(**common, dataset="scenes", attack="none", metric="accuracy", kind="utility",
                                 value=score.value, ci_low=score.ci_low, ci_high=score.ci_high,
                                 ci_method=score.ci_method, n=score.n))
            for attack in ACCESS:
                score = Score.from_proportion(int(LEAK[(defense, attack)] * 200) + seed, 200, 0.95)
                rows.append(base_row(**common, dataset="faces", attack=attack, metric="face-id", kind="privacy",
                                     value=score.value, ci_low=score.ci_low, ci_high=score.ci_high,
                                     ci_method=score.ci_method, n=score.n))
    return pd.DataFrame(rows, columns=COLUMNS)


def threats() -> dict[str, list[str]]:
    load_components()
    return {name: [a.value for a in DEFENSES.get(name).paper_threat] for name in ("noise", "pruning")}


def test_the_papers_declare_their_observers():
    load_components()
    assert DEFENSES.get("pruning").paper_threat == (Access.BLACK_BOX, Access.QUERY_FREE)
    assert DEFENSES.get("perturbation").paper_threat == (Access.QUERY_FREE,)
    assert DEFENSES.get("obfuscator").paper_threat == (Access.BLACK_BOX, Access.QUERY_FREE)
    assert DEFENSES.get("autoencoder").paper_threat == (Access.WHITE_BOX, Access.BLACK_BOX)
    assert DEFENSES.get("noise").paper_threat == ()  # a generic defense: every attack
    for name in ("pruning", "perturbation", "obfuscator", "autoencoder"):
        assert DEFENSES.get(name).paper_threat_source.startswith("paper 00")


def test_the_worst_case_within_the_papers_threat_model_leaves_out_the_attacks_it_does_not_consider():
    rows = add_paper_worst_case(add_worst_case(frame(), METRICS), METRICS, threats(), ACCESS)
    within = rows[rows["attack"] == PAPER_WORST]
    assert set(within["defense"]) == {"pruning"}  # noise declares no paper threat model
    assert (within["value"] == rows[(rows["defense"] == "pruning") & (rows["attack"] == "inverse-net")]
            .sort_values("seed")["value"].to_numpy()).all()
    worst = rows[(rows["attack"] == WORST) & (rows["defense"] == "pruning")]
    assert (worst["value"].to_numpy() > within.sort_values("seed")["value"].to_numpy()).all()  # rmle's, outside
    # idempotent, and the worst over all attacks never picks a derived row
    again = add_worst_case(add_paper_worst_case(rows, METRICS, threats(), ACCESS), METRICS)
    assert len(again) == len(rows)
    assert (again[again["attack"] == WORST]["value"].to_numpy() == rows[rows["attack"] == WORST]["value"].to_numpy()).all()


def test_the_report_table_shows_both_worst_cases_per_setting():
    rows = add_paper_worst_case(add_worst_case(frame(), METRICS), METRICS, threats(), ACCESS)
    table = paper_threat_summary(rows)
    assert list(table["setting"]) == ["pruning 0.0004"]
    assert table["the paper's observers"].iloc[0] == "black-box, query-free"
    within = float(table["face-id (faces) within"].iloc[0].split()[0])
    every = float(table["face-id (faces) all attacks"].iloc[0].split()[0])
    assert within == pytest.approx(0.305, abs=0.01) and every == pytest.approx(0.605, abs=0.01)
    assert paper_threat_summary(add_worst_case(frame(), METRICS)).empty  # no worst-paper rows, no table


def test_an_attack_may_not_take_a_derived_rows_label(tmp_path):
    from conftest import SMALL

    data = {**SMALL, "attacks": [{"name": "rmle", "label": PAPER_WORST}]}
    with pytest.raises(PrivbenchError, match="names another attack"):
        load_config(None, data)
