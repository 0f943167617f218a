"""Query-free attack with a shadow model, He, Zhang & Lee (ACSAC 2019) §4.3, paper 000 §III-D.3.

The attacker (the cloud) holds the back f2 but can neither inspect nor query the front f1. It trains a
substitute front g1 such that f2(g1(x)) ≈ f2(f1(x)): cross-entropy of f2(g1(x)) against the labels of its
own task images, *through the frozen back* (only g1 learns). g1 then stands in for f1: the observed z is
inverted either by rMLE on g1 (``then=rmle``; reference: 500 iterations, lr 0.1, λ_TV 2) or by an inverse
network trained on (x, g1(x)) pairs of the attacker's images (``then=inverse-net``).

Architecture of g1 (``architecture``):

- ``front`` (default): an untrained copy of the defended front's architecture, defense stages included
  (Kerckhoffs: the architecture and the defense are public, the weights are not). The pipeline hands it
  over as :attr:`AttackerView.front_architecture`, a builder whose template holds re-drawn weights only.
- ``mirror-of-shape``: a generic conv encoder built from the input and feature shapes alone (3×3 conv +
  ReLU at full resolution, one stride-2 conv + ReLU per halving, a linear 3×3 conv to the feature channels;
  flat features: down to 1/8 resolution, then a linear layer) — for an attacker that does not know the
  architecture either.

How well g1 can stand in for f1 depends on how tightly the back constrains it: on the embedded synthetic
task (vgg-small width 8, blur-augmented) g1 meets the task as well as f1 but its features differ from
f1's by 0.3–1.3 of their energy, and the attack is no better than a mean-image guess
(``benchmarks/shadow_fidelity.py`` measures this per split).

Everything here is written by hand (no library implements the attack); the rMLE and decoder stages reuse
:mod:`privbench.attacks.rmle` and :mod:`privbench.models.decoders`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from privbench.attacks.base import Attack
from privbench.attacks.rmle import BY_DEPTH, RMLE, resolve_settings, rmle_invert
from privbench.errors import PrivbenchError
from privbench.losses import RECONSTRUCTION_LOSSES, reconstruction_loss
from privbench.models.decoders import DECODERS, build_decoder
from privbench.progress import note
from privbench.registry import ATTACKS, Param
from privbench.split import batches
from privbench.threat import Access, AttackerView, attacker_subset, subset_indices
from privbench.training import Update, fit_decoder, train

#: smallest TV weight of the shadow's rMLE stage when it is left "by depth" (measured at conv11 on the
#: synthetic data with g1 lr 2e-3: λ_TV 0 → 9.1 dB, 1 → 12.6, 5 → 12.9, 20 → 13.3; lr 1e-2 and λ 5: 14.7)
MIN_SHADOW_TV = 5.0


def mirror_of_shape_encoder(input_shape: tuple[int, int, int], feature_shape: tuple[int, ...],
                            width: int = 16) -> nn.Sequential:
    """A conv encoder from ``input_shape`` to ``feature_shape`` knowing nothing but the two shapes."""
    in_ch, height, _ = input_shape
    flat = len(feature_shape) == 1
    if flat:
        target_ch, target_h = 4 * width, max(height // 8, 1)
    elif len(feature_shape) == 3:
        target_ch, target_h = feature_shape[0], feature_shape[1]
    else:
        raise PrivbenchError(f"shadow: cannot build an encoder for features of shape {feature_shape}")
    ratio = height // target_h
    halvings = int(round(math.log2(ratio))) if ratio >= 1 else -1
    if ratio < 1 or height % target_h or 2**halvings != ratio:
        raise PrivbenchError(f"shadow: feature map {target_h} rows does not divide the input's {height} by a "
                             "power of two")
    layers: list[nn.Module] = [nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU()]
    c = width
    for _ in range(halvings):
        nxt = min(2 * c, max(target_ch, width))
        layers += [nn.Conv2d(c, nxt, 3, stride=2, padding=1), nn.ReLU()]
        c = nxt
    if flat:
        layers += [nn.Flatten(), nn.Linear(c * target_h * target_h, feature_shape[0])]
    else:
        layers += [nn.Conv2d(c, target_ch, 3, padding=1)]
    return nn.Sequential(*layers)


class BatchNormStatistics:
    """Hooks on the back's BatchNorm layers that measure how far the batch statistics of their inputs are
    from the running statistics the back carries (the mean/variance of the *real* front's features on the
    task's training data): Σ_layers ‖μ_batch − μ_run‖² + ‖σ²_batch − σ²_run‖², per-channel means. This is
    DeepInversion's feature-distribution term (Yin et al., CVPR 2020) used to pin down the shadow g1; the
    attacker only reads the back it already holds, so the attack stays query-free. Off by default: on the
    synthetic data it changed PSNR by −0.4 to +3 dB depending on split and seed (conv11 seed 1: 10.4 → 13.6;
    seed 3: 10.1 → 10.7; relu22: 12.9 → 12.5)."""

    def __init__(self, back: nn.Module) -> None:
        self.terms: list[torch.Tensor] = []
        self.handles = [m.register_forward_hook(self._hook) for m in back.modules()
                        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        x = inputs[0]
        dims = [d for d in range(x.ndim) if d != 1]
        mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
        self.terms.append((mean - module.running_mean).square().mean()
                          + (var - module.running_var).square().mean())

    def pop(self) -> torch.Tensor | None:
        total = sum(self.terms) if self.terms else None
        self.terms = []
        return total

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def train_shadow(shadow: nn.Module, back: nn.Module, images: torch.Tensor, labels, *,
                 epochs: int, lr: float, batch_size: int, device: torch.device, seed: int,
                 bn_weight: float = 0.0, task_loss=F.cross_entropy, schedule: str = "cosine") -> None:
    """Adam on the task loss of back(shadow(x)) vs the labels (He et al. §4.3: cross-entropy; a detector's own
    losses for a detector); the back stays frozen. ``bn_weight`` > 0 adds the BatchNorm-statistics term of
    :class:`BatchNormStatistics`; ``schedule`` ``halve-10`` is He et al.'s optimizer (Adam eps 1e-3 with
    AMSGrad, learning rate halved every 10 epochs)."""
    back.eval()
    shadow.to(device).train()
    statistics = BatchNormStatistics(back) if bn_weight > 0 else None

    def loss(idx: torch.Tensor) -> torch.Tensor:
        value = task_loss(back(shadow(images[idx].to(device))), labels[idx].to(device))
        if statistics is not None:
            term = statistics.pop()
            if term is not None:
                value = value + bn_weight * term
        return value

    try:
        # Gradients w.r.t. the shadow only (the loop's backward writes into its update's parameters alone):
        # the back's weights are never touched.
        reference = schedule == "halve-10"
        update = Update(list(shadow.parameters()), loss, lr, schedule=schedule, eps=1e-3 if reference else 1e-8,
                        amsgrad=reference)
        train(len(images), [update], epochs=epochs, batch_size=batch_size, seed=seed)
    finally:
        if statistics is not None:
            statistics.close()
    freeze(shadow)


def freeze(module: nn.Module) -> None:
    """Eval mode, no gradients: a fitted substitute front is a fixed function."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)


SUBSTITUTE_ARCHITECTURE = Param(
    "architecture", str, "front", "g1's architecture: front = an untrained copy of the defended front's (public) "
    "architecture; mirror-of-shape = a generic conv encoder from the shapes only",
    choices=("front", "mirror-of-shape"))

TASK_SAMPLES = Param("task_samples", int, 0, "the attacker's task-kind images g1 trains on: N of them, a seeded "
                     "random subset (0 = all)", low=0, high=10_000_000)

#: how the observed z is inverted once a substitute front g1 stands in for f1 (shared by every attack built on
#: :class:`Shadow`)
SECOND_STAGE_PARAMS = (
    Param("then", str, "rmle", "how z is inverted on g1", choices=("rmle", "inverse-net")),
    Param("rmle_iterations", int, 200, "then=rmle: Adam steps (reference: 500)", low=1, high=100_000),
    Param("rmle_lr", float, BY_DEPTH, "then=rmle: learning rate (reference: 0.1); -1 = rmle's by-depth "
          "default", low=BY_DEPTH, high=10.0),
    Param("rmle_lambda_tv", float, BY_DEPTH, "then=rmle: TV weight on the relative feature error "
          "(reference: 2 on their absolute error, see attacks/rmle.py); -1 = rmle's by-depth value, at "
          "least 5", low=BY_DEPTH, high=1e9),
    Param("rmle_init", str, "zero", "then=rmle: start image (zero = the ImageNet mean colour, He et al.'s "
          "normalized zero; mean = the attacker's mean image)", choices=("zero", "mean")),
    Param("decoder", str, "mirror", "then=inverse-net: decoder family", choices=tuple(DECODERS)),
    Param("decoder_epochs", int, 12, "then=inverse-net: decoder training epochs", low=1, high=1000),
    Param("decoder_loss", str, "mse", "then=inverse-net: decoder loss", choices=RECONSTRUCTION_LOSSES),
    Param("attacker_samples", int, 0, "then=inverse-net: N attacker images (seeded random subset) for "
          "the decoder (0 = all)", low=0, high=10_000_000),
)

#: g1's learning-rate schedules: privbench's cosine decay, or He et al.'s (halved every 10 epochs, eps 1e-3)
SHADOW_SCHEDULES = ("cosine", "halve-10")


@ATTACKS.register("shadow")
class Shadow(Attack):
    summary = "query-free shadow model (He et al. 2019 §4.3): substitute front g1 via the frozen back"
    access = Access.QUERY_FREE
    params = (
        SUBSTITUTE_ARCHITECTURE,
        Param("epochs", int, 20, "training epochs of g1 over the attacker's labelled task images (reference: "
              "50)", low=1, high=10_000),
        Param("lr", float, 1e-2, "Adam learning rate of g1 (reference: 1e-3)", low=1e-6, high=1.0),
        Param("batch_size", int, 64, "g1 training batch size (reference: 32)", low=1, high=4096),
        Param("schedule", str, "cosine", "g1's learning-rate schedule: cosine decay, or halve-10 = halved "
              "every 10 epochs with Adam eps 1e-3 + AMSGrad (He et al.'s code)", choices=SHADOW_SCHEDULES),
        Param("bn_matching", float, 0.0, "weight of a term matching the back's BatchNorm running "
              "statistics (DeepInversion-style; 0 = He et al.'s cross-entropy only)", low=0.0, high=1e6),
        TASK_SAMPLES,
    ) + SECOND_STAGE_PARAMS

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.shadow: nn.Module | None = None
        self.decoder: nn.Module | None = None

    def _check_params(self) -> None:
        for name, bound in (("rmle_lr", "> 0"), ("rmle_lambda_tv", ">= 0")):
            value = self.params[name]
            if value != BY_DEPTH and (value < 0 or (name == "rmle_lr" and value == 0)):
                raise PrivbenchError(f"attack '{self.name}': parameter '{name}' must be {BY_DEPTH:g} (by split "
                                     f"depth) or {bound}; got {value!r}")

    # ---- building blocks ------------------------------------------------------------------------------
    def build_shadow(self, view: AttackerView) -> nn.Module:
        if self.params["architecture"] == "front":
            if view.front_architecture is None:
                raise PrivbenchError("shadow: architecture=front needs the front's architecture in the view "
                                     "(use architecture=mirror-of-shape)")
            module = view.front_architecture()
        else:
            module = mirror_of_shape_encoder(view.input_shape, view.feature_shape)
        return module.to(view.device)

    def build_decoder(self, view: AttackerView) -> nn.Module:
        return build_decoder(self.params["decoder"], view.feature_shape, view.input_shape).to(view.device)

    def shadow_query(self, x: torch.Tensor) -> torch.Tensor:
        assert self.shadow is not None and self.view is not None
        with torch.no_grad():
            self.shadow.eval()
            return torch.cat([self.shadow(x[s].to(self.view.device)) for s in batches(len(x), 256)])

    # ---- Attack API -----------------------------------------------------------------------------------
    def _fit(self, view: AttackerView) -> None:
        if view.back is None:
            raise PrivbenchError(f"{self.name}: the view carries no back model")
        torch.manual_seed(view.seed)
        self.shadow = self.build_shadow(view)
        note("training the substitute front (the attacker's stand-in for the edge model)")
        self.shadow = self.fit_substitute(self.shadow, view)
        freeze(self.shadow)
        if self.params["then"] == "inverse-net":
            note("training the decoder on the substitute front's features")
            torch.manual_seed(view.seed + 1)
            self.decoder = self.build_decoder(view)
            p = self.params
            data = attacker_subset(view.data, p["attacker_samples"], view.seed)
            fit_decoder(self.decoder, data, self.shadow_query, epochs=p["decoder_epochs"], lr=1e-3, batch_size=32,
                        device=view.device, seed=view.seed, stochastic=view.stochastic,
                        loss_fn=lambda out, x: reconstruction_loss(p["decoder_loss"], out, x))

    def fit_substitute(self, shadow: nn.Module, view: AttackerView) -> nn.Module:
        """Train g1 (He et al. §4.3: the task loss through the frozen back on labelled task images); returns the
        fitted substitute (``shadow`` itself here; a subclass may pick another candidate)."""
        if view.task_data is None or view.task_labels is None:
            raise PrivbenchError("shadow: needs labelled task images among the attacker's data (add the "
                                 "task's dataset to attacker_data)")
        p = self.params
        images, labels = self.task_images(view)
        train_shadow(shadow, view.back, images, labels, epochs=p["epochs"], lr=p["lr"],
                     batch_size=p["batch_size"], device=view.device, seed=view.seed, bn_weight=p["bn_matching"],
                     task_loss=view.task_loss or F.cross_entropy, schedule=p["schedule"])
        return shadow

    def task_images(self, view: AttackerView) -> tuple[torch.Tensor, Any]:
        """The attacker's task-kind images (and their targets) g1 trains on: ``task_samples`` of them."""
        keep = subset_indices(len(view.task_data), self.params["task_samples"], view.seed)
        if keep is None:
            return view.task_data, view.task_labels
        labels = None if view.task_labels is None else view.task_labels[keep]
        return view.task_data[keep], labels

    def reconstruct(self, features: torch.Tensor) -> torch.Tensor:
        if self.shadow is None or self.view is None:
            raise RuntimeError(f"{self.name}: fit() first")
        view = self.view
        if self.params["then"] == "inverse-net":
            assert self.decoder is not None
            self.decoder.eval()
            with torch.no_grad():
                return torch.cat([self.decoder(features[s].to(view.device)).clamp(0.0, 1.0).cpu()
                                  for s in batches(len(features), 256)])
        p = self.params
        settings = resolve_settings({**RMLE.declared_defaults(), "iterations": p["rmle_iterations"],
                                     "lr": p["rmle_lr"], "lambda_tv": p["rmle_lambda_tv"], "init": p["rmle_init"]},
                                    view.feature_shape, view.input_shape)
        if p["rmle_lambda_tv"] == BY_DEPTH:
            # g1 only approximates f1: fitting it exactly (λ_TV = 0 at conv11) reproduces g1's errors, so the
            # shadow keeps a TV prior at every depth, as He et al. do (one λ_TV for all splits).
            settings = dataclasses.replace(settings, lambda_tv=max(settings.lambda_tv, MIN_SHADOW_TV))
        x_hat, _ = rmle_invert(self.shadow, features, settings, input_shape=view.input_shape,
                               device=view.device, seed=view.seed,
                               mean_image=view.data.mean(dim=0) if p["rmle_init"] == "mean" else None)
        return x_hat

    def state(self) -> dict[str, Any] | None:
        if self.shadow is None:
            return None
        out: dict[str, Any] = {"shadow": self.shadow.state_dict()}
        if self.decoder is not None:
            out["decoder"] = self.decoder.state_dict()
        return out

    def load_state(self, view: AttackerView, state: dict[str, Any]) -> None:
        super().load_state(view, state)
        self.shadow = self.build_shadow(view)
        self.shadow.load_state_dict(state["shadow"])
        freeze(self.shadow)
        if "decoder" in state:
            self.decoder = self.build_decoder(view)
            self.decoder.load_state_dict(state["decoder"])
