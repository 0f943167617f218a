"""Fold eval-mode BatchNorm into the convolution before it, for attacks that run a frozen front many times.

In eval mode BatchNorm is a per-channel affine map, so ``bn(conv(x))`` is one convolution with weights
``W·γ/√(σ²+ε)`` and bias ``(b − μ)·γ/√(σ²+ε) + β`` (torch's ``fuse_conv_bn_eval``). The folded copy
computes the same function (to float rounding) with one layer fewer. That matters for rMLE: on the CPU,
the backward pass of an eval-mode BatchNorm was 45 % of an rMLE step through vgg-small's front (measured
with torch.profiler, 32 images 64×64 at relu22), more than all convolutions together.

Folds adjacent (Conv, BatchNorm) children of ``nn.Sequential`` containers and, inside ``torch.fx``
GraphModules (the fronts :func:`privbench.models.fx_split.fx_split` builds) and traceable custom blocks
(e.g. a ResNet BasicBlock left whole as the split's leaf), every conv/linear whose only user is a
BatchNorm (``torch.fx.experimental.optimization.fuse``). Anything else is left as it is, so defense stages
and untraceable custom layers keep working.
"""

from __future__ import annotations

import contextlib
import copy

from torch import fx, nn
from torch.fx.experimental.optimization import fuse as fuse_graph_module
from torch.nn.utils.fusion import fuse_conv_bn_eval

from privbench.defenses.base import DefenseStage

_CONV_BN = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d), (nn.Conv3d, nn.BatchNorm3d))


def folded_inference_copy(module: nn.Module) -> nn.Module:
    """A frozen eval-mode copy of ``module`` with BatchNorm folded into the preceding convolutions.

    ``module`` itself is not touched. The copy's parameters do not require gradients (attacks differentiate
    with respect to the input only).
    """
    folded = copy.deepcopy(module).eval()
    folded = _fold(folded)
    for parameter in folded.parameters():
        parameter.requires_grad_(False)
    return folded


def _fold(module: nn.Module) -> nn.Module:
    if not isinstance(module, nn.Sequential | fx.GraphModule) and _has_batchnorm_child(module) \
            and not _has_defense(module):
        # A custom block such as torchvision's BasicBlock (kept whole as the split's leaf): trace it to see
        # which convolution feeds which BatchNorm. Defense stages are never traced (they must stay findable).
        # Not traceable (data-dependent control flow): the block is left as it is.
        with contextlib.suppress(Exception):
            module = fx.symbolic_trace(module)
    if isinstance(module, fx.GraphModule):
        module = fuse_graph_module(module, inplace=True, no_trace=True)
        module.delete_all_unused_submodules()  # the folded BatchNorms
    for name, child in list(module.named_children()):
        setattr(module, name, _fold(child))
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = module._modules[first], module._modules[second]
            if _foldable(conv, bn):
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
    return module


def _has_batchnorm_child(module: nn.Module) -> bool:
    return any(isinstance(child, nn.modules.batchnorm._BatchNorm) for child in module.children())


def _has_defense(module: nn.Module) -> bool:
    return any(isinstance(m, DefenseStage) for m in module.modules())


def _foldable(conv: nn.Module | None, bn: nn.Module | None) -> bool:
    return (any(type(conv) is conv_type and type(bn) is bn_type for conv_type, bn_type in _CONV_BN)
            and bn.track_running_stats)
