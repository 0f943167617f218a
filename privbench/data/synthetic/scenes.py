"""``synth-scenes``: the utility task (10-way image classification).

A class is a **coarse** layout (a disc, a ring, stripes, a star, ...) with random position, scale, colour,
background texture and clutter, so it survives a Gaussian blur of σ≈1.5 px. Utility is meant to be robust
to the defenses that destroy the private details of the other families (faces, plates, pedestrians).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw

from privbench.data.base import SEED_PARAM, SIZE_PARAM, ImageSet
from privbench.data.synthetic.common import (
    SCENE_KIND,
    SUBSET_PARAM,
    _background,
    _downsample,
    _finish,
    _rgb,
    _rng,
    _rotate,
    _smooth_field,
    _supersample,
    _SyntheticDataset,
    generate_items,
)
from privbench.registry import DATASETS, Param

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
