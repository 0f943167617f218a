"""Does PATROL select channels by the task? (issue 31: kept-channel overlap between seeds, the task gradient on the
masks, accuracy at the pruning ratio.)

Fits the default preset's ``pruning`` setting (PATROL, paper 002, Algorithm 1) on one trained task model at several
PATROL seeds and prints, per seed:

- before training, per masked convolution: the cosine between the task-loss gradient on the layer's mask vector and
  the vector itself, and the norms of the task gradient and of the penalty gradient λ1·sign(m) + λ2·m/‖m‖ (eq. 1)
  — in the mode Algorithm 1 trains in (:func:`privbench.defenses.pruning.algorithm_mode`);
- after training: each layer's mask range, how many channels each layer keeps, the pruning ratio (parameters
  removed from the deeper front) and the pruned pipeline's test accuracy next to the undefended one;
- between every two seeds: the overlap (Jaccard index) of the kept channels, per layer and overall, against what
  the same counts drawn at random would give.

``--set KEY=VALUE`` overrides a parameter of the pruning setting (a YAML value), e.g. ``--set mask_lr=1e-6``.
Shares the cache with ``privbench run`` (the task model is trained once per task seed).

    .venv/bin/python benchmarks/patrol_channels.py [--seeds 0 1 2] [--task-seed 0] [--set epochs=2]
        [--out results/benchmarks/patrol_channels.csv]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from privbench import presets
from privbench.cache import Cache, default_cache_dir
from privbench.components import load_components
from privbench.config import parse_config
from privbench.defenses.base import FitContext
from privbench.defenses.pruning import mask_task_gradients
from privbench.edge_cost import count_params
from privbench.engine.inputs import inputs_for
from privbench.registry import DEFENSES
from privbench.results import write_csv


def accuracy(model, images, labels, device) -> float:
    with torch.no_grad():
        logits = torch.cat([model(images[i:i + 256].to(device).float() / 255) for i in range(0, len(images), 256)])
    return float((logits.argmax(1).cpu() == labels).float().mean())


def mask_gradients(defense, model, train, labels, device, n: int = 512) -> list[dict]:
    """Per masked convolution of the deeper front, at masks = 1 on the trained network: the task gradient's cosine
    with the mask vector and its norm, and the norm of the penalty's (sub)gradient."""
    x, y = train.images[:n].to(device).float() / 255, labels[:n].to(device)
    found = mask_task_gradients(model, defense.deployed_split(model.split), x, y)
    every = torch.cat([m for m, _ in found.values()])
    rows = []
    for name, (m, g) in found.items():
        penalty = defense.params["lambda1"] * m.sign() + defense.params["lambda2"] * m / every.norm()
        rows.append({"layer": name, "cosine": float(torch.nn.functional.cosine_similarity(g, m, dim=0)),
                     "task_grad_norm": float(g.norm()), "penalty_grad_norm": float(penalty.norm())})
    return rows


def jaccard(a: list[int], b: list[int]) -> float:
    union = set(a) | set(b)
    return len(set(a) & set(b)) / len(union) if union else 1.0


def random_jaccard(total: int, k1: int, k2: int, draws: int = 2000) -> float:
    """The mean Jaccard index of two random subsets of ``k1`` and ``k2`` of ``total`` channels."""
    g = torch.Generator().manual_seed(0)
    values = []
    for _ in range(draws):
        a = torch.randperm(total, generator=g)[:k1].tolist()
        b = torch.randperm(total, generator=g)[:k2].tolist()
        values.append(jaccard(a, b))
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--task-seed", type=int, default=0, help="seed of the task model every fit starts from")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", default="results/benchmarks/patrol_channels.csv")
    args = parser.parse_args()
    load_components()
    torch.set_num_threads(1)
    data = yaml.safe_load(presets.text("default"))
    config = parse_config({**data, "seed": args.task_seed})
    cache = Cache(args.cache_dir or default_cache_dir())
    inputs = inputs_for(config, cache)
    model, train, test, device = inputs.model, inputs.task_train, inputs.task_test, inputs.device
    labels, test_labels = inputs.task.targets(train), inputs.task.targets(test)
    sweep = next(d for d in config.defenses if d.name == "pruning")
    params = dict(sweep.params)
    for assignment in args.set:
        key, _, text = assignment.partition("=")
        params[key] = yaml.safe_load(text)
    base_accuracy = accuracy(model, test.images, test_labels, device)
    print(f"task model (seed {args.task_seed}): test accuracy {base_accuracy:.3f}; pruning params {params}")
    rows, kept_by_seed = [], {}
    for seed in args.seeds:
        defense = DEFENSES.create("pruning", **params, beta=sweep.strengths[0])
        if seed == args.seeds[0]:
            for g in mask_gradients(defense, model, train, labels, device):
                print(f"  at masks = 1, {g['layer']}: cosine(task gradient, m) {g['cosine']:+.3f}, |task gradient| "
                      f"{g['task_grad_norm']:.3g}, |penalty gradient| {g['penalty_grad_norm']:.3g}")
                rows.append({"seed": seed, "what": "gradient", **g})
        start = time.perf_counter()
        state = defense.fit(FitContext(model=model, train=train, device=device, seed=seed, cache=cache))
        seconds = time.perf_counter() - start
        defense.load_state(state)
        defended = defense.apply(model)
        unpruned = count_params(model.recut(defense.deployed_split(model.split)).front)
        ratio = 1 - count_params(defended.front) / unpruned
        acc = accuracy(defended, test.images, test_labels, device)
        kept_by_seed[seed] = state["kept"]
        summary = ", ".join(f"{name} {len(k)}/{len(state['masks'][name])} (m {float(state['masks'][name].min()):+.2f}"
                            f"…{float(state['masks'][name].max()):+.2f})" for name, k in state["kept"].items())
        print(f"seed {seed}: accuracy {acc:.3f} (undefended {base_accuracy:.3f}), pruned {ratio:.1%} of the deeper "
              f"front's {unpruned} parameters, {seconds:.0f} s; kept {summary}")
        rows.append({"seed": seed, "what": "fit", "accuracy": acc, "undefended_accuracy": base_accuracy,
                     "pruning_ratio": ratio, "seconds": seconds,
                     "kept": yaml.safe_dump(state["kept"], default_flow_style=True).strip()})
    for a, b in itertools.combinations(args.seeds, 2):
        layers = kept_by_seed[a].keys()
        per_layer = {name: jaccard(kept_by_seed[a][name], kept_by_seed[b][name]) for name in layers}
        chance = {name: random_jaccard(len(state["masks"][name]), len(kept_by_seed[a][name]),
                                       len(kept_by_seed[b][name])) for name in layers}
        text = ", ".join(f"{n} {per_layer[n]:.2f} (random {chance[n]:.2f})" for n in layers)
        print(f"kept-channel overlap, seeds {a} and {b}: {text}")
        rows.append({"seed": f"{a}-{b}", "what": "overlap", "overlap": sum(per_layer.values()) / len(per_layer),
                     "random_overlap": sum(chance.values()) / len(chance)})
    write_csv(pd.DataFrame(rows), Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
