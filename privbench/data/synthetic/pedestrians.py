"""``synth-pedestrians``: pedestrian attributes (PA-100K stand-in).

A standing figure with 11 binary attributes, a mix of coarse ones (clothing colours, trousers vs shorts,
long hair) and fine ones (thin hat brim, glasses, a thin bag strap, a small chest logo, ...). Skin and hair
colours come from the face palettes (:mod:`privbench.data.synthetic.faces`).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image, ImageDraw

from privbench.data.base import SEED_PARAM, SIZE_PARAM, ImageSet
from privbench.data.synthetic.common import (
    PEDESTRIAN_KIND,
    SUBSET_PARAM,
    _background,
    _canvas,
    _downsample,
    _finish,
    _jitter,
    _rgb,
    _rng,
    _supersample,
    _SyntheticDataset,
    generate_items,
)
from privbench.data.synthetic.faces import HAIR_COLOURS, SKIN_TONES
from privbench.registry import DATASETS, Param

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
