"""Training the task model (the network that is split), cached by everything upstream of it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from privbench.cache import Cache
from privbench.config import ModelConfig
from privbench.data.base import ImageSet, gaussian_blur
from privbench.device import derive_seed, seed_everything
from privbench.models.base import ModelSpec
from privbench.registry import MODELS
from privbench.split import SplitModel, batches


def random_blur(x: torch.Tensor, max_sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Blur the second half of batch ``x`` with one Gaussian of σ ~ U(0.3, max_sigma) pixels.

    A task model that has seen blurred images classifies by coarse content, as a deployed utility model
    should; without it, a model trained on sharp synthetic scenes lost 10 points of accuracy at σ = 0.75.
    """
    sigma = 0.3 + (max_sigma - 0.3) * torch.rand((), generator=generator).item()
    half = x.shape[0] // 2
    return torch.cat([x[:half], gaussian_blur(x[half:], sigma)])


def fit_classifier(network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int, lr: float,
                   batch_size: int, device: torch.device, seed: int, progress=None,
                   augment_blur: float = 0.0) -> None:
    """Adam + cross-entropy with a cosine learning-rate decay; ``images`` are uint8 on CPU.

    ``augment_blur`` > 0 blurs half of every batch (:func:`random_blur`)."""
    network.to(device).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    steps = max(1, epochs * ((len(images) + batch_size - 1) // batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for s in batches(len(images), batch_size):
            idx = order[s]
            x = images[idx].to(device).float().div_(255.0)
            if augment_blur > 0:
                x = random_blur(x, augment_blur, generator)
            loss = nn.functional.cross_entropy(network(x), labels[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if progress is not None:
            progress()
    network.eval()


def task_model(cfg: ModelConfig, train: ImageSet, train_spec: dict[str, Any], seed: int, device: torch.device,
               cache: Cache, progress=None) -> SplitModel:
    """Build the task network, train it on ``train`` (or load it from the cache) and cut it at ``cfg.split``."""
    spec_obj: ModelSpec = MODELS.create(cfg.name, **cfg.params)
    num_classes = len(train.meta.get("classes", [])) or int(train.labels["label"].max()) + 1
    input_shape = (3, *train.size)
    network = spec_obj.build(num_classes, input_shape)
    # Cut first: a bad split name fails before any training.
    spec_obj.split_model(network, cfg.split, num_classes, input_shape)
    key = {"model": spec_obj.spec(), "train": train_spec, "epochs": cfg.epochs, "lr": cfg.lr,
           "batch_size": cfg.batch_size, "seed": seed,
           "num_classes": num_classes, "input": list(input_shape),
           **({"augment_blur": cfg.augment_blur} if cfg.augment_blur else {})}

    def train_now() -> dict[str, torch.Tensor]:
        seed_everything(derive_seed(seed, "task-model"))
        fresh = spec_obj.build(num_classes, input_shape)
        fit_classifier(fresh, train.images, train.labels["label"], epochs=cfg.epochs, lr=cfg.lr,
                       batch_size=cfg.batch_size, device=device, seed=derive_seed(seed, "task-order"),
                       progress=progress, augment_blur=cfg.augment_blur)
        return {k: v.detach().cpu() for k, v in fresh.state_dict().items()}

    state = cache.get_or_create("task-model", key, train_now)
    network.load_state_dict(state)
    network.to(device).eval()
    for p in network.parameters():
        p.requires_grad_(False)
    return spec_obj.split_model(network, cfg.split, num_classes, input_shape)
