"""Attack × split-depth table on the embedded synthetic data, no defense (issues 3, 15 and 16, "Must show").

Reproduces the shape of He, Zhang & Lee's (ACSAC 2019) Table 6: reconstruction PSNR / SSIM of the white-box
(rMLE), black-box (inverse network) and query-free (shadow model; FORA's distribution-matched substitute) attacks
as the split moves deeper, and face-id on the reconstructed faces. Their orderings are the point: deeper split →
lower PSNR; query-free weakest; the inverse network competitive with rMLE.

The sweep is the shipped ``attack-table`` preset (``presets/attack-table.yaml``: a list of splits, the shadow model
twice — at its defaults and, labelled ``shadow-he``, at He et al.'s settings), run by the engine like
``privbench run attack-table`` (same caches; ``--jobs`` / ``--executor`` as there). This script only formats the
rows as a markdown table for the README, He et al.'s CIFAR-10 numbers beside it.

    .venv/bin/python benchmarks/attack_table.py [--cache-dir DIR] [--splits conv11,relu12,relu22,relu32] [--jobs N]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from privbench import presets
from privbench.cache import Cache, default_cache_dir
from privbench.components import load_components
from privbench.config import load_grid
from privbench.executors import make_executor
from privbench.registry import ATTACKS, METRICS
from privbench.sweep import run_benchmark

PRESET = "attack-table"

#: He et al. 2019 Table 6 (CIFAR-10, their net): PSNR / SSIM at conv11, ReLU22, ReLU32
HE_ET_AL = {
    "rmle": {"conv11": "37.59 / 0.996", "relu22": "19.47 / 0.694", "relu32": "13.38 / 0.163"},
    "inverse-net": {"conv11": "49.88 / 0.999", "relu22": "19.81 / 0.694", "relu32": "15.42 / 0.312"},
    "shadow": {"conv11": "21.16 / 0.910", "relu22": "12.74 / 0.175", "relu32": "11.09 / 0.042"},
}


def baseline(grid, cache: Cache) -> str:
    """PSNR / SSIM / face-id of an adversary who sees nothing: the mean of its own images for every probe (the
    same at every depth; its face-id is chance, one identity for every face)."""
    from privbench.engine.inputs import inputs_for

    group = grid.groups[0]
    bench = inputs_for(group, cache)
    data, _, _ = bench.attacker_images
    probes = torch.cat([p.floats() for p in bench.probes])
    guess = data.mean(dim=0, keepdim=True).expand_as(probes)
    psnr, ssim = METRICS.create("psnr"), METRICS.create("ssim")
    identities = group.probes[0].params["identities"]
    return (f"{psnr.per_image(probes, guess).mean().item():.2f} / {ssim.per_image(probes, guess).mean().item():.3f}"
            f" / {1 / identities:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument("--splits", default="", help="comma-separated splits (default: the preset's)")
    parser.add_argument("--attacks", default="", help="comma-separated attack labels (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="local worker processes (as `privbench run --jobs`)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per point")
    args = parser.parse_args()

    load_components()
    data = yaml_preset()
    if args.splits:
        data["model"]["split"] = args.splits.split(",")
    if args.attacks:
        wanted = args.attacks.split(",")
        data["attacks"] = [a for a in data["attacks"] if a.get("label", a["name"]) in wanted]
    data["seed"] = args.seed
    grid = load_grid(None, data)
    cache = Cache(args.cache_dir)
    start = time.perf_counter()
    executor = make_executor("processes" if args.jobs > 1 else "serial", jobs=args.jobs, threads=args.threads)
    frame = run_benchmark(grid, cache, progress=True, executor=executor).frame
    table(frame, grid, baseline(grid, cache))
    print(f"\n(PSNR dB / SSIM / face-id; total {time.perf_counter() - start:.0f} s)")


def yaml_preset() -> dict:
    import yaml

    return yaml.safe_load(presets.text(PRESET))


def table(frame: pd.DataFrame, grid, no_attack: str) -> None:
    splits = [g.model.split for g in grid.groups]
    attacks = grid.groups[0].attacks
    privacy = frame[frame["kind"] == "privacy"]
    accuracy = frame[(frame["metric"] == "accuracy")]
    if not accuracy.empty:
        print("task accuracy: " + ", ".join(f"{v:.3f}" for v in accuracy["value"].unique()))
    print()
    print("| attack (access) | " + " | ".join(splits) + " |")
    print("| --- | " + " | ".join("---" for _ in splits) + " |")
    for attack in attacks:
        cells = []
        for split in splits:
            part = privacy[(privacy["attack"] == attack.column) & (privacy["split"] == split)]
            mean = {m: part[part["metric"] == m]["value"].mean() for m in ("psnr", "ssim", "face-id")}
            cells.append(f"{mean['psnr']:.2f} / {mean['ssim']:.3f} / {mean['face-id']:.2f}")
        access = ATTACKS.get(attack.name).access.value
        print(f"| {attack.column} ({access}) | " + " | ".join(cells) + " |")
    print("| no attack: mean image of the attacker's data | " + " | ".join(no_attack for _ in splits) + " |")
    for name, row in HE_ET_AL.items():
        print(f"| He et al. CIFAR-10: {name} | " + " | ".join(row.get(s, "–") for s in splits) + " |")


if __name__ == "__main__":
    main()
