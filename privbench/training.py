"""The one training loop of privbench, and the task model's training on top of it.

Every network privbench trains by gradient descent over a dataset — the task model, an inverse network, a
shadow front, a trained defense's encoder/decoder and its adversary — runs through :func:`train`: epochs of a
seeded random permutation, batches of indices, and one or more :class:`Update` steps per batch (an
adversarial defense alternates two: the adversary's, then the defender's). Each update has its own Adam
optimizer and optional cosine learning-rate decay and only ever writes gradients into its own parameters
(``backward(inputs=...)``), so frozen parts (the task back, the adversary while the defender steps) are never
touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
from torch import nn

from privbench import progress
from privbench.data.base import gaussian_blur
from privbench.split import batches


@dataclasses.dataclass
class Update:
    """One optimizer step per batch: minimize ``loss(indices)`` over ``parameters`` with Adam.

    ``schedule`` is ``"cosine"`` (decay to 0 over the whole run), ``"step"`` (÷10 at the halfway point, paper
    004's schedule), ``"halve-10"`` (halved every 10 epochs, He et al.'s shadow model) or ``"constant"``;
    ``eps`` and ``amsgrad`` are Adam's (He et al.'s code uses eps 1e-3 with AMSGrad for some steps).
    ``optimizer`` replaces Adam: a factory ``(parameters, lr) -> Optimizer`` (AdamW
    with weight decay, the proximal FISTA step of :mod:`privbench.proximal`, ...).
    """

    parameters: Sequence[nn.Parameter]
    loss: Callable[[torch.Tensor], torch.Tensor]
    lr: float
    schedule: str = "cosine"
    eps: float = 1e-8
    amsgrad: bool = False
    optimizer: Callable[[list[nn.Parameter], float], torch.optim.Optimizer] | None = None


def train(n: int, updates: Sequence[Update], *, epochs: int, batch_size: int, seed: int | None = None,
          generator: torch.Generator | None = None, on_epoch: Callable[[int], None] | None = None) -> None:
    """Run ``epochs`` passes over ``n`` items in a random order drawn from ``generator`` (or a fresh one seeded
    with ``seed``); for every batch of indices, step each update in turn. The epochs are counted for the named
    :func:`privbench.progress.step` around the call (the line of a long step shows them)."""
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    steps = max(1, epochs * ((n + batch_size - 1) // batch_size))
    plans = []
    for update in updates:
        params = [p for p in update.parameters if p.requires_grad]
        if not params:
            raise ValueError("training update has no trainable parameters")
        if update.optimizer is not None:
            optimizer = update.optimizer(params, update.lr)
        else:
            optimizer = torch.optim.Adam(params, lr=update.lr, eps=update.eps, amsgrad=update.amsgrad)
        if update.schedule == "cosine":
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        elif update.schedule == "step":
            schedule = torch.optim.lr_scheduler.StepLR(optimizer, max(1, steps // 2), gamma=0.1)
        elif update.schedule == "halve-10":
            # He et al.'s shadow-model schedule: the learning rate halved every 10 epochs
            per_epoch = (n + batch_size - 1) // batch_size
            schedule = torch.optim.lr_scheduler.StepLR(optimizer, 10 * per_epoch, gamma=0.5)
        elif update.schedule == "constant":
            schedule = None
        else:
            raise ValueError(f"unknown learning-rate schedule {update.schedule!r}")
        plans.append((update, params, optimizer, schedule))
    for epoch in progress.track(range(epochs), unit="epoch"):
        order = torch.randperm(n, generator=generator)
        for s in batches(n, batch_size):
            idx = order[s]
            for update, params, optimizer, schedule in plans:
                loss = update.loss(idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward(inputs=params)
                optimizer.step()
                if schedule is not None:
                    schedule.step()
        if on_epoch is not None:
            on_epoch(epoch)


def random_blur(x: torch.Tensor, max_sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Blur the second half of batch ``x`` with one Gaussian of σ ~ U(0.3, max_sigma) pixels.

    A task model that has seen blurred images classifies by coarse content, as a deployed utility model
    should; without it, a model trained on sharp synthetic scenes lost 10 points of accuracy at σ = 0.75.
    """
    sigma = 0.3 + (max_sigma - 0.3) * torch.rand((), generator=generator).item()
    half = x.shape[0] // 2
    return torch.cat([x[:half], gaussian_blur(x[half:], sigma)])


def fit_task(network: nn.Module, images: torch.Tensor, labels, *, epochs: int, lr: float,
             batch_size: int, device: torch.device, seed: int, progress=None, augment_blur: float = 0.0,
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
    """Adam + the task loss (default cross-entropy; a SplitModel's ``task_loss``) with a cosine learning-rate decay;
    ``images`` are uint8 on CPU, ``labels`` the task's targets (a label tensor, or anything indexed and moved like
    one: :class:`~privbench.tasks.DetectionTargets`). ``augment_blur`` > 0 blurs half of every batch
    (:func:`random_blur`)."""
    network.to(device).train()
    loss_fn = loss_fn or nn.functional.cross_entropy
    generator = torch.Generator().manual_seed(seed)

    def loss(idx: torch.Tensor) -> torch.Tensor:
        x = images[idx].to(device).float().div_(255.0)
        if augment_blur > 0:
            x = random_blur(x, augment_blur, generator)
        return loss_fn(network(x), labels[idx].to(device))

    train(len(images), [Update(list(network.parameters()), loss, lr)], epochs=epochs, batch_size=batch_size,
          generator=generator, on_epoch=(lambda _: progress()) if progress is not None else None)
    network.eval()


def fit_decoder(decoder: nn.Module, images: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor], *,
                epochs: int, lr: float, batch_size: int, device: torch.device, seed: int,
                loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], stochastic: bool = True) -> None:
    """Train ``decoder`` to map ``encode(x)`` back to ``x`` (float images in [0, 1] on CPU), Adam at a constant
    learning rate. ``encode`` must not need gradients (a query, a frozen encoder). With ``stochastic`` it is called
    afresh for every batch, so a stochastic defense inside it is re-sampled (the adaptive attacker of every paper
    here); a deterministic encoder is queried once per image, in batches of 256, and the pairs (z, x) reused every
    epoch (He et al.'s attacker builds such a dataset) — through a codec, one query per batch of 32 per epoch had
    been 90 % of a coded grid point's time."""
    decoder.train()
    if not stochastic:
        with torch.no_grad():
            codes = torch.cat([encode(images[s].to(device)) for s in batches(len(images), 256)])

        def loss(idx: torch.Tensor) -> torch.Tensor:
            return loss_fn(decoder(codes[idx.to(codes.device)]), images[idx].to(device))
    else:
        def loss(idx: torch.Tensor) -> torch.Tensor:
            x = images[idx].to(device)
            return loss_fn(decoder(encode(x)), x)

    train(len(images), [Update(list(decoder.parameters()), loss, lr, schedule="constant")], epochs=epochs,
          batch_size=batch_size, seed=seed)
    decoder.eval()
