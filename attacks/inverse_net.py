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
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from privbench.attacks.base import Attack
from privbench.errors import PrivbenchError
from privbench.registry import ATTACKS, Param
from privbench.split import batches
from privbench.threat import Access, AttackerView


def mirror_decoder(feature_shape: tuple[int, ...], input_shape: tuple[int, int, int],
                   min_channels: int = 16) -> nn.Sequential:
    """Transposed-convolution decoder from ``feature_shape`` back to ``input_shape``."""
    out_channels, height, width = input_shape
    layers: list[nn.Module] = []
    if len(feature_shape) == 1:
        h, w, c = max(height // 8, 1), max(width // 8, 1), 4 * min_channels
        layers += [nn.Linear(feature_shape[0], c * h * w), nn.ReLU(), nn.Unflatten(1, (c, h, w))]
    elif len(feature_shape) == 3:
        c, h, w = feature_shape
    else:
        raise PrivbenchError(f"inverse-net: cannot decode features of shape {feature_shape}")
    if height % h or width % w or height // h != width // w:
        raise PrivbenchError(f"inverse-net: feature map {h}×{w} does not divide the input {height}×{width}")
    upsamplings = int(round(math.log2(height // h)))
    if 2**upsamplings != height // h:
        raise PrivbenchError(f"inverse-net: resolution ratio {height // h} is not a power of two")
    for _ in range(upsamplings):
        nxt = max(c // 2, min_channels)
        layers += [nn.ConvTranspose2d(c, nxt, 4, stride=2, padding=1), nn.ReLU()]
        c = nxt
    layers += [nn.ConvTranspose2d(c, out_channels, 3, padding=1), nn.Sigmoid()]
    return nn.Sequential(*layers)


def reconstruction_loss(name: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if name == "mse":
        return F.mse_loss(output, target)
    return F.l1_loss(output, target)


@ATTACKS.register("inverse-net")
class InverseNet(Attack):
    summary = "black-box inverse network (He et al. 2019 §4.2): decoder trained on (x, defended front(x))"
    access = Access.BLACK_BOX
    params = (
        Param("epochs", int, 20, "training epochs over the attacker's data (reference: 50)", low=1, high=1000),
        Param("lr", float, 1e-3, "Adam learning rate (reference: 1e-3)", low=1e-6, high=1.0),
        Param("batch_size", int, 32, "training batch size (reference: 32)", low=1, high=4096),
        Param("loss", str, "mse", "reconstruction loss (reference: mse)", choices=("mse", "l1")),
        Param("decoder", str, "mirror", "decoder family", choices=("mirror",)),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.decoder: nn.Module | None = None

    def build_decoder(self, view: AttackerView) -> nn.Module:
        return mirror_decoder(view.feature_shape, view.input_shape).to(view.device)

    def _fit(self, view: AttackerView) -> None:
        assert view.query is not None
        torch.manual_seed(view.seed)
        self.decoder = self.build_decoder(view)
        train_decoder(self.decoder, view.data, view.query, self.params, view.device, view.seed,
                      lambda out, x: reconstruction_loss(self.params["loss"], out, x))

    @torch.no_grad()
    def reconstruct(self, features: torch.Tensor) -> torch.Tensor:
        if self.decoder is None or self.view is None:
            raise RuntimeError("inverse-net: fit() first")
        self.decoder.eval()
        device = self.view.device
        parts = [self.decoder(features[s].to(device)).clamp_(0.0, 1.0).cpu() for s in batches(len(features), 256)]
        return torch.cat(parts)

    def state(self) -> dict[str, Any] | None:
        return None if self.decoder is None else {"decoder": self.decoder.state_dict()}

    def load_state(self, view: AttackerView, state: dict[str, Any]) -> None:
        super().load_state(view, state)
        self.decoder = self.build_decoder(view)
        self.decoder.load_state_dict(state["decoder"])


def train_decoder(decoder: nn.Module, data: torch.Tensor, query, params: dict[str, Any], device: torch.device,
                  seed: int, loss_fn) -> None:
    """Adam on (x, query(x)) pairs, with a fresh query per batch so stochastic defenses are re-sampled."""
    optimizer = torch.optim.Adam(decoder.parameters(), lr=params["lr"])
    generator = torch.Generator().manual_seed(seed)
    decoder.train()
    for _ in range(params["epochs"]):
        order = torch.randperm(len(data), generator=generator)
        for s in batches(len(data), params["batch_size"]):
            x = data[order[s]].to(device)
            z = query(x)
            loss = loss_fn(decoder(z), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
