"""Adversarially trained bottleneck autoencoder, Azizian & Bajić (paper 000 §IV; short form in paper 001).

At the split, an encoder AE (edge) maps the front's C feature channels to ``bottleneck`` channels at the same
spatial size, and a decoder AD (cloud) maps them back to C channels for the unchanged, frozen task back
(paper 000 §IV-B, Fig. 3): AE = 3×3 conv C→h + SiLU, a residual block, 3×3 conv h→``bottleneck`` (no
activation); AD mirrors it (3×3 conv + SiLU, residual block, 3×3 conv + SiLU). No BatchNorm in either, as in
the paper. What crosses the network is the bottleneck.

Training (paper 000 §IV-D; the task network is frozen throughout) has three stages, each with its own epochs:

1. ``epochs_ae``: AE and AD on the task loss (``SplitModel.task_loss``; cross-entropy here, the YOLO loss in
   the paper), plus privbench's warm-start term (``w_feature``, below);
2. ``epochs_rec``: RecNet — the adversary used *during training*, a decoder from the bottleneck to the image
   (:mod:`privbench.models.decoders`) — on L_rec with AE frozen;
3. ``epochs_adv``: alternating, per batch, (i) RecNet on L_rec with AE frozen, (ii) AE and AD on
   L_tot = L_task + w_cmprs·L_cmprs − w_rec·L_rec with RecNet frozen (eq. 14, the min–max of eq. 15).

L_rec is eq. 13 (ℓ1 + β·ℓ1 of the Sobel Gx, Gy responses of the luma, β = 5); L_cmprs is eq. 12 (ℓ1 of the
full-frame DCT of each bottleneck channel's prediction residual), both in :mod:`privbench.losses`.
``w_rec = w_cmprs = 0`` is the paper's non-adversarial "Benchmark-bottleneck" (stages 2 and 3 then train AE
and AD on the task loss only and no RecNet is built).

privbench's choices, where the paper's setting does not fit a CPU budget: Adam (lr 1e-3, cosine decay) instead
of SGD 0.01, a few epochs per stage instead of 50/20/40, the task's own training images as training data (the
defender owns them; the paper uses COCO), and a warm start in stage 1: ``w_feature``·‖AD(AE(z)) − z‖²/‖z‖² is
added to the task loss, so the decoder starts by reproducing the front's features. With the task loss alone a
2-channel bottleneck reached 0.27 accuracy after 2 + 3 epochs (undefended 0.68) and 0.63 after 4 + 6 on the
default benchmark; ``w_feature = 0`` is the paper's stage 1. The strength axis for sweeps is ``w_rec``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from privbench.defenses.base import DefenseStage, FitContext, TrainedDefense, cpu_state
from privbench.device import derive_seed
from privbench.errors import PrivbenchError
from privbench.losses import compressibility_loss, reconstruction_loss
from privbench.models.decoders import DECODERS, ResidualBlock, build_decoder
from privbench.registry import DEFENSES, Param
from privbench.split import SplitModel, Stage
from privbench.threat import Access
from privbench.training import Update, train


class BottleneckEncoder(DefenseStage):
    """AE: the edge half of the autoencoder (paper 000 Fig. 3), a deterministic, differentiable stage."""

    def __init__(self, channels: int, hidden: int, bottleneck: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.SiLU(),
                                  ResidualBlock(hidden, nn.SiLU), nn.Conv2d(hidden, bottleneck, 3, padding=1))
        self.label = "autoencoder.encoder"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class BottleneckDecoder(Stage):
    """AD: the cloud half, back from the bottleneck to the front's channels for the unchanged back."""

    def __init__(self, channels: int, hidden: int, bottleneck: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(bottleneck, hidden, 3, padding=1), nn.SiLU(),
                                  ResidualBlock(hidden, nn.SiLU), nn.Conv2d(hidden, channels, 3, padding=1),
                                  nn.SiLU())
        self.label = "autoencoder.decoder"

    def forward(self, b: torch.Tensor) -> torch.Tensor:
        return self.body(b)


@DEFENSES.register("autoencoder")
class Autoencoder(TrainedDefense):
    summary = ("adversarially trained bottleneck autoencoder at the split (paper 000); strength = w_rec "
               "(w_rec = w_cmprs = 0: the non-adversarial bottleneck)")
    strength_param = "w_rec"
    paper_threat = (Access.WHITE_BOX, Access.BLACK_BOX)
    paper_threat_source = "paper 000 §III-D: the white-box (rMLE) and black-box (inverse network) attacks of He et al."
    params = (
        Param("w_rec", float, 1.0, "weight of −L_rec, the adversarial reconstruction term (paper 000 eq. 14; "
              "0 = no adversary)", low=0.0, high=100.0),
        Param("w_cmprs", float, 0.0, "weight of the compressibility term L_cmprs (eq. 12)", low=0.0, high=100.0),
        Param("beta", float, 5.0, "weight of the Sobel edge terms in L_rec (eq. 13; paper: 5)", low=0.0,
              high=1000.0),
        Param("bottleneck", int, 2, "channels of the bottleneck that crosses the network (paper: 192 → 64)",
              low=1, high=4096),
        Param("hidden", int, 0, "channels inside encoder and decoder (0 = the front's channel count)", low=0,
              high=4096),
        Param("recnet", str, "residual", "RecNet's decoder family (the training-time adversary)",
              choices=tuple(DECODERS)),
        Param("recnet_width", int, 16, "RecNet's smallest channel count (its cost grows with the square)", low=4,
              high=1024),
        Param("w_feature", float, 1.0, "stage 1 only: weight of the warm-start term ‖AD(AE(z)) − z‖² / ‖z‖² (0 = the "
              "paper's task loss alone; see the module docstring)", low=0.0, high=100.0),
        Param("epochs_ae", int, 2, "stage 1: autoencoder on the task loss + warm start (paper: 50)", low=1, high=1000),
        Param("epochs_rec", int, 1, "stage 2: RecNet on L_rec, autoencoder frozen (paper: 20)", low=0, high=1000),
        Param("epochs_adv", int, 3, "stage 3: alternating adversarial updates (paper: 40)", low=0, high=1000),
        Param("lr", float, 1e-3, "Adam learning rate of every stage (cosine decay per stage)", low=1e-6, high=1.0),
        Param("batch_size", int, 32, "training batch size", low=1, high=4096),
    )

    @property
    def adversarial(self) -> bool:
        return self.params["w_rec"] > 0

    # ---- networks -------------------------------------------------------------------------------------
    def _shapes(self, model: SplitModel) -> tuple[int, int, int]:
        shape = model.feature_shape()
        if len(shape) != 3:
            raise PrivbenchError(f"defense 'autoencoder' needs a convolutional split (C×H×W features); split "
                                 f"'{model.split}' gives features of shape {shape}")
        channels = shape[0]
        return channels, self.params["hidden"] or channels, self.params["bottleneck"]

    def networks(self, model: SplitModel) -> tuple[BottleneckEncoder, BottleneckDecoder]:
        channels, hidden, bottleneck = self._shapes(model)
        return BottleneckEncoder(channels, hidden, bottleneck), BottleneckDecoder(channels, hidden, bottleneck)

    def recnet(self, model: SplitModel) -> nn.Module:
        _, height, width = model.feature_shape()
        return build_decoder(self.params["recnet"], (self.params["bottleneck"], height, width), model.input_shape,
                             width=self.params["recnet_width"])

    def build(self, model: SplitModel, state: dict[str, Any]) -> SplitModel:
        encoder, decoder = self.networks(model)
        with self.state_must_fit():
            encoder.load_state_dict(state["encoder"])
            decoder.load_state_dict(state["decoder"])
        front = nn.Sequential(OrderedDict(front=model.front, encoder=encoder))
        back = nn.Sequential(OrderedDict(decoder=decoder, back=model.back))
        return model.with_parts(front, back)

    # ---- training (paper 000 §IV-D) ---------------------------------------------------------------------
    def fit(self, context: FitContext) -> dict[str, Any]:
        p = self.params
        model, device = context.model, context.device
        torch.manual_seed(derive_seed(context.seed, "autoencoder-init"))
        encoder, decoder = (net.to(device) for net in self.networks(model))
        recnet = self.recnet(model).to(device) if self.adversarial else None
        images, labels = context.train.images, context.targets
        model.eval()  # the task network is frozen throughout, BatchNorm included
        cache: dict[str, Any] = {}

        def batch(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            """(x, y, front(x)) of a batch, computed once for all updates of that batch."""
            if cache.get("idx") is not idx:
                x = images[idx].to(device).float().div_(255.0)
                with torch.no_grad():
                    features = model.front(x)
                cache.update(idx=idx, value=(x, labels[idx].to(device), features))
            return cache["value"]

        def task(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x, y, features = batch(idx)
            code = encoder(features)
            return model.task_loss(model.back(decoder(code)), y), code

        def warm_start_loss(idx: torch.Tensor) -> torch.Tensor:
            loss, code = task(idx)
            if p["w_feature"] > 0:
                features = batch(idx)[2]
                loss = loss + p["w_feature"] * (decoder(code) - features).square().mean() / features.square().mean()
            return loss

        def autoencoder_loss(idx: torch.Tensor) -> torch.Tensor:
            loss, code = task(idx)
            if p["w_cmprs"] > 0:
                loss = loss + p["w_cmprs"] * compressibility_loss(code)
            if recnet is not None:
                x = batch(idx)[0]
                loss = loss - p["w_rec"] * reconstruction_loss("l1+edge", recnet(code), x, p["beta"])
            return loss

        def recnet_loss(idx: torch.Tensor) -> torch.Tensor:
            x, _, features = batch(idx)
            with torch.no_grad():
                code = encoder(features)
            return reconstruction_loss("l1+edge", recnet(code), x, p["beta"])

        ae_params = [*encoder.parameters(), *decoder.parameters()]
        common = dict(batch_size=p["batch_size"])
        encoder.train()
        decoder.train()
        context.say("stage 1: encoder and decoder on the task loss")
        train(len(images), [Update(ae_params, warm_start_loss, p["lr"])], epochs=p["epochs_ae"],
              seed=derive_seed(context.seed, "autoencoder-stage1"), **common)
        if recnet is not None and p["epochs_rec"] > 0:
            context.say("stage 2: training the reconstruction adversary (RecNet)")
            recnet.train()
            train(len(images), [Update(list(recnet.parameters()), recnet_loss, p["lr"])], epochs=p["epochs_rec"],
                  seed=derive_seed(context.seed, "autoencoder-stage2"), **common)
        if p["epochs_adv"] > 0:
            context.say("stage 3: adversarial training against RecNet" if recnet is not None
                        else "stage 3: task and compressibility loss")
            updates = [Update(ae_params, autoencoder_loss, p["lr"])]
            if recnet is not None:
                updates.insert(0, Update(list(recnet.parameters()), recnet_loss, p["lr"]))
            train(len(images), updates, epochs=p["epochs_adv"], seed=derive_seed(context.seed, "autoencoder-stage3"),
                  **common)
        encoder.eval()
        decoder.eval()
        return {"encoder": cpu_state(encoder), "decoder": cpu_state(decoder)}
