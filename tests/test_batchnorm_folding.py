"""Folding eval-mode BatchNorm into convolutions (privbench.models.batchnorm_folding) and the hand-written
rMLE loss terms: same function, same gradients, original untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from privbench.attacks.rmle import mean_squared_error, total_variation
from privbench.components import load_components
from privbench.models.batchnorm_folding import folded_inference_copy
from privbench.registry import DEFENSES, MODELS
from privbench.split import pipeline_stages

load_components()


def with_running_statistics(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters (fresh ones are 0/1)."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=generator))
            m.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.randn(c, generator=generator))
                m.bias.copy_(torch.randn(c, generator=generator))
    return module.eval()


def batchnorms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@pytest.mark.parametrize("name, split", [("vgg-small", "relu22"), ("resnet18", "layer2")])
def test_folded_front_computes_the_same_function_without_batchnorm(name, split):
    spec = MODELS.create(name)
    net = with_running_statistics(spec.build(10, (3, 32, 32)))
    front = spec.split_model(net, split, 10, (3, 32, 32)).front.eval()
    before = {k: v.clone() for k, v in front.state_dict().items()}
    folded = folded_inference_copy(front)
    assert batchnorms(front) > 0 and batchnorms(folded) == 0
    assert not any(p.requires_grad for p in folded.parameters())
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    out = front(x)
    # float32 rounding differs (W·γ/σ is rounded once); compare relative to the activations' scale
    torch.testing.assert_close(folded(x), out, rtol=1e-3, atol=1e-4 * out.abs().max().item())
    g_folded, = torch.autograd.grad(folded(x).square().sum(), x)
    g_front, = torch.autograd.grad(out.square().sum(), x)
    torch.testing.assert_close(g_folded, g_front, rtol=1e-3, atol=1e-4 * g_front.abs().max().item())
    for key, value in front.state_dict().items():  # the original is untouched
        assert torch.equal(value, before[key]), key


def test_folding_keeps_pipeline_stages():
    spec = MODELS.create("vgg-small", width=4)
    model = spec.split_model(with_running_statistics(spec.build(10, (3, 32, 32))), "relu12", 10, (3, 32, 32))
    defended = DEFENSES.create("dropout", rate=0.5).apply(model)
    folded = folded_inference_copy(defended.front)
    assert [s.label for s in pipeline_stages(folded)] == [s.label for s in pipeline_stages(defended.front)]
    assert batchnorms(folded) == 0


def test_hand_written_loss_terms_match_autograd():
    x = torch.rand(3, 3, 6, 7, dtype=torch.double, requires_grad=True)
    prior = torch.rand(1, 3, 1, 1, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(total_variation, (x,))
    assert torch.autograd.gradcheck(mean_squared_error, (x, prior))
    flat = torch.rand(3, 5, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(mean_squared_error, (flat, torch.rand(3, 5, dtype=torch.double)))
    reference = ((x[:, :, 1:] - x[:, :, :-1]).square().mean((1, 2, 3))
                 + (x[..., 1:] - x[..., :-1]).square().mean((1, 2, 3)))
    torch.testing.assert_close(total_variation(x), reference)
    channels_last = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    (grad,) = torch.autograd.grad(total_variation(channels_last).sum(), channels_last)
    (expected,) = torch.autograd.grad(reference.sum(), x)
    torch.testing.assert_close(grad, expected)
