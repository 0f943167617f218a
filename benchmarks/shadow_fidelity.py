"""How well does a query-free substitute front g1 stand in for the real front f1? (issues 3 and 15)

He, Zhang & Lee's query-free attack (``shadow``) trains g1 through the frozen back with the task loss only; FORA
(``fora``, Xu et al. 2024) matches the distribution of g1's features to the intercepted ones, without labels.
Either works only as far as g1 comes close to f1. This script measures that on the attack table's trained task
model (the ``attack-table`` preset that ``benchmarks/attack_table.py`` runs, same cache), per split, with no
defense:

- ``acc(back∘g1)``: task accuracy of the back fed by g1 (how well the task is met through g1);
- ``rel.err``: mean((g1(x) − f1(x))²) / mean(f1(x)²) on the probe images (1.0 = no better than zeros;
  2.0 = uncorrelated features of the same energy). The attacker cannot compute this; the benchmark can;
- ``PSNR``: the attack's reconstruction of the probes, next to the mean-image guess.

    .venv/bin/python benchmarks/shadow_fidelity.py [--attack shadow|fora] [--scenes 2000]
        [--splits conv11,relu22] [--set epochs=50 --set schedule=halve-10 ...]
"""

from __future__ import annotations

import argparse
import time

import torch
from attack_table import yaml_preset  # beside this script

from privbench.cache import Cache, default_cache_dir
from privbench.components import load_components
from privbench.config import load_grid
from privbench.device import derive_seed, seed_everything
from privbench.distribution_matching import relative_feature_error
from privbench.engine.inputs import inputs_for
from privbench.registry import ATTACKS, DATASETS, METRICS, parse_assignments
from privbench.threat import attacker_view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument("--attack", default="shadow", choices=("shadow", "fora"))
    parser.add_argument("--splits", default="conv11,relu12,relu22,relu32")
    parser.add_argument("--scenes", type=int, default=0, help="labelled attacker scenes for g1 (0 = the "
                        "attack table's 500)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an attack parameter (repeatable), e.g. epochs=50")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    params = parse_assignments(args.set)

    start = time.perf_counter()
    load_components()
    data = yaml_preset()
    data["model"]["split"] = args.splits.split(",")
    data["seed"] = args.seed
    cache = Cache(args.cache_dir)
    groups = {group.model.split: inputs_for(group, cache) for group in load_grid(None, data).groups}
    bench = next(iter(groups.values()))
    model = bench.model
    data, task_data, task_labels = bench.attacker_images
    if args.scenes:
        scenes = DATASETS.create("synth-scenes", subset="attacker", n=args.scenes,
                                 size=model.input_shape[1]).build()
        task_data, task_labels = scenes.floats(), scenes.labels["label"]
    probes = torch.cat([p.floats() for p in bench.probes])
    test_images, test_labels = bench.task_test.floats(), bench.task_test.labels["label"]
    psnr = METRICS.create("psnr")
    guess = psnr.per_image(probes, data.mean(dim=0, keepdim=True).expand_as(probes)).mean().item()
    attack_spec = ATTACKS.create(args.attack, **params).spec()
    print(f"attack table's task model, {len(task_data)} labelled attacker scenes, {attack_spec}; "
          f"{len(probes)} probes; mean-image guess {guess:.2f} dB", flush=True)
    # back∘f1 is the whole network whatever the split
    acc_real = (model.predict(test_images).argmax(1) == test_labels).float().mean().item()
    print("| split | acc(back∘f1) | acc(back∘g1) | rel.err g1 vs f1 | PSNR (dB) | fit (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for split in args.splits.split(","):
        cut_model = groups[split].model  # the same trained network, cut at this split
        attack = ATTACKS.create(args.attack, **params)
        seed = derive_seed(args.seed, "shadow-fidelity", split)
        view = attacker_view(attack.access, cut_model, data, bench.device, seed, task_data=task_data,
                             task_labels=task_labels, intercepted=cut_model.features(test_images))
        seed_everything(seed)
        t0 = time.perf_counter()
        attack.fit(view)
        fit_seconds = time.perf_counter() - t0
        with torch.no_grad():
            real = cut_model.features(probes)
            error = relative_feature_error(attack.shadow_query(probes), real)
            acc_shadow = (cut_model.back(attack.shadow_query(test_images)).argmax(1)
                          == test_labels).float().mean().item()
        reconstruction = psnr.per_image(probes, attack.reconstruct(real)).mean().item()
        for index, (candidate, score) in enumerate(zip(*[getattr(attack, "choice", {}).get(k, []) for k in
                                                        ("candidates", "scores")], strict=True)):
            with torch.no_grad():
                candidate_error = relative_feature_error(candidate(probes.to(bench.device)), real)
            chosen = " (kept)" if index == attack.choice["chosen"] else ""
            print(f"  candidate {index}{chosen}: held-out matching loss {score:.4f}, rel.err vs f1 "
                  f"{candidate_error:.3f}", flush=True)
        print(f"| {split} | {acc_real:.3f} | {acc_shadow:.3f} | {error:.3f} | {reconstruction:.2f} | "
              f"{fit_seconds:.0f} |", flush=True)
    print(f"\n(total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
