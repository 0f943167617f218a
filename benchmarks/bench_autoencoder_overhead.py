"""Overhead of privbench's autoencoder training (paper 000's three stages through :func:`privbench.training.train`)
against a bare PyTorch loop of the same networks, data, batch size, losses and steps; plus edge-side images/s
of every defense at its default setting.

Both variants train AE/AD on the task loss (stage 1), RecNet on L_rec (stage 2) and alternate RecNet and
AE/AD updates (stage 3), Adam with cosine decay per stage, the front computed once per batch. Each runs
``--repeats`` times, interleaved; the best time of each is compared (best-of-N is the least noisy estimate on a
shared machine). Target (issue 9): ratio ≤ 1.10.

    python benchmarks/bench_autoencoder_overhead.py [--images 512] [--epochs 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from privbench.components import load_components
from privbench.data.base import ImageSet
from privbench.defenses.autoencoder import Autoencoder
from privbench.defenses.base import FitContext, TrainedDefense
from privbench.edge_cost import edge_cost
from privbench.losses import reconstruction_loss
from privbench.registry import DEFENSES, MODELS


def build(size: int, split: str):
    spec = MODELS.create("vgg-small", width=8)
    torch.manual_seed(0)
    net = spec.build(10, (3, size, size)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return spec.split_model(net, split, 10, (3, size, size))


def privbench_fit(model, train, epochs: int, batch_size: int) -> None:
    defense = Autoencoder(epochs_ae=epochs, epochs_rec=epochs, epochs_adv=epochs, batch_size=batch_size)
    defense.fit(FitContext(model=model, train=train, device=torch.device("cpu"), seed=0))


def bare_fit(model, train, epochs: int, batch_size: int) -> None:
    defense = Autoencoder()
    encoder, decoder = defense.networks(model)
    recnet = defense.recnet(model)
    images, labels = train.images, train.labels["label"]
    n = len(images)
    steps = epochs * ((n + batch_size - 1) // batch_size)

    def optimizer(params):
        opt = torch.optim.Adam(params, lr=1e-3)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)

    def step(opt, schedule, loss, params):
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        opt.step()
        schedule.step()

    ae_params = [*encoder.parameters(), *decoder.parameters()]
    rec_params = list(recnet.parameters())
    generator = torch.Generator().manual_seed(0)
    for stage in (1, 2, 3):
        ae_opt = optimizer(ae_params) if stage != 2 else None
        rec_opt = optimizer(rec_params) if stage != 1 else None
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                x = images[idx].float().div_(255.0)
                y = labels[idx]
                with torch.no_grad():
                    features = model.front(x)
                if rec_opt is not None:
                    with torch.no_grad():
                        code = encoder(features)
                    step(*rec_opt, reconstruction_loss("l1+edge", recnet(code), x), rec_params)
                if ae_opt is not None:
                    code = encoder(features)
                    loss = F.cross_entropy(model.back(decoder(code)), y)
                    if stage == 3:
                        loss = loss - reconstruction_loss("l1+edge", recnet(code), x)
                    step(*ae_opt, loss, ae_params)


def edge_throughput(model) -> list[tuple[str, float, int, int]]:
    """(defense, images/s at batch 16, params, MACs) of the edge side of every defense at its default."""
    rows = [("none", *_cost(model))]
    for name, cls in DEFENSES.items():
        defense = cls()
        if isinstance(defense, TrainedDefense):
            if not isinstance(defense, Autoencoder):
                continue
            encoder, decoder = defense.networks(model)  # untrained weights cost the same
            defense.load_state({"encoder": encoder.state_dict(), "decoder": decoder.state_dict()})
        rows.append((name, *_cost(defense.apply(model))))
    return rows


def _cost(model):
    cost = edge_cost(model.front, model.input_shape)
    return cost.images_per_s, cost.params, cost.macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--split", default="relu12")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each of the three stages")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_components()
    model = build(args.size, args.split)
    images = (torch.rand(args.images, 3, args.size, args.size) * 255).to(torch.uint8)
    train = ImageSet("bench", images, {"label": torch.randint(0, 10, (args.images,))})
    times = {"privbench": [], "bare": []}
    for _ in range(args.repeats):
        for name, fn in (("privbench", privbench_fit), ("bare", bare_fit)):
            start = time.perf_counter()
            fn(model, train, args.epochs, args.batch_size)
            times[name].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    steps = 3 * args.epochs * ((args.images + args.batch_size - 1) // args.batch_size)
    print(f"autoencoder training, {args.images} images {args.size}px at {args.split}, {args.epochs} epoch(s) per "
          f"stage, batch {args.batch_size}, best of {args.repeats}, {torch.get_num_threads()} threads")
    print(f"  privbench {best['privbench']:.2f}s, bare loop {best['bare']:.2f}s "
          f"({steps / best['privbench']:.1f} vs {steps / best['bare']:.1f} batches/s): ratio "
          f"{best['privbench'] / best['bare']:.3f}")
    print("edge side of each defense at its default setting (one thread, batch 16):")
    for name, per_s, params, macs in edge_throughput(model):
        print(f"  {name:12s} {per_s:9.0f} images/s  {params:7d} params  {macs / 1e6:7.2f} MMACs")


if __name__ == "__main__":
    main()
