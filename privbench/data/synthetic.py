"""Procedurally generated synthetic datasets: the embedded, offline default of privbench.

Four datasets carry the same *kinds* of private information as the real datasets used by the papers, so
every privacy metric means something without downloading anything:

``synth-scenes``
    The utility task (10-way image classification). A class is a **coarse** layout (a disc, a ring,
    stripes, a star, ...) with random position, scale, colour, background texture and clutter, so it
    survives a Gaussian blur of σ≈1.5 px. Utility is meant to be robust to the defenses that destroy the
    private details below.
``synth-faces``
    Identities (LFW stand-in). Identity lives in **fine facial geometry and texture**: eye shape and
    spacing, brow shape, nose, mouth, hairline, moles/freckles and a per-identity skin micro-texture, all
    drawn from the identity's own RNG. Everything coarse — skin tone, hair colour, face outline — is either
    drawn from a small palette *shared* by many identities or swamped by per-image nuisance (pose,
    lighting, white balance, expression, clothing, background). A blur therefore leaves a generic face and
    identification collapses, which is exactly the behaviour real face recognisers show on blurry
    model-inversion reconstructions.
``synth-plates``
    Licence plates (CCPD stand-in): a random string over :data:`PLATE_ALPHABET` rendered with a real
    TrueType font (DejaVu, shipped with matplotlib) on a plate that fills most of the image width, with a
    mild perspective warp. Characters are only ~6–8 px wide at 64 px, so blur destroys them.
``synth-pedestrians``
    Pedestrian attributes (PA-100K stand-in): a standing figure with 11 binary attributes, a mix of
    coarse ones (clothing colours, trousers vs shorts, long hair) and fine ones (thin hat brim, glasses,
    a thin bag strap, a small chest logo, ...).

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
import dataclasses
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
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from privbench.data.base import SEED_PARAM, SIZE_PARAM, Dataset, ImageSet
from privbench.registry import DATASETS, Param

__all__ = [
    "FINE_ATTRIBUTES", "IDENTITY_OFFSETS", "PEDESTRIAN_ATTRIBUTES", "PLATE_ALPHABET", "PLATE_LETTERS",
    "SCENE_CLASSES", "SUBSETS", "SyntheticFaces", "SyntheticPedestrians", "SyntheticPlates",
    "SyntheticScenes", "preview", "random_plate_text",
]

# ----------------------------------------------------------------------------------------------------
# Shared machinery: splits, RNG streams, fonts, canvases, backgrounds, lighting and noise
# ----------------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------------
# synth-scenes: the utility task
# ----------------------------------------------------------------------------------------------------

SCENE_CLASSES = ("circle", "square", "triangle", "cross", "ring", "stripes_h", "stripes_v", "two_blobs",
                 "star", "checker")


def _polygon(draw: ImageDraw.ImageDraw, points: np.ndarray, angle: float, centre: tuple[float, float],
             fill: int = 255) -> None:
    draw.polygon(_rotate(points, angle, centre), fill=fill)


def _rect(half_w: float, half_h: float, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    return np.array([[-half_w + dx, -half_h + dy], [half_w + dx, -half_h + dy],
                     [half_w + dx, half_h + dy], [-half_w + dx, half_h + dy]])


def _shape_circle(draw, rng, c, r, angle):
    draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=255)


def _shape_square(draw, rng, c, r, angle):
    _polygon(draw, _rect(0.82 * r, 0.82 * r), angle, c)


def _shape_triangle(draw, rng, c, r, angle):
    t = angle + np.array([0, 2 * math.pi / 3, 4 * math.pi / 3]) - math.pi / 2
    draw.polygon(list(zip(c[0] + 1.1 * r * np.cos(t), c[1] + 1.1 * r * np.sin(t), strict=True)), fill=255)


def _shape_cross(draw, rng, c, r, angle):
    arm = r * rng.uniform(0.32, 0.42)
    _polygon(draw, _rect(r, arm), angle, c)
    _polygon(draw, _rect(arm, r), angle, c)


def _shape_ring(draw, rng, c, r, angle):
    inner = r * rng.uniform(0.42, 0.58)
    draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=255)
    draw.ellipse([c[0] - inner, c[1] - inner, c[0] + inner, c[1] + inner], fill=0)


def _stripes(draw, rng, c, r, angle):
    bars = int(rng.integers(3, 5))
    period = 2 * r / bars
    for k in range(bars):
        _polygon(draw, _rect(r, period / 4, dy=-r + period * (k + 0.5)), angle, c)


def _tilt(angle: float, limit: float = 0.26) -> float:
    """Map a uniform angle in [0, 2π) to a small tilt in [-limit, limit] (orientation-defined classes)."""
    return (angle / math.pi - 1) * limit


def _shape_stripes_h(draw, rng, c, r, angle):
    _stripes(draw, rng, c, r, _tilt(angle))


def _shape_stripes_v(draw, rng, c, r, angle):
    _stripes(draw, rng, c, r, math.pi / 2 + _tilt(angle))


def _shape_two_blobs(draw, rng, c, r, angle):
    br = r * rng.uniform(0.45, 0.55)
    d = r * rng.uniform(0.6, 0.8)
    for sign in (-1, 1):
        x, y = c[0] + sign * d * math.cos(angle), c[1] + sign * d * math.sin(angle)
        draw.ellipse([x - br, y - br, x + br, y + br], fill=255)


def _shape_star(draw, rng, c, r, angle):
    t = angle + np.arange(10) * math.pi / 5
    radius = np.where(np.arange(10) % 2 == 0, 1.15 * r, r * rng.uniform(0.38, 0.48))
    draw.polygon(list(zip(c[0] + radius * np.cos(t), c[1] + radius * np.sin(t), strict=True)), fill=255)


def _shape_checker(draw, rng, c, r, angle):
    cells, r = 3, 1.1 * r
    cell = 2 * r / cells
    for i in range(cells):
        for j in range(cells):
            if (i + j) % 2 == 0:
                dx, dy = -r + cell * (i + 0.5), -r + cell * (j + 0.5)
                _polygon(draw, _rect(cell / 2, cell / 2, dx, dy), angle * 0.5, c)


_SCENE_DRAWERS: dict[str, Callable[..., None]] = {
    name: globals()[f"_shape_{name}"] for name in SCENE_CLASSES
}


def _scene_clutter(rng: np.random.Generator, img: Image.Image, size: int) -> None:
    """Small distractors (dots, short strokes, specks) that a blur removes and a classifier must ignore."""
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 8))):
        x, y = rng.uniform(0, size, 2)
        s = rng.uniform(0.01, 0.04) * size
        colour = _rgb(rng.uniform(0, 255, 3))
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse([x - s, y - s, x + s, y + s], fill=colour)
        elif kind == 1:
            a = rng.uniform(0, math.pi)
            draw.line([x, y, x + 3 * s * math.cos(a), y + 3 * s * math.sin(a)], fill=colour,
                      width=max(1, round(size / 64)))
        else:
            draw.rectangle([x, y, x + s, y + s], fill=colour)


def _scene_occluder(rng: np.random.Generator, mask_draw: ImageDraw.ImageDraw, canvas: int) -> None:
    """Sometimes cut a bar or a disc out of the shape (partial occlusion by background)."""
    if rng.random() < 0.15:
        x, y = rng.uniform(0.2, 0.8, 2) * canvas
        s = rng.uniform(0.04, 0.08) * canvas
        if rng.random() < 0.5:
            mask_draw.ellipse([x - s, y - s, x + s, y + s], fill=0)
        else:
            a = rng.uniform(0, math.pi)
            _polygon(mask_draw, _rect(canvas, s / 3), a, (x, y), fill=0)


def _scene_foreground(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A random foreground colour that differs from the background mostly in brightness.

    Hue is random (so no class has a colour), but a guaranteed luminance step makes the shape's outline
    the obvious cue, which a small CNN picks up quickly and which survives blur.
    """
    bg_mean = background[::4, ::4].reshape(-1, 3).mean(axis=0)
    sign = 1.0 if bg_mean.mean() < 128 else -1.0
    direction = rng.normal(0, 0.5, 3) + sign * np.ones(3) / math.sqrt(3)
    direction /= np.linalg.norm(direction)
    return np.clip(bg_mean + direction * rng.uniform(90, 200), 0, 255).astype(np.float32)


def _scene_image(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    scale = _supersample(size)
    canvas = size * scale
    mask_img = Image.new("L", (canvas, canvas), 0)
    mask_draw = ImageDraw.Draw(mask_img)
    r = rng.uniform(0.2, 0.32) * canvas
    centre = (rng.uniform(0.9 * r, canvas - 0.9 * r), rng.uniform(0.9 * r, canvas - 0.9 * r))
    _SCENE_DRAWERS[SCENE_CLASSES[label]](mask_draw, rng, centre, r, rng.uniform(0, 2 * math.pi))
    _scene_occluder(rng, mask_draw, canvas)
    mask = _downsample(mask_img, size)[..., None] * np.float32(1 / 255)

    background = _background(rng, size, texture=rng.uniform(8, 25))
    foreground = _scene_foreground(rng, background) + np.float32(rng.uniform(5, 20)) * _smooth_field(
        rng, size, int(rng.integers(4, 12)))
    img = background + (foreground - background) * mask

    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    _scene_clutter(rng, pil, size)
    return _finish(rng, np.asarray(pil, dtype=np.float32), light=0.3, noise=rng.uniform(2, 7))


def _scene_item(seed: int, subset: str, size: int, classes: int, i: int) -> np.ndarray:
    return _scene_image(_rng(seed, SCENE_KIND, subset, i), i % classes, size)


@DATASETS.register("synth-scenes")
class SyntheticScenes(_SyntheticDataset):
    """Coarse-shape scene classification: the utility task of the synthetic benchmark."""

    summary = "synthetic scenes: classify the large shape/layout (utility task, robust to blur)"
    provides = "label: class index (int64); meta classes: class names"
    params = (
        Param("n", int, 2000, "number of images (classes are balanced: label = index mod classes)", low=1),
        Param("classes", int, 10, "number of classes (the first k of circle, square, triangle, cross, ring, "
              "stripes_h, stripes_v, two_blobs, star, checker)", low=2, high=len(SCENE_CLASSES)),
        SIZE_PARAM, SEED_PARAM, SUBSET_PARAM,
    )

    def build(self) -> ImageSet:
        p = self.params
        images = generate_items(functools.partial(_scene_item, p["seed"], p["subset"], p["size"], p["classes"]),
                                p["n"])
        labels = [i % p["classes"] for i in range(p["n"])]
        return self._imageset(images, {"label": torch.tensor(labels, dtype=torch.int64)},
                              classes=list(SCENE_CLASSES[: p["classes"]]))


# ----------------------------------------------------------------------------------------------------
# synth-faces: identity in fine geometry and texture
# ----------------------------------------------------------------------------------------------------

# Small shared palettes: many identities share a skin tone / hair / iris colour, so colour (which survives
# any blur) cannot identify a person by itself. Per-image exposure and white balance blur them further.
SKIN_TONES = ((226, 188, 160), (204, 158, 124), (170, 122, 92))
HAIR_COLOURS = ((38, 30, 26), (84, 58, 38), (140, 96, 56), (176, 150, 110))
IRIS_COLOURS = ((70, 46, 28), (58, 88, 128), (76, 104, 70), (100, 100, 106))


@dataclasses.dataclass
class FaceIdentity:
    """Everything that makes one synthetic person recognisable. Units are fractions of the image side.

    Coarse traits (skin, hair, face ratio) have few values or narrow ranges; the identity signal is in
    the fine traits: eye geometry, brows, nose, mouth, hairline, moles, freckles and skin micro-texture.
    """

    skin: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    face_ratio: float
    eye_gap: float
    eye_y: float
    eye_w: float
    eye_ratio: float
    eye_tilt: float
    lid: float
    brow_gap: float
    brow_len: float
    brow_arch: float
    brow_slant: float
    brow_width: float
    nose_len: float
    nose_width: float
    nose_bridge: float
    mouth_gap: float
    mouth_w: float
    lip: float
    smile: float
    hairline: float
    temple: float
    hairline_power: float
    widow: float
    part: float
    moles: list[tuple[float, float, float]]
    freckles: list[tuple[float, float]]
    texture: np.ndarray


def _face_identity(rng: np.random.Generator, size: int) -> FaceIdentity:
    moles = []
    for _ in range(int(rng.integers(1, 5))):
        ang, rad = rng.uniform(0, 2 * math.pi), math.sqrt(rng.uniform(0.05, 0.8))
        moles.append((0.5 + 0.19 * rad * math.cos(ang), 0.5 + 0.25 * rad * math.sin(ang),
                      rng.uniform(0.007, 0.012)))
    freckles = []
    if rng.random() < 0.4:
        for _ in range(int(rng.integers(10, 26))):
            side = rng.choice([-1, 1])
            freckles.append((0.5 + side * rng.uniform(0.02, 0.14), rng.uniform(0.5, 0.6)))
    # Skin micro-texture at ~1.5 output-pixel scale, limited to the head: a fingerprint no blur preserves.
    cells = max(4, size * 2 // 3)
    fine = rng.standard_normal((cells, cells)).astype(np.float32)
    texture = np.asarray(Image.fromarray(fine).resize((size, size), Image.Resampling.BICUBIC))
    u = (np.arange(size, dtype=np.float32) + 0.5) / size
    head = ((u[None, :] - 0.5) / 0.26) ** 2 + ((u[:, None] - 0.45) / 0.34) ** 2 <= 1
    texture = np.ascontiguousarray(texture * head, dtype=np.float32)
    return FaceIdentity(
        skin=np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))], float),
        hair=np.array(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], float),
        iris=np.array(IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))], float),
        face_ratio=rng.uniform(0.74, 0.82),
        eye_gap=rng.uniform(0.085, 0.115), eye_y=rng.uniform(0.45, 0.49),
        eye_w=rng.uniform(0.034, 0.05), eye_ratio=rng.uniform(0.3, 0.6), eye_tilt=rng.uniform(-0.25, 0.25),
        lid=rng.uniform(0.004, 0.01),
        brow_gap=rng.uniform(0.04, 0.065), brow_len=rng.uniform(0.05, 0.08),
        brow_arch=rng.uniform(-0.005, 0.02),
        brow_slant=rng.uniform(-0.35, 0.35), brow_width=rng.uniform(0.006, 0.014),
        nose_len=rng.uniform(0.08, 0.13), nose_width=rng.uniform(0.022, 0.042), nose_bridge=rng.uniform(0, 1),
        mouth_gap=rng.uniform(0.045, 0.07), mouth_w=rng.uniform(0.05, 0.085), lip=rng.uniform(0.006, 0.018),
        smile=rng.uniform(-0.008, 0.012),
        hairline=rng.uniform(0.22, 0.27), temple=rng.uniform(0.3, 0.36), hairline_power=rng.uniform(1.2, 3.5),
        widow=rng.uniform(-0.02, 0.03), part=rng.uniform(-0.6, 0.6),
        moles=moles, freckles=freckles, texture=texture,
    )


@dataclasses.dataclass
class _FaceNuisance:
    """Per-image variation: pose, expression, colour cast, clothing."""

    angle: float
    scale: float
    shift: tuple[float, float]
    openness: float
    smile: float
    brow_raise: float
    skin: np.ndarray
    hair: np.ndarray
    shirt: np.ndarray


def _face_nuisance(rng: np.random.Generator, ident: FaceIdentity) -> _FaceNuisance:
    exposure = rng.uniform(0.82, 1.12)
    return _FaceNuisance(
        angle=rng.uniform(-0.14, 0.14), scale=rng.uniform(0.93, 1.07),
        shift=(rng.uniform(-0.045, 0.045), rng.uniform(-0.04, 0.04)),
        openness=rng.uniform(0.65, 1.1), smile=rng.uniform(-0.01, 0.02),
        brow_raise=rng.uniform(-0.006, 0.006),
        skin=ident.skin * exposure * rng.uniform(0.94, 1.06, 3),
        hair=ident.hair * exposure * rng.uniform(0.9, 1.1, 3),
        shirt=rng.uniform(20, 235, 3),
    )


@functools.lru_cache(maxsize=32)
def _arc(start: float, end: float, n: int) -> tuple[list[float], list[float]]:
    """Cosines and sines of ``n`` angles from ``start`` to ``end`` (cached: faces draw many ellipses)."""
    t = np.linspace(start, end, n)
    return np.cos(t).tolist(), np.sin(t).tolist()


@functools.lru_cache(maxsize=32)
def _lin(start: float, end: float, n: int) -> np.ndarray:
    """A cached, read-only ``np.linspace``."""
    values = np.linspace(start, end, n)
    values.flags.writeable = False
    return values


class _FacePainter:
    """Draws one face straight onto the image canvas, one small helper per part.

    Geometry is written in unit face coordinates (fractions of the image side, head centred at x=0.5);
    every point goes through the per-image pose (rotation, scale, shift about the image centre) as it is
    drawn, so no image has to be resampled afterwards. Ellipses are drawn as polygons so they can rotate.
    """

    def __init__(self, ident: FaceIdentity, nz: _FaceNuisance, img: Image.Image) -> None:
        self.id, self.nz, self.c = ident, nz, img.size[0]
        self.draw = ImageDraw.Draw(img)
        self.cy, self.b = 0.47, 0.30
        self.a = self.b * ident.face_ratio
        self.cos = math.cos(nz.angle) * nz.scale
        self.sin = math.sin(nz.angle) * nz.scale

    def pts(self, xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray,
            ) -> list[tuple[float, float]]:
        """Unit face coordinates -> posed canvas pixels (plain Python: inputs are a few dozen points)."""
        xs = xs.tolist() if isinstance(xs, np.ndarray) else xs
        ys = ys.tolist() if isinstance(ys, np.ndarray) else ys
        c, cos, sin = self.c, self.cos, self.sin
        ox, oy = 0.5 + self.nz.shift[0], 0.5 + self.nz.shift[1]
        return [((ox + cos * (x - 0.5) - sin * (y - 0.5)) * c, (oy + sin * (x - 0.5) + cos * (y - 0.5)) * c)
                for x, y in zip(xs, ys, strict=True)]

    def w(self, width: float) -> int:
        return max(1, round(width * self.c * self.nz.scale))

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill, start: float = 0.0,
                end: float = 2 * math.pi, n: int = 28) -> None:
        cos, sin = _arc(start, end, n)
        self.draw.polygon(self.pts([cx + rx * u for u in cos], [cy + ry * v for v in sin]), fill=fill)

    def dots(self, centres: Sequence[tuple[float, float]], radii: Sequence[float], fill) -> None:
        """Small round marks (rotation-invariant, so drawn as plain circles at the posed centres)."""
        if not centres:
            return
        xs, ys = zip(*centres, strict=True)
        for (x, y), r in zip(self.pts(xs, ys), radii, strict=True):
            r = r * self.c * self.nz.scale
            self.draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill) -> None:
        self.draw.polygon(self.pts([x0, x1, x1, x0], [y0, y0, y1, y1]), fill=fill)

    def body(self) -> None:
        self.ellipse(0.5, 1.13, 0.4, 0.27, _rgb(self.nz.shirt))
        self.rect(0.42, 0.65, 0.58, 0.9, _rgb(self.nz.skin * 0.85))
        for side in (-1, 1):
            ear = _rgb(self.nz.skin * 0.92)
            self.ellipse(0.5 + side * self.a, self.id.eye_y + 0.04, 0.03, 0.05, ear, n=12)

    def crown(self) -> tuple[np.ndarray, np.ndarray]:
        """Upper half-ellipse of the hair mass, left to right (same style for everyone: coarse)."""
        a, top = self.a + 0.035, self.cy - self.b - 0.035
        ry = (self.cy + 0.15 - top) / 2
        t = _lin(math.pi, 2 * math.pi, 17)
        return 0.5 + a * np.cos(t), top + ry + ry * np.sin(t)

    def hair_back(self) -> None:
        xs, ys = self.crown()
        self.draw.polygon(self.pts(xs, ys), fill=_rgb(self.nz.hair))
        for side in (-1, 1):
            x0 = 0.5 + side * (self.a - 0.01)
            self.rect(min(x0, x0 + side * 0.035), 0.35, max(x0, x0 + side * 0.035), 0.47, _rgb(self.nz.hair))

    def face(self) -> None:
        self.ellipse(0.5, self.cy, self.a, self.b, _rgb(self.nz.skin), n=36)

    def hairline(self) -> None:
        """Fringe: a per-identity hairline curve (shape, widow's peak, parting) closed over the crown."""
        ident = self.id
        t = _lin(-1, 1, 21)
        y = ident.hairline + (ident.temple - ident.hairline) * np.abs(t) ** ident.hairline_power
        y += ident.widow * np.exp(-(t / 0.12) ** 2) - 0.02 * np.exp(-((t - ident.part) / 0.06) ** 2)
        x = 0.5 + t * (self.a + 0.01)
        cx, cy = self.crown()
        self.draw.polygon(self.pts(np.concatenate([x, cx[::-1]]), np.concatenate([y, cy[::-1]])),
                          fill=_rgb(self.nz.hair))

    def eye(self, side: int) -> None:
        """Almond eye with per-identity size, shape and tilt; openness is per-image expression."""
        ident, nz = self.id, self.nz
        cx, cy = 0.5 + side * ident.eye_gap, ident.eye_y
        hw, hh = ident.eye_w, ident.eye_w * ident.eye_ratio * nz.openness
        t = _lin(0, math.pi, 10)
        ex = np.concatenate([-hw * np.cos(t), hw * np.cos(t)])
        ey = np.concatenate([-hh * np.sin(t) ** 0.8, 0.7 * hh * np.sin(t)])
        tilt = side * ident.eye_tilt
        xs = cx + math.cos(tilt) * ex - math.sin(tilt) * ey
        ys = cy + math.sin(tilt) * ex + math.cos(tilt) * ey
        outline = self.pts(xs, ys)
        self.draw.polygon(outline, fill=(238, 236, 230))
        ir = min(hh * 0.95, hw * 0.5)
        self.dots([(cx, cy)], [ir], _rgb(ident.iris))
        self.dots([(cx, cy)], [ir * 0.45], (15, 12, 12))
        self.draw.line(outline[:10], fill=(35, 25, 22), width=self.w(ident.lid))

    def brow(self, side: int) -> None:
        ident = self.id
        t = _lin(-1, 1, 7)
        x = 0.5 + side * (ident.eye_gap + 0.005 + t * ident.brow_len / 2)
        y = ident.eye_y - ident.brow_gap + self.nz.brow_raise - ident.brow_arch * (1 - t**2)
        y = y + t * ident.brow_slant * ident.brow_len / 2
        self.draw.line(self.pts(x, y), fill=_rgb(self.nz.hair * 0.7), width=self.w(ident.brow_width),
                       joint="curve")

    def nose(self) -> None:
        ident, shade = self.id, _rgb(self.nz.skin * 0.72)
        top, tip = ident.eye_y + 0.01, ident.eye_y + ident.nose_len
        bx = 0.5 + 0.012 * (ident.nose_bridge - 0.5)
        self.draw.line(self.pts([bx, 0.508], [top, tip - 0.01]), fill=shade, width=self.w(0.006))
        nw = ident.nose_width
        t = _lin(0.35, math.pi - 0.35, 9)
        self.draw.line(self.pts(0.5 + nw * np.cos(t), tip - 0.004 + 0.016 * np.sin(t)), fill=shade,
                       width=self.w(0.007))
        self.dots([(0.5 - nw * 0.6, tip), (0.5 + nw * 0.6, tip)], [0.006, 0.006], _rgb(self.nz.skin * 0.5))

    def mouth(self) -> None:
        """Lips: identity sets width, thickness and habitual curve; expression adds a per-image smile."""
        ident = self.id
        y0 = ident.eye_y + ident.nose_len + ident.mouth_gap
        curve = ident.smile + self.nz.smile
        t = _lin(-1, 1, 11)
        x = 0.5 + t * ident.mouth_w
        mid = y0 + curve * (1 - t**2) - curve
        upper = mid - ident.lip * (1 - t**2) ** 0.7
        lower = mid + 1.3 * ident.lip * (1 - t**2) ** 0.7
        lip = _rgb(self.nz.skin * np.array([0.85, 0.55, 0.55]))
        outline = self.pts(np.concatenate([x, x[::-1]]), np.concatenate([upper, lower[::-1]]))
        self.draw.polygon(outline, fill=lip)
        self.draw.line(self.pts(x, mid), fill=_rgb(self.nz.skin * 0.35), width=self.w(0.005))

    def marks(self) -> None:
        self.dots([(x, y) for x, y, _ in self.id.moles], [r for _, _, r in self.id.moles], (80, 52, 40))
        freckle = _rgb(self.nz.skin * np.array([0.8, 0.68, 0.6]))
        self.dots(self.id.freckles, [0.005] * len(self.id.freckles), freckle)

    def paint(self) -> None:
        self.body()
        self.hair_back()
        self.face()
        self.hairline()
        self.marks()
        for side in (-1, 1):
            self.eye(side)
            self.brow(side)
        self.nose()
        self.mouth()


def _posed_texture(ident: FaceIdentity, nz: _FaceNuisance, size: int) -> np.ndarray:
    """The identity's skin micro-texture (face coordinates) resampled into the posed image, size×size.

    Its support is the head ellipse, so the texture marks skin and hair but not the background.
    """
    half = size / 2
    cos, sin = math.cos(nz.angle) / nz.scale, math.sin(nz.angle) / nz.scale
    tx, ty = nz.shift[0] * size, nz.shift[1] * size
    # output pixel -> face coordinates: inverse of  p = centre + shift + s R (q - centre)
    coeffs = (cos, sin, half - cos * (half + tx) - sin * (half + ty),
              -sin, cos, half + sin * (half + tx) - cos * (half + ty))
    return np.asarray(Image.fromarray(ident.texture).transform((size, size), Image.Transform.AFFINE, coeffs,
                                                               resample=Image.Resampling.BILINEAR))


def _face_image(ident: FaceIdentity, rng: np.random.Generator, size: int) -> np.ndarray:
    nz = _face_nuisance(rng, ident)
    img = _canvas(_background(rng, size, texture=rng.uniform(8, 25)), _supersample(size))
    _FacePainter(ident, nz, img).paint()
    out = _downsample(img, size) * (1 + 0.035 * _posed_texture(ident, nz, size))[..., None]
    return _finish(rng, out, light=0.35, noise=rng.uniform(1.5, 4))


def _face_item(seed: int, subset: str, size: int, per_identity: int, offset: int, k: int) -> list[np.ndarray]:
    """The ``per_identity`` images of the set's k-th person (global id ``offset + k``)."""
    gid = offset + k
    ident = _face_identity(_rng(seed, FACE_KIND, subset, _IDENTITY_STREAM, gid, 0), size)
    return [_face_image(ident, _rng(seed, FACE_KIND, subset, _IMAGE_STREAM, gid, j), size)
            for j in range(per_identity)]


@DATASETS.register("synth-faces")
class SyntheticFaces(_SyntheticDataset):
    """Synthetic faces with identities whose evidence is fine detail (see the module docstring)."""

    summary = "synthetic faces: identities carried by fine facial geometry/texture (LFW stand-in)"
    provides = ("identity: global identity id (int64, disjoint across subsets); "
                "label: identity index 0..identities-1 within the set")
    params = (
        Param("identities", int, 20, "number of distinct people", low=1, high=999_999),
        Param("per_identity", int, 4, "images per person (pose/lighting/expression vary)", low=1),
        SIZE_PARAM, SEED_PARAM, SUBSET_PARAM,
    )

    def build(self) -> ImageSet:
        p = self.params
        offset = IDENTITY_OFFSETS[p["subset"]]
        per_person = generate_items(functools.partial(_face_item, p["seed"], p["subset"], p["size"],
                                                      p["per_identity"], offset), p["identities"],
                                    images_per_item=p["per_identity"])
        images = [image for person in per_person for image in person]
        ids = [offset + k for k in range(p["identities"]) for _ in range(p["per_identity"])]
        labels = [k for k in range(p["identities"]) for _ in range(p["per_identity"])]
        return self._imageset(images, {"identity": torch.tensor(ids, dtype=torch.int64),
                                       "label": torch.tensor(labels, dtype=torch.int64)},
                              identities=p["identities"], identity_offset=offset)


# ----------------------------------------------------------------------------------------------------
# synth-plates: random strings in a TrueType font
# ----------------------------------------------------------------------------------------------------

PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I / O (confusable with 1 / 0), as on real plates
#: Characters that can appear on a synthetic plate: digits + uppercase letters without I and O.
PLATE_ALPHABET = "0123456789" + PLATE_LETTERS
# (background, border, ink) of the plate style variants.
PLATE_STYLES = (
    ((236, 236, 230), (25, 25, 25), (20, 20, 20)),
    ((240, 204, 48), (20, 20, 20), (15, 15, 15)),
    ((206, 236, 206), (30, 90, 40), (15, 30, 15)),
    ((208, 222, 244), (20, 40, 110), (15, 25, 80)),
)
CAR_COLOURS = ((180, 30, 30), (30, 60, 150), (200, 200, 205), (30, 30, 32), (240, 240, 240),
               (90, 110, 90), (130, 130, 135), (150, 100, 40))


def random_plate_text(rng: np.random.Generator, length: int) -> str:
    """Plate format: two letters, then ``length - 2`` characters from :data:`PLATE_ALPHABET`."""
    head = [PLATE_LETTERS[i] for i in rng.integers(len(PLATE_LETTERS), size=2)]
    tail = [PLATE_ALPHABET[i] for i in rng.integers(len(PLATE_ALPHABET), size=length - 2)]
    return "".join(head + tail)


_GLYPH_PIXELS = 32


@functools.lru_cache(maxsize=len(PLATE_ALPHABET) + 1)
def _glyph(char: str) -> Image.Image:
    """One character's mask in a fixed cell (monospace advance × alphabet cap height), rendered once."""
    font = _font(_GLYPH_PIXELS)
    _, top, _, bottom = font.getbbox(PLATE_ALPHABET)
    cell = Image.new("L", (round(font.getlength("0")), bottom - top), 0)
    ImageDraw.Draw(cell).text((0, -top), char, fill=255, font=font)
    return cell


def _text_strip(text: str) -> Image.Image:
    """The string as a tight white-on-black mask (cached glyphs pasted side by side)."""
    cells = [_glyph(ch) for ch in text]
    strip = Image.new("L", (sum(c.width for c in cells), cells[0].height), 0)
    x = 0
    for cell in cells:
        strip.paste(cell, (x, 0))
        x += cell.width
    box = strip.getbbox() or (0, 0, strip.width, strip.height)
    return strip.crop((box[0], 0, box[2], strip.height))


def _render_plate(rng: np.random.Generator, text: str, width: int, height: int) -> Image.Image:
    """A flat RGBA plate image: light background, dark border, bolts, text stretched to plate proportions."""
    bg, border, ink = PLATE_STYLES[rng.integers(len(PLATE_STYLES))]
    plate = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(plate)
    bw = max(1, round(0.07 * height))
    fill = (*_rgb(_jitter(rng, bg, 0.06)), 255)
    draw.rounded_rectangle([0, 0, width - 1, height - 1], radius=2 * bw, fill=fill, outline=(*border, 255),
                           width=bw)
    for fx in (0.2, 0.8):
        x, y, r = fx * width, 0.16 * height, 0.035 * height
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(*border, 255))
    tw, th = round(0.9 * width - 2 * bw), round(0.62 * height)
    glyphs = _text_strip(text).resize((tw, th), Image.Resampling.BILINEAR)
    plate.paste((*ink, 255), (round((width - tw) / 2), round(0.25 * height)), glyphs)
    return plate


def _perspective_coeffs(dst: np.ndarray, src: np.ndarray) -> tuple[float, ...]:
    """Coefficients for ``Image.transform(PERSPECTIVE)`` mapping output points ``dst`` to input ``src``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return tuple(np.linalg.solve(np.array(rows, float), np.array(rhs, float)).tolist())


def _car_context(rng: np.random.Generator, img: Image.Image, plate_top: float, plate_bottom: float) -> None:
    """Random car rear/front around the plate: body, grille, lights, bumper (canvas pixels)."""
    c = img.size[0]
    draw = ImageDraw.Draw(img)
    body = _jitter(rng, CAR_COLOURS[rng.integers(len(CAR_COLOURS))], 0.12)
    top = rng.uniform(-0.1, 0.1) * c
    draw.rounded_rectangle([rng.uniform(-0.2, 0.05) * c, top, rng.uniform(0.95, 1.2) * c, 1.2 * c],
                           radius=0.12 * c, fill=_rgb(body))
    grille = _rgb(body * rng.uniform(0.2, 0.5))
    g0 = max(top + 0.05 * c, plate_top - rng.uniform(0.18, 0.3) * c)
    draw.rectangle([0.2 * c, g0, 0.8 * c, plate_top - 0.03 * c], fill=grille)
    for k in range(int(rng.integers(2, 5))):
        y = g0 + (k + 1) * (plate_top - 0.03 * c - g0) / 5
        draw.line([0.2 * c, y, 0.8 * c, y], fill=_rgb(body * 0.8), width=max(1, c // 100))
    light = _rgb(rng.choice([[250, 245, 220], [230, 80, 60], [255, 180, 60]]))
    for side in (0, 1):
        x = rng.uniform(-0.05, 0.08) * c if side == 0 else c - rng.uniform(-0.05, 0.08) * c
        draw.ellipse([x - 0.12 * c, g0 - 0.04 * c, x + 0.12 * c, g0 + 0.08 * c], fill=light)
    draw.rectangle([-1, plate_bottom + rng.uniform(0.02, 0.08) * c, c, c], fill=_rgb(body * 0.55))


def _warp_plate(img: Image.Image, plate: Image.Image, quad: np.ndarray) -> None:
    """Perspective-warp the flat plate onto ``quad`` (canvas pixels) with a soft drop shadow.

    Only the quad's bounding box is resampled, which keeps the warp cheap.
    """
    x0, y0 = (int(v) for v in np.floor(quad.min(axis=0)))
    x1, y1 = (int(v) + 1 for v in np.ceil(quad.max(axis=0)))
    src = np.array([[0, 0], [plate.width, 0], [plate.width, plate.height], [0, plate.height]], float)
    coeffs = _perspective_coeffs(quad - [x0, y0], src)
    warped = plate.transform((x1 - x0, y1 - y0), Image.Transform.PERSPECTIVE, coeffs,
                             resample=Image.Resampling.BILINEAR)
    shadow_offset = 0.012 * img.size[0]
    ImageDraw.Draw(img, "RGBA").polygon([tuple(p + shadow_offset) for p in quad], fill=(0, 0, 0, 90))
    img.paste(warped.convert("RGB"), (x0, y0), warped.getchannel("A"))


def _plate_image(rng: np.random.Generator, text: str, size: int) -> tuple[np.ndarray, list[int]]:
    scale = _supersample(size)
    c = size * scale
    img = _canvas(_background(rng, size, low=40, high=200), scale)
    pw, ph = rng.uniform(0.8, 0.93) * c, rng.uniform(0.25, 0.34) * c
    wobble = 0.025 * c
    cx = c / 2 + rng.uniform(-1, 1) * max(0.0, (c - pw) / 2 - wobble)
    cy = c / 2 + rng.uniform(-0.12, 0.12) * c
    _car_context(rng, img, cy - ph / 2, cy + ph / 2)

    corners = np.array([[-pw / 2, -ph / 2], [pw / 2, -ph / 2], [pw / 2, ph / 2], [-pw / 2, ph / 2]])
    quad = np.array(_rotate(corners, rng.uniform(-0.06, 0.06), (cx, cy)))
    quad += rng.uniform(-wobble, wobble, (4, 2)) * np.array([1.0, 0.6])
    quad = np.clip(quad, 0, c - 1)
    _warp_plate(img, _render_plate(rng, text, round(pw), round(ph)), quad)

    small = img.resize((size, size), Image.Resampling.BOX)
    small = small.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.5) * size / 64))
    lo, hi = np.floor(quad.min(axis=0) / scale), np.ceil(quad.max(axis=0) / scale)
    bbox = [int(np.clip(v, 0, size)) for v in (lo[0], lo[1], hi[0], hi[1])]
    return _finish(rng, np.asarray(small, dtype=np.float32), light=0.3, noise=rng.uniform(2, 5)), bbox


def _plate_item(seed: int, subset: str, size: int, length: int, i: int) -> tuple[np.ndarray, str, list[int]]:
    rng = _rng(seed, PLATE_KIND, subset, i)
    text = random_plate_text(rng, length)
    image, bbox = _plate_image(rng, text, size)
    return image, text, bbox


@DATASETS.register("synth-plates")
class SyntheticPlates(_SyntheticDataset):
    """Licence-plate scenes: random strings rendered with a TrueType font (CCPD stand-in)."""

    summary = "synthetic licence plates: random strings in a TrueType font on a warped plate (CCPD stand-in)"
    provides = "text: plate string (list[str]); bbox: plate box x1,y1,x2,y2 in pixels (int64 N×4)"
    params = (
        Param("n", int, 100, "number of images", low=1),
        Param("length", int, 7, "characters per plate (2 letters + alphanumerics)", low=5, high=8),
        SIZE_PARAM, SEED_PARAM, SUBSET_PARAM,
    )

    def build(self) -> ImageSet:
        p = self.params
        items = generate_items(functools.partial(_plate_item, p["seed"], p["subset"], p["size"], p["length"]),
                               p["n"])
        images = [image for image, _, _ in items]
        texts = [text for _, text, _ in items]
        boxes = [bbox for _, _, bbox in items]
        return self._imageset(images, {"text": texts, "bbox": torch.tensor(boxes, dtype=torch.int64)},
                              alphabet=PLATE_ALPHABET, length=p["length"])


# ----------------------------------------------------------------------------------------------------
# synth-pedestrians: coarse and fine binary attributes
# ----------------------------------------------------------------------------------------------------

#: Attribute order of the ``attributes`` label (coarse ones first, then fine ones).
PEDESTRIAN_ATTRIBUTES = ("upper_red", "upper_dark", "lower_dark", "long_lower", "long_hair",
                         "hat", "glasses", "bag_strap", "backpack", "logo", "short_sleeves")
#: Attributes carried by thin or small marks (1-3 px at 64 px): the ones a blur should destroy first.
FINE_ATTRIBUTES = ("hat", "glasses", "bag_strap", "backpack", "logo", "short_sleeves")
_PREVALENCE = {"lower_dark": 0.5, "long_lower": 0.6, "long_hair": 0.4, "hat": 0.3, "glasses": 0.35,
               "bag_strap": 0.35, "backpack": 0.3, "logo": 0.4, "short_sleeves": 0.4}
DARK_CLOTHES = ((25, 25, 28), (30, 35, 70), (55, 55, 58), (60, 40, 28), (30, 50, 35))
LIGHT_CLOTHES = ((230, 230, 225), (150, 190, 230), (230, 210, 90), (120, 190, 120), (190, 190, 195),
                 (230, 160, 190), (200, 170, 130))
RED_CLOTHES = ((200, 30, 35), (220, 50, 40), (180, 20, 50))


def _pedestrian_attributes(rng: np.random.Generator) -> dict[str, bool]:
    upper = rng.choice(3, p=[0.3, 0.35, 0.35])  # red, dark, light
    attrs = {"upper_red": upper == 0, "upper_dark": upper == 1}
    for name in PEDESTRIAN_ATTRIBUTES[2:]:
        attrs[name] = bool(rng.random() < _PREVALENCE[name])
    return {k: bool(v) for k, v in attrs.items()}


class _PedestrianPainter:
    """Draws a front-facing standing figure; body geometry in units of the figure height ``h``."""

    def __init__(self, rng: np.random.Generator, attrs: dict[str, bool], img: Image.Image) -> None:
        self.rng, self.at, self.img = rng, attrs, img
        self.draw = ImageDraw.Draw(img)
        c = img.size[0]
        self.h = c * rng.uniform(0.78, 0.95)
        self.x0 = c / 2 + rng.uniform(-0.09, 0.09) * c
        self.y0 = c * rng.uniform(0.97, 1.0) - self.h  # top of the head
        self.skin = _rgb(_jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 0.1))
        self.hair = _rgb(_jitter(rng, HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 0.1))
        palette = LIGHT_CLOTHES
        if attrs["upper_red"] or attrs["upper_dark"]:
            palette = RED_CLOTHES if attrs["upper_red"] else DARK_CLOTHES
        self.upper = _rgb(_jitter(rng, palette[rng.integers(len(palette))], 0.08))
        palette = DARK_CLOTHES if attrs["lower_dark"] else LIGHT_CLOTHES
        self.lower = _rgb(_jitter(rng, palette[rng.integers(len(palette))], 0.08))
        self.arm_swing = rng.uniform(-0.05, 0.1)
        self.leg_spread = rng.uniform(0.0, 0.05)

    def p(self, fx: float, fy: float) -> tuple[float, float]:
        """Figure units (x relative to the body axis, y from the top of the head) to canvas pixels."""
        return self.x0 + fx * self.h, self.y0 + fy * self.h

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        (ax, ay), (bx, by) = self.p(x0, y0), self.p(x1, y1)
        return [min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)]

    def width(self, fraction: float) -> int:
        return max(1, round(fraction * self.h))

    def limb(self, a: tuple[float, float], b: tuple[float, float], w: float, colour) -> None:
        self.draw.line([self.p(*a), self.p(*b)], fill=colour, width=self.width(w), joint="curve")

    def backpack(self) -> None:
        pack = _rgb(_jitter(self.rng, DARK_CLOTHES[self.rng.integers(len(DARK_CLOTHES))], 0.1))
        self.draw.rounded_rectangle(self.box(-0.16, 0.18, 0.16, 0.44), radius=0.03 * self.h, fill=pack)
        self.pack = pack

    def long_hair(self) -> None:
        self.draw.rounded_rectangle(self.box(-0.075, 0.03, 0.075, 0.27), radius=0.04 * self.h, fill=self.hair)

    def legs(self) -> None:
        at, s = self.at, self.leg_spread
        for side in (-1, 1):
            hip, ankle = (side * 0.045, 0.5), (side * (0.05 + s), 0.96)
            knee = (side * (0.048 + s / 2), 0.73)
            self.limb(hip, ankle, 0.075, self.skin)
            self.limb(hip, ankle if at["long_lower"] else knee, 0.08, self.lower)
            self.draw.ellipse(self.box(ankle[0] - 0.04, 0.95, ankle[0] + 0.04, 0.99), fill=(30, 28, 28))

    def torso(self) -> None:
        pts = [self.p(-0.12, 0.17), self.p(0.12, 0.17), self.p(0.1, 0.52), self.p(-0.1, 0.52)]
        self.draw.polygon(pts, fill=self.upper)
        self.draw.rectangle(self.box(-0.1, 0.48, 0.1, 0.54), fill=self.lower)

    def arms(self) -> None:
        for side in (-1, 1):
            shoulder = (side * 0.12, 0.19)
            elbow = (side * (0.15 + self.arm_swing / 3), 0.34)
            hand = (side * (0.15 + self.arm_swing), 0.49)
            self.limb(shoulder, elbow, 0.06, self.upper)
            self.limb(elbow, hand, 0.05, self.skin if self.at["short_sleeves"] else self.upper)
            if self.at["short_sleeves"]:  # the sleeve ends half-way down the upper arm
                mid = ((shoulder[0] + elbow[0]) / 2, (shoulder[1] + elbow[1]) / 2)
                self.limb(mid, elbow, 0.05, self.skin)
            self.draw.ellipse(self.box(hand[0] - 0.025, hand[1] - 0.01, hand[0] + 0.025, hand[1] + 0.04),
                              fill=self.skin)

    def head(self) -> None:
        self.draw.rectangle(self.box(-0.025, 0.11, 0.025, 0.18), fill=self.skin)
        self.draw.ellipse(self.box(-0.055, 0.02, 0.055, 0.14), fill=self.skin)
        if not self.at["hat"]:
            self.draw.chord(self.box(-0.06, 0.01, 0.06, 0.1), 180, 360, fill=self.hair)

    def hat(self) -> None:
        colour = _rgb(self.rng.uniform(20, 230, 3))
        self.draw.rounded_rectangle(self.box(-0.058, -0.005, 0.058, 0.055), radius=0.02 * self.h, fill=colour)
        self.limb((-0.095, 0.055), (0.095, 0.055), 0.012, colour)  # thin brim

    def glasses(self) -> None:
        dark = (20, 20, 24)
        for side in (-1, 1):
            self.draw.rectangle(self.box(side * 0.03 - 0.018, 0.066, side * 0.03 + 0.018, 0.085), fill=dark)
        self.limb((-0.05, 0.072), (0.05, 0.072), 0.008, dark)

    def bag_strap(self) -> None:
        side = 1 if self.rng.random() < 0.5 else -1
        strap = _rgb(self.rng.uniform(10, 120, 3))
        self.limb((-side * 0.09, 0.18), (side * 0.11, 0.47), 0.014, strap)
        self.draw.rectangle(self.box(side * 0.1, 0.44, side * 0.1 + side * 0.08, 0.55), fill=strap)

    def straps(self) -> None:
        for side in (-1, 1):
            self.limb((side * 0.075, 0.17), (side * 0.07, 0.36), 0.016, self.pack)

    def logo(self) -> None:
        colour = _rgb(255 - np.array(self.upper) * self.rng.uniform(0.6, 1.0))
        x, y, r = self.rng.uniform(-0.04, 0.04), self.rng.uniform(0.25, 0.3), 0.022
        if self.rng.random() < 0.5:
            self.draw.ellipse(self.box(x - r, y - r, x + r, y + r), fill=colour)
        else:
            self.draw.rectangle(self.box(x - r, y - r, x + r, y + r), fill=colour)

    def paint(self) -> None:
        at = self.at
        if at["backpack"]:
            self.backpack()
        if at["long_hair"]:
            self.long_hair()
        self.legs()
        self.torso()
        self.arms()
        self.head()
        if at["backpack"]:
            self.straps()
        if at["logo"]:
            self.logo()
        if at["bag_strap"]:
            self.bag_strap()
        if at["glasses"]:
            self.glasses()
        if at["hat"]:
            self.hat()


def _street_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Street-like clutter: ground plane, building blocks and windows on a textured gradient."""
    img = Image.fromarray(np.clip(_background(rng, size, texture=15), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        x0, w = rng.uniform(-0.2, 1.0) * size, rng.uniform(0.15, 0.5) * size
        top = rng.uniform(0.0, 0.5) * size
        tone = _rgb(rng.uniform(60, 210, 3))
        draw.rectangle([x0, top, x0 + w, size], fill=tone)
        for _ in range(int(rng.integers(0, 5))):
            wx, wy = x0 + rng.uniform(0.1, 0.8) * w, top + rng.uniform(0.05, 0.5) * size
            draw.rectangle([wx, wy, wx + 0.05 * size, wy + 0.07 * size], fill=_rgb(np.array(tone) * 0.6))
    ground = rng.uniform(0.7, 0.85) * size
    draw.rectangle([0, ground, size, size], fill=_rgb(rng.uniform(70, 170) * rng.uniform(0.9, 1.1, 3)))
    return np.asarray(img, dtype=np.float32)


def _pedestrian_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, bool]]:
    attrs = _pedestrian_attributes(rng)
    scale = _supersample(size)
    img = _canvas(_street_background(rng, size), scale)
    _PedestrianPainter(rng, attrs, img).paint()
    return _finish(rng, _downsample(img, size), light=0.35, noise=rng.uniform(2, 5)), attrs


def _pedestrian_item(seed: int, subset: str, size: int, i: int) -> tuple[np.ndarray, dict[str, bool]]:
    return _pedestrian_image(_rng(seed, PEDESTRIAN_KIND, subset, i), size)


@DATASETS.register("synth-pedestrians")
class SyntheticPedestrians(_SyntheticDataset):
    """Standing figures with coarse and fine binary attributes (PA-100K stand-in)."""

    summary = "synthetic pedestrians: 11 binary attributes, coarse (colours) and fine (glasses, brim, strap)"
    provides = "attributes: uint8 N×11 binary matrix, columns in meta attribute_names"
    params = (Param("n", int, 200, "number of images", low=1), SIZE_PARAM, SEED_PARAM, SUBSET_PARAM)

    def build(self) -> ImageSet:
        p = self.params
        items = generate_items(functools.partial(_pedestrian_item, p["seed"], p["subset"], p["size"]), p["n"])
        images = [image for image, _ in items]
        rows = [[int(attrs[name]) for name in PEDESTRIAN_ATTRIBUTES] for _, attrs in items]
        return self._imageset(images, {"attributes": torch.tensor(rows, dtype=torch.uint8)},
                              attribute_names=list(PEDESTRIAN_ATTRIBUTES),
                              fine_attributes=list(FINE_ATTRIBUTES))


# ----------------------------------------------------------------------------------------------------
# Preview contact sheet
# ----------------------------------------------------------------------------------------------------

_ATTR_CODES = {"hat": "H", "glasses": "G", "bag_strap": "S", "backpack": "B", "logo": "L",
               "short_sleeves": "s", "long_hair": "h", "long_lower": "t"}


def _preview_rows(seed: int, size: int) -> list[tuple[ImageSet, list[str]]]:
    scenes = SyntheticScenes(n=8, seed=seed, size=size).build()
    faces = SyntheticFaces(identities=2, per_identity=4, seed=seed, size=size).build()
    plates = SyntheticPlates(n=8, seed=seed, size=size).build()
    peds = SyntheticPedestrians(n=8, seed=seed, size=size).build()
    codes = [(PEDESTRIAN_ATTRIBUTES.index(name), code) for name, code in _ATTR_CODES.items()]
    rows = peds.labels["attributes"].tolist()
    ped_captions = ["".join(code for k, code in codes if row[k]) for row in rows]
    return [
        (scenes, [scenes.meta["classes"][i] for i in scenes.labels["label"].tolist()]),
        (faces, [f"id {i}" for i in faces.labels["identity"].tolist()]),
        (plates, list(plates.labels["text"])),
        (peds, ped_captions),
    ]


def preview(path: str | Path, seed: int = 0, blur: float = 0.0, size: int = 64, zoom: int = 3) -> Path:
    """Write a PNG contact sheet: 8 scenes, faces (2 identities × 4), 8 plates, 8 pedestrians.

    ``blur`` > 0 applies ``PIL.ImageFilter.GaussianBlur(blur)`` (in output pixels) to every image first —
    use it to check that plate characters and face details vanish while scene shapes remain. Captions:
    scene class, global identity id, plate string, and pedestrian attribute codes (H hat, G glasses,
    S bag strap, B backpack, L logo, s short sleeves, h long hair, t long trousers).
    """
    rows = _preview_rows(seed, size)
    tile, caption, gap = size * zoom, 14, 4
    width, height = 8 * (tile + gap) + gap, len(rows) * (tile + caption + gap) + gap
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.truetype(str(FONT_PATH.with_name("DejaVuSans.ttf")), 11)
    for r, (images, captions) in enumerate(rows):
        for k in range(min(8, len(images))):
            img = Image.fromarray(images.images[k].permute(1, 2, 0).numpy())
            if blur > 0:
                img = img.filter(ImageFilter.GaussianBlur(blur))
            x, y = gap + k * (tile + gap), gap + r * (tile + caption + gap)
            sheet.paste(img.resize((tile, tile), Image.Resampling.NEAREST), (x, y))
            draw.text((x, y + tile), captions[k], fill=(0, 0, 0), font=font)
    path = Path(path)
    sheet.save(path)
    return path
