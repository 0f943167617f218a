"""Shared machinery of the synthetic datasets: splits, RNG streams, fonts, canvases, backgrounds, lighting
and noise, parallel generation (:func:`generate_items`) and the common dataset base class.

Determinism and splits. Every image is drawn from its own RNG,
``np.random.default_rng([seed, KIND, SUBSET, stream, index...])``, so a set is a pure function of its
parameters, independent of generation order, and any prefix of a larger set equals the smaller set. The
three subsets ``train`` / ``test`` / ``attacker`` use different RNG streams and are therefore disjoint
by construction; faces additionally use disjoint identity-id ranges (:data:`IDENTITY_OFFSETS`).

Rendering. Shapes are drawn with Pillow on a supersampled canvas (2× at 64 px, up to 4× for small
sizes) and box-downsampled, so thin details (a 1 px brim, a mole) are anti-aliased rather than aliased;
backgrounds, lighting and noise are applied in numpy at the output size. All geometry is expressed as
fractions of the image side, so the ``size`` parameter only changes the resolution.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageFont

from privbench.data.base import Dataset, ImageSet
from privbench.registry import Param

SUBSETS = ("train", "test", "attacker")
SUBSET_CODES = {"test": 0, "train": 1, "attacker": 2}
SUBSET_PARAM = Param("subset", str, "test", "which disjoint split to generate (separate RNG streams)",
                     choices=SUBSETS)

# One code per dataset kind, so that two datasets never share an RNG stream.
SCENE_KIND, FACE_KIND, PLATE_KIND, PEDESTRIAN_KIND = 11, 12, 13, 14
# Stream tags inside a kind (identity parameters vs. per-image nuisance). All seed lists of one kind have
# the same length, because numpy's SeedSequence does not distinguish [a, b] from [a, b, 0].
_IDENTITY_STREAM, _IMAGE_STREAM = 0, 1

#: Global identity id of the first identity of each face subset; the ranges never overlap.
IDENTITY_OFFSETS = {"test": 0, "train": 1_000_000, "attacker": 2_000_000}

FONT_PATH = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSansMono-Bold.ttf"


def _rng(seed: int, kind: int, subset: str, *index: int) -> np.random.Generator:
    """The RNG of one item: a pure function of (seed, dataset kind, subset, index...)."""
    return np.random.default_rng([seed, kind, SUBSET_CODES[subset], *index])


@functools.lru_cache(maxsize=64)
def _font(pixels: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), max(4, int(pixels)))


def _supersample(size: int) -> int:
    """Drawing scale factor: canvases of at least 128 px (2× at 64 px), never more than 4×."""
    return max(1, min(4, -(-128 // size)))


@functools.lru_cache(maxsize=64)
def _blob_basis(size: int, cells: int) -> np.ndarray:
    """size×cells matrix of normalised Gaussian bumps: smooth interpolation of a cells-wide grid."""
    x = (np.arange(size) + 0.5) / size
    centres = (np.arange(cells) + 0.5) / cells
    basis = np.exp(-(((x[:, None] - centres[None, :]) * cells) ** 2))
    basis /= np.sqrt((basis**2).sum(axis=1, keepdims=True))
    return basis.astype(np.float32)


def _smooth_field(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """A smooth random field (≈N(0, 1) values), size×size×channels, with ``cells`` blobs per side."""
    basis = _blob_basis(size, cells)
    grid = rng.standard_normal((channels, cells, cells), dtype=np.float32)
    return np.ascontiguousarray((basis @ grid @ basis.T).transpose(1, 2, 0))


@functools.lru_cache(maxsize=16)
def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = np.linspace(-1.0, 1.0, size, dtype=np.float32) / np.float32(math.sqrt(2))
    return coords[None, :], coords[:, None]


def _ramp(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear ramp in [-1, 1] along a random direction, size×size."""
    angle = rng.uniform(0, 2 * math.pi)
    x, y = _coords(size)
    return np.float32(math.cos(angle)) * x + np.float32(math.sin(angle)) * y


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed bank of N(0, 1) noise; images take random crops of it (much cheaper than fresh draws)."""
    return np.random.default_rng(0x5EED).standard_normal((320, 320, 3), dtype=np.float32)


def _noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[0], shape[1]
    bank = _noise_bank()
    if h > bank.shape[0] or w > bank.shape[1]:
        return rng.standard_normal(shape, dtype=np.float32)
    y, x = rng.integers(0, bank.shape[0] - h + 1), rng.integers(0, bank.shape[1] - w + 1)
    return bank[y:y + h, x:x + w]


def _background(rng: np.random.Generator, size: int, low: float = 30, high: float = 225,
                texture: float = 22.0) -> np.ndarray:
    """Two-colour gradient plus smooth colour noise, float32 H×W×3 in [0, 255]."""
    c0, c1 = rng.uniform(low, high, 3).astype(np.float32), rng.uniform(low, high, 3).astype(np.float32)
    t = (_ramp(rng, size)[..., None] + 1) / 2
    img = c0 * (1 - t) + c1 * t
    img += texture * _smooth_field(rng, size, int(rng.integers(3, 9)), 3)
    return img


def _finish(rng: np.random.Generator, img: np.ndarray, light: float, noise: float) -> np.ndarray:
    """Lighting gradient, exposure, per-channel white balance and Gaussian noise; returns uint8 H×W×3."""
    size = img.shape[0]
    gain = 1 + np.float32(rng.uniform(0, light)) * _ramp(rng, size)
    balance = rng.uniform(1 - light / 3, 1 + light / 3, 3) * rng.uniform(1 - light / 2, 1 + light / 3)
    out = img.astype(np.float32) * gain[..., None] * balance.astype(np.float32)
    out += np.float32(noise) * _noise(rng, out.shape)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _canvas(background: np.ndarray, scale: int) -> Image.Image:
    """An RGB drawing canvas at ``scale``× the size of a float H×W×3 background."""
    size = background.shape[0]
    img = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    # NEAREST: the background is smooth, and box-downsampling a nearest-upsampled image is exact.
    return img.resize((size * scale, size * scale), Image.Resampling.NEAREST) if scale > 1 else img


def _downsample(img: Image.Image, size: int) -> np.ndarray:
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.float32)


def _rgb(colour: Sequence[float]) -> tuple[int, int, int]:
    r, g, b = (min(255, max(0, round(float(c)))) for c in colour)
    return r, g, b


def _jitter(rng: np.random.Generator, colour: Sequence[float], amount: float) -> np.ndarray:
    return np.asarray(colour, dtype=np.float64) * rng.uniform(1 - amount, 1 + amount) + rng.normal(0, 6, 3)


def _rotate(points: np.ndarray, angle: float, centre: tuple[float, float]) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    x, y = points[:, 0], points[:, 1]
    return list(zip(centre[0] + c * x - s * y, centre[1] + s * x + c * y, strict=True))


#: sets at least this large are generated by a pool of worker processes (one per core)
PARALLEL_MIN_ITEMS = 400


def generate_items(item: Callable[[int], Any], count: int, images_per_item: int = 1) -> list[Any]:
    """``[item(0), ..., item(count - 1)]``, on every core for large sets.

    Each item is a pure function of its index (its own RNG stream), so the result does not depend on the
    number of workers. Workers are forked (Linux) and only run numpy/Pillow; elsewhere, or with one core,
    items are made in this process. ``item`` must be picklable (a module-level function or a
    ``functools.partial`` of one).
    """
    workers = min(os.cpu_count() or 1, 8)
    if count * images_per_item < PARALLEL_MIN_ITEMS or workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [item(i) for i in range(count)]
    context = multiprocessing.get_context("fork")
    chunk = max(1, count // (4 * workers))
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(item, range(count), chunksize=chunk))


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


class _SyntheticDataset(Dataset):
    """Common parts: the set name and meta of every synthetic dataset."""

    #: Generator version (part of the cache key): bump whenever the images or labels change.
    version = 2

    def _imageset(self, images: list[np.ndarray], labels: dict[str, Any], **meta: Any) -> ImageSet:
        meta = {"subset": self.params["subset"], "synthetic": True, "seed": self.params["seed"], **meta}
        return ImageSet(f"{self.name}/{self.params['subset']}", _to_tensor(images), labels, meta)
