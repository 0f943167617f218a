"""Batched rMLE vs the reference code's image-by-image loop (issue 3, performance).

He et al.'s code inverts one image at a time: a fresh x̂ and Adam optimizer per image, ``iterations`` steps
each. privbench inverts all probe images as one tensor with the sum of per-image losses (so every image
gets its own gradient and Adam, being element-wise, does the same thing). This script runs both on the
same 32 synthetic face images through the same front, in one process, and prints the wall times, the
speed-up and both final losses (they must agree).

    .venv/bin/python benchmarks/bench_rmle_batched.py [--iterations 100] [--size 32] [--split relu12]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from privbench.attacks.rmle import RMLESettings, default_settings, rmle_invert
from privbench.components import load_components
from privbench.registry import DATASETS, MODELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=100, help="Adam steps (the default config's)")
    parser.add_argument("--size", type=int, default=32, help="image size (the default config's: 32)")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--split", default="relu12", help="split layer (the default config's: relu12)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each way; the fastest counts")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    load_components()
    torch.manual_seed(0)
    shape = (3, args.size, args.size)
    spec = MODELS.create("vgg-small", width=args.width)
    network = spec.build(10, shape).eval()
    for p in network.parameters():
        p.requires_grad_(False)
    model = spec.split_model(network, args.split, 10, shape)
    faces = DATASETS.create("synth-faces", identities=(args.images + 1) // 2, per_identity=2, size=args.size)
    images = faces.build().floats()[: args.images]
    z = model.features(images)
    lr, tv = default_settings(model.feature_shape(), shape)
    common = dict(input_shape=shape, device=torch.device("cpu"), seed=0)

    def run(batch_size: int) -> tuple[float, torch.Tensor]:
        settings = RMLESettings(iterations=args.iterations, lr=lr, lambda_tv=tv, batch_size=batch_size)
        start = time.perf_counter()
        _, losses = rmle_invert(model.front, z, settings, **common)
        return time.perf_counter() - start, losses

    run(0)  # warm-up (oneDNN primitive caches, allocator)
    run(1)
    t_batched = t_loop = float("inf")
    for _ in range(args.repeats):  # interleaved, so a burst of machine load hits both ways alike
        seconds, loss_batched = run(0)
        t_batched = min(t_batched, seconds)
        seconds, loss_loop = run(1)
        t_loop = min(t_loop, seconds)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"rMLE, vgg-small width {args.width} front up to {args.split}, {args.images} images "
          f"{args.size}x{args.size}, {args.iterations} iterations, lr {lr:g}, lambda_tv {tv:g}, best of "
          f"{args.repeats}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load:.2f}")
    print(f"  image-by-image loop : {t_loop:7.2f} s   final loss (mean over images) {loss_loop.mean():.6g}")
    print(f"  batched             : {t_batched:7.2f} s   final loss (mean over images) "
          f"{loss_batched.mean():.6g}")
    print(f"  speed-up            : {t_loop / t_batched:7.2f}x")
    print(f"  max per-image |loss difference| = {(loss_loop - loss_batched).abs().max():.3g} "
          f"(relative {((loss_loop - loss_batched).abs() / loss_loop.abs()).max():.3g})")


if __name__ == "__main__":
    main()
