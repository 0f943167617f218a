"""fit_decoder queries a deterministic pipeline once per image, a stochastic one afresh for every batch."""

from __future__ import annotations

import torch
from torch import nn

from privbench.training import fit_decoder


def counting_encoder(calls: list[int]):
    weight = torch.randn(4, 3, 1, 1, generator=torch.Generator().manual_seed(0))

    def encode(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return nn.functional.conv2d(x, weight)

    return encode


def fit(stochastic: bool) -> tuple[list[int], nn.Module]:
    torch.manual_seed(0)
    decoder = nn.Conv2d(4, 3, 1)
    calls: list[int] = []
    images = torch.rand(300, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    fit_decoder(decoder, images, counting_encoder(calls), epochs=3, lr=1e-2, batch_size=32, device=torch.device("cpu"),
                seed=0, loss_fn=nn.functional.mse_loss, stochastic=stochastic)
    return calls, decoder


def test_a_deterministic_pipeline_is_queried_once_per_image():
    calls, once = fit(stochastic=False)
    assert calls == [256, 44]
    calls, every = fit(stochastic=True)
    assert sum(calls) == 3 * 300 and max(calls) == 32
    # the same pairs (z, x) either way: the two decoders learn the same map
    for a, b in zip(once.parameters(), every.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
