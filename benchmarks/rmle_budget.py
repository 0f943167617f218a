"""rMLE's budget (iterations, step size, stopping at a plateau of its own loss) on the embedded default benchmark
(issue 28, "cheaper to the same strength").

rMLE of the default run (λ_TV 1, by-depth lr) is run through the engine (:func:`privbench.grid.rows_of`:
the same attacker view, caches and metrics as ``privbench run``) against the default task model, undefended and
under noise σ 0.5 and dropout 0.5, at several iteration budgets, step sizes and plateau tolerances
(:func:`privbench.attacks.rmle.at_plateau`). Prints mean PSNR over all probes, face PSNR and face-id per
point, and the seconds each took, and writes ``results/convergence/rmle_budget.csv``.

    .venv/bin/python benchmarks/rmle_budget.py [--cache-dir DIR] [--iterations 100,200,400]
"""

from __future__ import annotations

import argparse

from point_scores import measure, save  # beside this script

from privbench.cache import Cache, default_cache_dir
from privbench.config import ComponentConfig, config_data, load_config


def schedule_config() -> dict:
    data = config_data(None)
    data.update(name="rmle-schedule", metrics=["psnr", "face-id"],
                defenses=[{"name": "noise", "params": {"distribution": "gaussian", "placement": "features"},
                           "strengths": [0.0, 0.5]},
                          {"name": "dropout", "params": {"rescale": False, "placement": "features"},
                           "strengths": [0.5]}])
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument("--iterations", default="100,150,200,400")
    parser.add_argument("--lrs", default="-1", help="comma-separated lr values (-1 = by split depth)")
    parser.add_argument("--plateaus", default="0", help="comma-separated plateau tolerances (0 = off)")
    parser.add_argument("--settings", default="", help="comma-separated setting labels to run (default: all)")
    parser.add_argument("--out", default="results/convergence")
    args = parser.parse_args()

    from privbench.engine.inputs import inputs_for
    from privbench.grid import group_settings

    default = next(a.params for a in load_config().attacks if a.name == "rmle")
    bench = inputs_for(load_config(None, schedule_config()), Cache(args.cache_dir))
    rows = []
    chosen = [s for s in group_settings(bench) if not args.settings or s.label in args.settings.split(",")]
    grid = [(int(i), float(lr), float(plateau)) for i in args.iterations.split(",") for lr in args.lrs.split(",")
            for plateau in args.plateaus.split(",")]
    for setting in chosen:
        for iterations, lr, plateau in grid:
            params = {**default, "iterations": iterations, "lr": lr, "plateau": plateau}
            rows.append(measure(bench, setting, ComponentConfig("rmle", params), iterations=iterations, lr=lr,
                                plateau=plateau))
    save(rows, args.out, "rmle_budget.csv")


if __name__ == "__main__":
    main()
