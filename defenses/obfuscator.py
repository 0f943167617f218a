"""Adversarial image obfuscator, De Coninck et al. (paper 004 §3), trained without sensitive labels.

On the edge, a lightweight obfuscator O maps the camera image x to an image O(x) of the same size, and the
unchanged, frozen task network (the cloud's) runs on O(x) (paper 004 Fig. 1–2). What crosses the network is
the obfuscated image, so the defense is an input stage (:meth:`SplitModel.with_input_stage`): x′ = O(x).

Networks (paper 004 §3.1: "constructed based on the MobileNet architecture"). O and the deobfuscator D are
small image-to-image autoencoders of one family (:class:`MobileNetAutoencoder`) built from MobileNet's
depthwise-separable blocks (Howard et al. 2017: 3×3 depthwise conv + BN + ReLU6, 1×1 pointwise conv + BN) in
the linear-bottleneck, residual form of MobileNetV2's inverted residuals (Sandler et al. 2018), here with
expansion 1 (MobileNetV2's first block; ``EXPANSION``): the 1×1 projection is linear and the block adds its
input. Layout: MobileNet's stride-2 3×3 stem conv 3→w + BN + ReLU6, ``blocks`` blocks at half resolution, a
1×1 head to 4·3 channels rearranged into a full-resolution RGB image (pixel shuffle: each half-resolution
position emits its 2×2 pixels), and a sigmoid, so O(x) ∈ [0, 1]. Every block runs at half resolution: the
half-resolution code makes it an autoencoder as in the paper, and it quarters the cost of every block (O runs
on the camera; a first design with a full-resolution stem and last block and expansion 2 took 157 s per
default fit, this one about 30 s), while the pixel shuffle can still place full-resolution detail — there is
no skip connection from the input. Odd sizes are cropped back after the shuffle. O has width ``width``; D is
wider (``deobfuscator_width``), with the same number of blocks.

Training (paper 004 §3.1; the task network is frozen throughout, in eval mode, gradients flow through it to
O). Per batch, alternating:

1. D on L_rec = MSE(x, D(O(x))) with O frozen (O(x) detached: one forward pass of O per batch serves both
   steps, so O's BatchNorm statistics move once per batch with or without the adversary);
2. O on L_O = α_task·L_task − α_rec·MSE(x, D(O(x))) with D frozen, L_task = ``SplitModel.task_loss`` of the
   task network's outputs on O(x) (the paper's α_obj·L_obj: the detector's loss there, cross-entropy here).

Both with AdamW (lr 1e-3, weight decay 1e-6) and the learning rate ÷10 at the halfway point, α_task = α_rec = 1
(paper 004 §4). After training D is discarded, as in the paper; the state is O alone. ``alpha_rec = 0`` trains
O on the task loss only (no adversary is built). The strength axis for sweeps is ``alpha_rec``.

**No sensitive label is used.** The fit reads the images and the task targets (``FitContext.targets``) only —
never identities, plates or attributes. This is the point of paper 004: privacy comes from making the image
hard to *reconstruct*, so the sensitive attributes need not be defined or labelled; they are only used to
*evaluate* the defense (the paper's PAR mA, privbench's attribute and identity attacks).

privbench's choices, where the paper's setting does not fit a CPU budget: a few epochs instead of 30; the
task's own training images as training data (the defender owns them); and a warm start (``epochs_warm``): O
first trained for that many epochs on α_task·L_task + ``w_identity``·‖O(x) − x‖² (mean squared error, no
adversary), so the adversarial stage starts near the identity. A randomly initialised O destroys the image and
the task loss then dominates for many epochs. Measured on the default benchmark (2000 32×32 synth-scenes,
vgg-small width 8 task model, 0.680 accuracy undefended; this machine): 1 warm-up + 4 adversarial epochs gave
0.320 accuracy (O(x) at 12.5 dB PSNR from x), 4 + 3 epochs (the defaults) 0.670 (20.2 dB, SSIM 0.49), in
25 s. ``epochs_warm = 0`` is the paper's procedure. At α_rec = 1 the adversarial term is small next to the task
loss (L_rec ≈ 0.02 against L_task ≈ 1.5): α_rec 0 and 1 gave the same accuracy and x′ (0.675 / 20.24 dB vs
0.670 / 20.22 dB), and at tiny scale a fresh decoder's error differed by a ratio of 0.97–1.04 over five seeds;
α_rec = 100 raised it 1.3–2.1× (tests/test_obfuscator.py). Sweep ``alpha_rec`` (e.g. 1, 10, 100) to see the
trade-off.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from privbench.defenses.base import DefenseStage, FitContext, TrainedDefense, cpu_state
from privbench.device import derive_seed
from privbench.errors import PrivbenchError
from privbench.registry import DEFENSES, Param
from privbench.split import SplitModel
from privbench.threat import Access
from privbench.training import Update, train

#: channel expansion of the inverted-residual blocks (MobileNetV2 uses 6 after its first block; 1 keeps O light
#: and the fit within a CPU minute — expansion 2 more than doubled the deobfuscator's cost per batch)
EXPANSION = 1


def conv_bn(cin: int, cout: int, kernel: int, *, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Conv (no bias) + BatchNorm (+ ReLU6): MobileNet's unit layer."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups,
                                         bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1×1 expansion, 3×3 depthwise (the depthwise-separable core of MobileNet), 1×1
    linear projection; a residual connection when stride 1 and the channels match."""

    def __init__(self, cin: int, cout: int, *, stride: int = 1, expansion: int = EXPANSION) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = [conv_bn(cin, hidden, 1)] if expansion != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride=stride, groups=hidden), conv_bn(hidden, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetAutoencoder(nn.Module):
    """Image → image of the same size in [0, 1]: a stride-2 stem, ``blocks`` inverted residuals at half
    resolution, a 1×1 head to 4·3 channels rearranged to full resolution (pixel shuffle) and a sigmoid."""

    def __init__(self, width: int, blocks: int, channels: int = 3, expansion: int = EXPANSION) -> None:
        super().__init__()
        self.stem = conv_bn(channels, width, 3, stride=2)
        self.blocks = nn.Sequential(*(InvertedResidual(width, width, expansion=expansion) for _ in range(blocks)))
        self.head = nn.Sequential(nn.Conv2d(width, 4 * channels, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        y = self.head(self.blocks(self.stem(x)))  # 2·⌈H/2⌉ × 2·⌈W/2⌉: crop an odd size back
        return torch.sigmoid(y[..., :height, :width])


class ObfuscatorStage(DefenseStage):
    """O on the edge: the deterministic, differentiable image-to-image stage x′ = O(x) (paper 004 Fig. 2)."""

    def __init__(self, width: int, blocks: int) -> None:
        super().__init__()
        self.net = MobileNetAutoencoder(width, blocks)
        self.label = "obfuscator"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@DEFENSES.register("obfuscator")
class Obfuscator(TrainedDefense):
    summary = ("adversarially trained image obfuscator on the edge, no sensitive labels needed (paper 004); "
               "strength = alpha_rec (0: task loss only, no adversary)")
    strength_param = "alpha_rec"
    paper_threat = (Access.BLACK_BOX, Access.QUERY_FREE)
    paper_threat_source = ("paper 004 §4: an adversary with access to the obfuscation model, which it runs on its "
                           "own images to train its attribute model and deobfuscator (no inversion through O's "
                           "gradients)")
    params = (
        Param("alpha_rec", float, 1.0, "weight of −L_rec, the deobfuscator's reconstruction MSE, in L_O (paper 004 "
              "§3.1: α_rec = 1; 0 = no adversary)", low=0.0, high=100.0),
        Param("alpha_task", float, 1.0, "weight of the task loss in L_O (the paper's α_obj = 1)", low=0.0,
              high=100.0),
        Param("width", int, 16, "channels of the obfuscator O (it runs on the edge: keep it light)", low=4,
              high=512),
        Param("blocks", int, 4, "MobileNet blocks of O and of D (all at half resolution)", low=1, high=32),
        Param("deobfuscator_width", int, 32, "channels of the deobfuscator D, the adversary during training",
              low=4, high=1024),
        Param("epochs_warm", int, 4, "privbench's warm start: epochs of O on the task loss + ‖O(x) − x‖² before "
              "the adversarial stage (0 = the paper's procedure; see the module docstring)", low=0, high=1000),
        Param("w_identity", float, 100.0, "warm start only: weight of ‖O(x) − x‖² (mean squared error) next to "
              "the task loss", low=0.0, high=1e4),
        Param("epochs", int, 3, "epochs of the alternating adversarial stage (paper 004: 30)", low=1, high=1000),
        Param("lr", float, 1e-3, "AdamW learning rate (÷10 at the halfway point of the adversarial stage)",
              low=1e-6, high=1.0),
        Param("weight_decay", float, 1e-6, "AdamW weight decay (paper 004: 1e-6)", low=0.0, high=1.0),
        Param("batch_size", int, 32, "training batch size", low=1, high=4096),
    )

    @property
    def adversarial(self) -> bool:
        return self.params["alpha_rec"] > 0

    def is_identity(self) -> bool:
        return False  # a trained obfuscator always changes x, with or without the adversary

    @property
    def transforms_input(self) -> bool:
        return True  # x′ = O(x) is what crosses the network: the engine scores it itself (paper 004's PAR mA)

    # ---- networks -------------------------------------------------------------------------------------
    def _check(self, model: SplitModel) -> None:
        if model.input_shape[0] != 3:
            raise PrivbenchError(f"defense 'obfuscator' needs RGB images (3 channels); model '{model.model_name}' "
                                 f"takes {model.input_shape[0]} channels")

    def stage(self) -> ObfuscatorStage:
        return ObfuscatorStage(self.params["width"], self.params["blocks"])

    def deobfuscator(self) -> MobileNetAutoencoder:
        return MobileNetAutoencoder(self.params["deobfuscator_width"], self.params["blocks"])

    def build(self, model: SplitModel, state: dict[str, Any]) -> SplitModel:
        self._check(model)
        stage = self.stage()
        with self.state_must_fit():
            stage.load_state_dict(state["obfuscator"])
        return model.with_input_stage(stage)

    # ---- training (paper 004 §3.1, §4) ------------------------------------------------------------------
    def fit(self, context: FitContext) -> dict[str, Any]:
        p = self.params
        model, device = context.model, context.device
        self._check(model)
        torch.manual_seed(derive_seed(context.seed, "obfuscator-init"))
        obfuscator = self.stage().to(device)
        deobfuscator = self.deobfuscator().to(device) if self.adversarial else None
        # the images and the task label: the only fields of the training set that are ever read (no
        # identity, plate or attribute label — paper 004's point)
        images, labels = context.train.images, context.targets
        model.eval()  # the task network is frozen throughout, BatchNorm included
        cache: dict[str, Any] = {}

        def batch(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            """(x, y, O(x)) of a batch, computed once for both updates of that batch: D's step reads O(x)
            detached (O frozen), O's step backpropagates through the same forward pass — O's parameters do
            not change in between, and O's BatchNorm statistics move once per batch whether D exists or not."""
            if cache.get("idx") is not idx:
                x = images[idx].to(device).float().div_(255.0)
                cache.update(idx=idx, value=(x, labels[idx].to(device), obfuscator(x)))
            return cache["value"]

        def warm_loss(idx: torch.Tensor) -> torch.Tensor:
            x, y, obfuscated = batch(idx)
            return p["alpha_task"] * model.task_loss(model(obfuscated), y) + p["w_identity"] * F.mse_loss(obfuscated, x)

        def deobfuscator_loss(idx: torch.Tensor) -> torch.Tensor:  # L_rec with O frozen
            x, _, obfuscated = batch(idx)
            return F.mse_loss(deobfuscator(obfuscated.detach()), x)

        def obfuscator_loss(idx: torch.Tensor) -> torch.Tensor:  # L_O with D frozen
            x, y, obfuscated = batch(idx)
            loss = p["alpha_task"] * model.task_loss(model(obfuscated), y)
            if deobfuscator is not None:
                loss = loss - p["alpha_rec"] * F.mse_loss(deobfuscator(obfuscated), x)
            return loss

        def adamw(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
            return torch.optim.AdamW(params, lr=lr, weight_decay=p["weight_decay"])

        common = dict(batch_size=p["batch_size"])
        obfuscator.train()
        o_params = list(obfuscator.parameters())
        if p["epochs_warm"] > 0:
            context.say("warm start: task loss and closeness to the input")
            train(len(images), [Update(o_params, warm_loss, p["lr"], schedule="constant", optimizer=adamw)],
                  epochs=p["epochs_warm"], seed=derive_seed(context.seed, "obfuscator-warm"), **common)
        context.say("adversarial training against the deobfuscator" if deobfuscator is not None
                    else "training on the task loss")
        updates = [Update(o_params, obfuscator_loss, p["lr"], schedule="step", optimizer=adamw)]
        if deobfuscator is not None:
            deobfuscator.train()
            updates.insert(0, Update(list(deobfuscator.parameters()), deobfuscator_loss, p["lr"], schedule="step",
                                     optimizer=adamw))
        train(len(images), updates, epochs=p["epochs"], seed=derive_seed(context.seed, "obfuscator-adversarial"),
              **common)
        obfuscator.eval()
        return {"obfuscator": cpu_state(obfuscator)}
