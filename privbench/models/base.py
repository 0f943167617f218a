"""Model component base: builds a full network as a named ``nn.Sequential`` that is cut by name."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from privbench.errors import PrivbenchError
from privbench.fingerprint import file_digest
from privbench.registry import Component
from privbench.split import SplitModel, cut_sequential
from privbench.tasks import get_task


class ModelSpec(Component):
    """A registered task model. ``build(num_classes, input_shape)`` returns a named ``nn.Sequential``.

    ``splits`` lists the named cut points from shallow to deep; ``default_split`` is used when none is given.
    """

    kind: ClassVar[str] = "model"
    splits: ClassVar[tuple[str, ...]] = ()
    default_split: ClassVar[str] = ""
    #: True when only the listed ``splits`` are valid (built-in nets); torchvision/custom models can be cut
    #: after any submodule, checked when the model is cut.
    strict_splits: ClassVar[bool] = False
    #: what the network does (a name in :data:`privbench.tasks.TASKS`): it decides the loss, the targets, the
    #: predictions and which utility metrics apply
    task: ClassVar[str] = "classification"

    def build(self, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Sequential:
        raise NotImplementedError

    def available_splits(self, num_classes: int, input_shape: tuple[int, int, int]) -> tuple[str, ...]:
        return self.splits

    def split_model(self, network: nn.Sequential, split: str, num_classes: int,
                    input_shape: tuple[int, int, int]) -> SplitModel:
        front, back = cut_sequential(network, split)
        return SplitModel(front, back, model=self.name, split=split, input_shape=input_shape,
                          num_classes=num_classes, task=get_task(self.task))

    @property
    def label(self) -> str:
        """The ``model`` column of the results."""
        return self.name

    @property
    def given_weights(self) -> str:
        """The weights file the user named (``weights`` parameter), or ``""``."""
        return str(self.params.get("weights") or "")

    def content(self) -> dict[str, Any]:
        """Digests of the files the network depends on (its weights file), so an overwritten file recomputes; a
        weights file that is missing or a folder is one :class:`PrivbenchError` line (read when the grid is built,
        before any compute)."""
        if not self.given_weights:
            return {}
        from privbench.weights import check_weights_path

        path = check_weights_path(self.given_weights)
        try:
            return {"weights": file_digest(path)}
        except OSError as exc:
            raise PrivbenchError(f"cannot read weights {path} ({exc.strerror or exc})") from None

    def spec(self) -> dict:
        return {"model": self.name, "params": self.params, **self.content()}


def reinitialize(module: nn.Module, seed: int) -> nn.Module:
    """Re-draw every parameter of ``module`` in place (``reset_parameters`` where a layer has one, a
    Kaiming-uniform / zero draw otherwise), so no trained weight survives; buffers such as a fixed input
    normalization are kept (they are part of the public architecture)."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        covered: set[int] = set()
        for sub in module.modules():
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()
                covered.update(id(p) for p in sub.parameters(recurse=False))
        with torch.no_grad():
            for p in module.parameters():
                if id(p) in covered:
                    continue
                if p.ndim >= 2:
                    nn.init.kaiming_uniform_(p, a=5**0.5)
                else:
                    p.zero_()
    finally:
        torch.random.set_rng_state(generator_state)
    return module
