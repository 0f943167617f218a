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
data to its first N images.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from privbench.attacks.base import Attack
from privbench.errors import PrivbenchError
from privbench.metrics.image_quality import luma, sobel_gradients
from privbench.registry import ATTACKS, Param
from privbench.split import batches
from privbench.threat import Access, AttackerView


def mirror_decoder(feature_shape: tuple[int, ...], input_shape: tuple[int, int, int],
                   min_channels: int = 16) -> nn.Sequential:
    """Transposed-convolution decoder from ``feature_shape`` back to ``input_shape``."""
    out_channels = input_shape[0]
    layers, c, upsamplings = _feature_stem(feature_shape, input_shape, min_channels)
    for _ in range(upsamplings):
        nxt = max(c // 2, min_channels)
        layers += [nn.ConvTranspose2d(c, nxt, 4, stride=2, padding=1), nn.ReLU()]
        c = nxt
    layers += [nn.ConvTranspose2d(c, out_channels, 3, padding=1), nn.Sigmoid()]
    return nn.Sequential(*layers)


def _feature_stem(feature_shape: tuple[int, ...], input_shape: tuple[int, int, int],
                  min_channels: int) -> tuple[list[nn.Module], int, int]:
    """Layers mapping the features to a map (flat features: linear to a 1/8-resolution map), its channels
    and the number of ×2 upsamplings back to the input resolution."""
    _, height, width = input_shape
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
    return layers, c, upsamplings


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(x))), 3×3 convolutions, channel count kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


def residual_decoder(feature_shape: tuple[int, ...], input_shape: tuple[int, int, int],
                     min_channels: int = 32) -> nn.Sequential:
    """A deeper decoder: 3×3 conv stem, a residual block at every scale, nearest-neighbour ×2 upsampling
    + 3×3 conv between scales, and a 3×3 conv to RGB with a sigmoid. Wider (≥ 32 channels) than the mirror
    decoder, so it can also undo information the mirror's few channels would squeeze."""
    layers, c, upsamplings = _feature_stem(feature_shape, input_shape, min_channels)
    width = max(c, min_channels)
    layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), ResidualBlock(width)]
    for _ in range(upsamplings):
        nxt = max(width // 2, min_channels)
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, nxt, 3, padding=1),
                   nn.ReLU(), ResidualBlock(nxt)]
        width = nxt
    layers += [nn.Conv2d(width, input_shape[0], 3, padding=1), nn.Sigmoid()]
    return nn.Sequential(*layers)


DECODERS = {"mirror": mirror_decoder, "residual": residual_decoder}


def edge_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ℓ1 of the horizontal + vertical Sobel responses of the luma (the β-term of paper 000 eq. 13)."""
    ox, oy = sobel_gradients(luma(output))
    tx, ty = sobel_gradients(luma(target))
    return F.l1_loss(ox, tx) + F.l1_loss(oy, ty)


def reconstruction_loss(name: str, output: torch.Tensor, target: torch.Tensor,
                        beta: float = 5.0) -> torch.Tensor:
    """``mse``, ``l1``, or ``l1+edge`` = ℓ1 + β·(ℓ1 of Sobel Gx + ℓ1 of Sobel Gy) on luma (paper 000 eq. 13;
    the paper's 1/n normalizes each term by its own element count, i.e. a mean)."""
    if name == "mse":
        return F.mse_loss(output, target)
    if name == "l1":
        return F.l1_loss(output, target)
    if name == "l1+edge":
        return F.l1_loss(output, target) + beta * edge_l1(output, target)
    raise PrivbenchError(f"inverse-net: unknown loss '{name}'")


def attacker_subset(data: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """``samples`` of the attacker's images (0 = all): the attacker's data size. A seeded random subset
    (kept in order), not the first N, because the attacker's data is a concatenation of datasets."""
    if samples <= 0 or samples >= len(data):
        return data
    keep = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:samples]
    return data[keep.sort().values]


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
              choices=("mse", "l1", "l1+edge")),
        Param("beta", float, 5.0, "weight of the Sobel edge term of the l1+edge loss (paper 000: 5)",
              low=0.0, high=1000.0),
        Param("decoder", str, "mirror", "decoder family: mirror (transposed convs, reference) or residual "
              "(deeper, residual blocks at every scale)", choices=tuple(DECODERS)),
        Param("attacker_samples", int, 0, "attacker's data size: train on N of its images, a seeded random "
              "subset (0 = all)", low=0, high=10_000_000),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.decoder: nn.Module | None = None

    def build_decoder(self, view: AttackerView) -> nn.Module:
        return DECODERS[self.params["decoder"]](view.feature_shape, view.input_shape).to(view.device)

    def loss_fn(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return reconstruction_loss(self.params["loss"], output, target, self.params["beta"])

    def _fit(self, view: AttackerView) -> None:
        assert view.query is not None
        torch.manual_seed(view.seed)
        self.decoder = self.build_decoder(view)
        data = attacker_subset(view.data, self.params["attacker_samples"], view.seed)
        train_decoder(self.decoder, data, view.query, self.params, view.device, view.seed, self.loss_fn)

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
