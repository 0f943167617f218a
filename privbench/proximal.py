"""FISTA: accelerated proximal gradient steps for parameters under an ℓ1 + ℓ2 penalty (PATROL's soft masks).

PATROL (paper 002 §III-B1, eq. 1) trains the pruning masks m with

    min_m  L(θ, m) + λ1·‖m‖₁ + λ2·‖m‖₂

and updates m with FISTA (Beck & Teboulle, SIAM J. Imaging Sci. 2009): a gradient step on the smooth loss L at
an extrapolated point y, then the proximal operator of the non-smooth penalty, then Nesterov momentum:

    x_k     = prox_{η·g}(y_k − η·∇L(y_k)),            g(m) = λ1‖m‖₁ + λ2‖m‖₂
    t_{k+1} = (1 + √(1 + 4·t_k²)) / 2
    y_{k+1} = x_k + ((t_k − 1) / t_{k+1})·(x_k − x_{k−1})

The prox of the sum of an ℓ1 norm and an ℓ2 norm over the same vector is the composition of elementwise soft
thresholding and a shrinkage of the whole vector's length (the sparse-group-lasso prox):

    prox(v) = u · max(0, 1 − η·λ2 / ‖u‖₂),   u = sign(v)·max(|v| − η·λ1, 0)

Zero entries stay exactly zero unless the loss gradient overcomes λ1, which is what makes a mask prunable.
The parameters hold y (where the next gradient is evaluated); :meth:`FISTA.finish` writes the last iterate x.
All parameters of a group form one vector for the ℓ2 norm (PATROL's ‖m‖₂ is over the whole mask).

**Adaptive restart** (O'Donoghue & Candès, Found. Comput. Math. 2015, the gradient scheme): when the step just
taken points against the momentum, ⟨y_k − x_k, x_k − x_{k−1}⟩ > 0, the momentum is reset (t = 1, y_{k+1} = x_k).
Without it the momentum of a stochastic, non-convex objective keeps growing (t_k ≈ k/2, so the extrapolation
weight tends to 1) and carries the iterates far past the minimum — PATROL's masks ended at −3.2…+2.4 from 1.
``restart=False`` gives plain FISTA.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def sparse_group_prox(values: list[torch.Tensor], l1: float, l2: float) -> list[torch.Tensor]:
    """prox of ``l1·‖v‖₁ + l2·‖v‖₂`` (the thresholds already multiplied by the step) over the concatenation
    of ``values``; returns new tensors of the same shapes."""
    soft = [v.sign() * (v.abs() - l1).clamp_min(0.0) for v in values]
    norm = math.sqrt(sum(float(s.square().sum()) for s in soft))
    scale = max(0.0, 1.0 - l2 / norm) if norm > 0 else 0.0
    return [s * scale for s in soft]


class FISTA(torch.optim.Optimizer):
    """Proximal gradient with Nesterov/FISTA momentum for ``λ1·‖·‖₁ + λ2·‖·‖₂`` (see the module docstring).

    ``lr`` is the step η (a learning-rate scheduler may change it); ``l1`` and ``l2`` are λ1 and λ2.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, l1: float = 1.0, l2: float = 10.0,
                 restart: bool = True) -> None:
        if lr <= 0 or l1 < 0 or l2 < 0:
            raise ValueError("FISTA needs lr > 0 and l1, l2 >= 0")
        super().__init__(params, {"lr": lr, "l1": l1, "l2": l2, "restart": restart})
        #: how many times the momentum was reset (adaptive restart), over all groups
        self.restarts = 0

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's Optimizer signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr = group["lr"]
            moved = [p - lr * p.grad for p in params]
            iterates = sparse_group_prox(moved, lr * group["l1"], lr * group["l2"])
            previous = [self.state[p].get("x", x) for p, x in zip(params, iterates, strict=True)]
            if group["restart"] and sum(float(((p - x) * (x - prev)).sum())
                                        for p, x, prev in zip(params, iterates, previous, strict=True)) > 0:
                group["t"] = 1.0  # the step went against the momentum: start the sequence again
                self.restarts += 1
            t = group.setdefault("t", 1.0)  # FISTA's momentum sequence, one per group
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            momentum = (t - 1.0) / t_next
            for p, x, prev in zip(params, iterates, previous, strict=True):
                self.state[p]["x"] = x
                p.copy_(x + momentum * (x - prev))
            group["t"] = t_next
        return loss

    @torch.no_grad()
    def finish(self) -> None:
        """Set every parameter to its last proximal iterate x (drop the extrapolation)."""
        for group in self.param_groups:
            for p in group["params"]:
                if "x" in self.state[p]:
                    p.copy_(self.state[p]["x"])
