"""PATROL: privacy-oriented pruning, Ding et al. (paper 002, Algorithm 1).

Later layers extract more task-specific and fewer private features, so PATROL deploys *more* layers on the edge
device — a deeper split (``split``) — and prunes them until they fit the device (§III-A). privbench fits the
pruned front within an edge parameter budget: ``edge_params``, or ``edge_ratio`` × the parameters of the
undefended front at the model's own split (1.0 = no more parameters than the shallow front it replaces). The
cost rows then show the pruned front next to the unpruned one at the same split (dataset ``edge-unpruned``).

Training (Algorithm 1) starts from the trained task network re-cut at ``split``, with a soft mask on every
channel of the front's convolutions (:class:`~privbench.models.channel_pruning.ChannelMask`), a surrogate
inversion model f_adv (a decoder from the features to the image, :mod:`privbench.models.decoders`), and for each
of ``epochs`` epochs:

1. f_adv is (re)trained for one epoch on L_adv (eq. 8), the front frozen, every ``adv_every`` epochs
   (lines 4–10; the paper retrains every 10 of its 90 epochs, privbench every epoch of its few);
2. per batch, three updates:
   (i)   θ (front and back) on L − β·L_adv, eq. 9 (lines 12–15): L is the task loss, L_adv(θ_e, θ_adv) =
         ‖x − f_adv(f_e(x))‖₂ per image, averaged over the batch;
   (ii)  θ on L + L_lip, eq. 7 (lines 16–22): L_lip = Σ_i α_i·k_i (eq. 6) with the block-wise local Lipschitz
         constants k_1 = sup_x ‖f_1(x+δ) − f_1(x)‖₁ / ‖δ‖₁ (eq. 5) and k_i = sup_x ‖f_i…f_1(x+δ) − f_i…f_1(x)‖₁ /
         ‖f_{i−1}…f_1(x+δ) − f_{i−1}…f_1(x)‖₁ (eq. 4), δ ~ N(0, ``lip_sigma``²) in pixel units, the sup taken
         over the batch; one block per convolution of the front;
   (iii) the masks m on L + λ1‖m‖₁ + λ2‖m‖₂ (eq. 1, lines 23–25) by a FISTA step (:mod:`privbench.proximal`);
3. pruning (line 29): the masks are folded into the BatchNorms, channels with m ≤ τ (``threshold``) are removed;
   when the front is still over the budget, further channels are removed in increasing order of m (privbench's
   addition: the paper's budget is met by its choice of λ); finally the pruned network is fine-tuned on the task
   loss for ``epochs_finetune`` epochs (privbench's addition, since removing channels whose mask is not zero
   changes the function).

privbench's choices where the paper's setting does not fit a CPU budget or a pre-trained start (measured with
``benchmarks/patrol_channels.py`` on the default preset, seeds 0 and 1 of the fit on task model seed 0):

- **BatchNorms frozen** while the masks learn (:func:`algorithm_mode`): in train mode the next BatchNorm normalizes
  a layer's masks' common scale away and the task gradient on the masks is orthogonal to them (cosine 0.000 on all
  four layers, norm 0.004–0.006 against the penalty's 7–10); frozen, the cosine is −0.70…+0.34.
- **Masks start at 1** (the paper draws them from N(0, 1), which with τ = 0 prunes about half the channels at random
  and inverts the sign of the rest of a trained network).
- **λ1 = 0.01, λ2 = 0.1 and a mask step of 0.1** (paper: λ1 = 1, λ2 = 10, step 1e-6 over 90 epochs of batch 512).
  The paper's step moves a mask by at most ≈ 0.05 over its whole schedule, which here (2 epochs) is nothing: the
  masks stay at 1 and τ prunes nothing. The paper's λ at a step that moves the masks (1e-3) drive every mask to 0
  within the first epoch (the task gradient per mask is ≈ 0.01–0.03, the penalty's 7–10): accuracy 0.10. The
  paper's 1 : 10 ratio scaled by 0.01 balances the two: accuracy 0.871 / 0.849 after pruning 82–83 % of the
  deeper front (undefended 0.940), and the two seeds keep mostly the same channels (Jaccard 1.00 / 0.60 / 0.50 /
  0.67 per layer, where random subsets of the same sizes overlap 0.36 / 0.36 / 0.17 / 0.31); before these changes
  (train-mode BatchNorms, the paper's λ at step 1e-3): 0.742 / 0.663, overlap 0.20 / 0.00 / 0.18 / 0.30, at or
  below random.
- **FISTA with adaptive restart** (:class:`privbench.proximal.FISTA`): without it the momentum carried the masks to
  −3.2…+2.4.
- Adam at ``lr`` for θ (paper 3e-4); a few epochs (paper 90). The paper's hyper-parameters are the defaults
  otherwise: β = 0.0004, α = (5, 0.2, 0.01, 0.005), τ = 0.

Channel-wise pruning only (the paper's better variant, its Table III); the front must be a chain of
convolutions, BatchNorms, activations and pooling (:mod:`privbench.models.channel_pruning`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from privbench.defenses.base import FitContext, TrainedDefense, cpu_state
from privbench.device import derive_seed
from privbench.edge_cost import count_params
from privbench.errors import PrivbenchError
from privbench.models.base import ModelSpec
from privbench.models.channel_pruning import blocks, channel_scales, fold_masks, prune, pruned_params, with_masks
from privbench.models.decoders import DECODERS, build_decoder
from privbench.proximal import FISTA
from privbench.registry import DEFENSES, Param
from privbench.split import SplitModel
from privbench.threat import Access
from privbench.training import Update, train

#: paper 002 §IV-A: α_1..α_4 of the block-wise Lipschitz loss (eq. 6)
PAPER_ALPHA = "5,0.2,0.01,0.005"


def parse_alpha(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PrivbenchError(f"defense 'pruning': parameter 'alpha' must be comma-separated numbers; got {text!r}") \
            from None
    if not values or any(v < 0 or v != v for v in values):
        raise PrivbenchError(f"defense 'pruning': parameter 'alpha' must be non-negative numbers; got {text!r}")
    return values


def algorithm_mode(masked_front: nn.Module, back: nn.Module) -> None:
    """The modes Algorithm 1 trains the masked front and the back in: train mode, except every BatchNorm, which
    normalizes with its running statistics (frozen; its affine γ, β still learn).

    Why: a mask scales a channel after its BatchNorm, and in train mode the next BatchNorm divides by the batch's
    own statistics, so the common scale of a layer's masks is normalized away — the task loss is invariant to it,
    its gradient on the mask vector is orthogonal to the vector (cosine 0, measured) and a hundred times smaller
    than the penalty's, so only λ1‖m‖₁ + λ2‖m‖₂ moves the masks and the kept channels are noise
    (``benchmarks/patrol_channels.py``). With the statistics of the trained network frozen, shrinking a mask
    shrinks what the next layer sees, and the task loss resists it where the channel matters. The paper starts
    from a well-trained model (§IV-A) and does not say how its BatchNorms are run; frozen statistics are the
    reading under which eq. 1's trade-off exists. The pruned network is fine-tuned afterwards in train mode,
    which re-estimates the statistics."""
    masked_front.train()
    back.train()
    for module in (*masked_front.modules(), *back.modules()):
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def mask_task_gradients(model: SplitModel, split: str, x: torch.Tensor, y: Any
                        ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per convolution of ``model``'s front re-cut at ``split``, masked at 1 and in :func:`algorithm_mode`: (the mask,
    the task loss's gradient on it) for the batch ``x``, ``y`` — the diagnostic behind :func:`algorithm_mode`
    (``benchmarks/patrol_channels.py``)."""
    deep = model.recut(split)
    masked, masks = with_masks(copy.deepcopy(deep.front))
    back = copy.deepcopy(deep.back)
    algorithm_mode(masked, back)
    grads = torch.autograd.grad(model.task_loss(back(masked(x)), y), [m.mask for m in masks.values()])
    return {name: (m.mask.detach(), g) for (name, m), g in zip(masks.items(), grads, strict=True)}


def image_l2(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. 8's ‖x − x̂‖₂ per image, averaged over the batch."""
    return (x - x_hat).flatten(1).norm(dim=1).mean()


@DEFENSES.register("pruning")
class Pruning(TrainedDefense):
    #: PATROL re-cuts and prunes the layers of a named chain (the built-in classifiers); a detector's back is not one
    tasks = ("classification",)
    summary = ("PATROL privacy-oriented pruning (paper 002): a deeper split pruned to an edge parameter budget, "
               "with Lipschitz and adversarial reconstruction training; strength = beta")
    strength_param = "beta"
    paper_threat = (Access.BLACK_BOX, Access.QUERY_FREE)
    paper_threat_source = ("paper 002 §III-A: the adversary has no access to the edge or cloud model parameters "
                           "(black-box MIA)")
    params = (
        Param("split", str, "", "layer the pruned front ends at, at or after the model's split ('' = the model's "
              "split); PATROL deploys more layers on the edge"),
        Param("edge_ratio", float, 1.0, "edge parameter budget as a multiple of the undefended front's parameters at "
              "the model's split (0 = no budget: threshold pruning only)", low=0.0, high=1000.0),
        Param("edge_params", int, 0, "edge parameter budget as a count (overrides edge_ratio when > 0)", low=0),
        Param("beta", float, 4e-4, "weight β of −L_adv, the adversarial reconstruction term (eq. 9; paper 0.0004; "
              "0 = no surrogate attacker)", low=0.0, high=100.0),
        Param("alpha", str, PAPER_ALPHA, "α_i of the block-wise Lipschitz loss (eq. 6), one per convolution block, "
              "comma-separated; the last value repeats for deeper blocks ('0' = no Lipschitz term)"),
        Param("lip_sigma", float, 0.1, "standard deviation of the input perturbation δ of eqs. 4–5, in pixel units "
              "of [0, 1] images", low=1e-6, high=10.0),
        Param("lambda1", float, 0.01, "λ1 of the ℓ1 mask penalty (eq. 1; paper 1 at a mask step of 1e-6, which here "
              "moves no mask: see the module docstring)", low=0.0, high=1000.0),
        Param("lambda2", float, 0.1, "λ2 of the ℓ2 mask penalty (eq. 1; paper 10, the same 1 : 10 ratio)", low=0.0,
              high=1000.0),
        Param("threshold", float, 0.0, "τ: channels whose mask is ≤ τ are pruned (paper 0)", low=-100.0, high=100.0),
        Param("epochs", int, 3, "epochs of Algorithm 1 (paper 90)", low=1, high=1000),
        Param("epochs_finetune", int, 4, "task-loss epochs of the pruned network (0 = none)", low=0, high=1000),
        Param("adv_every", int, 1, "retrain the surrogate inversion model every this many epochs (paper 10)", low=1,
              high=1000),
        Param("lr", float, 1e-3, "Adam learning rate of the network (cosine decay; paper 3e-4)", low=1e-6, high=1.0),
        Param("mask_lr", float, 0.1, "FISTA step of the masks (cosine decay; paper 1e-6 over 90 epochs)", low=1e-9,
              high=1.0),
        Param("surrogate", str, "mirror", "the surrogate inversion model's decoder family", choices=tuple(DECODERS)),
        Param("surrogate_width", int, 16, "the surrogate's smallest channel count", low=4, high=1024),
        Param("batch_size", int, 32, "training batch size", low=1, high=4096),
    )

    def _check_params(self) -> None:
        self.alpha = parse_alpha(self.params["alpha"])

    # ---- the deployed split ---------------------------------------------------------------------------
    def deployed_split(self, model_split: str) -> str:
        return self.params["split"] or model_split

    def check_model(self, spec: ModelSpec, model_split: str) -> None:
        """Refuse, before any training, a deployed split that the model does not have or that is shallower than
        the model's split."""
        split = self.params["split"]
        if not split or split == model_split:
            return
        if not spec.strict_splits:
            raise PrivbenchError(f"defense 'pruning': split '{split}' needs a built-in model whose layers form a "
                                 f"named chain (e.g. vgg-small); model '{spec.label}' can only be pruned at its "
                                 f"own split")
        if split not in spec.splits:
            raise PrivbenchError(f"defense 'pruning': unknown split '{split}' for model '{spec.label}' (choose "
                                 f"from: {', '.join(spec.splits)})")
        if model_split in spec.splits and spec.splits.index(split) < spec.splits.index(model_split):
            raise PrivbenchError(f"defense 'pruning': split '{split}' is shallower than the model's split "
                                 f"'{model_split}'; PATROL deploys more layers on the edge, not fewer")

    def _deep(self, model: SplitModel) -> SplitModel:
        return model.recut(self.deployed_split(model.split))

    def budget(self, model: SplitModel) -> int | None:
        """The edge parameter budget, or ``None`` when there is none."""
        if self.params["edge_params"] > 0:
            return self.params["edge_params"]
        if self.params["edge_ratio"] > 0:
            return int(round(self.params["edge_ratio"] * count_params(model.front)))
        return None

    def reference_fronts(self, model: SplitModel) -> dict[str, nn.Module]:
        """The unpruned front at the deployed split, for the before/after cost rows."""
        return {"unpruned": self._deep(model).front}

    # ---- the pruned pipeline --------------------------------------------------------------------------
    def build(self, model: SplitModel, state: dict[str, Any]) -> SplitModel:
        deep = self._deep(model)
        with self.state_must_fit():
            front, back = prune(deep.front, deep.back, state["kept"])
            front.load_state_dict(state["front"])
            back.load_state_dict(state["back"])
        return deep.with_parts(front, back, split=deep.split)

    # ---- training (Algorithm 1) -------------------------------------------------------------------------
    def select_channels(self, masked_front: nn.Sequential, masks: dict[str, torch.Tensor],
                        budget: int | None) -> dict[str, list[int]]:
        """Channels to keep per convolution: mask > τ (line 29), then, until the pruned front fits ``budget``,
        the channel of least relative importance is removed; at least one channel per convolution.

        Importance is the folded output scale |m·γ| of a channel (its mask times its BatchNorm scale, what the
        channel actually contributes), divided by the mean over its layer, so layers shrink in proportion rather
        than the layer with the smallest scales emptying first."""
        folded = fold_masks(masked_front)
        scales = channel_scales(folded)
        tau = self.params["threshold"]
        kept = {}
        for name, m in masks.items():
            keep = [i for i, v in enumerate(m.tolist()) if v > tau]
            kept[name] = keep or [int(scales[name].argmax())]
        if budget is None:
            return kept
        relative = {name: s / s.mean().clamp_min(1e-12) for name, s in scales.items()}
        while pruned_params(folded, {k: len(v) for k, v in kept.items()}) > budget:
            candidates = [(float(relative[name][i]), name, i) for name, keep in kept.items() if len(keep) > 1
                          for i in keep]
            if not candidates:
                raise PrivbenchError(f"defense 'pruning': even one channel per convolution exceeds the edge budget "
                                     f"of {budget} parameters; raise edge_ratio/edge_params or choose a shallower "
                                     f"split")
            _, name, index = min(candidates)
            kept[name].remove(index)
        return kept

    def fit(self, context: FitContext) -> dict[str, Any]:
        p = self.params
        device = context.device
        deep = self._deep(context.model)
        budget = self.budget(context.model)
        torch.manual_seed(derive_seed(context.seed, "pruning-init"))
        front, back = copy.deepcopy(deep.front), copy.deepcopy(deep.back)
        for net in (front, back):
            net.to(device)
            for q in net.parameters():
                q.requires_grad_(True)
        masked, mask_modules = with_masks(front)
        parts = blocks(masked)
        alpha = (self.alpha + [self.alpha[-1]] * len(parts))[:len(parts)]
        lipschitz_on = any(a > 0 for a in alpha)
        adversarial = p["beta"] > 0
        with torch.no_grad():
            feature_shape = tuple(masked.eval()(torch.zeros(1, *deep.input_shape, device=device)).shape[1:])
        surrogate = build_decoder(p["surrogate"], feature_shape, deep.input_shape,
                                  width=p["surrogate_width"]).to(device) if adversarial else None
        images, labels = context.train.images, context.targets
        noise = torch.Generator(device="cpu").manual_seed(derive_seed(context.seed, "pruning-delta"))
        cached: dict[str, Any] = {}

        def batch(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if cached.get("idx") is not idx:
                cached.update(idx=idx, value=(images[idx].to(device).float().div_(255.0), labels[idx].to(device)))
            return cached["value"]

        def task(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = masked(x)
            return context.model.task_loss(back(z), y), z

        def adversarial_loss(idx: torch.Tensor) -> torch.Tensor:  # eq. 9
            x, y = batch(idx)
            loss, z = task(x, y)
            if surrogate is not None:
                loss = loss - p["beta"] * image_l2(surrogate(z), x)
            return loss

        def lipschitz_loss(x: torch.Tensor) -> torch.Tensor:  # eqs. 4–6
            delta = (torch.randn(x.shape, generator=noise) * p["lip_sigma"]).to(device)
            a = torch.cat([x, x + delta])
            n = len(x)
            previous = delta.abs().flatten(1).sum(1)
            total = x.new_zeros(())
            for weight, part in zip(alpha, parts, strict=True):  # BatchNorms frozen: x and x + δ do not mix
                a = part(a)
                difference = (a[n:] - a[:n]).abs().flatten(1).sum(1)
                if weight > 0:
                    total = total + weight * (difference / previous.clamp_min(1e-12)).max()
                previous = difference
            return total

        def task_lipschitz_loss(idx: torch.Tensor) -> torch.Tensor:  # eq. 7
            x, y = batch(idx)
            return task(x, y)[0] + lipschitz_loss(x)

        def mask_loss(idx: torch.Tensor) -> torch.Tensor:  # eq. 1's smooth part; the penalties are FISTA's prox
            x, y = batch(idx)
            return task(x, y)[0]

        def surrogate_loss(idx: torch.Tensor) -> torch.Tensor:  # eq. 8
            x, _ = batch(idx)
            masked.eval()
            with torch.no_grad():
                z = masked(x)
            algorithm_mode(masked, back)
            return image_l2(surrogate(z), x)

        fista: list[FISTA] = []

        def make_fista(params: list[nn.Parameter], lr: float) -> FISTA:
            fista.append(FISTA(params, lr, l1=p["lambda1"], l2=p["lambda2"]))
            return fista[-1]

        theta = [q for q in (*front.parameters(), *back.parameters())]
        mask_params = [m.mask for m in mask_modules.values()]
        common = dict(batch_size=p["batch_size"])

        def train_surrogate(stage: str) -> None:
            assert surrogate is not None
            surrogate.train()
            train(len(images), [Update(list(surrogate.parameters()), surrogate_loss, p["lr"], schedule="constant")],
                  epochs=1, seed=derive_seed(context.seed, "pruning-surrogate", stage), **common)

        def between_epochs(epoch: int) -> None:
            if surrogate is not None and (epoch + 1) % p["adv_every"] == 0 and epoch + 1 < p["epochs"]:
                context.say(f"retraining the surrogate attacker (before epoch {epoch + 2})")
                train_surrogate(str(epoch + 1))

        if surrogate is not None:
            context.say("training the surrogate attacker")
            train_surrogate("0")
        updates = [Update(theta, adversarial_loss, p["lr"])] if surrogate is not None else []
        if lipschitz_on:
            updates.append(Update(theta, task_lipschitz_loss, p["lr"]))
        if not updates:
            updates.append(Update(theta, mask_loss, p["lr"]))
        updates.append(Update(mask_params, mask_loss, p["mask_lr"], optimizer=make_fista))
        context.say("learning the channel masks (task, Lipschitz and adversarial terms)")
        algorithm_mode(masked, back)
        train(len(images), updates, epochs=p["epochs"], seed=derive_seed(context.seed, "pruning-train"),
              on_epoch=between_epochs, **common)
        fista[0].finish()
        masked.eval()
        masks = {name: module.mask.detach().cpu() for name, module in mask_modules.items()}
        kept = self.select_channels(masked, masks, budget)
        pruned_front, pruned_back = prune(fold_masks(masked), back, kept)
        if p["epochs_finetune"] > 0:
            context.say("fine-tuning the pruned network")

            def finetune_loss(idx: torch.Tensor) -> torch.Tensor:
                x, y = batch(idx)
                return context.model.task_loss(pruned_back(pruned_front(x)), y)

            pruned_front.train()
            pruned_back.train()
            train(len(images), [Update([*pruned_front.parameters(), *pruned_back.parameters()], finetune_loss,
                                       p["lr"])], epochs=p["epochs_finetune"],
                  seed=derive_seed(context.seed, "pruning-finetune"), **common)
        pruned_front.eval()
        pruned_back.eval()
        return {"kept": kept, "masks": masks,
                "front": cpu_state(pruned_front), "back": cpu_state(pruned_back)}
