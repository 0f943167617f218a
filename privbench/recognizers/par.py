"""Pedestrian attribute recognition (PAR) and its metrics (paper 004; "Rethinking of PAR" evaluation code).

The built-in PAR model is a small CNN with one logit per binary attribute, trained with binary cross-entropy
on clean synthetic pedestrians (``synth-pedestrians``, ``train`` subset). Evaluation follows the common PAR
protocol (Jia et al., "Rethinking of Pedestrian Attribute Recognition", whose code this mirrors):

- prediction = sigmoid probability > 0.5;
- label-based **mA** = mean over attributes of (TP/(P+ε) + TN/(N+ε)) / 2 — 0.5 is chance;
- instance-based accuracy |gt∩pred|/|gt∪pred|, precision |∩|/|pred|, recall |∩|/|gt| (ε-guarded, averaged
  over images) and F1 = 2·P·R/(P+R) from the averaged precision and recall.

The same network, with a pooled softmax head, is also the auxiliary "attack accuracy" classifier (papers
002/003).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from privbench import progress
from privbench.recognizers.base import (
    Standardize,
    adam_schedule,
    autocast,
    conv_bn_relu,
    training_precision,
    training_seed,
)

EPS = 1e-20  # ε of the reference code (guards empty classes and empty predictions)

# Built-in classifier training on clean synthetic data.
TRAIN_IMAGES = 4000
EPOCHS = 16  # 10 epochs: mA 0.857 on 200 clean test pedestrians; 16: 0.899 (32 px)
BATCH = 64
LR = 3e-3
WIDTH = 16


class SmallClassifier(nn.Module):
    """Six 3×3 conv blocks (two at full resolution, then two strides of 2) and a linear head.

    ``head="flatten"`` (PAR) keeps the spatial layout of the last feature map — an attribute lives at a known
    place on a standing figure (hat and glasses at the top, sleeves at the arms) and is often only a pixel or
    two wide at 32 px. ``head="pool"`` (scene classes) uses global average and max pooling, because the class
    evidence can be anywhere. 64-px inputs are reduced by a stride-2 first convolution (same cost as 32 px).
    """

    def __init__(self, outputs: int, width: int = WIDTH, size: int = 32, head: str = "flatten") -> None:
        super().__init__()
        w = width
        self.pool = head == "pool"
        self.features = nn.Sequential(
            Standardize(), conv_bn_relu(3, w, stride=2 if size >= 64 else 1), conv_bn_relu(w, w),
            conv_bn_relu(w, 2 * w, stride=2), conv_bn_relu(2 * w, 2 * w),
            conv_bn_relu(2 * w, 4 * w, stride=2), conv_bn_relu(4 * w, 4 * w))
        with torch.no_grad():
            features = self.features(torch.zeros(1, 3, size, size)).flatten(1).shape[1]
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(8 * w if self.pool else features, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x.contiguous(memory_format=torch.channels_last))
        if self.pool:
            return self.head(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1))
        return self.head(f.flatten(1))


def train_classifier(images: torch.Tensor, targets: torch.Tensor, outputs: int, *, multilabel: bool,
                     seed: int, epochs: int = EPOCHS, network: nn.Module | None = None, lr: float = LR,
                     kind: str = "par", head: str = "flatten", train_mode=None,
                     device: torch.device | str = "cpu") -> nn.Module:
    """Train (or fine-tune, when ``network`` is given) with BCE (multi-label) or cross-entropy (single label).

    ``images`` are uint8 (or float in [0, 1]) N×3×S×S on the CPU; a random ±1 px translation is the only
    augmentation. ``train_mode`` puts the network in training mode (default ``network.train()``). The network
    is moved to ``device`` and trained there, one batch at a time (the images stay on the CPU); the batch
    order and the translations are drawn on the CPU, so they do not depend on the device.
    """
    torch.manual_seed(training_seed(seed, kind))
    x_all = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    network = network or SmallClassifier(outputs, size=int(x_all.shape[-1]), head=head)
    network = network.to(device, memory_format=torch.channels_last)
    if train_mode is None:
        network.train()
    else:
        train_mode(network)
    precision = training_precision()
    steps = epochs * -(-len(x_all) // BATCH)
    optimizer, schedule = adam_schedule(network.parameters(), lr, steps)
    generator = torch.Generator().manual_seed(training_seed(seed, kind + "-order"))
    for _ in progress.track(range(epochs), unit="epoch"):
        order = torch.randperm(len(x_all), generator=generator)
        for start in range(0, len(x_all), BATCH):
            idx = order[start:start + BATCH]
            dy, dx = torch.randint(-1, 2, (2,), generator=generator).tolist()
            x = torch.roll(x_all[idx].to(device), shifts=(dy, dx), dims=(2, 3))
            x = x.contiguous(memory_format=torch.channels_last)
            with autocast(precision, device):
                logits = network(x).float()
            if multilabel:
                loss = F.binary_cross_entropy_with_logits(logits, targets[idx].to(device).float())
            else:
                loss = F.cross_entropy(logits, targets[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return network.eval()


def label_based(pred: torch.Tensor, gt: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-attribute balanced accuracy (pos_recall + neg_recall) / 2 of binary N×A predictions.

    With ``weights`` (B×N image multiplicities, e.g. bootstrap resamples) returns B×A, computed with two
    matrix products instead of a loop over resamples.
    """
    pred, gt = pred.bool(), gt.bool()
    w = torch.ones(1, len(gt), dtype=torch.float64) if weights is None else weights.double()
    tp = w @ (pred & gt).double()
    tn = w @ (~pred & ~gt).double()
    pos = w @ gt.double()
    neg = w @ (~gt).double()
    out = (tp / (pos + EPS) + tn / (neg + EPS)) / 2
    return out[0] if weights is None else out


def mean_accuracy(pred: torch.Tensor, gt: torch.Tensor, attributes: torch.Tensor | None = None) -> float:
    """Label-based mA over the selected attributes (all by default)."""
    per = label_based(pred, gt)
    return float(per[attributes].mean() if attributes is not None else per.mean())


def informative_attributes(gt: torch.Tensor, max_share: float = 0.99) -> torch.Tensor:
    """Boolean mask of attributes that are *not* more than ``max_share`` one class in ``gt``.

    An attribute that is (almost) always absent or present has no meaningful balanced accuracy: with no
    positives, pos_recall is 0/ε = 0 and mA would be pinned at 0.5 whatever the model does.
    """
    share = gt.float().mean(dim=0)
    return (share <= max_share) & (share >= 1 - max_share)


def instance_based(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """Instance accuracy, precision, recall (averaged over images) and F1 of the averaged P and R."""
    pred, gt = pred.bool(), gt.bool()
    inter = (pred & gt).sum(dim=1).double()
    union = (pred | gt).sum(dim=1).double()
    acc = (inter / (union + EPS)).mean()
    prec = (inter / (pred.sum(dim=1).double() + EPS)).mean()
    rec = (inter / (gt.sum(dim=1).double() + EPS)).mean()
    f1 = 2 * prec * rec / (prec + rec + EPS)
    return {"accuracy": float(acc), "precision": float(prec), "recall": float(rec), "f1": float(f1)}


def instance_f1(pred: torch.Tensor, gt: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Instance F1 for B weightings of the N images (bootstrap), B values."""
    pred, gt = pred.bool(), gt.bool()
    inter = (pred & gt).sum(dim=1).double()
    w = weights.double() / weights.double().sum(dim=1, keepdim=True)
    prec = w @ (inter / (pred.sum(dim=1).double() + EPS))
    rec = w @ (inter / (gt.sum(dim=1).double() + EPS))
    return 2 * prec * rec / (prec + rec + EPS)
