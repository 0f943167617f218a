"""Query-free, label-free attack by feature-distribution matching: FORA (Xu et al., CVPR 2024).

The cloud cannot query the front, but it receives the victims' features z = f1(x_victim) all day. FORA trains a
substitute front g1 on the attacker's own images of the task's kind so that the *distribution* of g1(x_own)
matches that of the intercepted z, with no labels: the substitute minimizes

    a·MK-MMD²(g1(x_own), z) + (1 − a)·L_adv(D(g1(x_own)))                                  (FORA eq. 5–7)

while a feature discriminator D learns to tell intercepted features from the substitute's (a = 0.8 in the paper;
here the adversarial term is the non-saturating BCE of :mod:`privbench.distribution_matching`). The observed z
is then inverted on g1 — an inverse network trained on (x_own, g1(x_own)) as in FORA, or rMLE on g1.

What the features' own distribution cannot tell, measured on the synthetic data at conv11 (a linear map, 8
channels): which channel is which, and each channel's sign. Trained on MK-MMD alone, g1's channels came out as
mixtures of f1's, several close to −f1_c (relative feature error 2.8–3.4, worse than zeros), although MK-MMD does
score f1 better than −f1 (0.016 vs 0.030): gradient descent does not cross between those basins. Two additions,
both still label-free and query-free:

- ``back_layers``: the cloud holds the back, whose trained weights read each channel by its identity; MK-MMD is
  also taken between the back's first convolution outputs fed by g1(x_own) and by z (relative error 2.8 → 0.8);
- ``sign_search``: after a warm-up, each output channel of g1's last affine map is negated where that lowers the
  held-out MK-MMD (before a ReLU: ReLU(u) → ReLU(−u), the inverted image a relu12 substitute converged to).

``task_weight`` > 0 adds He et al.'s task loss through the frozen back (needs labels; 0 = label-free).

**Choosing without the victims' images.** Both the greedy sign search and gradient descent can settle in a
solution that inverts the image (at relu12 here: 9.6–12.5 dB against the 13.7 dB of the attacker's mean image, in
most runs). The attacker cannot score a reconstruction, but it can score its own objective: ``restarts``
independent fits, and for each the **image-polarity hypothesis** g1(1 − x) beside g1(x) (``polarity_search``), are
compared by the matching loss on held-out images — MK-MMD between the substitute's features of attacker images it
did not train on and intercepted features it did not train on, plus the same for the back's first layers — and the
lowest wins (:func:`matching_loss`). Everything it uses is the attacker's: its images, the traffic, the back.

The intercepted traffic is the task's test images through the deployed pipeline
(:attr:`~privbench.threat.AttackerView.intercepted`); the attacker's images of the same kind are the labelled task
images among its data, used here without their labels. g1 and the decoder stages are :class:`Shadow`'s.

Written by hand from the paper's description (the paper's code was not used); the MMD estimator and the
discriminator live in :mod:`privbench.distribution_matching`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from privbench.attacks.shadow import SECOND_STAGE_PARAMS, SUBSTITUTE_ARCHITECTURE, TASK_SAMPLES, Shadow
from privbench.device import derive_seed
from privbench.distribution_matching import (
    FeatureDiscriminator,
    discriminator_loss,
    fooling_loss,
    mk_mmd,
)
from privbench.errors import PrivbenchError
from privbench.progress import note
from privbench.registry import ATTACKS, Param
from privbench.split import batches
from privbench.threat import Access, AttackerView
from privbench.training import Update, train

#: at most this many attacker images (and intercepted features) are held out for the sign search and the choice
HELD_OUT = 512


def _fora_second_stage() -> tuple[Param, ...]:
    """Shadow's second-stage parameters, with FORA's inverse network as the default inversion."""
    return tuple(dataclasses.replace(p, default="inverse-net") if p.name == "then" else p
                 for p in SECOND_STAGE_PARAMS)


@ATTACKS.register("fora")
class DistributionMatchingShadow(Shadow):
    summary = ("query-free, label-free substitute front matched to the intercepted features' distribution "
               "(FORA, Xu et al. 2024: MK-MMD + feature discriminator), then an inverse network")
    access = Access.QUERY_FREE
    uses_intercepted = True
    params = (
        SUBSTITUTE_ARCHITECTURE,
        Param("epochs", int, 200, "training epochs of g1 over the attacker's task-kind images", low=1,
              high=100_000),
        Param("lr", float, 3e-3, "Adam learning rate of g1 (cosine decay; paper: 1e-4 over 40k iterations)",
              low=1e-6, high=1.0),
        Param("batch_size", int, 64, "g1 batch size, also the intercepted sample per step (paper: 64)", low=2,
              high=4096),
        Param("alignment", float, 0.8, "a: weight of MK-MMD against the discriminator term (paper: 0.8; 1 = "
              "MMD only, no discriminator)", low=0.0, high=1.0),
        Param("discriminator_lr", float, 3e-4, "Adam learning rate of the feature discriminator (paper: 3e-4)",
              low=1e-6, high=1.0),
        Param("back_layers", int, 2, "also match the distributions of the back's first N convolution outputs "
              "fed by g1 vs by the intercepted features: the back's trained weights know which channel is which, "
              "which the features' own distribution does not (0 = FORA's feature-only matching)", low=0, high=64),
        Param("sign_search", bool, True, "after warmup_epochs, negate each output channel of g1's last affine "
              "map where that lowers the held-out MK-MMD (the sign ambiguity MMD training gets stuck in), then "
              "train on"),
        Param("warmup_epochs", int, 40, "sign_search: epochs of MK-MMD alone before the search", low=1,
              high=100_000),
        Param("task_weight", float, 0.0, "weight of He et al.'s task loss through the frozen back (needs "
              "labels; 0 = label-free, as published)", low=0.0, high=1e6),
        TASK_SAMPLES,
        Param("restarts", int, 1, "independent fits of g1 (each with its own warm-up, sign search and seed); the "
              "one with the lowest held-out matching loss is kept", low=1, high=64),
        Param("polarity_search", bool, True, "also score each fit as g1(1 − x), the image-polarity hypothesis, "
              "by the same held-out matching loss, and keep it when lower"),
    ) + _fora_second_stage()

    def state(self) -> dict[str, Any] | None:
        out = super().state()
        if out is not None and isinstance(self.shadow, InvertedInput):
            out["shadow"] = self.shadow.inner.state_dict()
            out["inverted_input"] = True
        return out

    def load_state(self, view: AttackerView, state: dict[str, Any]) -> None:
        super().load_state(view, state)
        if state.get("inverted_input"):
            self.shadow = InvertedInput(self.shadow)

    def fit_substitute(self, shadow: nn.Module, view: AttackerView) -> nn.Module:
        if view.intercepted is None or len(view.intercepted) < 2:
            raise PrivbenchError(f"{self.name}: needs the intercepted features of the victims' traffic (the "
                                 "query-free view of a benchmark run carries them)")
        if view.task_data is None:
            raise PrivbenchError(f"{self.name}: needs attacker images of the task's kind (add the task's dataset "
                                 "to attacker_data)")
        p = self.params
        if p["task_weight"] > 0 and (view.task_labels is None or view.task_loss is None):
            raise PrivbenchError(f"{self.name}: task_weight > 0 needs labelled task images and the task loss")
        images, labels = self.task_images(view)
        device, intercepted = view.device, view.intercepted
        if tuple(intercepted.shape[1:]) != tuple(view.feature_shape):
            raise PrivbenchError(f"{self.name}: intercepted features have shape {tuple(intercepted.shape[1:])}, "
                                 f"the split's are {tuple(view.feature_shape)}")
        a = p["alignment"]
        draw = torch.Generator().manual_seed(view.seed + 2)
        view.back.eval()
        # a fifth of the attacker's images and of the traffic (at most HELD_OUT each) is held out: the sign search
        # and the choice among candidates score on data no candidate was trained on
        keep_images = len(images) - min(HELD_OUT, len(images) // 5)
        keep_traffic = len(intercepted) - min(HELD_OUT, len(intercepted) // 5)
        held_out = images[keep_images:].to(device), intercepted[keep_traffic:].to(device)
        images, labels = images[:keep_images], (labels[:keep_images] if labels is not None else None)

        def intercepted_batch(size: int) -> torch.Tensor:
            return intercepted[torch.randint(0, keep_traffic, (size,), generator=draw)].to(device)

        probe = BackActivations(view.back, p["back_layers"])

        def fit(module: nn.Module, epochs: int, alignment: float, seed: int) -> None:
            module.train()
            discriminator = FeatureDiscriminator(tuple(view.feature_shape)).to(device) if alignment < 1 else None

            def substitute_loss(idx: torch.Tensor) -> torch.Tensor:
                z = module(images[idx].to(device))
                real = intercepted_batch(len(idx))
                with torch.no_grad():
                    targets = probe(real)
                loss = alignment * alignment_loss(z, real, probe, targets)
                if discriminator is not None:
                    loss = loss + (1.0 - alignment) * fooling_loss(discriminator, z)
                if p["task_weight"] > 0:
                    loss = loss + p["task_weight"] * view.task_loss(view.back(z), labels[idx].to(device))
                return loss

            updates = [Update(list(module.parameters()), substitute_loss, p["lr"])]
            if discriminator is not None:
                def critic_loss(idx: torch.Tensor) -> torch.Tensor:
                    with torch.no_grad():
                        fake = module(images[idx].to(device))
                    return discriminator_loss(discriminator, intercepted_batch(len(idx)), fake)

                updates.insert(0, Update(list(discriminator.parameters()), critic_loss, p["discriminator_lr"],
                                         schedule="constant"))
            train(len(images), updates, epochs=epochs, batch_size=p["batch_size"], seed=seed)


        around_mean = bool((intercepted < 0).any())  # pre-activation features (see search_signs)

        def fit_one(module: nn.Module, restart: int) -> None:
            seed = view.seed if restart == 0 else derive_seed(view.seed, "fora-restart", restart)
            if p["sign_search"] and (layer := last_affine_layer(module, intercepted.shape[1])) is not None:
                fit(module, p["warmup_epochs"], 1.0, derive_seed(seed, "fora-warmup"))
                module.eval()
                search_signs(module, layer, held_out[0], held_out[1], around_mean=around_mean)
            fit(module, p["epochs"], a, seed)
            module.eval()

        candidates: list[nn.Module] = []
        for restart in range(p["restarts"]):
            if restart == 0:
                module = shadow
            else:
                torch.manual_seed(derive_seed(view.seed, "fora-restart-init", restart))
                module = self.build_shadow(view)
            fit_one(module, restart)
            candidates += [module, InvertedInput(module)] if p["polarity_search"] else [module]
        with torch.no_grad():
            scores = [matching_loss(c, probe, *held_out) for c in candidates]
        best = min(range(len(scores)), key=scores.__getitem__)
        #: the candidates (restart r: 2r = g1(x), 2r + 1 = g1(1 − x) with polarity_search), their held-out matching
        #: losses and the one kept, for benchmarks (not part of the fitted state)
        self.choice = {"candidates": candidates, "scores": scores, "chosen": best}
        note(f"kept candidate {best} of {len(candidates)} by the held-out matching loss "
             f"({', '.join(f'{v:.4f}' for v in scores)})")
        return candidates[best]


class InvertedInput(nn.Module):
    """g1(1 − x): the substitute front fed the image of opposite polarity (images in [0, 1])."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(1.0 - x)


def alignment_loss(own: torch.Tensor, intercepted: torch.Tensor, probe: BackActivations,
                   intercepted_activations: list[torch.Tensor]) -> torch.Tensor:
    """FORA's alignment term: MK-MMD between the substitute's features ``own`` and the ``intercepted`` ones, plus
    the same between the back's first layers fed by each (``intercepted_activations`` = ``probe(intercepted)``)."""
    loss = mk_mmd(own, intercepted)
    for mine, theirs in zip(probe(own), intercepted_activations, strict=True):
        loss = loss + mk_mmd(mine, theirs)
    return loss


def matching_loss(front: nn.Module, probe: BackActivations, images: torch.Tensor,
                  intercepted: torch.Tensor) -> float:
    """:func:`alignment_loss` on held-out data: ``front``'s features of the attacker's ``images`` against the
    ``intercepted`` features (what the substitute was trained to lower; computed without any victim image)."""
    own = torch.cat([front(images[s]) for s in batches(len(images), 256)])
    return float(alignment_loss(own, intercepted, probe, probe(intercepted)))


class BackActivations:
    """The outputs of the back's first ``count`` convolution / linear layers for a given input (the back frozen,
    in eval mode; gradients flow to the input)."""

    def __init__(self, back: nn.Module, count: int) -> None:
        self.back = back
        self.layers = [m for m in back.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][:count]

    def __call__(self, z: torch.Tensor) -> list[torch.Tensor]:
        if not self.layers:  # back_layers 0: feature-only matching
            return []
        seen: list[torch.Tensor] = []
        last = self.layers[-1]

        def hook(module: nn.Module, _inputs, out: torch.Tensor) -> None:
            seen.append(out)
            if module is last:
                raise _Enough  # the rest of the back is not needed

        handles = [m.register_forward_hook(hook) for m in self.layers]
        try:
            self.back(z)
        except _Enough:
            pass
        finally:
            for h in handles:
                h.remove()
        return seen


class _Enough(Exception):
    """Stops the back's forward pass once the wanted activations are seen."""


def last_affine_layer(front: nn.Module, channels: int) -> nn.Module | None:
    """The front's last per-channel affine map with ``channels`` outputs — a convolution, linear layer or affine
    BatchNorm — whose sign decides the sign of each feature channel (before the activation, if any)."""
    layers = [m for m in front.modules()
              if isinstance(m, (nn.Conv2d, nn.Linear)) or (isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine)]
    if not layers:
        return None
    last = layers[-1]
    weight = last.weight
    return last if weight is not None and weight.shape[0] == channels else None


@torch.no_grad()
def search_signs(front: nn.Module, layer: nn.Module, images: torch.Tensor, intercepted: torch.Tensor, *,
                 around_mean: bool) -> list[int]:
    """Greedy sign search over the output channels of ``layer`` (the front's last affine map), each kept when the
    MK-MMD between the front's features on ``images`` and ``intercepted`` falls. MK-MMD tells f1 from −f1 (at
    conv11 here: 0.016 vs 0.030) but gradient descent does not cross between the two basins.

    ``around_mean`` (pre-activation features, which take negative values): channel c becomes 2·m_c − z_c (weights
    negated, bias 2·m_c − b_c, m_c its mean on ``images``), keeping its mean. Otherwise (an activation follows):
    the channel's pre-activation is negated (weights and bias), so ReLU(u) becomes ReLU(−u) — the inverted-image
    solution a ReLU split gets stuck in (SSIM < 0 at relu12 here). Returns the flipped channels."""

    def features() -> torch.Tensor:
        return torch.cat([front(images[s]) for s in batches(len(images), 256)])

    def flip(c: int, mean: torch.Tensor) -> None:
        layer.weight[c].neg_()
        if layer.bias is not None:
            layer.bias[c] = (2 * mean - layer.bias[c]) if around_mean else -layer.bias[c]

    dims = [d for d in range(intercepted.ndim) if d != 1]
    current = features()
    flipped, best = [], mk_mmd(current, intercepted).item()
    for c in range(layer.weight.shape[0]):
        mean = current.mean(dim=dims)[c]
        flip(c, mean)
        trial = features()
        score = mk_mmd(trial, intercepted).item()
        if score < best:
            best, current = score, trial
            flipped.append(c)
        else:
            flip(c, mean)  # both moves are involutions
    return flipped
