"""How well does the query-free shadow g1 stand in for the real front f1? (issue 3, shadow diagnosis)

He, Zhang & Lee's query-free attack trains a substitute front g1 through the frozen back with the task
loss only; it works when the back pins g1 down to (nearly) f1. This script measures that directly on the
embedded default's trained task model, per split, with no defense:

- ``acc(back∘g1)``: task accuracy of the back fed by g1 (how well the task loss was met);
- ``rel.err``: mean((g1(x) − f1(x))²) / mean(f1(x)²) on the probe images (1.0 = no better than zeros;
  2.0 = uncorrelated features of the same energy). The attacker cannot compute this; the benchmark can;
- ``PSNR``: the shadow attack's reconstruction of the probes, next to the mean-image guess.

    .venv/bin/python benchmarks/shadow_fidelity.py [--scenes 2000] [--epochs 20] [--bn-matching 1]
                                                   [--then rmle|inverse-net] [--splits conv11,relu22]
"""

from __future__ import annotations

import argparse
import time

import torch
from attack_table import cut

from privbench.cache import Cache, default_cache_dir
from privbench.config import load_config
from privbench.device import derive_seed, seed_everything
from privbench.registry import ATTACKS, DATASETS, METRICS, MODELS
from privbench.runner import Benchmark
from privbench.threat import attacker_view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument("--splits", default="conv11,relu12,relu22,relu32")
    parser.add_argument("--scenes", type=int, default=0, help="labelled attacker scenes for g1 (0 = the "
                        "default config's attacker scenes)")
    parser.add_argument("--epochs", type=int, default=10, help="g1 training epochs")
    parser.add_argument("--bn-matching", type=float, default=0.0, help="shadow's bn_matching weight")
    parser.add_argument("--then", default="inverse-net", choices=("rmle", "inverse-net"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    config = load_config()
    bench = Benchmark(config, Cache(args.cache_dir), progress=False)
    model = bench.model
    spec = MODELS.create(config.model.name, **config.model.params)
    data, task_data, task_labels = bench.attacker_images
    if args.scenes:
        scenes = DATASETS.create("synth-scenes", subset="attacker", n=args.scenes,
                                 size=model.input_shape[1]).build()
        task_data, task_labels = scenes.floats(), scenes.labels["label"]
    probes = torch.cat([p.floats() for p in bench.probes])
    test_images, test_labels = bench.task_test.floats(), bench.task_test.labels["label"]
    psnr = METRICS.create("psnr")
    guess = psnr.per_image(probes, data.mean(dim=0, keepdim=True).expand_as(probes)).mean().item()
    print(f"default task model, {len(task_data)} labelled attacker scenes, g1 {args.epochs} epochs, "
          f"bn_matching {args.bn_matching:g}, then={args.then}; {len(probes)} probes; "
          f"mean-image guess {guess:.2f} dB", flush=True)
    # back∘f1 is the whole network whatever the split
    acc_real = (model.predict(test_images).argmax(1) == test_labels).float().mean().item()
    print("| split | acc(back∘f1) | acc(back∘g1) | rel.err g1 vs f1 | shadow PSNR (dB) |")
    print("| --- | --- | --- | --- | --- |")
    for split in args.splits.split(","):
        cut_model = cut(model, split, spec)
        attack = ATTACKS.create("shadow", epochs=args.epochs, bn_matching=args.bn_matching, then=args.then)
        seed = derive_seed(args.seed, "shadow-fidelity", split)
        view = attacker_view(attack.access, cut_model, data, bench.device, seed, task_data=task_data,
                             task_labels=task_labels)
        seed_everything(seed)
        attack.fit(view)
        with torch.no_grad():
            real = cut_model.features(probes)
            error = ((attack.shadow_query(probes) - real).square().mean() / real.square().mean()).item()
            acc_shadow = (cut_model.back(attack.shadow_query(test_images)).argmax(1)
                          == test_labels).float().mean().item()
        reconstruction = psnr.per_image(probes, attack.reconstruct(real)).mean().item()
        print(f"| {split} | {acc_real:.3f} | {acc_shadow:.3f} | {error:.2f} | {reconstruction:.2f} |", flush=True)
    print(f"\n(total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
