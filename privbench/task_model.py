"""The task model (the network that is split): built, trained on the task data (or used as given) and cut,
cached by everything upstream of it."""

from __future__ import annotations

from typing import Any

import torch

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


def _network(cfg: ModelConfig, train: ImageSet):
    """(model spec, task, untrained network, class count, input shape) of ``cfg`` for ``train``; the split is cut
    once here, so a bad split name fails before any training."""
    spec_obj: ModelSpec = MODELS.create(cfg.name, **cfg.params)
    task = get_task(spec_obj.task)
    task.check_data(train, "the task's training")
    num_classes = task.num_classes(train)
    input_shape = (3, *train.size)
    network = spec_obj.build(num_classes, input_shape)
    spec_obj.split_model(network, cfg.split, num_classes, input_shape)
    return spec_obj, task, network, num_classes, input_shape


def train_weights(cfg: ModelConfig, train: ImageSet, seed: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The weights of the task network trained on ``train`` (CPU tensors): the value of the engine's
    ``task-model`` node (:attr:`privbench.engine.inputs.RunInputs.model_node`)."""
    spec_obj, task, _, num_classes, input_shape = _network(cfg, train)
    seed_everything(derive_seed(seed, "task-model"))
    fresh = spec_obj.build(num_classes, input_shape)
    pipeline = spec_obj.split_model(fresh, cfg.split, num_classes, input_shape)  # shares fresh's modules
    with step(f"training the task model ({spec_obj.label} on {len(train.images)} {train.name} images, seed {seed})"):
        fit_task(pipeline, train.images, task.targets(train), epochs=cfg.epochs, lr=cfg.lr,
                 batch_size=cfg.batch_size, device=device, seed=derive_seed(seed, "task-order"),
                 augment_blur=cfg.augment_blur, loss_fn=pipeline.task_loss)
    return {k: v.detach().cpu() for k, v in fresh.state_dict().items()}


def build_task_model(cfg: ModelConfig, train: ImageSet, device: torch.device,
                     weights: dict[str, torch.Tensor] | None) -> SplitModel:
    """The task network on ``device``, frozen and cut at ``cfg.split``: with ``weights`` (privbench trained it:
    :func:`train_weights`) or as the model spec builds it (its given weights, used as given)."""
    spec_obj, _, network, num_classes, input_shape = _network(cfg, train)
    if weights is not None:
        network.load_state_dict(weights)
    network.to(device).eval()
    for p in network.parameters():
        p.requires_grad_(False)
    return spec_obj.split_model(network, cfg.split, num_classes, input_shape)
