"""Attack × split-depth table on the embedded synthetic data, no defense (issues 3 and 15, "Must show").

Reproduces the shape of He, Zhang & Lee's (ACSAC 2019) Table 6: reconstruction PSNR / SSIM of the white-box
(rMLE), black-box (inverse network) and query-free (shadow model; FORA's distribution-matched substitute) attacks
as the split moves deeper, and face-id on the reconstructed faces. Their orderings are the point: deeper split →
lower PSNR; query-free weakest; the inverse network competitive with rMLE.

The task model is trained once (cached in ``--cache-dir``; the cache key does not include the split) and cut at
every split; every attack runs through the engine (:meth:`privbench.runner.Benchmark.point`: the same attacker
views, caches and metrics as ``privbench run``). Prints a markdown table for the README, He et al.'s CIFAR-10
numbers beside it.

    .venv/bin/python benchmarks/attack_table.py [--cache-dir DIR] [--splits conv11,relu12,relu22,relu32]
"""

from __future__ import annotations

import argparse
import collections
import time

import pandas as pd
import torch
from torch import nn

from privbench.cache import Cache, default_cache_dir
from privbench.config import ComponentConfig, load_config
from privbench.registry import ATTACKS, METRICS
from privbench.split import SplitModel

#: (row label, attack, params): every attack at its registered defaults, plus He et al.'s own shadow settings
ATTACKS_IN_TABLE = (
    ("rmle", "rmle", {}),
    ("inverse-net", "inverse-net", {}),
    ("shadow", "shadow", {}),
    ("shadow, He et al.'s settings", "shadow",
     {"epochs": 50, "lr": 1e-3, "batch_size": 32, "schedule": "halve-10", "rmle_iterations": 500, "rmle_lr": 0.1,
      "rmle_lambda_tv": 2.0, "rmle_init": "mean"}),
    ("fora", "fora", {}),
)

#: He et al. 2019 Table 6 (CIFAR-10, their net): PSNR / SSIM at conv11, ReLU22, ReLU32
HE_ET_AL = {
    "rmle": {"conv11": "37.59 / 0.996", "relu22": "19.47 / 0.694", "relu32": "13.38 / 0.163"},
    "inverse-net": {"conv11": "49.88 / 0.999", "relu22": "19.81 / 0.694", "relu32": "15.42 / 0.312"},
    "shadow": {"conv11": "21.16 / 0.910", "relu22": "12.74 / 0.175", "relu32": "11.09 / 0.042"},
}


def table_config(size: int, seed: int, epochs: int, lr: float, batch_size: int, augment_blur: float,
                 split: str = "relu22") -> dict:
    """The embedded default benchmark's data and task model (fewer probes), at ``size``×``size``, no defense
    (the data generation and training run through the engine, so they are cached)."""
    def ds(name: str, **params) -> dict:
        return {"name": name, "params": {**params, "size": size}}

    return {
        "name": "attack-table", "seed": seed, "device": "cpu",
        "model": {"name": "vgg-small", "params": {"width": 8, "fc_width": 128}, "split": split,
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
        "defenses": [{"name": "none"}],
        # (the table fits its attacks one by one through Benchmark.point; the config lists each name once)
        "attacks": [{"name": name} for name in dict.fromkeys(name for _, name, _ in ATTACKS_IN_TABLE)],
        "metrics": ["psnr", "ssim", "face-id"],
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
    parser.add_argument("--splits", default="conv11,relu12,relu22,relu32")
    parser.add_argument("--attacks", default="", help="comma-separated row labels (default: all)")
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

    from privbench.runner import Benchmark

    start = time.perf_counter()
    splits = args.splits.split(",")
    wanted = [a for a in ATTACKS_IN_TABLE if not args.attacks or a[0] in args.attacks.split(",")]
    psnr, ssim = METRICS.create("psnr"), METRICS.create("ssim")
    cells: dict[tuple[str, str], str] = {}
    baseline = ""
    for split in splits:
        config = load_config(None, table_config(args.size, args.seed, args.epochs, args.lr, args.batch_size,
                                                default_model.augment_blur, split))
        bench = Benchmark(config, Cache(args.cache_dir), progress=False)
        (setting,) = bench.settings()
        if not baseline:
            model = bench.model
            accuracy = (model.predict(bench.task_test.floats()).argmax(1)
                        == bench.task_test.labels["label"]).float().mean()
            data, task_data, _ = bench.attacker_images
            probes = torch.cat([p.floats() for p in bench.probes])
            print(f"task model: {config.model.name} {config.model.params}, test accuracy {accuracy:.3f}; "
                  f"{len(probes)} probe images {args.size}x{args.size} (faces, plates, pedestrians); attacker: "
                  f"{len(data)} images ({len(task_data)} labelled task images)", flush=True)
            # The guess of an adversary who sees nothing (the mean of its own images), the same at every depth;
            # its face-id is chance, one identity for every face.
            guess = data.mean(dim=0, keepdim=True).expand_as(probes)
            identities = config.probes[0].params["identities"]
            baseline = (f"{psnr.per_image(probes, guess).mean().item():.2f} / "
                        f"{ssim.per_image(probes, guess).mean().item():.3f} / {1 / identities:.2f}")
        for label, name, params in wanted:
            t0 = time.perf_counter()
            frame = pd.DataFrame(bench.point(setting, ComponentConfig(name, params)).rows)
            p = frame[frame.metric == "psnr"].value.mean()
            s = frame[frame.metric == "ssim"].value.mean()
            face = frame[frame.metric == "face-id"].value.mean()
            cells[(label, split)] = f"{p:.2f} / {s:.3f} / {face:.2f}"
            print(f"  {split:7s} {label:30s} PSNR {p:6.2f} dB  SSIM {s:.3f}  face-id {face:.2f}  "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)

    print()
    print("| attack (access) | " + " | ".join(f"{s}" for s in splits) + " |")
    print("| --- | " + " | ".join("---" for _ in splits) + " |")
    for label, name, _ in wanted:
        access = ATTACKS.get(name).access.value
        print(f"| {label} ({access}) | " + " | ".join(cells[(label, s)] for s in splits) + " |")
    print("| no attack: mean image of the attacker's data | " + " | ".join(baseline for _ in splits) + " |")
    for name, row in HE_ET_AL.items():
        print(f"| He et al. CIFAR-10: {name} | " + " | ".join(row.get(s, "–") for s in splits) + " |")
    print(f"\n(PSNR dB / SSIM / face-id; total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
