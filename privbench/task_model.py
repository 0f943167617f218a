"""The task model (the network that is split): built, trained on the task data (or used as given) and cut,
cached by everything upstream of it."""

from __future__ import annotations

from typing import Any

import torch

from privbench.cache import Cache
from privbench.config import ModelConfig
from privbench.data.base import ImageSet
from privbench.device import derive_seed, seed_everything
from privbench.models.base import ModelSpec
from privbench.progress import step
from privbench.registry import MODELS
from privbench.split import SplitModel
from privbench.tasks import get_task
from privbench.training import fit_task


def trains_here(cfg: ModelConfig, spec: ModelSpec) -> bool:
    """Whether privbench trains the network: always without given weights; with them only if ``fine_tune``
    asks for it (given weights are used as given)."""
    return not spec.given_weights or cfg.fine_tune


def training_key(cfg: ModelConfig, spec: ModelSpec) -> dict[str, Any]:
    """What the trained weights depend on besides the data and the seed: the network (with the digests of its
    source and weights) and, when privbench trains it, the training settings."""
    key: dict[str, Any] = {"model": spec.spec()}
    if trains_here(cfg, spec):
        key.update(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                   **({"augment_blur": cfg.augment_blur} if cfg.augment_blur else {}),
                   **({"fine_tune": True} if spec.given_weights else {}))
    return key


def task_model(cfg: ModelConfig, train: ImageSet, train_spec: dict[str, Any], seed: int, device: torch.device,
               cache: Cache, progress=None) -> SplitModel:
    """Build the task network, train it on ``train`` (or load it from the cache; or use the given weights as
    they are) and cut it at ``cfg.split``."""
    spec_obj: ModelSpec = MODELS.create(cfg.name, **cfg.params)
    task = get_task(spec_obj.task)
    task.check_data(train, "the task's training")
    num_classes = task.num_classes(train)
    input_shape = (3, *train.size)
    network = spec_obj.build(num_classes, input_shape)
    # Cut first: a bad split name fails before any training.
    spec_obj.split_model(network, cfg.split, num_classes, input_shape)
    if trains_here(cfg, spec_obj):
        key = {**training_key(cfg, spec_obj), "train": train_spec, "seed": seed, "num_classes": num_classes,
               "input": list(input_shape), "device": device.type}

        def train_now() -> dict[str, torch.Tensor]:
            seed_everything(derive_seed(seed, "task-model"))
            fresh = spec_obj.build(num_classes, input_shape)
            pipeline = spec_obj.split_model(fresh, cfg.split, num_classes, input_shape)  # shares fresh's modules
            with step(f"training the task model ({spec_obj.label} on {len(train.images)} {train.name} images, "
                      f"seed {seed})"):
                fit_task(pipeline, train.images, task.targets(train), epochs=cfg.epochs, lr=cfg.lr,
                         batch_size=cfg.batch_size, device=device, seed=derive_seed(seed, "task-order"),
                         progress=progress, augment_blur=cfg.augment_blur, loss_fn=pipeline.task_loss)
            return {k: v.detach().cpu() for k, v in fresh.state_dict().items()}

        network.load_state_dict(cache.get_or_create("task-model", key, train_now))
    network.to(device).eval()
    for p in network.parameters():
        p.requires_grad_(False)
    return spec_obj.split_model(network, cfg.split, num_classes, input_shape)
