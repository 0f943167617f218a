"""SplitModel: a task network with a named cut between the edge (front) and the cloud (back).

Convention used everywhere in privbench: images are float tensors in [0, 1] (``value_range``). Any input
normalization (e.g. ImageNet mean/std) is the first layer of ``front``, so attacks reconstruct, and
metrics compare, images in plain pixel space.

Pipeline stages (DESIGN §8). What runs between the input and the back besides the task network itself —
defense transforms at the input or the features, a learned bottleneck encoder, later a codec — is a
:class:`Stage`. A *defended* model is again a SplitModel whose ``front`` is the whole edge side (task front
+ edge stages, what :meth:`SplitModel.transmit` runs) and whose ``back`` is the whole cloud side (e.g. a
bottleneck's decoder + the task back). Stages live here, below models, the threat model and attacks, because
all of them need to ask a pipeline which stages it has.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import ClassVar

import torch
from torch import nn

from privbench.errors import PrivbenchError
from privbench.tasks import Classification, Task


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std``, stored as buffers so it moves with the model."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Stage(nn.Module):
    """A pipeline stage between the input and the back (a defense transform, an encoder, a codec).

    ``differentiable``: gradients through the stage are exact. A stage that is not may declare an
    ``approximation`` (e.g. ``"straight-through"``) that its backward implements; a white-box attack then
    needs to accept that approximation (:func:`privbench.threat.attacker_view`).
    ``stochastic``: the stage draws fresh randomness at every call (white-box attacks use EOT).
    Stages act in both train and eval mode: they are part of the deployed pipeline.
    """

    differentiable: ClassVar[bool] = True
    approximation: ClassVar[str] = ""
    stochastic: ClassVar[bool] = False
    label: str = "stage"


def pipeline_stages(module: nn.Module) -> list[Stage]:
    """All stages inside a (defended) front or back, in order."""
    return [m for m in module.modules() if isinstance(m, Stage)]


def cut_sequential(layers: nn.Sequential, split: str) -> tuple[nn.Sequential, nn.Sequential]:
    """Cut a named ``nn.Sequential`` right after the child called ``split``."""
    names = [name for name, _ in layers.named_children()]
    if split not in names:
        raise PrivbenchError(f"unknown split '{split}' (choose from: {', '.join(names)})")
    k = names.index(split) + 1
    children = list(layers.named_children())
    return nn.Sequential(OrderedDict(children[:k])), nn.Sequential(OrderedDict(children[k:]))


def batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


class SplitModel(nn.Module):
    """A task network cut in two: ``front`` (edge) and ``back`` (cloud).

    ``front(x) -> z`` is what crosses the network; ``back(z) -> y`` finishes the task. ``task`` (a
    :class:`~privbench.tasks.Task`) owns the task's loss (:meth:`task_loss`, what every training of the task side
    calls), its targets and its predictions (:meth:`predict`), so nothing else needs to know whether the network
    classifies or detects.
    """

    def __init__(self, front: nn.Module, back: nn.Module, *, model: str, split: str,
                 value_range: tuple[float, float] = (0.0, 1.0), input_shape: tuple[int, int, int] = (3, 64, 64),
                 num_classes: int | None = None, input_stage: nn.Module | None = None,
                 task: Task | None = None) -> None:
        super().__init__()
        self.front = front
        self.back = back
        #: the stage that transforms the input image before the task network (an image-space defense), or
        #: ``None``; it is also inside ``front`` (``front = input_stage → task front``), held here so the
        #: defended image x′ can be scored on its own (:meth:`defended_input`)
        self.input_stage = input_stage
        self.model_name = model
        self.split = split
        self.value_range = value_range
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.task = task or Classification()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.back(self.transmit(x))

    def transmit(self, x: torch.Tensor) -> torch.Tensor:
        """What crosses the network for input ``x``: the edge side (front and its stages). Attacks observe it."""
        return self.front(x)

    def task_loss(self, outputs, targets) -> torch.Tensor:
        """The task's training loss of the back's ``outputs`` (classification: cross-entropy; detection: the
        detector's RPN and box-head losses); every training of the task side uses it."""
        return self.task.loss(outputs, targets)

    @property
    def device(self) -> torch.device:
        tensor = next(iter(self.parameters()), None)
        if tensor is None:
            tensor = next(iter(self.buffers()), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    @torch.no_grad()
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of ``front``'s output for one input (without the batch dimension)."""
        was_training = self.training
        self.eval()
        z = self.transmit(torch.zeros(1, *self.input_shape, device=self.device))
        self.train(was_training)
        return tuple(z.shape[1:])

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """:meth:`transmit` over a float image tensor in batches (eval mode, no gradients)."""
        self.eval()
        device = self.device
        parts = [self.transmit(images[s].to(device)) for s in batches(len(images), batch_size)]
        return torch.cat(parts)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 256):
        """The task's predictions (logits; per-image detections) for a float image tensor, in batches, on the
        CPU."""
        self.eval()
        device = self.device
        return self.task.gather([self.task.predictions(self(images[s].to(device)))
                                 for s in batches(len(images), batch_size)])

    @torch.no_grad()
    def defended_input(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """x′: what the task network receives for float images ``images`` — the input stage's output (an
        obfuscated or perturbed image), or the images themselves when no stage acts on the input. This is what
        crosses the network when nothing else runs on the edge (papers 003 and 004). CPU, in [0, 1]."""
        if self.input_stage is None:
            return images.cpu()
        self.eval()
        device = self.device
        return torch.cat([self.input_stage(images[s].to(device)).cpu() for s in batches(len(images), batch_size)])

    def derive(self, front: nn.Module, back: nn.Module, *, split: str | None = None,
               input_stage: nn.Module | None = None) -> SplitModel:
        """A new SplitModel with this one's model name, value range, input shape, classes and task, and the given
        parts (``split``: the deployed cut, default this one's)."""
        return SplitModel(front, back, model=self.model_name, split=split or self.split, value_range=self.value_range,
                          input_shape=self.input_shape, num_classes=self.num_classes, input_stage=input_stage,
                          task=self.task)

    def with_front(self, front: nn.Module, split: str | None = None) -> SplitModel:
        """A new SplitModel sharing ``back`` with a different front (used by transform defenses)."""
        return self.with_parts(front, self.back, split=split)

    def with_input_stage(self, stage: nn.Module) -> SplitModel:
        """A new SplitModel whose edge side first transforms the image with ``stage`` (x′ = stage(x)), then
        runs this model's front; the back is shared."""
        front = nn.Sequential(OrderedDict(defense=stage, front=self.front))
        return self.derive(front, self.back, input_stage=stage)

    def with_parts(self, front: nn.Module, back: nn.Module, split: str | None = None) -> SplitModel:
        """A new SplitModel with a different edge side and cloud side (a bottleneck changes both); an input
        stage, if any, is not carried over (``front`` is the whole new edge side)."""
        return self.derive(front, back, split=split)

    def recut(self, split: str) -> SplitModel:
        """The same network cut at another named layer, sharing this model's modules. Needs a front and a back
        that are named ``nn.Sequential`` chains (the built-in nets); a deeper cut moves layers of the back to
        the edge (PATROL, paper 002, deploys more layers on the edge)."""
        if not (isinstance(self.front, nn.Sequential) and isinstance(self.back, nn.Sequential)):
            raise PrivbenchError(f"model '{self.model_name}' cannot be cut at another layer here: its front and "
                                 f"back are not named nn.Sequential chains (a built-in model such as vgg-small is)")
        if self.input_stage is not None:
            raise PrivbenchError("cannot recut a pipeline that transforms its input (a defended model)")
        whole = nn.Sequential(OrderedDict([*self.front.named_children(), *self.back.named_children()]))
        front, back = cut_sequential(whole, split)
        return self.derive(front, back, split=split)
