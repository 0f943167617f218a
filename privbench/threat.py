"""The threat model as an object: what each access level hands an attacker.

Following He, Zhang & Lee (ACSAC 2019) §3 and the habit of *breaching* (the threat model is separate from
the attacks), the pipeline builds an :class:`AttackerView` for the access level an attack declares and
hands it *only* that:

- ``white-box``: the defended front itself (architecture + weights, differentiable), plus own data;
- ``black-box``: a query function ``z = query(x)`` on the defended front (no weights, no gradients), plus
  own data;
- ``query-free``: no access to the front at all; the cloud back (the attacker *is* the cloud), own
  labelled data, and the features it intercepts from the victims' inference traffic (what the cloud is
  sent anyway; FORA's distribution matching, Xu et al. CVPR 2024, learns from them without labels).

Every level receives the attacker's own data (disjoint from the probes) and the shapes involved.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from privbench.device import derive_seed
from privbench.errors import PrivbenchError
from privbench.models.base import reinitialize
from privbench.split import SplitModel, Stage, batches, pipeline_stages


class Access(enum.Enum):
    WHITE_BOX = "white-box"
    BLACK_BOX = "black-box"
    QUERY_FREE = "query-free"


@dataclasses.dataclass
class AttackerView:
    """What an attacker holds. Fields it is not entitled to are ``None``."""

    access: Access
    data: torch.Tensor  # attacker's own images, float in [0, 1], N×3×H×W, on CPU
    input_shape: tuple[int, int, int]
    feature_shape: tuple[int, ...]
    value_range: tuple[float, float]
    device: torch.device
    seed: int
    query: Callable[[torch.Tensor], torch.Tensor] | None = None
    front: nn.Module | None = None
    back: nn.Module | None = None
    num_classes: int | None = None
    task_data: torch.Tensor | None = None  # attacker's own *labelled* task images (query-free training)
    task_labels: Any = None  # their task targets (class labels, or detection targets)
    #: the task's training loss (public: the task is); what a query-free attacker trains its shadow front with
    task_loss: Callable[[Any, Any], torch.Tensor] | None = None
    #: query-free: builds an *untrained* module with the defended front's architecture (Kerckhoffs: the
    #: architecture and the defense are public, the weights are not); ``None`` when not entitled
    front_architecture: Callable[[], nn.Module] | None = None
    #: the pipeline draws fresh randomness at every call (a stochastic stage, e.g. noise): public, like the
    #: defense itself; an attacker of a deterministic pipeline may query each image once and reuse it
    stochastic: bool = True
    #: query-free: defended features of the victims' own inference traffic (the task's test images run
    #: through the deployed pipeline), which the cloud receives; never the images themselves
    intercepted: torch.Tensor | None = None
    #: the learned state of the same attack fitted against the undefended pipeline, for an attack that starts from
    #: it (:meth:`~privbench.attacks.base.Attack.warm_starts`: the adaptive attacker of issue 28); ``None`` otherwise
    warm_start: dict[str, Any] | None = None


def make_query(front: nn.Module, device: torch.device,
               batch_size: int = 256) -> Callable[[torch.Tensor], torch.Tensor]:
    """A black-box oracle over the defended front: tensors in, tensors out, no gradients or weights."""

    @torch.no_grad()
    def query(x: torch.Tensor) -> torch.Tensor:
        front.eval()
        return torch.cat([front(x[s].to(device)) for s in batches(len(x), batch_size)])

    return query


def architecture_factory(front: nn.Module, seed: int) -> Callable[[], nn.Module]:
    """A builder of untrained copies of ``front``'s architecture (the template holds no trained weight)."""
    template = reinitialize(copy.deepcopy(front).cpu(), derive_seed(seed, "front-architecture"))
    for p in template.parameters():
        p.requires_grad_(True)

    def build() -> nn.Module:
        return copy.deepcopy(template)

    return build


def stages_without_exact_gradient(front: nn.Module) -> list[Stage]:
    return [s for s in pipeline_stages(front) if not s.differentiable]


def attacker_view(access: Access, defended: SplitModel, data: torch.Tensor, device: torch.device,
                  seed: int, *, task_data: torch.Tensor | None = None,
                  task_labels: Any = None, intercepted: torch.Tensor | None = None,
                  approximations: tuple[str, ...] = (), warm_start: dict[str, Any] | None = None) -> AttackerView:
    """Build the view for ``access``. White-box through a stage without exact gradients needs the stage to
    declare an approximation (e.g. straight-through) that the attack accepts (``approximations``).
    ``intercepted`` (features of the victims' traffic) reaches the query-free view only; ``warm_start`` (the attack's
    own state against the undefended pipeline) reaches every view."""
    common = dict(access=access, data=data, task_data=task_data, task_labels=task_labels, warm_start=warm_start,
                  input_shape=defended.input_shape, feature_shape=defended.feature_shape(),
                  value_range=defended.value_range, device=device, seed=seed,
                  num_classes=defended.num_classes, task_loss=defended.task_loss,
                  stochastic=any(stage.stochastic for stage in pipeline_stages(defended.front)))
    if access is Access.WHITE_BOX:
        for stage in stages_without_exact_gradient(defended.front):
            if not stage.approximation or stage.approximation not in approximations:
                offered = f" (it offers a {stage.approximation} gradient)" if stage.approximation else ""
                raise PrivbenchError(f"white-box attack needs gradients through the front, but stage "
                                     f"'{stage.label}' is not differentiable{offered} and the attack accepts "
                                     f"no approximation of it")
        return AttackerView(front=defended.front, **common)
    if access is Access.BLACK_BOX:
        return AttackerView(query=make_query(defended.front, device), **common)
    return AttackerView(back=defended.back, front_architecture=architecture_factory(defended.front, seed),
                        intercepted=intercepted, **common)


def subset_indices(n: int, samples: int, seed: int) -> torch.Tensor | None:
    """Sorted indices of a seeded random subset of ``samples`` out of ``n`` items (``None`` = keep all: ``samples``
    is 0 or at least ``n``)."""
    if samples <= 0 or samples >= n:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:samples].sort().values


def attacker_subset(data: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """``samples`` of the attacker's images (0 = all): the attacker's data size. A seeded random subset
    (kept in order), not the first N, because the attacker's data is a concatenation of datasets."""
    keep = subset_indices(len(data), samples, seed)
    return data if keep is None else data[keep]
