"""Regularized maximum-likelihood estimation (rMLE), the white-box attack of He, Zhang & Lee (ACSAC 2019)
§4.1, summarized in paper 000 §III-D.1.

The attacker knows the (defended) front f1 and its weights and solves, for each observed feature z,

    x̂ = argmin_x  mean((f1(x) − z)²) / mean(z²) + λ_TV·TV(x) + λ_l2·mean((x − μ)²)

with TV(x) = mean over vertical neighbours of (x[i+1, j] − x[i, j])² + mean over horizontal neighbours of
(x[i, j+1] − x[i, j])² (squared differences, each direction averaged over its own elements), by Adam with
AMSGrad and eps = 1e-3, as in their code (the division by mean(z²) is privbench's, see below).

privbench specifics (all written by hand; no library implements this attack):

- **Pixel space.** privbench reconstructs in [0, 1] pixel space; the input normalization is the first layer of
  the front. He et al. optimize the ImageNet-normalized image x_n = (x − μ)/σ from x_n = 0. Here
  ``init=zero`` is that same starting point, the ImageNet mean colour μ; ``init=mean`` starts from the mean
  image of the attacker's own data. The ℓ2 prior pulls towards μ (their mean(x_n²) up to the per-channel
  1/σ² weights).
- **Scale-free feature term.** ``normalize=true`` (default) divides each image's feature error by its
  observed mean(z²). Their absolute error depends on the network's activation scale: in vgg-small without
  BatchNorm mean(z²) at relu22 is ~1e-4, so with Adam's eps = 1e-3 the steps all but vanish and their λ
  values would wipe out the image. ``normalize=false`` gives their exact loss.
- **λ mapping.** Their regularizers act on x_n; in pixel space TV(x) = σ²·TV(x_n) with σ ≈ 0.226, i.e.
  their λ_TV is ≈ 20·λ_TV in pixel space *for the same feature-loss scale*. Because the feature scale
  differs anyway, the by-depth defaults were measured here, on the relative loss (see
  :data:`DEPTH_DEFAULTS`), and keep their ordering: λ_TV grows with the split's depth.
- **Box constraint.** ``box=true`` is projected Adam: x̂ is clamped to [0, 1] after every step, which
  leaves the Adam update unchanged inside the box (a sigmoid reparametrization would reshape the whole
  optimization and stall saturated pixels). With ``box=false`` the optimization is unconstrained and only
  the returned image is clamped.
- **Batched.** All images of a batch are one tensor; the loss is the *sum* of per-image losses, so each
  image receives exactly its own single-image gradient, and Adam/AMSGrad are element-wise, so the result
  equals inverting image by image (their code's way), only faster (``benchmarks/bench_rmle_batched.py``).
- **Expectation over transformation.** A white-box adversary knows the defense: for stochastic defense
  stages (noise, dropout) every step draws fresh defense randomness, and ``eot_samples`` > 1 averages the
  feature term over that many forward passes per step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from privbench.attacks.base import Attack
from privbench.errors import PrivbenchError
from privbench.models.batchnorm_folding import folded_inference_copy
from privbench.progress import advance
from privbench.progress import step as progress_step
from privbench.registry import ATTACKS, Param
from privbench.split import batches, pipeline_stages
from privbench.threat import Access, AttackerView

# The "zero" of He et al.'s ImageNet-normalized input space, in pixel space.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
#: parameter value meaning "choose by split depth" (see :func:`default_settings`)
BY_DEPTH = -1.0


@dataclasses.dataclass(frozen=True)
class RMLESettings:
    iterations: int
    lr: float
    lambda_tv: float
    lambda_l2: float = 0.0
    init: str = "zero"
    box: bool = True
    eot_samples: int = 1
    batch_size: int = 0  # 0 = all images at once
    normalize: bool = True
    eps: float = 1e-3
    plateau: float = 0.0


#: steps per window of the plateau test: the mean loss of the last window against the window before it
PLATEAU_WINDOW = 25


def at_plateau(history: list[float], tolerance: float) -> bool:
    """Whether the objective stopped improving: the mean of the last :data:`PLATEAU_WINDOW` per-step losses is
    less than ``tolerance`` (a fraction) below the mean of the window before. Window means, not single steps, since
    through a stochastic defense every step sees fresh noise and the loss jitters around its floor."""
    if tolerance <= 0 or len(history) < 2 * PLATEAU_WINDOW or len(history) % PLATEAU_WINDOW:
        return False
    last = sum(history[-PLATEAU_WINDOW:]) / PLATEAU_WINDOW
    before = sum(history[-2 * PLATEAU_WINDOW:-PLATEAU_WINDOW]) / PLATEAU_WINDOW
    return before - last < tolerance * abs(before)


#: Defaults by split depth, keyed by the input/feature resolution ratio (1 = full resolution, e.g. conv11;
#: 2 = relu22-like; 4 = relu32-like; 8 = pool3; None = flat features, e.g. fc1), as (lr, λ_TV).
#: He et al.'s tuned settings (normalized space, absolute feature error, 5000 iterations): conv11
#: lr 1e-2 / λ_TV 0, ReLU22 1e-2 / 10, ReLU32 1e-2 / 1e3, fc1 1e-3 / 1e4. Their λ_TV only means something
#: relative to their network's feature scale; privbench divides the feature error by the energy of z
#: (``normalize``), so λ_TV here weighs pixel-space TV against the *relative* feature error and carries
#: over between networks and depths. Measured with 200 iterations on 16-60 face/plate/pedestrian probes
#: (32×32) against vgg-small width 8 trained on synth-scenes, PSNR (dB):
#:   without BatchNorm, λ_TV = 0 / 1 / 5 / 20: conv11 79.4 / 36.7 / 28.7 / 23.9; relu22 11.4 / 14.3 / 15.2 /
#:   15.3; relu32 10.5 / 12.5 / 12.9 / 13.2; fc1 9.8 / 12.0 / 12.3 / 12.4 (λ 50-200: 12.4-12.7);
#:   with BatchNorm (the built-in default): relu22 λ 1 / 5 / 20 = 15.6 / 16.8 / 16.2; relu32 λ 5 / 20 / 50 =
#:   13.8 / 14.1 / 14.1; conv11 λ 0 with lr 0.05 / 0.1 = 39.8 / 52.0.
#: The same ordering as theirs: no prior at conv11, a stronger prior the deeper the split. (relu12, also
#: full resolution, prefers λ_TV ≈ 1: 21.4 vs 16.3 dB without BatchNorm; set it explicitly there.)
DEPTH_DEFAULTS: dict[int | None, tuple[float, float]] = {
    1: (0.1, 0.0),
    2: (0.05, 5.0),
    4: (0.05, 20.0),
    8: (0.05, 50.0),
    None: (0.02, 50.0),
}


def default_settings(feature_shape: tuple[int, ...],
                     input_shape: tuple[int, int, int]) -> tuple[float, float]:
    """(lr, λ_TV) for a split, chosen by its depth: the spatial downsampling of the features.

    Depth is read from the shapes rather than from the split's name so that it also works for
    torchvision and custom models: full-resolution features are "conv11-like", 1/2 "relu22-like", 1/4
    "relu32-like", flat vectors "fc-like".
    """
    if len(feature_shape) != 3:
        return DEPTH_DEFAULTS[None]
    ratio = max(1, round(input_shape[1] / max(1, feature_shape[1])))
    depth = min((d for d in DEPTH_DEFAULTS if d is not None and d >= ratio), default=8)
    return DEPTH_DEFAULTS[depth]


def _per_image_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean over all but the first dimension, without a reshape (keeps channels-last tensors copy-free)."""
    return t.mean(dim=tuple(range(1, t.ndim))) if t.ndim > 1 else t


class _MeanSquaredError(torch.autograd.Function):
    """Per-image mean((a − b)²) with a one-multiply backward, 2·(a − b)/numel (autograd's pow/mean chain
    takes four elementwise passes over the feature map per rMLE step)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        diff = a - b
        ctx.save_for_backward(diff)
        ctx.b_shape = b.shape
        return torch.linalg.vector_norm(diff, dim=tuple(range(1, diff.ndim))).square() / diff[0].numel()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        (diff,) = ctx.saved_tensors
        grad_a = diff * (grad * (2.0 / diff[0].numel())).view(-1, *([1] * (diff.ndim - 1)))
        grad_b = (-grad_a).sum_to_size(ctx.b_shape) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def mean_squared_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean((a − b)²) over all but the first dimension (``b`` may broadcast); a vector of length N."""
    return _MeanSquaredError.apply(a, b)


class _TotalVariation(torch.autograd.Function):
    """Per-image TV with a hand-written backward: 7 tensor ops instead of autograd's ~14 (slices, pow and
    mean each add their own backward kernels), which matters in rMLE's inner loop.

    d TV / d x[i, j] = 2·(dv[i−1, j] − dv[i, j]) / |dv| + 2·(dh[i, j−1] − dh[i, j]) / |dh|, with
    dv[i, j] = x[i+1, j] − x[i, j] and dh[i, j] = x[i, j+1] − x[i, j] (differences outside the image are 0).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        dv = x[:, :, 1:, :] - x[:, :, :-1, :]
        dh = x[:, :, :, 1:] - x[:, :, :, :-1]
        ctx.save_for_backward(x, dv, dh)
        dims = (1, 2, 3)
        return (torch.linalg.vector_norm(dv, dim=dims).square() / dv[0].numel()
                + torch.linalg.vector_norm(dh, dim=dims).square() / dh[0].numel())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x, dv, dh = ctx.saved_tensors
        weight = grad.view(-1, 1, 1, 1) * 2.0
        gv = dv * (weight / dv[0].numel())
        gh = dh * (weight / dh[0].numel())
        out = torch.zeros_like(x)  # same layout as x̂ (channels-last or not)
        out[:, :, 1:, :] += gv
        out[:, :, :-1, :] -= gv
        out[:, :, :, 1:] += gh
        out[:, :, :, :-1] -= gh
        return out


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Per-image TV: squared vertical + horizontal neighbour differences, each averaged over its elements
    (He et al.'s TV term, paper 000 §III-D.1); a vector of length N."""
    return _TotalVariation.apply(x)


def is_stochastic(front: nn.Module) -> bool:
    return any(stage.stochastic for stage in pipeline_stages(front))


def rmle_losses(front: nn.Module, x: torch.Tensor, z: torch.Tensor, settings: RMLESettings,
                prior: torch.Tensor, eot: int, z_energy: torch.Tensor) -> torch.Tensor:
    """Per-image rMLE objective (a vector of length N); ``eot`` forward passes are averaged.

    ``z_energy`` (per-image mean(z²), computed once per batch) divides the feature term when
    ``settings.normalize``.
    """
    n = x.shape[0]
    if eot > 1:
        out = front(x.repeat(eot, *([1] * (x.ndim - 1))))
        target = z.repeat(eot, *([1] * (z.ndim - 1)))
        feature = mean_squared_error(out, target).view(eot, n).mean(dim=0)
    else:
        feature = mean_squared_error(front(x), z)
    if settings.normalize:
        feature = feature / z_energy.clamp_min(1e-12)
    loss = feature
    if settings.lambda_tv > 0:
        loss = loss + settings.lambda_tv * total_variation(x)
    if settings.lambda_l2 > 0:
        loss = loss + settings.lambda_l2 * mean_squared_error(x, prior)
    return loss


def rmle_invert(front: nn.Module, features: torch.Tensor, settings: RMLESettings, *,
                input_shape: tuple[int, int, int], device: torch.device, seed: int,
                mean_image: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert ``features`` through ``front``; returns (x̂ in [0, 1] on CPU, final per-image loss).

    ``front`` is not modified: the optimization runs through a frozen eval-mode copy with BatchNorm folded
    into the convolutions (:mod:`privbench.models.batchnorm_folding`; the same function, 1.8× faster
    batched steps through vgg-small on this CPU). Gradients are taken w.r.t. x̂ only.
    """
    eot = settings.eot_samples if is_stochastic(front) else 1
    front = folded_inference_copy(front)
    if settings.init == "mean":
        if mean_image is None:
            raise ValueError("rmle: init=mean needs the attacker's mean image")
        start = mean_image.reshape(1, *input_shape).float()
    else:
        start = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, *input_shape[1:])
    start = start.to(device)
    prior = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    images, losses = [], []
    size = settings.batch_size or len(features)
    try:
        for part in batches(len(features), max(1, size)):
            z = features[part].to(device)
            # Channels-last activations run oneDNN's CPU convolutions up to 2× faster on batches; a single
            # image is faster in the default layout (measured here, vgg-small 32 and 64 px).
            layout = torch.channels_last if z.shape[0] > 1 else torch.contiguous_format
            x = start.expand(z.shape[0], *input_shape).contiguous(memory_format=layout)
            x.requires_grad_(True)
            if z.ndim == 4:
                z = z.contiguous(memory_format=layout)
            energy = _per_image_mean(z.square())
            # One fused kernel per step where torch has it (CPU and CUDA): the same AMSGrad update.
            optimizer = torch.optim.Adam([x], lr=settings.lr, amsgrad=True, eps=settings.eps,
                                         fused=x.device.type in ("cpu", "cuda"))
            history: list[float] = []
            for _ in range(settings.iterations):
                # Sum, not mean, of per-image losses: each image gets its own single-image gradient.
                loss = rmle_losses(front, x, z, settings, prior, eot, energy).sum()
                if settings.plateau > 0:
                    history.append(float(loss))
                    if at_plateau(history, settings.plateau):
                        break
                (x.grad,) = torch.autograd.grad(loss, [x])
                optimizer.step()
                advance()  # one step for the line of a long reconstruction (privbench.progress)
                if settings.box:
                    with torch.no_grad():
                        x.clamp_(0.0, 1.0)
            with torch.no_grad():
                losses.append(rmle_losses(front, x, z, settings, prior, eot, energy).cpu())
            images.append(x.detach().clamp(0.0, 1.0).cpu())
    finally:
        torch.random.set_rng_state(generator_state)
    return torch.cat(images), torch.cat(losses)


RMLE_PARAMS = (
    Param("iterations", int, 200, "Adam steps (reference: 5000; 200 reaches within ~0.3 dB of 400 here)",
          low=1, high=100_000),
    Param("lr", float, BY_DEPTH, "Adam learning rate; -1 = by split depth (rmle.DEPTH_DEFAULTS)",
          low=BY_DEPTH, high=10.0),
    Param("lambda_tv", float, BY_DEPTH, "weight of the TV prior (pixel space); -1 = by split depth",
          low=BY_DEPTH, high=1e9),
    Param("lambda_l2", float, 0.0, "weight of the l2 prior towards the ImageNet mean colour", low=0.0,
          high=1e9),
    Param("init", str, "zero", "start image: zero = the normalized-space zero (ImageNet mean colour), "
          "mean = mean image of the attacker's own data", choices=("zero", "mean")),
    Param("box", bool, True, "project x̂ onto [0, 1] after every step (else only the output is clamped)"),
    Param("eot_samples", int, 1, "forward passes averaged per step through stochastic defense stages "
          "(expectation over transformation); fresh randomness every step either way", low=1, high=64),
    Param("batch_size", int, 0, "images inverted together (0 = all at once)", low=0, high=1_000_000),
    Param("normalize", bool, True, "divide the feature error by the observed features' energy mean(z²) "
          "(scale-free; false = He et al.'s absolute error)"),
    Param("plateau", float, 0.0, "stop early when the objective's mean over the last 25 steps improved by less "
          "than this fraction on the 25 before (0 = always run every iteration)", low=0.0, high=1.0),
)


def resolve_settings(params: dict[str, Any], feature_shape: tuple[int, ...],
                     input_shape: tuple[int, int, int]) -> RMLESettings:
    """Fill the by-depth sentinels (-1) of ``lr`` / ``lambda_tv`` from :func:`default_settings`."""
    lr, tv = default_settings(feature_shape, input_shape)
    return RMLESettings(
        iterations=params["iterations"], lr=lr if params["lr"] == BY_DEPTH else params["lr"],
        lambda_tv=tv if params["lambda_tv"] == BY_DEPTH else params["lambda_tv"],
        lambda_l2=params["lambda_l2"],
        init=params["init"], box=params["box"], eot_samples=params["eot_samples"],
        batch_size=params["batch_size"], normalize=params["normalize"], plateau=params["plateau"])


@ATTACKS.register("rmle")
class RMLE(Attack):
    summary = "white-box rMLE (He et al. 2019 §4.1): optimize x̂ so the defended front reproduces z"
    access = Access.WHITE_BOX
    #: a straight-through stage (e.g. input quantization) passes the gradient of the identity: rMLE then
    #: optimizes through the approximation, as an adaptive white-box attacker would (BPDA, Athalye et al. 2018)
    approximations = ("straight-through",)
    params = RMLE_PARAMS

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.last_losses: torch.Tensor | None = None

    @classmethod
    def declared_defaults(cls) -> dict[str, Any]:
        return {p.name: p.default for p in cls.params}

    def _check_params(self) -> None:
        for name in ("lr", "lambda_tv"):
            value = self.params[name]
            if value < 0 and value != BY_DEPTH or (name == "lr" and value == 0):
                bound = "> 0" if name == "lr" else ">= 0"
                raise PrivbenchError(f"attack 'rmle': parameter '{name}' must be {BY_DEPTH:g} (by split "
                                     f"depth) or {bound}; got {value!r}")

    def settings(self, view: AttackerView) -> RMLESettings:
        return resolve_settings(self.params, view.feature_shape, view.input_shape)

    def reconstruct(self, features: torch.Tensor) -> torch.Tensor:
        if self.view is None or self.view.front is None:
            raise RuntimeError("rmle: fit() first")
        view = self.view
        settings = self.settings(view)
        size = max(1, settings.batch_size or len(features))
        steps = settings.iterations * -(-len(features) // size)  # counted by rmle_invert's steps
        with progress_step(None, total=steps, unit="step"):
            x_hat, self.last_losses = rmle_invert(
                view.front, features, settings, input_shape=view.input_shape, device=view.device,
                seed=view.seed, mean_image=view.data.mean(dim=0) if self.params["init"] == "mean" else None)
        return x_hat
