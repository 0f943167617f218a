"""Overhead of privbench's inverse-net training and feature extraction against bare PyTorch loops.

Same network, same data, same batch size, same number of steps; each variant runs ``--repeats`` times,
interleaved, and the best time of each is compared (best-of-N is the least noisy estimate on a shared
machine). Target (issue 2): overhead ratio ≤ 1.10 for both.

    python benchmarks/bench_inverse_net_overhead.py [--images 512] [--epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from privbench.attacks.inverse_net import InverseNet
from privbench.components import load_components
from privbench.models.decoders import mirror_decoder
from privbench.registry import DEFENSES, MODELS
from privbench.split import batches
from privbench.threat import Access, attacker_view


def build(size: int, split: str):
    spec = MODELS.create("vgg-small", width=8)
    net = spec.build(10, (3, size, size)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    model = spec.split_model(net, split, 10, (3, size, size))
    return DEFENSES.create("noise", scale=0.5).apply(model)


def privbench_training(defended, data, epochs, batch_size):
    attack = InverseNet(epochs=epochs, batch_size=batch_size)
    view = attacker_view(Access.BLACK_BOX, defended, data, torch.device("cpu"), seed=0)
    torch.manual_seed(0)
    attack.fit(view)


def bare_training(defended, data, epochs, batch_size):
    torch.manual_seed(0)
    decoder = mirror_decoder(defended.feature_shape(), defended.input_shape)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-3)
    front = defended.front.eval()
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), batch_size):
            x = data[order[start:start + batch_size]]
            with torch.no_grad():
                z = front(x)
            loss = F.mse_loss(decoder(z), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def privbench_features(defended, data, batch_size):
    defended.features(data, batch_size=batch_size)


def bare_features(defended, data, batch_size):
    front = defended.front.eval()
    with torch.no_grad():
        torch.cat([front(data[s]) for s in batches(len(data), batch_size)])


def best_time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--split", default="relu22")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_components()
    defended = build(args.size, args.split)
    data = torch.rand(args.images, 3, args.size, args.size)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.images} images "
          f"{args.size}×{args.size}, split {args.split}, batch {args.batch_size}")

    timings = {"train/privbench": [], "train/bare": [], "features/privbench": [], "features/bare": []}
    for _ in range(args.repeats):  # interleave so drifts in machine load hit both sides alike
        timings["train/privbench"] += best_time(lambda: privbench_training(defended, data, args.epochs,
                                                                             args.batch_size), 1)
        timings["train/bare"] += best_time(lambda: bare_training(defended, data, args.epochs, args.batch_size), 1)
        timings["features/privbench"] += best_time(lambda: privbench_features(defended, data, 256), 1)
        timings["features/bare"] += best_time(lambda: bare_features(defended, data, 256), 1)

    print(f"{'path':<22}{'best s':>9}{'images/s':>11}")
    work = {"train": args.images * args.epochs, "features": args.images}
    for name, values in timings.items():
        best = min(values)
        print(f"{name:<22}{best:>9.3f}{work[name.split('/')[0]] / best:>11.0f}")
    for what in ("train", "features"):
        ratio = min(timings[f"{what}/privbench"]) / min(timings[f"{what}/bare"])
        verdict = "OK" if ratio <= 1.10 else "OVER TARGET"
        print(f"overhead {what}: {ratio:.3f}  (target <= 1.10: {verdict})")


if __name__ == "__main__":
    main()
