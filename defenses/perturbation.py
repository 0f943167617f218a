"""Protective perturbation generator, Ye et al. (paper 003, MMSys '22, §3.2–3.3, Algorithm 1, eq. 4).

On the edge, before anything else, a U-Net U(·) (:mod:`privbench.models.unet`; widths 32-64-128-256-512 with
(3×3 conv + BN + LeakyReLU 0.2) × 2 blocks and a 1×1 output conv, as in the paper's public code) maps the image
x to a residual δ, and the protected image x′ = clamp(x + δ) to [0, 1] (§3.2, Fig. 3) is what the unchanged,
frozen task network receives — and what the service provider sees. The defense is an input stage
(:meth:`~privbench.split.SplitModel.with_input_stage`); the features at the split are the task front's
features of x′.

Training (§3.3, Algorithm 1; the task network — the paper's *target* model — is frozen throughout, BatchNorm
statistics included) minimises eq. 4 over U's parameters only:

    Loss = ω_t · CE(F_target(x′), y) − ω_a · CE(F_aux(x′), y) + ω_s · SSIM(x, x′)

with (ω_t, ω_a, ω_s) = (1, 1, 0.5) (§4.1.3): keep the task's prediction (eq. 1), push an *auxiliary*
classifier — the stand-in for the adversary's own recognition model, frozen while U trains — away from the
true label (eq. 2), and make x′ structurally unlike x (eq. 3; SSIM itself, not 1 − SSIM, window 11, σ 1.5,
``piq.ssim``). ``w_aux = 0`` is the paper's "without auxiliary model" ablation (Fig. 9, left): then no
auxiliary is built or trained at all. The strength axis for sweeps is ``w_ssim``.

The auxiliary (paper: another pre-trained CIFAR-10 classifier, e.g. ResNet18 for a ResNet34 target) is here a
classifier with the task network's architecture, re-initialised (:func:`privbench.models.base.reinitialize`,
so no task weight survives) and trained first by the defender on its own training data (Adam, cross-entropy,
``aux_epochs``, ``aux_lr``), then frozen in eval mode. Its top-1 accuracy on x′ of the task test set is
reported as the ``aux-acc`` diagnostic (the paper's "accuracy on the auxiliary model").

Optimiser (§4.1.3 and the public code): AdamW, lr 5e-3, weight decay 5e-4, with a linear warm-up over the first
``warmup`` fraction of the steps multiplied into a cosine decay to 0 over the whole run
(lr_t = lr · min(1, (t + 1)/(warmup·T)) · ½(1 + cos(π t / T)), T = all steps). privbench's choices for a CPU
budget: batch 32 instead of 256, a few epochs instead of 100, the last epoch's generator instead of the best
one on a validation split, and no random crop/flip preprocessing.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from privbench.defenses.base import DefenseStage, FitContext, TrainedDefense, cpu_state
from privbench.device import derive_seed
from privbench.errors import PrivbenchError
from privbench.models.base import reinitialize
from privbench.models.unet import UNet
from privbench.registry import DEFENSES, Param
from privbench.split import SplitModel, batches
from privbench.threat import Access
from privbench.training import Update, fit_task, train

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


class PerturbationGenerator(DefenseStage):
    """x′ = clamp(x + U(x)) to [0, 1] (paper 003 §3.2): a deterministic, differentiable input stage."""

    def __init__(self, widths: tuple[int, ...], channels: int = 3) -> None:
        super().__init__()
        self.unet = UNet(channels, channels, widths)
        self.label = "perturbation.generator"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.unet(x)).clamp(0.0, 1.0)


class WarmupAdamW(torch.optim.AdamW):
    """AdamW whose step size is scaled by (t + 1)/``warmup_steps`` for the first ``warmup_steps`` steps t; a
    learning-rate scheduler on top (the cosine decay of :func:`privbench.training.train`) still sees and sets
    the unscaled rate, so the two multiply."""

    def __init__(self, params: list[nn.Parameter], lr: float, weight_decay: float, warmup_steps: int) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.warmup_steps = warmup_steps
        self.steps_done = 0

    def step(self, closure=None):
        factor = min(1.0, (self.steps_done + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        self.steps_done += 1
        if factor >= 1.0:
            return super().step(closure)
        rates = [group["lr"] for group in self.param_groups]
        for group in self.param_groups:
            group["lr"] = group["lr"] * factor
        try:
            return super().step(closure)
        finally:
            for group, rate in zip(self.param_groups, rates, strict=True):
                group["lr"] = rate


def ssim_similarity(x: torch.Tensor, x_prime: torch.Tensor) -> torch.Tensor:
    """Mean SSIM(x, x′) over the batch (eq. 3), images in [0, 1]; differentiable."""
    import piq  # imported on use: it pulls in torchvision and torch._dynamo (~2.5 s at start-up)

    return piq.ssim(x, x_prime, data_range=1.0, kernel_size=SSIM_WINDOW, kernel_sigma=SSIM_SIGMA)


@DEFENSES.register("perturbation")
class Perturbation(TrainedDefense):
    summary = ("protective perturbation: a U-Net adds a residual to the input image, trained to keep the task "
               "prediction, fool an auxiliary classifier and lower SSIM(x, x′) (paper 003); strength = w_ssim")
    strength_param = "w_ssim"
    paper_threat = (Access.QUERY_FREE,)
    paper_threat_source = ("paper 003 §2.3: the user device is trusted (TrustZone/SGX, encrypted links); the "
                           "provider sees only x′ leaving it, with no access to the generator and no queries")
    params = (
        Param("w_target", float, 1.0, "ω_t: weight of the task model's cross-entropy on x′ (paper 003 eq. 4; "
              "paper: 1)", low=0.0, high=100.0),
        Param("w_aux", float, 1.0, "ω_a: weight of −CE of the auxiliary classifier on x′ (eq. 4; paper: 1; 0 = the "
              "paper's ablation without auxiliary model: none is trained)", low=0.0, high=100.0),
        Param("w_ssim", float, 0.5, "ω_s: weight of SSIM(x, x′) (eq. 4, SSIM itself, window 11, σ 1.5; paper: 0.5)",
              low=0.0, high=100.0),
        Param("aux", str, "task-architecture", "the auxiliary classifier: the task network's architecture, "
              "re-initialised and trained by the defender on its own data", choices=("task-architecture",)),
        Param("aux_epochs", int, 3, "epochs of the auxiliary classifier's training (Adam, cross-entropy)", low=1,
              high=1000),
        Param("aux_lr", float, 3e-3, "Adam learning rate of the auxiliary classifier (cosine decay)", low=1e-6,
              high=1.0),
        Param("epochs", int, 3, "epochs of the generator's training (paper: 100)", low=1, high=1000),
        Param("lr", float, 5e-3, "AdamW learning rate of the generator (paper: 5e-3)", low=1e-6, high=1.0),
        Param("weight_decay", float, 5e-4, "AdamW weight decay of the generator (paper: 5e-4)", low=0.0, high=1.0),
        Param("warmup", float, 0.1, "fraction of the generator's steps with a linear learning-rate warm-up "
              "(multiplied into the cosine decay; 0 = none)", low=0.0, high=1.0),
        Param("width", int, 32, "channels of the U-Net's first level; each deeper level doubles them (paper: 32)",
              low=1, high=512),
        Param("depth", int, 5, "U-Net levels (paper: 5, i.e. 32-64-128-256-512); the image side must be a "
              "multiple of 2^(depth−1)", low=2, high=8),
        Param("batch_size", int, 32, "training batch size of the generator and the auxiliary (paper: 256)", low=1,
              high=4096),
    )

    def _check_params(self) -> None:
        p = self.params
        if p["w_target"] == 0 and p["w_aux"] == 0 and p["w_ssim"] == 0:
            raise PrivbenchError("defense 'perturbation': w_target, w_aux and w_ssim are all 0 (nothing to train)")

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self._aux: SplitModel | None = None

    @property
    def uses_aux(self) -> bool:
        return self.params["w_aux"] > 0

    def is_identity(self) -> bool:
        return False  # a trained generator always changes x

    @property
    def transforms_input(self) -> bool:
        return True  # x′ = clamp(x + U(x)) is what the task network (and the provider) receives

    # ---- networks -------------------------------------------------------------------------------------
    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.params["width"] * 2**level for level in range(self.params["depth"]))

    def generator(self, model: SplitModel) -> PerturbationGenerator:
        channels, height, width = model.input_shape
        stage = PerturbationGenerator(self.widths, channels)
        try:
            stage.unet.check_size(height, width)
        except PrivbenchError as exc:
            raise PrivbenchError(f"defense 'perturbation': {exc} (lower 'depth')") from None
        return stage

    def auxiliary(self, model: SplitModel, seed: int) -> SplitModel:
        """A fresh classifier with the task network's architecture and no task weight (trainable)."""
        aux = reinitialize(copy.deepcopy(model), seed)
        for p in aux.parameters():
            p.requires_grad_(True)
        return aux

    def build(self, model: SplitModel, state: dict[str, Any]) -> SplitModel:
        stage = self.generator(model)
        aux = copy.deepcopy(model) if self.uses_aux else None
        with self.state_must_fit():
            stage.unet.load_state_dict(state["generator"])
            if aux is not None:
                aux.load_state_dict(state["aux"])
        if aux is not None:
            aux.to(model.device).eval()
            for p in aux.parameters():
                p.requires_grad_(False)
        self._aux = aux
        return model.with_input_stage(stage)

    @torch.no_grad()
    def diagnostics(self, defended_inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, tuple[int, int]]:
        """``aux-acc``: top-1 accuracy of the trained auxiliary classifier on x′ (paper 003's accuracy on the
        auxiliary model; low = the adversary's recogniser is fooled). None without an auxiliary, or for a task
        other than classification (a detector's auxiliary has no top-1 accuracy)."""
        if self._aux is None or self._aux.task.name != "classification":
            return {}
        aux = self._aux.eval()
        device = aux.device
        correct = 0
        for s in batches(len(defended_inputs), 256):
            predicted = aux(defended_inputs[s].to(device)).argmax(dim=1).cpu()
            correct += int((predicted == labels[s].cpu()).sum())
        return {"aux-acc": (correct, int(len(defended_inputs)))}

    # ---- training (paper 003 §3.3, Algorithm 1) ------------------------------------------------------------
    def fit(self, context: FitContext) -> dict[str, Any]:
        p = self.params
        model, device = context.model, context.device
        images, labels = context.train.images, context.targets
        model.eval()  # the target network is frozen throughout, BatchNorm included
        torch.manual_seed(derive_seed(context.seed, "perturbation-init"))
        stage = self.generator(model).to(device)
        aux = None
        if self.uses_aux:
            context.say("training the auxiliary classifier (the adversary's recognizer)")
            aux = self.auxiliary(model, derive_seed(context.seed, "perturbation-aux-init")).to(device)
            fit_task(aux, images, labels, epochs=p["aux_epochs"], lr=p["aux_lr"], batch_size=p["batch_size"],
                     device=device, seed=derive_seed(context.seed, "perturbation-aux"), loss_fn=aux.task_loss)
            aux.eval()
            for q in aux.parameters():
                q.requires_grad_(False)

        def loss(idx: torch.Tensor) -> torch.Tensor:
            x = images[idx].to(device).float().div_(255.0)
            y = labels[idx].to(device)
            x_prime = stage(x)
            total = x.new_zeros(())
            if p["w_target"] > 0:
                total = total + p["w_target"] * model.task_loss(model(x_prime), y)
            if aux is not None:
                total = total - p["w_aux"] * aux.task_loss(aux(x_prime), y)
            if p["w_ssim"] > 0:
                total = total + p["w_ssim"] * ssim_similarity(x, x_prime)
            return total

        n, batch_size = len(images), p["batch_size"]
        steps = max(1, p["epochs"] * math.ceil(n / batch_size))
        warmup_steps = round(p["warmup"] * steps)

        def optimizer(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
            return WarmupAdamW(params, lr, p["weight_decay"], warmup_steps)

        context.say("training the perturbation generator")
        stage.train()
        train(n, [Update(list(stage.parameters()), loss, p["lr"], schedule="cosine", optimizer=optimizer)],
              epochs=p["epochs"], batch_size=batch_size, seed=derive_seed(context.seed, "perturbation-generator"))
        stage.eval()
        state: dict[str, Any] = {"generator": cpu_state(stage.unet)}
        if aux is not None:
            state["aux"] = cpu_state(aux)
        return state
