"""Training-step throughput of the trained defenses of issue 12 through privbench against a bare PyTorch loop of
the same networks, data, losses, optimizers and steps; edge-side images/s of each defended front; and the
pruned front's speed-up over the unpruned one at the same split.

- ``pruning`` (PATROL, paper 002): per epoch a surrogate epoch, then per batch the three updates of Algorithm 1
  (θ on L − β·L_adv, θ on L + L_lip, masks by FISTA); then the pruned network's fine-tuning.
- ``perturbation`` (paper 003): the auxiliary classifier's epochs, then the U-Net generator on eq. 4 (AdamW with
  warm-up and cosine decay).
- ``obfuscator`` (paper 004): warm start, then per batch the deobfuscator's and the obfuscator's updates.

Each pair runs ``--repeats`` times, interleaved; the best time of each is compared (best-of-N is the least noisy
estimate on a shared machine). Target (issue 12): ratio ≤ 1.10 for each defense.

    python benchmarks/bench_trained_defense_overhead.py [--images 512] [--repeats 3] [--only pruning]
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
from bench_autoencoder_overhead import build as task_model  # the same frozen vgg-small task model
from torch.nn import functional as F

from privbench.components import load_components
from privbench.data.base import ImageSet
from privbench.defenses.base import FitContext
from privbench.edge_cost import edge_cost
from privbench.models.base import reinitialize
from privbench.models.channel_pruning import blocks, fold_masks, prune, with_masks
from privbench.models.decoders import build_decoder
from privbench.proximal import FISTA
from privbench.registry import DEFENSES

CPU = torch.device("cpu")


def epochs_of(images: torch.Tensor, batch_size: int, epochs: int, seed: int = 0):
    """(x, y) batches of ``epochs`` seeded random passes, as privbench's loop draws them."""
    generator = torch.Generator().manual_seed(seed)
    n = len(images)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]


def adam(params, lr, steps):
    opt = torch.optim.Adam(params, lr=lr)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)


def step(opt, schedule, loss, params) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward(inputs=params)
    opt.step()
    if schedule is not None:
        schedule.step()


# ---- PATROL ---------------------------------------------------------------------------------------------------
PRUNING = {"split": "relu22", "epochs": 1, "epochs_finetune": 1}


def bare_pruning(model, train: ImageSet, batch_size: int) -> None:
    defense = DEFENSES.create("pruning", **PRUNING)
    p = defense.params
    images, labels = train.images, train.labels["label"]
    n = len(images)
    steps = p["epochs"] * ((n + batch_size - 1) // batch_size)
    deep = model.recut(p["split"])
    front, back = copy.deepcopy(deep.front), copy.deepcopy(deep.back)
    for q in (*front.parameters(), *back.parameters()):
        q.requires_grad_(True)
    masked, masks = with_masks(front)
    parts = blocks(masked)
    alpha = defense.alpha
    surrogate = build_decoder(p["surrogate"], (16, 16, 16), deep.input_shape, width=p["surrogate_width"])
    theta = [*front.parameters(), *back.parameters()]
    mask_params = [m.mask for m in masks.values()]
    norm = lambda x_hat, x: (x - x_hat).flatten(1).norm(dim=1).mean()  # noqa: E731

    def surrogate_epoch():
        opt = torch.optim.Adam(surrogate.parameters(), lr=p["lr"])
        for idx in epochs_of(images, batch_size, 1):
            x = images[idx].float().div_(255.0)
            masked.eval()
            with torch.no_grad():
                z = masked(x)
            masked.train()
            step(opt, None, norm(surrogate(z), x), list(surrogate.parameters()))

    surrogate_epoch()
    adv, lip = adam(theta, p["lr"], steps), adam(theta, p["lr"], steps)
    fista = FISTA(mask_params, p["mask_lr"], l1=p["lambda1"], l2=p["lambda2"])
    fista_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(fista, steps)
    noise = torch.Generator().manual_seed(1)
    masked.train()
    back.train()
    for idx in epochs_of(images, batch_size, p["epochs"]):
        x, y = images[idx].float().div_(255.0), labels[idx]
        z = masked(x)
        step(*adv, F.cross_entropy(back(z), y) - p["beta"] * norm(surrogate(z), x), theta)
        delta = torch.randn(x.shape, generator=noise) * p["lip_sigma"]
        a, previous, k = torch.cat([x, x + delta]), delta.abs().flatten(1).sum(1), 0.0
        for weight, part in zip(alpha + [alpha[-1]] * 4, parts, strict=False):
            a = part(a)
            difference = (a[len(x):] - a[:len(x)]).abs().flatten(1).sum(1)
            k = k + weight * (difference / previous.clamp_min(1e-12)).max()
            previous = difference
        step(*lip, F.cross_entropy(back(masked(x)), y) + k, theta)
        step(fista, fista_schedule, F.cross_entropy(back(masked(x)), y), mask_params)
    fista.finish()
    kept = {name: list(range(len(m.mask) // 2)) for name, m in masks.items()}
    pruned_front, pruned_back = prune(fold_masks(masked), back, kept)
    params = [*pruned_front.parameters(), *pruned_back.parameters()]
    opt = adam(params, p["lr"], p["epochs_finetune"] * ((n + batch_size - 1) // batch_size))
    for idx in epochs_of(images, batch_size, p["epochs_finetune"]):
        x, y = images[idx].float().div_(255.0), labels[idx]
        step(*opt, F.cross_entropy(pruned_back(pruned_front(x)), y), params)


# ---- protective perturbation ------------------------------------------------------------------------------------
PERTURBATION = {"epochs": 1, "aux_epochs": 1, "width": 8, "depth": 4}


def bare_perturbation(model, train: ImageSet, batch_size: int) -> None:
    import piq

    from privbench.models.unet import UNet

    defense = DEFENSES.create("perturbation", **PERTURBATION)
    p = defense.params
    images, labels = train.images, train.labels["label"]
    n = len(images)
    aux = reinitialize(copy.deepcopy(model), 1)
    aux_params = list(aux.parameters())
    for q in aux_params:
        q.requires_grad_(True)
    aux.train()
    opt = adam(aux_params, p["aux_lr"], p["aux_epochs"] * ((n + batch_size - 1) // batch_size))
    for idx in epochs_of(images, batch_size, p["aux_epochs"]):
        step(*opt, F.cross_entropy(aux(images[idx].float().div_(255.0)), labels[idx]), aux_params)
    aux.eval()
    for q in aux_params:
        q.requires_grad_(False)
    unet = UNet(3, 3, tuple(p["width"] * 2**k for k in range(p["depth"])))
    params = list(unet.parameters())
    steps = p["epochs"] * ((n + batch_size - 1) // batch_size)
    warmup = round(p["warmup"] * steps)
    opt_g = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt_g, steps)
    for t, idx in enumerate(epochs_of(images, batch_size, p["epochs"])):
        x, y = images[idx].float().div_(255.0), labels[idx]
        x_prime = (x + unet(x)).clamp(0, 1)
        loss = (p["w_target"] * F.cross_entropy(model(x_prime), y) - p["w_aux"] * F.cross_entropy(aux(x_prime), y)
                + p["w_ssim"] * piq.ssim(x, x_prime, data_range=1.0, kernel_size=11, kernel_sigma=1.5))
        rate = opt_g.param_groups[0]["lr"]
        opt_g.param_groups[0]["lr"] = rate * min(1.0, (t + 1) / warmup) if warmup else rate
        step(opt_g, None, loss, params)
        opt_g.param_groups[0]["lr"] = rate
        cosine.step()


# ---- obfuscator -----------------------------------------------------------------------------------------------
OBFUSCATOR = {"epochs": 1}


def bare_obfuscator(model, train: ImageSet, batch_size: int) -> None:
    from privbench.defenses.obfuscator import MobileNetAutoencoder

    defense = DEFENSES.create("obfuscator", **OBFUSCATOR)
    p = defense.params
    images, labels = train.images, train.labels["label"]
    n = len(images)
    obfuscator = MobileNetAutoencoder(p["width"], p["blocks"])
    deobfuscator = MobileNetAutoencoder(p["deobfuscator_width"], p["blocks"])
    o_params, d_params = list(obfuscator.parameters()), list(deobfuscator.parameters())

    def adamw(params, epochs):
        opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
        steps = max(1, epochs * ((n + batch_size - 1) // batch_size))
        return opt, torch.optim.lr_scheduler.StepLR(opt, max(1, steps // 2), gamma=0.1)

    obfuscator.train()
    deobfuscator.train()
    if p["epochs_warm"]:
        opt = adamw(o_params, p["epochs_warm"])
        for idx in epochs_of(images, batch_size, p["epochs_warm"]):
            x, y = images[idx].float().div_(255.0), labels[idx]
            o = obfuscator(x)
            step(*opt, p["alpha_task"] * F.cross_entropy(model(o), y) + p["w_identity"] * F.mse_loss(o, x), o_params)
    opt_o, opt_d = adamw(o_params, p["epochs"]), adamw(d_params, p["epochs"])
    for idx in epochs_of(images, batch_size, p["epochs"]):
        x, y = images[idx].float().div_(255.0), labels[idx]
        o = obfuscator(x)  # one forward serves both steps, as in privbench (D reads it detached)
        step(*opt_d, F.mse_loss(deobfuscator(o.detach()), x), d_params)
        loss = p["alpha_task"] * F.cross_entropy(model(o), y) - p["alpha_rec"] * F.mse_loss(deobfuscator(o), x)
        step(*opt_o, loss, o_params)


CASES: dict[str, tuple[dict, Callable]] = {"pruning": (PRUNING, bare_pruning),
                                           "perturbation": (PERTURBATION, bare_perturbation),
                                           "obfuscator": (OBFUSCATOR, bare_obfuscator)}


def edge_rows(model, train: ImageSet) -> list[tuple[str, float, int, int]]:
    """(front, images/s at batch 16, params, MACs) of the undefended front, each defended front (fitted for one
    epoch: its cost does not depend on how well it is trained) and the unpruned front at the pruned split."""
    def cost(front):
        c = edge_cost(front, model.input_shape)
        return c.images_per_s, c.params, c.macs

    unpruned = f"unpruned ({PRUNING['split']})"
    rows = [("none (relu12)", *cost(model.front)), (unpruned, *cost(model.recut(PRUNING["split"]).front))]
    for name, (params, _) in CASES.items():
        defense = DEFENSES.create(name, **params)
        defense.load_state(defense.fit(FitContext(model=model, train=train, device=CPU, seed=0)))
        rows.append((f"{name}", *cost(defense.apply(model).front)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=tuple(CASES), action="append")
    args = parser.parse_args()
    load_components()
    model = task_model(32, "relu12")
    torch.manual_seed(0)
    images = (torch.rand(args.images, 3, 32, 32) * 255).to(torch.uint8)
    train = ImageSet("bench", images, {"label": torch.randint(0, 10, (args.images,))})
    print(f"{args.images} images 32 px, batch {args.batch_size}, best of {args.repeats}, "
          f"{torch.get_num_threads()} threads")
    for name in args.only or CASES:
        params, bare = CASES[name]
        times: dict[str, list[float]] = {"privbench": [], "bare": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            defense = DEFENSES.create(name, batch_size=args.batch_size, **params)
            defense.fit(FitContext(model=model, train=train, device=CPU, seed=0))
            times["privbench"].append(time.perf_counter() - start)
            start = time.perf_counter()
            bare(model, train, args.batch_size)
            times["bare"].append(time.perf_counter() - start)
        best = {k: min(v) for k, v in times.items()}
        print(f"  {name:13s} privbench {best['privbench']:6.2f}s  bare {best['bare']:6.2f}s  "
              f"ratio {best['privbench'] / best['bare']:.3f}  ({params})")
    print("edge side (one thread, batch 16):")
    rows = edge_rows(model, train)
    for label, per_s, params, macs in rows:
        print(f"  {label:22s} {per_s:9.0f} images/s  {params:7d} params  {macs / 1e6:7.2f} MMACs")
    by = {label: per_s for label, per_s, _, _ in rows}
    unpruned = f"unpruned ({PRUNING['split']})"
    print(f"pruned front speed-up over the unpruned one at {PRUNING['split']}: {by['pruning'] / by[unpruned]:.2f}×")


if __name__ == "__main__":
    main()
