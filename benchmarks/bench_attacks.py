"""Throughput of each attack's fit and reconstruct on the embedded default benchmark (issue 15, "Performance").

The default task model (vgg-small, relu12, no defense; cached in ``--cache-dir``), the default run's attacker data
and probes; each attack of the default config is fitted and
reconstructs every probe, outside the cache; FORA (not in the default run) at its registered budget, with and
without the discriminator. Reports fit time, fit throughput (training images × epochs per
second; for the substitute-front attacks the substitute's and the decoder's epochs), and reconstruct images/s.

    .venv/bin/python benchmarks/bench_attacks.py [--cache-dir DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from privbench.cache import Cache, default_cache_dir
from privbench.config import load_config
from privbench.device import seed_everything
from privbench.threat import attacker_view


def image_epochs(name: str, params: dict, data: int, task: int) -> int:
    """Training images × epochs the fit processes (0 for an attack that learns nothing)."""
    if name == "inverse-net":
        return data * params["epochs"]
    if name in ("shadow", "fora"):
        substitute = task * (params["epochs"] + params.get("warmup_epochs", 0) * params.get("sign_search", 0))
        return substitute + (data * params["decoder_epochs"] if params["then"] == "inverse-net" else 0)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from privbench.engine.inputs import inputs_for
    from privbench.registry import ATTACKS

    config = load_config()
    bench = inputs_for(config, Cache(args.cache_dir))
    model = bench.model
    data, task_data, task_labels = bench.attacker_images
    probes = torch.cat([p.floats() for p in bench.probes])
    intercepted = model.features(bench.task_test.floats())
    features = model.features(probes)
    entries = [(a.name, a.params) for a in config.attacks]
    entries += [("fora", {"alignment": 1.0}), ("fora", {})]  # MMD only, and the paper's a = 0.8 with a discriminator
    print(f"default task model ({config.model.split}), {len(data)} attacker images ({len(task_data)} of the task's "
          f"kind), {len(probes)} probes, {torch.get_num_threads()} threads")
    print("| attack | params | fit (s) | fit images·epochs/s | reconstruct images/s |")
    print("| --- | --- | --- | --- | --- |")
    for name, params in entries:
        attack = ATTACKS.create(name, **params)
        view = attacker_view(attack.access, model, data, bench.device, 0, task_data=task_data,
                             task_labels=task_labels, intercepted=intercepted)
        seed_everything(0)
        t0 = time.perf_counter()
        attack.fit(view)
        fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        attack.reconstruct(features)
        reconstruct = time.perf_counter() - t0
        work = image_epochs(name, attack.params, len(data), len(task_data))
        rate = f"{work / fit:.0f}" if work else "–"
        shown = dict(params)
        print(f"| {name} | {shown} | {fit:.1f} | {rate} | {len(probes) / reconstruct:.0f} |", flush=True)


if __name__ == "__main__":
    main()
