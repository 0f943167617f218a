"""The probe sets are reconstructed together (issue 28): on a deterministic pipeline an optimizing attack gives each
image exactly the reconstruction it gets alone, and every set comes back in its own order."""

from __future__ import annotations

import torch
from torch import nn

from privbench.attacks.rmle import RMLESettings, rmle_invert
from privbench.engine.attack_rows import reconstruct_together


class _RMLE:
    """rMLE over a small fixed front, as the engine calls a fitted attack (``reconstruct(features)``)."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.front = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)).eval()
        self.calls: list[int] = []

    def reconstruct(self, features: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(features))
        settings = RMLESettings(iterations=30, lr=0.05, lambda_tv=1.0)
        return rmle_invert(self.front, features, settings, input_shape=(3, 8, 8), device=torch.device("cpu"),
                           seed=3)[0]


def test_sets_reconstructed_together_equal_each_set_alone_and_keep_their_order():
    attack = _RMLE()
    generator = torch.Generator().manual_seed(1)
    images = {name: torch.rand(n, 3, 8, 8, generator=generator) for name, n in (("faces", 5), ("plates", 3),
                                                                                 ("people", 4))}
    with torch.no_grad():
        observed = [(name, attack.front(x)) for name, x in images.items()]
        # a set observed in two batches (as a set larger than the batch is) stays one set
        observed = [observed[0], ("plates", observed[1][1][:2]), ("plates", observed[1][1][2:]), observed[2]]
    together = reconstruct_together(attack, observed, batch=8, device=torch.device("cpu"))
    assert attack.calls == [8, 4]  # 12 observations, 8 at a time: two optimizations instead of four
    assert list(together) == ["faces", "plates", "people"]
    for name, x in images.items():
        with torch.no_grad():
            observed_alone = attack.front(x)
        alone = attack.reconstruct(observed_alone)
        expected = alone.clamp(0, 1).mul(255).round().to(torch.uint8)
        assert together[name].shape == expected.shape
        assert (together[name].int() - expected.int()).abs().max() <= 1, name  # one 8-bit level: float summation
