"""Measure the regression gate on the quick preset: unchanged code under new seeds must pass, a weakened
defense or attack must fail, naming the points.

    .venv/bin/python benchmarks/gate_check.py [--baseline results/baselines/quick.csv] [--cache-dir DIR] [--seeds 5,6]

Runs: seeds 3 and 4 unchanged; seed 3 with every noise σ scaled by 0.5 (a weaker defense: more leakage);
seed 3 with the attacks at a quarter of their budget (a weaker attack: the benchmark under-reports leakage,
which the gate cannot see as a regression — it is printed to show that). Too slow for the test suite
(~2-3 min a run on a 2-core CPU), so it is a script; the report of issue 11 quotes its output.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from privbench.cache import Cache
from privbench.config import config_data, load_config
from privbench.regress import compare, format_verdict, read_table
from privbench.sweep import run_benchmark

QUICK = Path(__file__).resolve().parents[1] / "presets" / "quick.yaml"


def weakened_defense(data: dict) -> dict:
    defenses = [{**d, "strengths": [s * 0.5 for s in d["strengths"]]} for d in data["defenses"]]
    return {"defenses": defenses}


def weakened_attack(data: dict) -> dict:
    budgets = {"epochs": 4, "iterations": 4}
    attacks = []
    for entry in data["attacks"]:
        params = dict(entry.get("params") or {})
        for key, factor in budgets.items():
            if key in params:
                params[key] = max(1, int(params[key]) // factor)
        attacks.append({**entry, "params": params})
    return {"attacks": attacks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=Path("results/baselines/quick.csv"))
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--seeds", default="3,4", help="seeds of the unchanged runs (the first also runs weakened); "
                        "not among the baseline's")
    args = parser.parse_args()
    first, *others = [int(s) for s in args.seeds.split(",")]
    baseline = read_table(args.baseline, "baseline")
    data = config_data(QUICK)
    cases = [(f"seed {s}", {"seed": s}) for s in (first, *others)]
    cases += [(f"seed {first}, noise σ × 0.5", {"seed": first, **weakened_defense(data)}),
              (f"seed {first}, attacks at 1/4 budget", {"seed": first, **weakened_attack(data)})]
    cache = Cache(args.cache_dir)
    for label, overrides in cases:
        started = time.perf_counter()
        output = run_benchmark(load_config(QUICK, overrides), cache, progress=False)
        frame = output.frame.copy()
        if "defenses" in overrides:  # compare the weakened sweep at the baseline's nominal strengths
            frame["strength"] = frame["strength"] * 2.0
            frame["defense_params"] = baseline.set_index(["strength"])["defense_params"].groupby(level=0).first() \
                .reindex(frame["strength"]).to_numpy()
        verdict = compare(frame, baseline)
        print(f"== {label} ({time.perf_counter() - started:.0f}s): {'PASS' if verdict.ok else 'FAIL'}")
        table = verdict.table
        widths = table["half_width_base"] + table["half_width_now"]
        ratios = {k: (table["worse_by"] / (k * table["spread"] + widths).clip(lower=table["floor"])).max()
                  for k in (1.0, 1.5, 2.0)}
        print("   largest bad-way move / (k × spread + CIs), k=1, 1.5, 2: "
              + ", ".join(f"{v:.2f}" for v in ratios.values()))
        print(format_verdict(verdict))


if __name__ == "__main__":
    main()
