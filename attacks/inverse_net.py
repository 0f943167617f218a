"""Inverse-network attack (black-box), He, Zhang & Lee (ACSAC 2019) §4.2.

The attacker queries the *defended* front with its own images (disjoint from the probes), collects
(x, f(x)) pairs and trains a decoder f⁻¹ that maps features back to images; at attack time
x̂ = f⁻¹(z). The decoder mirrors the front with transposed convolutions: one stride-2 transposed
convolution (+ ReLU) per halving of resolution in the front, then a transposed convolution to RGB — e.g.
for ReLU22 of the CIFAR net, ConvT 128→64 (stride 2) + ReLU + ConvT 64→3, as in their code. A flat
(fully connected) feature is first mapped by a linear layer to a 1/8-resolution map. privbench ends the
decoder with a sigmoid so reconstructions live in [0, 1] (their code outputs normalized pixels).

Each defended pipeline gets its own inverse network, trained against the defense with fresh defense
randomness at every query (the adaptive attacker of every paper here).

Options beyond the reference: a deeper ``residual`` decoder (a residual block at every scale, upsampling
by nearest-neighbour + convolution), the ``l1`` loss and the edge-centric ``l1+edge`` loss of paper 000
eq. (13) (ℓ1 + β·ℓ1 of the Sobel responses of the luma), and ``attacker_samples`` to limit the attacker's
data to a seeded random subset of N images. The decoders live in :mod:`privbench.models.decoders` and the
losses in :mod:`privbench.losses`, shared with the autoencoder defense's RecNet.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from privbench.attacks.base import Attack
from privbench.losses import RECONSTRUCTION_LOSSES, reconstruction_loss
from privbench.models.decoders import DECODERS, build_decoder
from privbench.registry import ATTACKS, Param
from privbench.split import batches
from privbench.threat import Access, AttackerView, attacker_subset
from privbench.training import fit_decoder


def fits(module: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` has exactly ``module``'s parameters and buffers, shape for shape (a decoder fitted for
    another feature shape — a bottleneck, a deeper split — does not)."""
    own = module.state_dict()
    return own.keys() == state.keys() and all(own[k].shape == state[k].shape for k in own)


@ATTACKS.register("inverse-net")
class InverseNet(Attack):
    summary = "black-box inverse network (He et al. 2019 §4.2): decoder trained on (x, defended front(x))"
    access = Access.BLACK_BOX
    params = (
        Param("epochs", int, 20, "training epochs over the attacker's data (reference: 50)", low=1,
              high=1000),
        Param("lr", float, 1e-3, "Adam learning rate (reference: 1e-3)", low=1e-6, high=1.0),
        Param("batch_size", int, 32, "training batch size (reference: 32)", low=1, high=4096),
        Param("loss", str, "mse", "reconstruction loss (reference: mse; l1+edge: paper 000 eq. 13)",
              choices=RECONSTRUCTION_LOSSES),
        Param("beta", float, 5.0, "weight of the Sobel edge term of the l1+edge loss (paper 000: 5)",
              low=0.0, high=1000.0),
        Param("decoder", str, "mirror", "decoder family: mirror (transposed convs, reference) or residual "
              "(deeper, residual blocks at every scale)", choices=tuple(DECODERS)),
        Param("attacker_samples", int, 0, "attacker's data size: train on N of its images, a seeded random "
              "subset (0 = all)", low=0, high=10_000_000),
        Param("warm_start_epochs", int, 0, "adaptive attacker: against a defended pipeline, start from the decoder "
              "fitted against the undefended one and train this many epochs (0 = cold start for `epochs`; a "
              "decoder of another feature shape is not reused)", low=0, high=1000),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.decoder: nn.Module | None = None

    def build_decoder(self, view: AttackerView) -> nn.Module:
        return build_decoder(self.params["decoder"], view.feature_shape, view.input_shape).to(view.device)

    def loss_fn(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return reconstruction_loss(self.params["loss"], output, target, self.params["beta"])

    def warm_starts(self) -> bool:
        return self.params["warm_start_epochs"] > 0

    def _fit(self, view: AttackerView) -> None:
        assert view.query is not None
        torch.manual_seed(view.seed)
        self.decoder = self.build_decoder(view)
        data = attacker_subset(view.data, self.params["attacker_samples"], view.seed)
        p = self.params
        epochs = p["epochs"]
        if view.warm_start is not None and fits(self.decoder, view.warm_start["decoder"]):
            self.decoder.load_state_dict(view.warm_start["decoder"])
            epochs = p["warm_start_epochs"]
        fit_decoder(self.decoder, data, view.query, epochs=epochs, lr=p["lr"], batch_size=p["batch_size"],
                    device=view.device, seed=view.seed, loss_fn=self.loss_fn, stochastic=view.stochastic)

    @torch.no_grad()
    def reconstruct(self, features: torch.Tensor) -> torch.Tensor:
        if self.decoder is None or self.view is None:
            raise RuntimeError("inverse-net: fit() first")
        self.decoder.eval()
        device = self.view.device
        parts = [self.decoder(features[s].to(device)).clamp_(0.0, 1.0).cpu()
                 for s in batches(len(features), 256)]
        return torch.cat(parts)

    def state(self) -> dict[str, Any] | None:
        return None if self.decoder is None else {"decoder": self.decoder.state_dict()}

    def load_state(self, view: AttackerView, state: dict[str, Any]) -> None:
        super().load_state(view, state)
        self.decoder = self.build_decoder(view)
        self.decoder.load_state_dict(state["decoder"])

