"""Throughput of a split detector on this machine: images/s of the edge side (the detector's transform and the
backbone up to the cut) and of the cloud side (rest of the backbone, RPN, RoI heads, NMS), batch 16, eval mode,
median of 5 timed batches after one warm-up, plus one training step's images/s (forward + detector losses +
backward). Measured in one run as numbers per side, not asserted in a test.

    python benchmarks/bench_detector.py [--model detector-small] [--split block1] [--size 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import privbench.models  # noqa: F401  (registrations)
from privbench.registry import MODELS
from privbench.tasks import DetectionTargets


def timed(step, repeats: int = 5) -> float:
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="detector-small")
    parser.add_argument("--split", default="block1")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    shape = (3, args.size, args.size)
    spec = MODELS.create(args.model)
    torch.manual_seed(0)
    network = spec.build(3, shape).eval()
    model = spec.split_model(network, args.split, 3, shape)
    x = torch.rand(args.batch, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = model.front(x)
        front = timed(lambda: model.front(x))
        back = timed(lambda: model.task.predictions(model.back(z)))
    side = args.size
    boxes = [torch.tensor([[0.1 * side, 0.1 * side, 0.4 * side, 0.8 * side]]) for _ in range(args.batch)]
    targets = DetectionTargets(boxes, [torch.tensor([1]) for _ in range(args.batch)])
    model.train()
    params = [p for p in network.parameters()]

    def train_step() -> None:
        loss = model.task_loss(model(x), targets)
        loss.backward(inputs=params)

    train = timed(train_step, repeats=3)
    print(f"{args.model} cut after {args.split}, {args.size}² input, batch {args.batch}, "
          f"{torch.get_num_threads()} threads; crosses {tuple(z.shape[1:])}")
    print(f"front (edge)   {args.batch / front:8.1f} images/s")
    print(f"back (cloud)   {args.batch / back:8.1f} images/s")
    print(f"training step  {args.batch / train:8.1f} images/s")


if __name__ == "__main__":
    main()
