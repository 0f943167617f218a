"""Decoders from features back to images, shared by attacks and defenses.

The black-box inverse network (He et al. 2019 §4.2), the query-free shadow attack's second stage and the
autoencoder defense's RecNet (paper 000 §IV-D) all need a network that maps a feature tensor of a given shape
back to an image of a given shape; they live here so attacks and defenses use one implementation without
importing each other.

- :func:`mirror_decoder` mirrors the front with transposed convolutions: one stride-2 transposed convolution
  (+ ReLU) per halving of resolution in the front, then a transposed convolution to RGB — e.g. for ReLU22 of
  the CIFAR net, ConvT 128→64 (stride 2) + ReLU + ConvT 64→3, as in He et al.'s code. A flat (fully
  connected) feature is first mapped by a linear layer to a 1/8-resolution map. The decoder ends with a
  sigmoid so reconstructions live in [0, 1].
- :func:`residual_decoder`: deeper, a residual block at every scale, nearest-neighbour ×2 upsampling + conv.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from privbench.errors import PrivbenchError


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
        raise PrivbenchError(f"decoder: cannot decode features of shape {feature_shape}")
    if height % h or width % w or height // h != width // w:
        raise PrivbenchError(f"decoder: feature map {h}×{w} does not divide the input {height}×{width}")
    upsamplings = int(round(math.log2(height // h)))
    if 2**upsamplings != height // h:
        raise PrivbenchError(f"decoder: resolution ratio {height // h} is not a power of two")
    return layers, c, upsamplings


def mirror_decoder(feature_shape: tuple[int, ...], input_shape: tuple[int, int, int],
                   min_channels: int = 16) -> nn.Sequential:
    """Transposed-convolution decoder from ``feature_shape`` back to ``input_shape`` (He et al.'s InvNet)."""
    out_channels = input_shape[0]
    layers, c, upsamplings = _feature_stem(feature_shape, input_shape, min_channels)
    for _ in range(upsamplings):
        nxt = max(c // 2, min_channels)
        layers += [nn.ConvTranspose2d(c, nxt, 4, stride=2, padding=1), nn.ReLU()]
        c = nxt
    layers += [nn.ConvTranspose2d(c, out_channels, 3, padding=1), nn.Sigmoid()]
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """relu(x + conv(relu(conv(x)))), 3×3 convolutions, channel count kept."""

    def __init__(self, channels: int, activation: Callable[[], nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), activation(),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.out = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x + self.body(x))


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


DECODERS: dict[str, Callable[..., nn.Sequential]] = {"mirror": mirror_decoder, "residual": residual_decoder}


def build_decoder(name: str, feature_shape: tuple[int, ...], input_shape: tuple[int, int, int],
                  width: int | None = None) -> nn.Sequential:
    """The decoder family ``name`` (a key of :data:`DECODERS`) from ``feature_shape`` to ``input_shape``;
    ``width`` overrides the family's smallest channel count (mirror 16, residual 32)."""
    if name not in DECODERS:
        raise PrivbenchError(f"unknown decoder '{name}' (choose from: {', '.join(DECODERS)})")
    if width is None:
        return DECODERS[name](feature_shape, input_shape)
    return DECODERS[name](feature_shape, input_shape, min_channels=width)
