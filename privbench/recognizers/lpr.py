"""Licence-plate recognition: an LPRNet-style CTC recognizer (paper 000 §V-B's adversary reads the plate).

LPRNet (Zherzdev & Gruzdev 2018; the PyTorch port sirius-ai/LPRNet_Pytorch) reads a 94×24 plate crop with a
small fully convolutional network whose output is a sequence of per-column class scores; it is trained with
CTC (the blank is the **last** class) and decoded greedily: take the best class per column, collapse repeats,
drop blanks. privbench has two networks with that interface:

- :class:`LPRNet` — the published architecture, layer for layer, so a pretrained state dict of the PyTorch
  port (68 classes: 31 provinces, digits, letters, 'I', 'O', blank '-') loads with ``load_lprnet``. It is too
  heavy to train from scratch inside a CPU budget.
- :class:`SmallLPR` — the built-in recognizer trained on clean synthetic plates: the same 94×24 input and
  per-column CTC output, a 2× average-pooling stem and four 3×3 conv blocks (about 1/10 of LPRNet's cost).

The plate is cut out of the full image with its bounding box by ``torchvision.ops.roi_align`` (one batched
call), as the CCPD protocol crops plates from their annotated boxes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from privbench import progress
from privbench.errors import PrivbenchError
from privbench.recognizers.base import (
    adam_schedule,
    autocast,
    conv_bn_relu,
    predict,
    training_precision,
    training_seed,
)
from privbench.weights import load_state_dict_file

#: LPRNet's input size (width × height)
LPR_WIDTH, LPR_HEIGHT = 94, 24

#: Class list of the pretrained LPRNet PyTorch port (sirius-ai/LPRNet_Pytorch, ``data/load_data.py``); the
#: last entry '-' is the CTC blank.
LPRNET_CHARS = ("京沪津渝冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新"
                "0123456789ABCDEFGHJKLMNPQRSTUVWXYZIO-")

# Built-in recognizer training: epochs over the clean synthetic train set, batch size, peak learning rate.
TRAIN_PLATES = 2000
EPOCHS = 12
BATCH = 64
LR = 4e-3
WIDTH = 24


def crop_plates(images: torch.Tensor, boxes: torch.Tensor, margin: float = 0.04) -> torch.Tensor:
    """Batched crop-and-resize of N plates to N×3×24×94 from their ``x1, y1, x2, y2`` boxes (pixels).

    ``margin`` enlarges each box by that fraction of its width/height on every side (boxes are tight).
    """
    b = boxes.to(images.device, torch.float32)
    w, h = (b[:, 2] - b[:, 0]).clamp(min=1), (b[:, 3] - b[:, 1]).clamp(min=1)
    grown = torch.stack([b[:, 0] - margin * w, b[:, 1] - margin * h, b[:, 2] + margin * w,
                         b[:, 3] + margin * h], 1)
    rois = torch.cat([torch.arange(len(b), device=images.device, dtype=torch.float32)[:, None], grown], 1)
    from torchvision.ops import roi_align  # on use: importing torchvision costs ~2.5 s

    return roi_align(images.float(), rois, (LPR_HEIGHT, LPR_WIDTH), spatial_scale=1.0, sampling_ratio=2,
                     aligned=True)


def greedy_decode(logits: torch.Tensor, blank: int) -> torch.Tensor:
    """CTC greedy decoding of N×C×T logits, vectorised: best class per column, collapse repeats, drop blanks.

    Returns an N×T tensor of class indices, left-aligned and padded with -1.
    """
    best = logits.argmax(dim=1)
    previous = F.pad(best, (1, 0), value=-1)[:, :-1]
    keep = (best != blank) & (best != previous)
    position = keep.long().cumsum(dim=1) - 1
    out = torch.full_like(best, -1)
    rows = torch.arange(len(best), device=best.device)[:, None].expand_as(best)
    out[rows[keep], position[keep]] = best[keep]
    return out


def encode_texts(texts: Sequence[str], alphabet: str, length: int) -> torch.Tensor:
    """N×length class indices of the strings (padded with -1); characters outside ``alphabet`` become -2."""
    lookup = {c: i for i, c in enumerate(alphabet)}
    out = torch.full((len(texts), length), -1, dtype=torch.long)
    for i, text in enumerate(texts):  # label bookkeeping (strings), not image processing
        out[i, : len(text)] = torch.tensor([lookup.get(c, -2) for c in text[:length]], dtype=torch.long)
    return out


def plate_scores(decoded: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-plate exact match (bool N) and per-plate character accuracy (float N), vectorised.

    Exact: the decoded string equals the target string. Character accuracy: fraction of the target's
    positions whose decoded character at the same position is right (position-aligned, as LPR papers report
    per-character accuracy for fixed-format plates).
    """
    width = max(decoded.shape[1], targets.shape[1])
    d = F.pad(decoded, (0, width - decoded.shape[1]), value=-1)
    t = F.pad(targets, (0, width - targets.shape[1]), value=-1)
    exact = (d == t).all(dim=1)
    valid = t != -1
    chars = ((d == t) & valid).sum(dim=1).float() / valid.sum(dim=1).clamp(min=1).float()
    return exact, chars


def ctc_loss(logits: torch.Tensor, targets: torch.Tensor, blank: int) -> torch.Tensor:
    """CTC loss of N×C×T logits against -1-padded N×L targets (blank = ``blank``), on the logits' device
    (torch's CUDA CTC kernel wants the targets on the GPU, its CPU kernel on the CPU)."""
    targets = targets.to(logits.device)
    log_probs = logits.permute(2, 0, 1).log_softmax(dim=2)
    lengths = (targets >= 0).sum(dim=1)
    flat = targets[targets >= 0]
    steps = torch.full((len(targets),), log_probs.shape[0], dtype=torch.long, device=logits.device)
    return F.ctc_loss(log_probs, flat, steps, lengths, blank=blank, zero_infinity=True)


class SmallLPR(nn.Module):
    """Built-in LPRNet-style recognizer: 94×24 RGB crop in [0, 1] -> N×C×23 per-column logits (blank last)."""

    def __init__(self, classes: int, width: int = WIDTH) -> None:
        super().__init__()
        w = width
        self.classes = classes
        self.features = nn.Sequential(
            nn.AvgPool2d(2),                                  # 12 × 47 (the plate is ~10-20 px high anyway)
            conv_bn_relu(3, w),
            conv_bn_relu(w, 2 * w), nn.MaxPool2d(2),          # 6 × 23
            conv_bn_relu(2 * w, 4 * w), nn.MaxPool2d((2, 1)),  # 3 × 23
            conv_bn_relu(4 * w, 4 * w, kernel=3, padding=(0, 1)),  # 1 × 23: one feature vector per column
            nn.Dropout(0.1),
        )
        self.head = nn.Conv2d(4 * w, classes, 1)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(crops * 2 - 1)).squeeze(2)


class _ChannelStridePool(nn.Module):
    """LPRNet's ``nn.MaxPool3d((1, 3, 3), stride=(c, 1, 2))`` on an N×C×H×W tensor, written for batches.

    In the original code the 4-D tensor is read by MaxPool3d as an unbatched C×D×H×W volume, i.e. the pool
    keeps every c-th channel and max-pools 3×3 with stride (1, 2). Parameter-free, so state dicts match.
    """

    def __init__(self, channel_stride: int) -> None:
        super().__init__()
        self.channel_stride = channel_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x[:, :: self.channel_stride], kernel_size=3, stride=(1, 2))


class _SmallBasicBlock(nn.Module):
    def __init__(self, ch_in: int, ch_out: int) -> None:
        super().__init__()
        q = ch_out // 4
        self.block = nn.Sequential(
            nn.Conv2d(ch_in, q, kernel_size=1), nn.ReLU(),
            nn.Conv2d(q, q, kernel_size=(3, 1), padding=(1, 0)), nn.ReLU(),
            nn.Conv2d(q, q, kernel_size=(1, 3), padding=(0, 1)), nn.ReLU(),
            nn.Conv2d(q, ch_out, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class LPRNet(nn.Module):
    """The published LPRNet (PyTorch port layout: ``backbone.<i>``, ``container.0``), BGR input in [0, 1].

    Input: N×3×24×94 RGB in [0, 1]; it is converted to the port's BGR ``(x·255 − 127.5) / 128``. Output:
    N×classes×18. The global-context normalisation divides each feature map by its mean square; the port
    takes that mean over the whole batch, here it is per image (identical for a batch of one, and scores do
    not depend on which images share a batch).
    """

    KEEP = (2, 6, 13, 22)

    def __init__(self, classes: int = len(LPRNET_CHARS), dropout: float = 0.5) -> None:
        super().__init__()
        self.classes = classes
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=1), nn.BatchNorm2d(64), nn.ReLU(),          # 0-2
            nn.MaxPool2d(kernel_size=3, stride=1),                                              # 3
            _SmallBasicBlock(64, 128), nn.BatchNorm2d(128), nn.ReLU(),                           # 4-6
            _ChannelStridePool(2),                                                              # 7
            _SmallBasicBlock(64, 256), nn.BatchNorm2d(256), nn.ReLU(),                           # 8-10
            _SmallBasicBlock(256, 256), nn.BatchNorm2d(256), nn.ReLU(),                          # 11-13
            _ChannelStridePool(4), nn.Dropout(dropout),                                         # 14-15
            nn.Conv2d(64, 256, kernel_size=(1, 4)), nn.BatchNorm2d(256), nn.ReLU(),              # 16-18
            nn.Dropout(dropout),                                                                # 19
            nn.Conv2d(256, classes, kernel_size=(13, 1)), nn.BatchNorm2d(classes), nn.ReLU(),    # 20-22
        )
        self.container = nn.Sequential(nn.Conv2d(448 + classes, classes, kernel_size=1))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        x = (crops.flip(1) * 255.0 - 127.5) * 0.0078125
        kept = []
        for i, layer in enumerate(self.backbone):
            x = layer(x)
            if i in self.KEEP:
                kept.append(x)
        context = []
        for i, f in enumerate(kept):
            if i < 2:
                f = F.avg_pool2d(f, kernel_size=5, stride=5)
            elif i == 2:
                f = F.avg_pool2d(f, kernel_size=(4, 10), stride=(4, 2))
            context.append(f / f.pow(2).mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12))
        return self.container(torch.cat(context, dim=1)).mean(dim=2)


def load_lprnet(path: str | Path) -> LPRNet:
    """A pretrained LPRNet from a state-dict file (``torch.load(weights_only=True)``)."""
    state = load_state_dict_file(path, "LPRNet weights")
    classes = state.get("container.0.weight", torch.empty(len(LPRNET_CHARS))).shape[0]
    network = LPRNet(classes)
    missing, unexpected = network.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise PrivbenchError(f"{path} is not an LPRNet state dict (missing {list(missing)[:3]}, unexpected "
                             f"{list(unexpected)[:3]})")
    return network.eval()


def train_small_lpr(images: torch.Tensor, boxes: torch.Tensor, texts: Sequence[str], alphabet: str,
                    seed: int, epochs: int = EPOCHS, network: nn.Module | None = None, lr: float = LR,
                    train_mode: Callable[[nn.Module], None] | None = None,
                    device: torch.device | str = "cpu") -> nn.Module:
    """Train (or fine-tune, when ``network`` is given) a recognizer with CTC on uint8/float images.

    ``train_mode`` puts the network in training mode (default ``network.train()``; fine-tuning freezes
    BatchNorm statistics instead). The plates are cropped once on the CPU; the network is moved to ``device``
    and every batch of crops follows it there.
    """
    torch.manual_seed(training_seed(seed, "lpr"))
    length = max(len(t) for t in texts)
    crops = crop_plates(images.float() / 255.0 if images.dtype == torch.uint8 else images, boxes)
    crops = crops.contiguous(memory_format=torch.channels_last)
    targets = encode_texts(texts, alphabet, length)
    if (targets == -2).any():
        raise PrivbenchError("plate strings contain characters outside the recognizer's alphabet")
    network = (network or SmallLPR(len(alphabet) + 1)).to(device, memory_format=torch.channels_last)
    precision = training_precision()
    if train_mode is None:
        network.train()
    else:
        train_mode(network)
    steps = epochs * -(-len(crops) // BATCH)
    optimizer, schedule = adam_schedule(network.parameters(), lr, steps)
    generator = torch.Generator().manual_seed(training_seed(seed, "lpr-order"))
    blank = network.classes - 1
    for _ in progress.track(range(epochs), unit="epoch"):
        order = torch.randperm(len(crops), generator=generator)
        for start in range(0, len(crops), BATCH):
            idx = order[start:start + BATCH]
            with autocast(precision, device):
                logits = network(crops[idx].to(device))
            loss = ctc_loss(logits.float(), targets[idx], blank)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return network.eval()


def read_plates(network: nn.Module, images: torch.Tensor, boxes: torch.Tensor,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Decoded class indices (N×T, -1 padded) of the plates in float images, batched."""
    network.to(device)
    logits = predict(network, crop_plates(images, boxes), device)
    return greedy_decode(logits, blank=logits.shape[1] - 1)
