"""Face embedders for the identification protocol of paper 000 §V-A.

Two embedders map face images to L2-normalised vectors compared by cosine similarity:

- :class:`FaceEmbedder` — built in: a small CNN trained on the *train* identities of ``synth-faces`` (which
  never occur in the probe sets) with a metric-learning loss, at the probe images' own resolution. The loss
  is the prototypical-network loss (Snell et al. 2017): each batch holds P identities × K images, and every
  image must be closest (cosine, scale s) to the mean embedding of its own identity's *other* images —
  exactly the one-gallery-image-per-identity retrieval that the metric then performs on unseen identities.
  It runs in the precision :func:`~privbench.recognizers.base.training_precision` picks (fp32, or bf16
  autocast); the face-id metric's ``precision`` parameter can force either.
- facenet-pytorch's ``InceptionResnetV1`` with the VGGFace2 checkpoint (``20180402-114759-vggface2.pt``) read
  from ``$TORCH_HOME/checkpoints/`` or a file the user names, loaded with ``torch.load(weights_only=True)``
  into ``InceptionResnetV1(pretrained=None)``; images are resized to 160×160 and standardised as facenet
  expects, optionally aligned first with facenet-pytorch's MTCNN (its weights ship inside the package).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from privbench import progress
from privbench.errors import MetricUnavailable, PrivbenchError
from privbench.recognizers.base import (
    Standardize,
    adam_schedule,
    autocast,
    conv_bn_relu,
    predict,
    training_precision,
    training_seed,
)
from privbench.weights import load_state_dict_file

FACENET_CHECKPOINT = "20180402-114759-vggface2.pt"
FACENET_SIZE = 160

# Built-in embedder training: identities × images of the train subset, and the optimisation.
#
# Tuning notes (32 px, bf16, rank-1 against a clean gallery of test identities; "@50" is the 50-identity
# gallery with 200 probes, "@200" 200 identities with 800 probes). The number of distinct training identities
# is what limits generalisation to unseen people: 1000 identities × 3 images for 12 epochs (the previous
# recipe) reached 0.925 on the default 20-identity probes and 0.75 @50, and 24 epochs only overfit (0.82 @50);
# 8000 × 3 for 5 epochs reaches 1.0 and 0.99 (fp32 and bf16; 0.975–1.0 and 0.98–0.99 with seeds 1 and 2).
# At equal compute, 3 images per identity beat 2 (more, sparser identities: 0.91 vs 0.93 @200) and 4 (fewer
# identities: 0.83 vs 0.87); 10000 × 4 epochs and 12000 × 3 epochs were no better than 8000 × 5 (0.93, 0.94
# vs 0.95 @200), nor were 6 epochs. 64 identities per batch beat 32 and 128; a wider network (28), an
# additive margin in the loss, weight decay 0.05, a softmax head over the training identities, random-shift
# augmentation and a larger crop did not help; a lower learning rate (2e-3) and a longer weight average
# (decay 0.995) hurt. Generating an image costs about three times the CPU of one training pass over it.
TRAIN_IDENTITIES = 8000
TRAIN_PER_IDENTITY = 3
EPOCHS = 5
IDENTITIES_PER_BATCH = 64
LR = 4e-3
SCALE = 32.0
WIDTH = 20
DIM = 128
EMA_DECAY = 0.98
#: side of the centre crop the embedder sees, in eighths of the image side
CROP_EIGHTHS = 5


class FaceEmbedder(nn.Module):
    """Small CNN: face crop -> per-image standardisation -> 6 conv blocks -> linear -> unit-length embedding.

    The centre crop (5/8 of the side, shifted up by 1/32) is the face itself — hairline, brows, eyes, nose,
    mouth and the skin that carries the marks — without the ears, the hair mass, the background and the
    clothing, which carry no identity. It also makes training 1.45× cheaper than the 3/4 crop used before, at
    the same accuracy (a 7/8 crop was less accurate). Two convolutions run at full resolution (identity is
    fine detail: marks, skin texture, eye and brow shape; 64-px inputs are reduced by a stride-2 first
    convolution) and the last 5×5 feature map is flattened, not pooled: identity is also *where* the marks
    are.
    """

    def __init__(self, size: int, width: int = WIDTH, dim: int = DIM) -> None:
        super().__init__()
        self.size = size
        crop = CROP_EIGHTHS * size // 8
        self.crop = (max(0, (size - crop) // 2 - size // 32), (size - crop) // 2, crop)
        w = width
        self.features = nn.Sequential(
            Standardize(), conv_bn_relu(3, w, stride=2 if size >= 64 else 1), conv_bn_relu(w, w),
            conv_bn_relu(w, 2 * w, stride=2), conv_bn_relu(2 * w, 2 * w),
            conv_bn_relu(2 * w, 4 * w, stride=2), conv_bn_relu(4 * w, 4 * w))
        with torch.no_grad():
            side = self.features(torch.zeros(1, 3, crop, crop)).shape[-1]
        self.head = nn.Linear(4 * w * side * side, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                              align_corners=False)
        top, left, c = self.crop
        x = x[..., top:top + c, left:left + c].contiguous(memory_format=torch.channels_last)
        return F.normalize(self.head(self.features(x).flatten(1)).float(), dim=1)


def prototype_loss(embeddings: torch.Tensor, identities: int, per_identity: int,
                   scale: float = SCALE) -> torch.Tensor:
    """Prototypical loss for a batch laid out as ``identities`` blocks of ``per_identity`` embeddings.

    The prototype of an image's own identity leaves that image out (so a single image cannot match itself).
    """
    e = embeddings.view(identities, per_identity, -1)
    sums = e.sum(dim=1, keepdim=True)
    prototypes = F.normalize(sums.squeeze(1), dim=-1)
    own = F.normalize(sums - e, dim=-1)
    sim = e.reshape(identities * per_identity, -1) @ prototypes.T
    target = torch.arange(identities, device=embeddings.device).repeat_interleave(per_identity)
    sim[torch.arange(len(target), device=target.device), target] = (e * own).sum(dim=-1).reshape(-1)
    return F.cross_entropy(scale * sim, target)


def train_face_embedder(images: torch.Tensor, identity_index: torch.Tensor, seed: int,
                        epochs: int = EPOCHS, precision: str = "auto",
                        device: torch.device | str = "cpu") -> FaceEmbedder:
    """Train the built-in embedder on uint8 images whose identities are ``identity_index`` (0..I-1).

    Every identity must have the same number of images (the synthetic train subset is laid out that way).
    ``precision`` is ``auto``, ``fp32`` or ``bf16`` (see :func:`training_precision`). The network (and its
    weight average) trains on ``device``; the images stay on the CPU and go there one batch at a time, as
    uint8 (a quarter of the float transfer).
    """
    torch.manual_seed(training_seed(seed, "face"))
    counts = torch.bincount(identity_index)
    per = int(counts.min())
    if per < 2 or int(counts.max()) != per:
        raise PrivbenchError("face embedder training needs the same number (≥ 2) of images per identity")
    order = torch.argsort(identity_index, stable=True)
    grouped = images[order].view(len(counts), per, *images.shape[1:])
    network = FaceEmbedder(int(images.shape[-1])).to(device, memory_format=torch.channels_last)
    network.train()
    precision = training_precision(precision)
    p = min(IDENTITIES_PER_BATCH, len(counts))
    steps_per_epoch = len(counts) // p
    optimizer, schedule = adam_schedule(network.parameters(), LR, epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(training_seed(seed, "face-order"))
    # Exponential moving average of the weights (and BatchNorm statistics): a short training run ends in a
    # noisy spot, the average of its last steps is a much more stable embedder.
    ema = torch.optim.swa_utils.AveragedModel(network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(
        EMA_DECAY), use_buffers=True)
    for _ in progress.track(range(epochs), unit="epoch"):
        people = torch.randperm(len(counts), generator=generator)
        for step in range(steps_per_epoch):
            batch = grouped[people[step * p:(step + 1) * p]].flatten(0, 1).to(device).float().div_(255.0)
            with autocast(precision, device):
                embeddings = network(batch)
            loss = prototype_loss(embeddings, p, per)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            ema.update_parameters(network)
    network.load_state_dict(ema.module.state_dict())
    return network.eval()


# ---- facenet-pytorch ---------------------------------------------------------------------------------------

def torch_home() -> Path:
    """``$TORCH_HOME``, defaulting like torch.hub and facenet-pytorch to ``$XDG_CACHE_HOME/torch``."""
    default = os.path.join(os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache")), "torch")
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", default)))


def facenet_weights_path(weights: str = "") -> Path:
    """The VGGFace2 checkpoint: the named file, else ``$TORCH_HOME/checkpoints/20180402-114759-vggface2.pt``.

    A named file that does not exist is a user error (:class:`PrivbenchError`); a missing default checkpoint
    makes the metric unavailable (nothing is downloaded).
    """
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise PrivbenchError(f"facenet weights not found: {path}")
        return path
    path = torch_home() / "checkpoints" / FACENET_CHECKPOINT
    if not path.is_file():
        raise MetricUnavailable(f"facenet VGGFace2 weights not on disk ({path}); put {FACENET_CHECKPOINT} "
                                "there or pass weights=PATH")
    return path


@functools.lru_cache(maxsize=2)
def _facenet(path: str, mtime: float) -> nn.Module:
    from facenet_pytorch import InceptionResnetV1

    state = load_state_dict_file(path, "facenet weights")
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}  # the VGGFace2 classifier head
    network = InceptionResnetV1(pretrained=None, classify=False)
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise PrivbenchError(f"{path} is not an InceptionResnetV1 state dict: {first}") from None
    return network.eval()


def load_facenet(weights: str = "") -> nn.Module:
    """InceptionResnetV1 with the VGGFace2 weights (see :func:`facenet_weights_path`)."""
    path = facenet_weights_path(weights)
    return _facenet(str(path.resolve()), path.stat().st_mtime)


@functools.lru_cache(maxsize=1)
def _mtcnn(device: str):
    from facenet_pytorch import MTCNN

    return MTCNN(image_size=FACENET_SIZE, margin=0, post_process=True, device=device, select_largest=True)


def facenet_inputs(images: torch.Tensor, align: bool, device: torch.device | str = "cpu") -> torch.Tensor:
    """Float [0, 1] N×3×H×W -> facenet's 160×160 standardised input ``(255·x − 127.5) / 128``.

    With ``align``, MTCNN detects the faces of the whole batch in one call (``MTCNN.detect``; its ``forward``
    fails on batches where only some images contain a face) and the largest face of each image is cropped
    and resized with one batched ``roi_align``; images where it finds none fall back to the whole image.
    """
    resized = F.interpolate(images.float(), size=(FACENET_SIZE, FACENET_SIZE), mode="bilinear",
                            antialias=True, align_corners=False)
    if align:
        batch = (resized.clamp(0, 1) * 255.0).permute(0, 2, 3, 1).to(torch.float32).cpu()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boxes, _ = _mtcnn(str(device)).detect(batch)
        found = [i for i, box in enumerate(boxes) if box is not None]
        if found:
            rois = torch.tensor([[i, *map(float, boxes[i][0][:4])] for i in found], dtype=torch.float32)
            from torchvision.ops import roi_align

            crops = roi_align(resized.cpu(), rois, (FACENET_SIZE, FACENET_SIZE), spatial_scale=1.0,
                              sampling_ratio=2, aligned=True)
            resized = resized.clone()
            resized[found] = crops.to(resized)
    return (resized * 255.0 - 127.5) / 128.0


def facenet_embedder(weights: str = "", align: bool = False,
                     device: torch.device | str = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    network = load_facenet(weights).to(device)

    def embed(images: torch.Tensor) -> torch.Tensor:
        return predict(lambda x: network(facenet_inputs(x, align, device).to(device)), images, device,
                       batch_size=64)

    return embed
