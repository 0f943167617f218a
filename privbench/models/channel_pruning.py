"""Channel-wise structured pruning of a convolutional chain: soft masks, and physically smaller layers.

PATROL (paper 002 §III-B1) puts a trainable soft mask m on the output of every channel of the edge-side network
and, after training, removes the channels whose mask is small. Here:

- :class:`ChannelMask` scales each channel of a feature map by its mask value (``m·z``). It is placed right
  after a convolution's BatchNorm (or after the convolution when none follows), so a mask folds exactly into the
  BatchNorm's affine parameters (``m·(γ·ẑ + b) = (m·γ)·ẑ + m·b``) or the convolution's weight and bias.
- :func:`prune` builds the physically smaller network: the kept output channels of each convolution (weights,
  bias, BatchNorm parameters and statistics) and the matching input channels of the next convolution; the last
  convolution of the front feeds the back, whose first consuming layer (a convolution, or a ``Linear`` after a
  ``Flatten``) loses the matching inputs. Removed channels are gone, not zeroed: parameters, MACs and the
  transmitted tensor all shrink.

Supported chains are named ``nn.Sequential`` of ``Conv2d`` (groups = 1), ``BatchNorm2d``, elementwise
activations, pooling, dropout and a leading input normalization — the built-in nets and plain VGG-style stacks.
Anything else (residual blocks, depthwise convolutions) is refused with its name; block-wise pruning of residual
networks (paper 002 Table III) is not implemented.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from privbench.errors import PrivbenchError
from privbench.split import Normalize

#: layers that act on each channel independently (pass channel indices through unchanged)
CHANNELWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.ELU, nn.Hardswish,
               nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Dropout2d,
               nn.Identity)


class ChannelMask(nn.Module):
    """``z ↦ m ⊙ z`` with one trainable value per channel (PATROL's soft mask), initialised to ``init``."""

    def __init__(self, channels: int, init: float = 1.0) -> None:
        super().__init__()
        self.mask = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.mask.view(1, -1, 1, 1)


def _check_chain(front: nn.Sequential) -> list[str]:
    """Names of the front's convolutions, after checking that every layer is supported."""
    convs = []
    for name, layer in front.named_children():
        if isinstance(layer, nn.Conv2d):
            if layer.groups != 1:
                raise PrivbenchError(f"pruning: layer '{name}' is a grouped/depthwise convolution (not supported)")
            convs.append(name)
        elif isinstance(layer, Normalize) and convs:
            raise PrivbenchError(f"pruning: input normalization '{name}' after a convolution is not supported")
        elif not isinstance(layer, (nn.BatchNorm2d, ChannelMask, Normalize, *CHANNELWISE)):
            raise PrivbenchError(f"pruning supports chains of Conv2d, BatchNorm2d, activations and pooling; layer "
                                 f"'{name}' is a {type(layer).__name__}")
    if not convs:
        raise PrivbenchError("pruning: the front has no convolution to prune")
    return convs


def conv_names(front: nn.Sequential) -> list[str]:
    """The prunable convolutions of a supported front, in order."""
    return _check_chain(front)


def with_masks(front: nn.Sequential) -> tuple[nn.Sequential, dict[str, ChannelMask]]:
    """A front that shares ``front``'s layers with a :class:`ChannelMask` after each convolution's BatchNorm
    (``<conv>_mask``), and the masks by convolution name."""
    convs = set(_check_chain(front))
    children = list(front.named_children())
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    masks: dict[str, ChannelMask] = {}
    pending: str | None = None
    for name, layer in children:
        if pending is not None and not isinstance(layer, nn.BatchNorm2d):
            layers[f"{pending}_mask"] = masks[pending]
            pending = None
        layers[name] = layer
        if name in convs:
            masks[name] = ChannelMask(layer.out_channels).to(layer.weight.device)
            pending = name
        elif isinstance(layer, nn.BatchNorm2d) and pending is not None:
            layers[f"{pending}_mask"] = masks[pending]
            pending = None
    if pending is not None:
        layers[f"{pending}_mask"] = masks[pending]
    return nn.Sequential(layers), masks


def blocks(front: nn.Sequential) -> list[nn.Sequential]:
    """The front cut into one block per convolution: block i runs from just after block i−1 to just before the
    next convolution (block 1 includes any input normalization). PATROL's block-wise Lipschitz constants
    (eqs. 4–5) are measured on these."""
    convs = set(_check_chain(front))
    parts: list[list[tuple[str, nn.Module]]] = [[]]
    seen_conv = False
    for name, layer in front.named_children():
        if name in convs:
            if seen_conv:
                parts.append([])
            seen_conv = True
        parts[-1].append((name, layer))
    return [nn.Sequential(OrderedDict(part)) for part in parts]


@torch.no_grad()
def fold_masks(front: nn.Sequential) -> nn.Sequential:
    """A copy of a masked front with each mask folded into the preceding BatchNorm (or convolution) and removed:
    the same function, no ``ChannelMask`` left."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    previous: nn.Module | None = None
    for name, layer in copy.deepcopy(front).named_children():
        if isinstance(layer, ChannelMask):
            m = layer.mask.detach()
            if isinstance(previous, nn.BatchNorm2d) and previous.affine:
                previous.weight.mul_(m)
                previous.bias.mul_(m)
            elif isinstance(previous, nn.Conv2d):
                previous.weight.mul_(m.view(-1, 1, 1, 1))
                if previous.bias is not None:
                    previous.bias.mul_(m)
            else:
                raise PrivbenchError(f"pruning: mask '{name}' follows neither a convolution nor an affine BatchNorm")
            continue
        layers[name] = layer
        previous = layer
    return nn.Sequential(layers)


@torch.no_grad()
def channel_scales(front: nn.Sequential) -> dict[str, torch.Tensor]:
    """|output scale| of every channel of each convolution of a mask-free front: the |γ| of the BatchNorm that
    follows it, or the ℓ2 norm of the channel's filter when none does (CPU)."""
    scales: dict[str, torch.Tensor] = {}
    last: str | None = None
    for name, layer in front.named_children():
        if isinstance(layer, nn.Conv2d):
            last = name
            scales[name] = layer.weight.detach().flatten(1).norm(dim=1).cpu()
        elif isinstance(layer, nn.BatchNorm2d) and layer.affine and last is not None:
            scales[last] = layer.weight.detach().abs().cpu()
            last = None
        elif not isinstance(layer, (ChannelMask, *CHANNELWISE)):
            last = None
    return scales


def _slice_conv(conv: nn.Conv2d, out_idx: Sequence[int] | None, in_idx: Sequence[int] | None) -> nn.Conv2d:
    weight = conv.weight.detach()
    bias = conv.bias.detach() if conv.bias is not None else None
    if out_idx is not None:
        weight, bias = weight[list(out_idx)], (bias[list(out_idx)] if bias is not None else None)
    if in_idx is not None:
        weight = weight[:, list(in_idx)]
    new = nn.Conv2d(weight.shape[1], weight.shape[0], conv.kernel_size, stride=conv.stride, padding=conv.padding,
                    dilation=conv.dilation, bias=bias is not None, padding_mode=conv.padding_mode)
    new = new.to(device=weight.device, dtype=weight.dtype).train(conv.training)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def _slice_batchnorm(bn: nn.BatchNorm2d, idx: Sequence[int]) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(idx), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                         track_running_stats=bn.track_running_stats)
    new = new.to(device=bn.running_mean.device if bn.running_mean is not None else "cpu").train(bn.training)
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight[list(idx)])
            new.bias.copy_(bn.bias[list(idx)])
        if bn.track_running_stats:
            new.running_mean.copy_(bn.running_mean[list(idx)])
            new.running_var.copy_(bn.running_var[list(idx)])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    return new


def _slice_mask(mask: ChannelMask, idx: Sequence[int]) -> ChannelMask:
    new = ChannelMask(len(idx)).to(mask.mask.device).train(mask.training)
    with torch.no_grad():
        new.mask.copy_(mask.mask[list(idx)])
    return new


def _prune_back(back: nn.Sequential, kept: Sequence[int], channels: int) -> nn.Sequential:
    """``back`` with the inputs of its first consuming layer restricted to the ``kept`` of ``channels``."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    children = list(back.named_children())
    done = False
    flattened = False
    for name, layer in children:
        if done:
            layers[name] = copy.deepcopy(layer)  # never share a module with the network pruned from
            continue
        if isinstance(layer, nn.Conv2d) and not flattened:
            if layer.groups != 1:
                raise PrivbenchError(f"pruning: the back starts with grouped convolution '{name}' (not supported)")
            layers[name], done = _slice_conv(layer, None, kept), True
        elif isinstance(layer, nn.BatchNorm2d) and not flattened:
            layers[name] = _slice_batchnorm(layer, kept)
        elif isinstance(layer, nn.Flatten):
            flattened = True
            layers[name] = copy.deepcopy(layer)
        elif isinstance(layer, nn.Linear) and flattened:
            if layer.in_features % channels:
                raise PrivbenchError(f"pruning: linear layer '{name}' has {layer.in_features} inputs, not a multiple "
                                     f"of the {channels} channels that cross")
            spatial = layer.in_features // channels
            columns = [c * spatial + j for c in kept for j in range(spatial)]
            new = nn.Linear(len(columns), layer.out_features, bias=layer.bias is not None).to(layer.weight.device)
            new.train(layer.training)
            with torch.no_grad():
                new.weight.copy_(layer.weight[:, columns])
                if layer.bias is not None:
                    new.bias.copy_(layer.bias)
            layers[name], done = new, True
        elif isinstance(layer, CHANNELWISE):
            layers[name] = copy.deepcopy(layer)
        else:
            raise PrivbenchError(f"pruning: cannot follow the pruned channels into the back's layer '{name}' "
                                 f"({type(layer).__name__})")
    if not done:
        raise PrivbenchError("pruning: the back has no layer that consumes the front's channels")
    return nn.Sequential(layers)


def prune(front: nn.Sequential, back: nn.Sequential,
          kept: Mapping[str, Sequence[int]]) -> tuple[nn.Sequential, nn.Sequential]:
    """The physically pruned (front, back): each convolution of ``front`` keeps the output channels ``kept[name]``
    (sorted indices; all when absent), every later layer follows. All new modules (nothing is shared with the
    inputs, so loading a state into the result can never write into the network it was pruned from), each in
    its source layer's train/eval mode."""
    convs = _check_chain(front)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    incoming: list[int] | None = None
    channels = None
    for name, layer in front.named_children():
        if isinstance(layer, nn.Conv2d):
            out = sorted(kept.get(name, range(layer.out_channels)))
            if not out or out[-1] >= layer.out_channels or len(set(out)) != len(out):
                raise PrivbenchError(f"pruning: channels {out} to keep are not valid for '{name}' "
                                     f"({layer.out_channels} channels)")
            layers[name] = _slice_conv(layer, out, incoming)
            incoming, channels = out, layer.out_channels
        elif isinstance(layer, nn.BatchNorm2d):
            layers[name] = _slice_batchnorm(layer, incoming) if incoming is not None else copy.deepcopy(layer)
        elif isinstance(layer, ChannelMask):
            layers[name] = _slice_mask(layer, incoming) if incoming is not None else copy.deepcopy(layer)
        else:
            layers[name] = copy.deepcopy(layer)
    assert incoming is not None and channels is not None and convs
    return nn.Sequential(layers), _prune_back(back, incoming, channels)


def pruned_params(front: nn.Sequential, kept_counts: Mapping[str, int]) -> int:
    """Parameter count of ``front`` (masks excluded) if each convolution kept ``kept_counts[name]`` channels,
    without building it."""
    total = 0
    incoming: int | None = None
    for name, layer in front.named_children():
        if isinstance(layer, nn.Conv2d):
            out = kept_counts.get(name, layer.out_channels)
            fan_in = (incoming if incoming is not None else layer.in_channels) * layer.kernel_size[0] * \
                layer.kernel_size[1]
            total += out * fan_in + (out if layer.bias is not None else 0)
            incoming = out
        elif isinstance(layer, nn.BatchNorm2d) and layer.affine:
            total += 2 * (incoming if incoming is not None else layer.num_features)
        elif not isinstance(layer, ChannelMask):
            total += sum(p.numel() for p in layer.parameters())
    return total
