"""Attack × split-depth table on the embedded synthetic data, no defense (issue 3, "Must show").

Reproduces the shape of He, Zhang & Lee's (ACSAC 2019) Table: reconstruction PSNR / SSIM of the white-box
(rMLE), black-box (inverse network) and query-free (shadow model) attacks as the split moves deeper. Their
orderings are the point: deeper split → lower PSNR; query-free weakest; the inverse network competitive
with rMLE.

The task model is trained once by :func:`privbench.task_model.task_model` (cached in ``--cache-dir``) and cut
at every split; each attack is fitted per split exactly as the benchmark engine fits it (same attacker
views, same attacker data). Prints a markdown table for the README.

    .venv/bin/python benchmarks/attack_table.py [--cache-dir DIR] [--size 32] [--splits conv11,relu22,relu32]
"""

from __future__ import annotations

import argparse
import collections
import time

import torch
from torch import nn

from privbench.cache import Cache, default_cache_dir
from privbench.config import load_config
from privbench.device import derive_seed, seed_everything
from privbench.registry import ATTACKS, METRICS, MODELS
from privbench.runner import Benchmark
from privbench.split import SplitModel
from privbench.threat import attacker_view

ATTACKS_IN_TABLE = (
    ("rmle", {}),
    ("inverse-net", {"epochs": 12, "batch_size": 32}),
    ("shadow", {}),
)


def table_config(size: int, seed: int, epochs: int, lr: float, batch_size: int, augment_blur: float) -> dict:
    """The embedded default benchmark's data and task model (fewer probes), at ``size``×``size``, no defense
    (the data generation and training run through the engine, so they are cached)."""
    def ds(name: str, **params) -> dict:
        return {"name": name, "params": {**params, "size": size}}

    return {
        "name": "attack-table", "seed": seed, "device": "cpu",
        "model": {"name": "vgg-small", "params": {"width": 8, "fc_width": 128}, "split": "relu22",
                  "epochs": epochs, "lr": lr, "batch_size": batch_size, "augment_blur": augment_blur},
        "task": {"train": ds("synth-scenes", subset="train", n=2000),
                 "test": ds("synth-scenes", subset="test", n=500)},
        "attacker_data": [ds("synth-scenes", subset="attacker", n=500),
                          ds("synth-faces", subset="attacker", identities=100, per_identity=3),
                          ds("synth-plates", subset="attacker", n=300),
                          ds("synth-pedestrians", subset="attacker", n=300)],
        "probes": [ds("synth-faces", subset="test", identities=10, per_identity=2),
                   ds("synth-plates", subset="test", n=20),
                   ds("synth-pedestrians", subset="test", n=20)],
        "defenses": [{"name": "noise", "strengths": [0.0]}],
        "attacks": [{"name": name, "params": params} for name, params in ATTACKS_IN_TABLE],
        "metrics": ["psnr", "ssim", "accuracy"],
    }


def cut(model: SplitModel, split: str, spec) -> SplitModel:
    """The same trained network, cut at ``split``."""
    children = list(model.front.named_children()) + list(model.back.named_children())
    network = nn.Sequential(collections.OrderedDict(children))
    return spec.split_model(network, split, model.num_classes, model.input_shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument("--size", type=int, default=32, help="image size (multiple of 8)")
    parser.add_argument("--splits", default="conv11,relu22,relu32")
    parser.add_argument("--seed", type=int, default=0)
    default_model = load_config().model
    parser.add_argument("--epochs", type=int, default=default_model.epochs, help="task-model epochs "
                        "(default: the embedded default config's)")
    parser.add_argument("--lr", type=float, default=default_model.lr, help="task-model learning rate")
    parser.add_argument("--batch-size", type=int, default=default_model.batch_size,
                        help="task-model batch size")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default; 1 is "
                        "faster on a machine busy with other jobs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    config = load_config(None, table_config(args.size, args.seed, args.epochs, args.lr, args.batch_size,
                                            default_model.augment_blur))
    bench = Benchmark(config, Cache(args.cache_dir), progress=False)
    model = bench.model
    spec = MODELS.create(config.model.name, **config.model.params)
    accuracy = (model.predict(bench.task_test.floats()).argmax(1) == bench.task_test.labels["label"]).float()
    data, task_data, task_labels = bench.attacker_images
    probes = torch.cat([p.floats() for p in bench.probes])
    psnr, ssim = METRICS.create("psnr"), METRICS.create("ssim")
    print(f"task model: {config.model.name} {config.model.params}, test accuracy {accuracy.mean():.3f}; "
          f"{len(probes)} probe images {args.size}x{args.size} (faces, plates, pedestrians); "
          f"attacker: {len(data)} images ({len(task_data)} labelled task images)", flush=True)

    splits = args.splits.split(",")
    cells: dict[tuple[str, str], str] = {}
    for split in splits:
        cut_model = cut(model, split, spec)
        features = cut_model.features(probes)
        for name, params in ATTACKS_IN_TABLE:
            t0 = time.perf_counter()
            attack = ATTACKS.create(name, **params)
            seed = derive_seed(args.seed, "attack-table", name, split)
            view = attacker_view(attack.access, cut_model, data, bench.device, seed, task_data=task_data,
                                 task_labels=task_labels)
            seed_everything(seed)
            attack.fit(view)
            x_hat = attack.reconstruct(features)
            p = psnr.per_image(probes, x_hat).mean().item()
            s = ssim.per_image(probes, x_hat).mean().item()
            cells[(name, split)] = f"{p:.2f} / {s:.3f}"
            seconds = time.perf_counter() - t0
            print(f"  {split:7s} {name:12s} PSNR {p:6.2f} dB  SSIM {s:.3f}  ({seconds:.1f} s)", flush=True)

    # Reference: the guess of an adversary who sees nothing (the mean of its own images), same at every depth.
    guess = data.mean(dim=0, keepdim=True).expand_as(probes)
    baseline = f"{psnr.per_image(probes, guess).mean().item():.2f} / {ssim.per_image(probes, guess).mean().item():.3f}"

    print()
    print("| attack (access) | " + " | ".join(f"{s} PSNR / SSIM" for s in splits) + " |")
    print("| --- | " + " | ".join("---" for _ in splits) + " |")
    for name, _ in ATTACKS_IN_TABLE:
        access = ATTACKS.get(name).access.value
        print(f"| {name} ({access}) | " + " | ".join(cells[(name, s)] for s in splits) + " |")
    print("| no attack: mean image of the attacker's data | " + " | ".join(baseline for _ in splits) + " |")
    print(f"\n(total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
