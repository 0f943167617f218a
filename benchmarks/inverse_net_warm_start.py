"""The inverse network of a defended setting warm-started from the undefended setting's decoder (issue 28,
"cheaper to the same strength": what an adaptive attacker would do), against the cold start it would replace.

For every setting of the embedded default benchmark but the undefended one, the default run's inverse network
(residual decoder, 8 epochs, cold) is compared with the same network started from its fit against the undefended
pipeline and trained ``warm_start_epochs`` more epochs, through the engine (:func:`privbench.grid.rows_of`: the
same attacker view, caches and metrics as ``privbench run``). Prints PSNR over all probes, face PSNR and face-id per
setting and variant, and the seconds the attack's fit took (the shared undefended fit is computed first and not
counted), and writes ``results/convergence/inverse_net_warm_start.csv``. A warm start may replace the cold one only
where it reconstructs at least as well.

    .venv/bin/python benchmarks/inverse_net_warm_start.py [--cache-dir DIR] [--warm-epochs 2,4] [--settings L1,L2]
"""

from __future__ import annotations

import argparse

from point_scores import measure, save  # beside this script

from privbench.cache import Cache, default_cache_dir
from privbench.config import ComponentConfig, load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument("--warm-epochs", default="2,4")
    parser.add_argument("--settings", default="", help="comma-separated setting labels (default: every defended one)")
    parser.add_argument("--out", default="results/convergence")
    args = parser.parse_args()

    from privbench.engine.inputs import inputs_for
    from privbench.grid import group_settings, rows_of

    config = load_config()
    base = next(a for a in config.attacks if a.name == "inverse-net")
    inputs = inputs_for(config, Cache(args.cache_dir))
    settings = group_settings(inputs)
    undefended = next(s for s in settings if s.defense.is_identity() and s.codec is None)
    rows_of(inputs, undefended, base)  # the undefended fit every warm start begins from
    chosen = [s for s in settings if s is not undefended and (not args.settings or s.label in args.settings.split(","))]
    variants = [("cold", 0)] + [(f"warm {e}", int(e)) for e in args.warm_epochs.split(",")]
    rows = []
    for setting in chosen:
        rows_of(inputs, setting, None)  # the setting's pipeline (a trained defense's fit) outside the timing
        for name, epochs in variants:
            attack = ComponentConfig(base.name, {**base.params, "warm_start_epochs": epochs})
            rows.append(measure(inputs, setting, attack, variant=name))
    table = save(rows, args.out, "inverse_net_warm_start.csv")
    cold = table[table.variant == "cold"].set_index("setting")
    for name, _ in variants[1:]:
        warm = table[table.variant == name].set_index("setting")
        gain = warm["face_psnr"] - cold["face_psnr"]
        print(f"{name}: face PSNR vs cold mean {gain.mean():+.2f} dB, min {gain.min():+.2f} dB "
              f"({gain.idxmin()}); fit seconds {warm['seconds'].sum():.0f} vs {cold['seconds'].sum():.0f}")


if __name__ == "__main__":
    main()
