"""Distribution matching between two sets of features: multi-kernel MMD and a feature discriminator.

FORA (Xu et al., CVPR 2024, "A Stealthy Wrongdoer: Feature-Oriented Reconstruction Attack against Split
Learning") trains a substitute front g1 whose features on the attacker's own images are indistinguishable
from the features it intercepts from the victims, with no labels and no queries: a weighted sum of the
multi-kernel maximum mean discrepancy (MK-MMD; Gretton et al., NeurIPS 2012; Long et al.'s DAN, ICML 2015)
and the adversarial loss of a feature discriminator. Both pieces live here, below attacks and defenses.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: bandwidth multipliers of the Gaussian kernels around the batch's mean squared distance (DAN's family:
#: 2^-2 … 2^2 times the base bandwidth)
KERNEL_MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)


def mk_mmd(a: torch.Tensor, b: torch.Tensor, multipliers: tuple[float, ...] = KERNEL_MULTIPLIERS) -> torch.Tensor:
    """Squared MK-MMD between the samples ``a`` (N×…) and ``b`` (M×…), flattened per sample.

    MMD²(P, Q) = E k(a, a′) + E k(b, b′) − 2 E k(a, b) with k the sum of Gaussian kernels
    exp(−‖u − v‖² / (m·γ)) over the multipliers m; γ is the mean squared distance over all pairs of the
    joint sample (detached: the bandwidth follows the data, it is not a path for the gradient). Biased
    (V-statistic) estimate, ≥ 0, zero when the two samples coincide; Gretton et al. 2012 eq. (5).
    """
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"mk_mmd: samples of shape {tuple(a.shape[1:])} and {tuple(b.shape[1:])}")
    joint = torch.cat([a.reshape(len(a), -1), b.reshape(len(b), -1)]).float()
    distances = torch.cdist(joint, joint).square()
    gamma = distances.detach().sum() / max(1, joint.shape[0] ** 2 - joint.shape[0])
    gamma = gamma.clamp_min(1e-12)
    kernel = sum(torch.exp(-distances / (m * gamma)) for m in multipliers)
    n = len(a)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2.0 * kernel[:n, n:].mean()


class FeatureDiscriminator(nn.Module):
    """Tells intercepted features from a substitute's: a small conv net on feature maps (a full-resolution 3×3
    convolution, two stride-2 ones, LeakyReLU, global average pooling, a linear logit), an MLP on flat features.
    It must see the full resolution: striding from the first layer let the substitute fool it with aliased
    features (relative feature error 2.6 at conv11 here, against 0.13 with the full-resolution layer)."""

    def __init__(self, feature_shape: tuple[int, ...], width: int = 16) -> None:
        super().__init__()
        if len(feature_shape) == 3:
            c = feature_shape[0]
            self.net = nn.Sequential(
                nn.Conv2d(c, width, 3, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 1))
        elif len(feature_shape) == 1:
            self.net = nn.Sequential(nn.Linear(feature_shape[0], width), nn.LeakyReLU(0.2),
                                     nn.Linear(width, width), nn.LeakyReLU(0.2), nn.Linear(width, 1))
        else:
            raise ValueError(f"FeatureDiscriminator: features of shape {feature_shape}")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(1)


def discriminator_loss(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the discriminator: intercepted features → 1, the substitute's → 0."""
    real_logits, fake_logits = discriminator(real), discriminator(fake.detach())
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def fooling_loss(discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """The substitute's adversarial term: non-saturating BCE of its features being taken for intercepted."""
    logits = discriminator(fake)
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def relative_feature_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """mean((estimate − reference)²) / mean(reference²): 0 = exact, 1 = no better than zeros."""
    return ((estimate - reference).square().mean() / reference.square().mean().clamp_min(1e-12)).item()
