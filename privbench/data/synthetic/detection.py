"""``synth-detection``: street scenes for object detection, with faces and licence plates inside the objects.

The scene. A street background (:func:`~privbench.data.synthetic.pedestrians._street_background`: sky/wall
gradient, building blocks with windows, a ground plane) with

- 1..``persons`` **people** (class 1): a drawn body (shirt, arms, trousers, shoes) under a **face**, which
  is a ``synth-faces`` image of ``face_size`` px rendered by exactly the ``synth-faces`` renderer for
  identity k of this subset and seed (same identity derivation, so identity k here is identity k of
  ``synth-faces`` with that subset, seed and size; the identities are therefore disjoint from the
  ``synth-faces`` ``train`` subset, on which the built-in face recognizer is trained). Every appearance
  draws a fresh pose, expression and lighting, as ``synth-faces`` does for its ``per_identity`` images.
  The torso takes the colour of the shirt at the bottom of the face image, so the two join up;
- 0..``cars`` **cars** (class 2), seen from behind: a ``synth-plates`` image of ``car_size`` px (the rear
  panel with its licence plate of ``length`` characters) inside a drawn car body (roof, rear window, tail
  lights, wheels) whose colours are sampled from that panel;
- ``distractors`` unlabelled street furniture (sign posts with a shape on them, trees, bins, lamp posts),
  drawn *behind* the objects, so they never cover a face, a plate or a body.

Objects never overlap (1 px apart at least) and lie inside the image; they are placed by rejection sampling
with their feet/wheels on the lower part of the image. The first person of a scene always fits (it is
placed on the empty scene); any further object for which no free spot is found is left out, so a scene
holds fewer objects than its drawn counts when the image is crowded.

Native resolution. Bodies, cars and distractors are drawn on a supersampled canvas, downsampled and lit
(:func:`~privbench.data.synthetic.common._finish`); only then are the face and plate images pasted, at
integer coordinates and without resampling. The crop of a car box's plate square is therefore the
``synth-plates`` image itself, pixel for pixel. The crop of a face box equals the ``synth-faces`` image
everywhere except its four outer corners, which are blended into the scene with a rounded-square mask
(:func:`face_mask`: corner radius 0.3 × ``face_size``, a 3 px linear fade; inside it, weight 1 exactly),
so that the face's own background does not show as a hard square.

The private information. A detector (the utility task) only needs to find people and cars, but a
reconstruction of the scene carries who the people are (face-id on the face crops, with the ``synth-faces``
recognizer) and what the plates say (plate recognition on the plate crops, with the ``synth-plates``
recognizer). ``meta["crops"]`` declares those two crop views: the label field holding the crop boxes, the
family and size whose recognizer reads them, the label fields mapped onto that family's fields, and that
family's meta.

Identities. Each identity appears in at least two scenes (a gallery and a probe image for face-id): the
first person of scene i is identity ``perm_c[i mod identities]`` with ``c = i // identities`` and
``perm_c`` a random permutation per cycle, further people are other random identities. The set uses
``min(identities, n // 2)`` identities (at least one), so the guarantee holds whenever ``n >= 2``;
``meta`` and the crop view report the number actually used.

Labels (one entry per scene): ``boxes`` float32 K×4 xyxy pixels (x2/y2 exclusive: a w×h patch pasted at
(x, y) has box [x, y, x+w, y+h]), people first, then cars; ``classes`` int64 K (1 person, 2 car; 0 is
background); ``face_boxes`` float32 M×4 (the pasted face squares, one per person, in the order of the
people), ``face_identity`` int64 M (global id = subset offset + k), ``face_label`` int64 M (k);
``car_boxes`` float32 P×4 (the pasted plate-image squares, in the order of the cars), ``plate_text``
list of P str, ``plate_bbox`` int64 P×4 (the plate inside its crop, as ``synth-plates``' ``bbox``).

Determinism. A scene is a pure function of (seed, subset, index, parameters): its layout, each face's
pose and each plate come from their own RNG streams of the ``synth-detection`` kind, and the identities
from the ``synth-faces`` identity streams. A prefix of a larger set equals the smaller set as long as both
use the same number of identities.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from privbench.data.base import SEED_PARAM, ImageSet
from privbench.data.synthetic.common import (
    _IDENTITY_STREAM,
    FACE_KIND,
    IDENTITY_OFFSETS,
    SUBSET_PARAM,
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
from privbench.data.synthetic.faces import SKIN_TONES, FaceIdentity, _face_identity, _face_image
from privbench.data.synthetic.pedestrians import DARK_CLOTHES, LIGHT_CLOTHES, _street_background
from privbench.data.synthetic.plates import PLATE_ALPHABET, _plate_image, random_plate_text
from privbench.data.synthetic.scenes import _SCENE_DRAWERS
from privbench.errors import PrivbenchError
from privbench.registry import DATASETS, Param

#: RNG kind of synth-detection (the other synthetic kinds are 11..14, in ``common``)
DETECTION_KIND = 15
# Streams inside the kind; every seed list is [seed, kind, subset, stream, a, b] (same length throughout).
_LAYOUT_STREAM, _CAST_STREAM, _FACE_STREAM, _PLATE_STREAM = 0, 1, 2, 3

DETECTION_CLASSES = ("background", "person", "car")
PERSON, CAR = 1, 2

# Object feet / wheels stand on the lowest (1 - _GROUND) of the image.
_GROUND = 0.72
# Free pixels kept between two objects, and placement attempts per object.
_GAP, _TRIES = 1, 40


# --- geometry (output pixels) ------------------------------------------------------------------------

def person_extent(face_size: int) -> tuple[int, int]:
    """Width and height of a person's box: the face square on top, then torso and legs."""
    width = face_size + 2 * max(1, round(0.06 * face_size))
    return width, face_size + round(0.9 * face_size) + round(0.85 * face_size)


@dataclasses.dataclass(frozen=True)
class _CarLayout:
    """Vertical bands of a car seen from behind (pixels from the top of its box) and its width."""

    width: int
    cabin: int  # roof and rear window; the plate image starts below it
    panel: int  # the pasted plate image (car_size)
    sill: int  # body below the panel
    wheels: int

    @property
    def height(self) -> int:
        return self.cabin + self.panel + self.sill + self.wheels


def car_layout(car_size: int) -> _CarLayout:
    return _CarLayout(width=round(1.6 * car_size), cabin=round(0.4 * car_size), panel=car_size,
                      sill=max(1, round(0.1 * car_size)), wheels=max(2, round(0.16 * car_size)))


def face_square(person_box: tuple[int, int, int, int], face_size: int) -> tuple[int, int, int, int]:
    """The pasted face square of a person box: centred, at the top."""
    x0, y0, x1, _ = person_box
    left = x0 + (x1 - x0 - face_size) // 2
    return left, y0, left + face_size, y0 + face_size


def panel_square(car_box: tuple[int, int, int, int], car_size: int) -> tuple[int, int, int, int]:
    """The pasted plate-image square of a car box: centred, below the cabin."""
    x0, y0, x1, _ = car_box
    left, top = x0 + (x1 - x0 - car_size) // 2, y0 + car_layout(car_size).cabin
    return left, top, left + car_size, top + car_size


@functools.lru_cache(maxsize=16)
def face_mask(face_size: int) -> np.ndarray:
    """Paste weights of a face image, f×f float32: 1 except in the four outer corners.

    The kept region is a rounded square of corner radius 0.3 f; the weight falls linearly to 0 over 3 px
    outside it, so the face image's own background corners fade into the scene.
    """
    radius, fade = 0.3 * face_size, 3.0
    u = np.arange(face_size, dtype=np.float32) + 0.5
    # distance past the corner circle's centre along each axis (0 outside the corner bands)
    dx = np.maximum(0, np.maximum(radius - u, u - (face_size - radius)))
    dist = np.hypot(dx[None, :], dx[:, None])
    mask = np.clip((radius - dist) / fade, 0, 1).astype(np.float32)
    mask[dist <= radius - fade] = 1.0
    mask.flags.writeable = False
    return mask


# --- who is in a scene ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _SceneSpec:
    """Everything a scene depends on besides its index (picklable, for the worker processes)."""

    seed: int
    subset: str
    size: int
    identities: int  # as used: min(requested, n // 2), at least 1
    persons: int
    cars: int
    distractors: int
    face_size: int
    car_size: int
    length: int

    @property
    def offset(self) -> int:
        return IDENTITY_OFFSETS[self.subset]


def effective_identities(requested: int, n: int) -> int:
    """Identities a set of n scenes uses: at most n // 2, so that each one appears in two scenes."""
    return max(1, min(requested, n // 2))


def _scene_cast(spec: _SceneSpec, index: int, rng: np.random.Generator) -> list[int]:
    """Identity indices (0..identities-1, distinct) of the people of scene ``index``; the first always fits.

    The first is the scene's slot in a shuffled cycle through all identities (so each identity leads at
    least ``n // identities`` scenes); the others are random further identities.
    """
    cycle, slot = divmod(index, spec.identities)
    first = int(_rng(spec.seed, DETECTION_KIND, spec.subset, _CAST_STREAM, cycle, 0).permutation(spec.identities)[slot])
    extra = min(int(rng.integers(0, spec.persons)), spec.identities - 1)
    others = rng.choice(spec.identities - 1, size=extra, replace=False)
    return [first] + [int(k) + (k >= first) for k in others]


def scene_identity(seed: int, subset: str, face_size: int, k: int) -> FaceIdentity:
    """Identity k of a subset: the same person as ``synth-faces`` identity k (same seed, subset, size)."""
    gid = IDENTITY_OFFSETS[subset] + k
    return _face_identity(_rng(seed, FACE_KIND, subset, _IDENTITY_STREAM, gid, 0), face_size)


def scene_face(seed: int, subset: str, face_size: int, k: int, index: int, person: int) -> np.ndarray:
    """The face image (uint8 f×f×3) of the ``person``-th person of scene ``index``, who is identity k."""
    rng = _rng(seed, DETECTION_KIND, subset, _FACE_STREAM, index, person)
    return _face_image(scene_identity(seed, subset, face_size, k), rng, face_size)


def scene_plate(seed: int, subset: str, car_size: int, length: int, index: int, car: int,
                ) -> tuple[np.ndarray, str, list[int]]:
    """The plate image, its text and its plate bbox of the ``car``-th car of scene ``index``."""
    rng = _rng(seed, DETECTION_KIND, subset, _PLATE_STREAM, index, car)
    text = random_plate_text(rng, length)
    image, bbox = _plate_image(rng, text, car_size)
    return image, text, bbox


# --- placement -----------------------------------------------------------------------------------------

Box = tuple[int, int, int, int]


def _overlaps(a: Box, b: Box, gap: int = _GAP) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def _place(rng: np.random.Generator, width: int, height: int, size: int, taken: list[Box]) -> Box | None:
    """A free box of width×height standing on the ground (rejection sampling), or None after _TRIES draws."""
    low = min(size, max(height, round(_GROUND * size)))
    for _ in range(_TRIES):
        x, bottom = int(rng.integers(0, size - width + 1)), int(rng.integers(low, size + 1))
        box = (x, bottom - height, x + width, bottom)
        if not any(_overlaps(box, other) for other in taken):
            return box
    return None


def _layout(rng: np.random.Generator, spec: _SceneSpec, cast: list[int], cars: int,
            ) -> tuple[list[tuple[Box, int]], list[Box]]:
    """Boxes of the people (with their identity) and of the cars; the first person is placed first."""
    person_w, person_h = person_extent(spec.face_size)
    car = car_layout(spec.car_size)
    wanted = [("person", k) for k in cast[1:]] + [("car", -1)] * cars
    order = [("person", cast[0])] + [wanted[j] for j in rng.permutation(len(wanted))]
    taken: list[Box] = []
    people, vehicles = [], []
    for kind, k in order:
        w, h = (person_w, person_h) if kind == "person" else (car.width, car.height)
        box = _place(rng, w, h, spec.size, taken)
        if box is None:
            continue
        taken.append(box)
        if kind == "person":
            people.append((box, k))
        else:
            vehicles.append(box)
    return people, vehicles


# --- drawing (on the supersampled canvas; ``s`` = canvas pixels per output pixel) ----------------------

def _draw_person(draw: ImageDraw.ImageDraw, rng: np.random.Generator, box: Box, face_size: int,
                 shirt: tuple[int, int, int], s: int) -> None:
    """Torso, arms, hands, legs and shoes below the face square (which is pasted later)."""
    f = face_size * s
    cx, top, bottom = (box[0] + box[2]) / 2 * s, box[1] * s + f, box[3] * s
    waist = top + 0.9 * f
    skin = _rgb(_jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 0.08))
    palette = DARK_CLOTHES if rng.random() < 0.5 else LIGHT_CLOTHES
    trousers = _rgb(_jitter(rng, palette[rng.integers(len(palette))], 0.08))
    sleeve = 0.14 * f
    for side in (-1, 1):  # legs (with shoes), then arms behind the torso's edge
        x_in, x_out = cx + side * 0.03 * f, cx + side * 0.31 * f
        draw.rectangle([min(x_in, x_out), waist - 0.05 * f, max(x_in, x_out), bottom - 0.09 * f], fill=trousers)
        draw.ellipse([min(x_in, x_out) - 0.02 * f, bottom - 0.13 * f, max(x_in, x_out) + 0.02 * f, bottom - 1],
                     fill=(28, 26, 26))
        hand = (cx + side * 0.45 * f, top + 0.78 * f)
        draw.line([(cx + side * 0.38 * f, top + 0.02 * f), hand], fill=shirt, width=max(1, round(sleeve)))
        r = 0.07 * f
        draw.ellipse([hand[0] - r, hand[1] - r, hand[0] + r, hand[1] + 1.3 * r], fill=skin)
    draw.polygon([(cx - 0.42 * f, top - 0.1 * f), (cx + 0.42 * f, top - 0.1 * f), (cx + 0.34 * f, waist),
                  (cx - 0.34 * f, waist)], fill=shirt)


def _draw_car(draw: ImageDraw.ImageDraw, rng: np.random.Generator, box: Box, car_size: int,
              body: tuple[int, int, int], bumper: tuple[int, int, int], s: int) -> None:
    """Wheels, body, bumper, tail lights, cabin and rear window around the panel (pasted later)."""
    lay = car_layout(car_size)
    x0, y0, x1, y1 = (v * s for v in box)
    w = x1 - x0
    panel_top, sill = y0 + lay.cabin * s, y0 + (lay.cabin + lay.panel + lay.sill) * s
    tyre = (24, 24, 26)
    for a, b in ((0.05, 0.27), (0.73, 0.95)):
        draw.rounded_rectangle([x0 + a * w, sill - 2 * s, x0 + b * w, y1 - 1], radius=0.04 * w, fill=tyre)
    draw.rounded_rectangle([x0, panel_top - 0.08 * lay.panel * s, x1 - 1, sill], radius=0.07 * w, fill=body)
    draw.rectangle([x0, sill - 0.45 * lay.sill * s - 0.12 * lay.panel * s, x1 - 1, sill], fill=bumper)
    light = _rgb(rng.choice([[215, 40, 35], [235, 90, 40], [190, 25, 45]]))
    for a, b in ((0.02, 0.15), (0.85, 0.98)):
        draw.rectangle([x0 + a * w, panel_top + 0.1 * lay.panel * s, x0 + b * w, panel_top + 0.3 * lay.panel * s],
                       fill=light)
    draw.polygon([(x0 + 0.2 * w, y0), (x0 + 0.8 * w, y0), (x0 + 0.93 * w, panel_top), (x0 + 0.07 * w, panel_top)],
                 fill=body)
    glass = _rgb(_jitter(rng, (70, 84, 100), 0.2))
    inset = 0.18 * lay.cabin * s
    draw.polygon([(x0 + 0.25 * w, y0 + inset), (x0 + 0.75 * w, y0 + inset), (x0 + 0.85 * w, panel_top - inset / 2),
                  (x0 + 0.15 * w, panel_top - inset / 2)], fill=glass)


def _draw_sign(draw: ImageDraw.ImageDraw, rng: np.random.Generator, img: Image.Image, x: float, bottom: float,
               h: float) -> None:
    """A post carrying one of the synth-scenes shapes (disc, star, cross, ...) in a sign colour."""
    draw.line([(x, bottom), (x, bottom - h)], fill=_rgb(_jitter(rng, (120, 120, 125), 0.2)),
              width=max(1, round(0.03 * h)))
    mask = Image.new("L", img.size, 0)
    shape = list(_SCENE_DRAWERS.values())[rng.integers(len(_SCENE_DRAWERS))]
    shape(ImageDraw.Draw(mask), rng, (x, bottom - h), 0.18 * h, rng.uniform(0, 2 * math.pi))
    colour = _rgb(rng.choice([[200, 30, 30], [240, 200, 40], [30, 80, 170], [240, 240, 240], [30, 140, 60]]))
    img.paste(colour, (0, 0), mask)


def _draw_tree(draw: ImageDraw.ImageDraw, rng: np.random.Generator, img: Image.Image, x: float, bottom: float,
               h: float) -> None:
    """A brown trunk under a canopy of a few green blobs."""
    draw.line([(x, bottom), (x, bottom - 0.55 * h)], fill=_rgb(_jitter(rng, (96, 66, 40), 0.15)),
              width=max(1, round(0.07 * h)))
    green = _jitter(rng, (60, 120, 50), 0.25)
    for _ in range(int(rng.integers(3, 6))):
        cx, cy = x + rng.uniform(-0.18, 0.18) * h, bottom - h + rng.uniform(0.15, 0.4) * h
        r = rng.uniform(0.14, 0.24) * h
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_rgb(green * rng.uniform(0.8, 1.15)))


def _draw_bin(draw: ImageDraw.ImageDraw, rng: np.random.Generator, img: Image.Image, x: float, bottom: float,
              h: float) -> None:
    """A squat rounded bin with a lid (height ~ a car's, width ~ a person's)."""
    h *= 0.45
    colour = _rgb(rng.uniform(30, 200, 3))
    draw.rounded_rectangle([x - 0.3 * h, bottom - h, x + 0.3 * h, bottom], radius=0.08 * h, fill=colour)
    draw.rectangle([x - 0.36 * h, bottom - h, x + 0.36 * h, bottom - 0.88 * h], fill=_rgb(np.array(colour) * 0.6))


def _draw_lamp(draw: ImageDraw.ImageDraw, rng: np.random.Generator, img: Image.Image, x: float, bottom: float,
               h: float) -> None:
    """A tall thin post with an arm and a lamp head."""
    grey = _rgb(_jitter(rng, (70, 72, 78), 0.3))
    top, side = bottom - 1.3 * h, 1 if rng.random() < 0.5 else -1
    width = max(1, round(0.025 * h))
    draw.line([(x, bottom), (x, top)], fill=grey, width=width)
    draw.line([(x, top), (x + side * 0.2 * h, top)], fill=grey, width=width)
    lx = x + side * 0.2 * h
    draw.ellipse([lx - 0.06 * h, top, lx + 0.06 * h, top + 0.07 * h], fill=(250, 240, 190))


_DISTRACTORS = (_draw_sign, _draw_tree, _draw_bin, _draw_lamp)


def _draw_distractors(rng: np.random.Generator, img: Image.Image, count: int, size: int, s: int) -> None:
    """``count`` pieces of street furniture anywhere on the ground (drawn before, i.e. behind, the objects)."""
    draw = ImageDraw.Draw(img)
    for _ in range(count):
        paint = _DISTRACTORS[rng.integers(len(_DISTRACTORS))]
        h = rng.uniform(0.3, 0.6) * size * s
        paint(draw, rng, img, rng.uniform(0.03, 0.97) * size * s, rng.uniform(0.6, 1.0) * size * s, h)


# --- colours sampled from the pasted images ------------------------------------------------------------

def _shirt_colour(face: np.ndarray) -> tuple[int, int, int]:
    """The shirt at the bottom centre of a face image, so the drawn torso continues it."""
    f = face.shape[0]
    return _rgb(np.median(face[-2:, int(0.38 * f):int(0.62 * f) + 1].reshape(-1, 3), axis=0))


def _panel_colours(panel: np.ndarray, bbox: list[int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(body, bumper) colours of a plate image: the rear panel beside and above the plate, and below it."""
    size = panel.shape[0]
    above = panel[:max(1, bbox[1])]
    sides = np.concatenate([above[:, :max(1, size // 5)], above[:, -max(1, size // 5):]], axis=1)
    below = panel[min(size - 1, bbox[3]):]
    return (_rgb(np.median(sides.reshape(-1, 3), axis=0)), _rgb(np.median(below.reshape(-1, 3), axis=0)))


# --- one scene -----------------------------------------------------------------------------------------

def _paste(image: np.ndarray, patch: np.ndarray, left: int, top: int, mask: np.ndarray | None = None) -> None:
    """Paste a uint8 patch at integer (left, top), exactly where ``mask`` is 1 (or everywhere without one)."""
    h, w = patch.shape[:2]
    region = image[top:top + h, left:left + w]
    if mask is None:
        region[:] = patch
        return
    blend = region.astype(np.float32) + (patch.astype(np.float32) - region) * mask[..., None]
    region[:] = np.where(mask[..., None] == 1, patch, np.clip(blend + 0.5, 0, 255).astype(np.uint8))


def _scene_item(spec: _SceneSpec, index: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Scene ``index``: the image (uint8 H×W×3) and its labels as plain lists (see the module docstring)."""
    rng = _rng(spec.seed, DETECTION_KIND, spec.subset, _LAYOUT_STREAM, index, 0)
    cast = _scene_cast(spec, index, rng)
    people, cars = _layout(rng, spec, cast, int(rng.integers(0, spec.cars + 1)))
    faces = [scene_face(spec.seed, spec.subset, spec.face_size, k, index, m) for m, (_, k) in enumerate(people)]
    plates = [scene_plate(spec.seed, spec.subset, spec.car_size, spec.length, index, m) for m in range(len(cars))]

    scale = max(2, _supersample(spec.size))
    canvas = _canvas(_street_background(rng, spec.size), scale)
    _draw_distractors(rng, canvas, spec.distractors, spec.size, scale)
    draw = ImageDraw.Draw(canvas)
    for (box, _), face in zip(people, faces, strict=True):
        _draw_person(draw, rng, box, spec.face_size, _shirt_colour(face), scale)
    for box, (panel, _, bbox) in zip(cars, plates, strict=True):
        _draw_car(draw, rng, box, spec.car_size, *_panel_colours(panel, bbox), scale)
    image = _finish(rng, _downsample(canvas, spec.size), light=0.3, noise=rng.uniform(2, 5))

    face_boxes = [face_square(box, spec.face_size) for box, _ in people]
    for (left, top, _, _), face in zip(face_boxes, faces, strict=True):
        _paste(image, face, left, top, face_mask(spec.face_size))
    car_boxes = [panel_square(box, spec.car_size) for box in cars]
    for (left, top, _, _), (panel, _, _) in zip(car_boxes, plates, strict=True):
        _paste(image, panel, left, top)
    labels = {"boxes": [box for box, _ in people] + cars, "classes": [PERSON] * len(people) + [CAR] * len(cars),
              "face_boxes": face_boxes, "face_label": [k for _, k in people],
              "car_boxes": car_boxes, "plate_text": [text for _, text, _ in plates],
              "plate_bbox": [bbox for _, _, bbox in plates]}
    return image, labels


def _boxes(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


@DATASETS.register("synth-detection")
class SyntheticDetection(_SyntheticDataset):
    """Street scenes with people (synth-faces faces) and cars (synth-plates plates) to detect."""

    summary = ("synthetic street scenes for object detection: people (with synth-faces faces) and cars (with "
               "synth-plates licence plates), plus unlabelled street furniture")
    provides = ("boxes: float32 K×4 xyxy pixels per scene (people, then cars); classes: int64 K per scene (1 person, "
                "2 car); face_boxes: float32 M×4 pasted face squares; face_identity: int64 M global identity ids "
                "(synth-faces ids, disjoint across subsets); face_label: int64 M identity index within the set; "
                "car_boxes: float32 P×4 pasted plate-image squares; plate_text: P str; plate_bbox: int64 P×4 plate "
                "box inside its car_boxes crop; meta crops: the face and plate crop views")
    params = (
        Param("n", int, 100, "number of scenes", low=1),
        Param("identities", int, 20, "distinct people in the set (at most n // 2 are used, so that each appears "
              "in at least two scenes)", low=1, high=999_999),
        Param("persons", int, 2, "maximum people per scene (at least one)", low=1, high=8),
        Param("cars", int, 2, "maximum cars per scene", low=0, high=8),
        Param("distractors", int, 3, "unlabelled pieces of street furniture per scene", low=0, high=20),
        Param("face_size", int, 32, "side of the pasted synth-faces image (pixels)", low=16, high=256),
        Param("car_size", int, 32, "side of the pasted synth-plates image (pixels)", low=16, high=256),
        Param("length", int, 5, "characters per plate (2 letters + alphanumerics)", low=5, high=8),
        Param("size", int, 128, "image side in pixels (square images)", low=64, high=512),
        SEED_PARAM, SUBSET_PARAM,
    )

    def _check_params(self) -> None:
        p = self.params
        person_w, person_h = person_extent(p["face_size"])
        car = car_layout(p["car_size"])
        if max(person_w, person_h, car.width, car.height) > p["size"]:
            raise PrivbenchError(f"synth-detection: a person ({person_w}×{person_h} px at face_size "
                                 f"{p['face_size']}) or a car ({car.width}×{car.height} px at car_size "
                                 f"{p['car_size']}) does not fit in a {p['size']} px scene: lower face_size / "
                                 "car_size or raise size")

    def _spec(self) -> _SceneSpec:
        p = self.params
        return _SceneSpec(seed=p["seed"], subset=p["subset"], size=p["size"],
                          identities=effective_identities(p["identities"], p["n"]), persons=p["persons"],
                          cars=p["cars"], distractors=p["distractors"], face_size=p["face_size"],
                          car_size=p["car_size"], length=p["length"])

    def build(self) -> ImageSet:
        spec = self._spec()
        scenes = generate_items(functools.partial(_scene_item, spec), self.params["n"],
                                images_per_item=1 + spec.persons + spec.cars)
        rows = [labels for _, labels in scenes]
        labels = {
            "boxes": [_boxes(r["boxes"]) for r in rows],
            "classes": [torch.tensor(r["classes"], dtype=torch.int64) for r in rows],
            "face_boxes": [_boxes(r["face_boxes"]) for r in rows],
            "face_identity": [torch.tensor(r["face_label"], dtype=torch.int64) + spec.offset for r in rows],
            "face_label": [torch.tensor(r["face_label"], dtype=torch.int64) for r in rows],
            "car_boxes": [_boxes(r["car_boxes"]) for r in rows],
            "plate_text": [list(r["plate_text"]) for r in rows],
            "plate_bbox": [torch.tensor(r["plate_bbox"], dtype=torch.int64).reshape(-1, 4) for r in rows],
        }
        return self._imageset([image for image, _ in scenes], labels, task="detection",
                              classes=list(DETECTION_CLASSES), crops=self._crop_views(spec))

    def _crop_views(self, spec: _SceneSpec) -> list[dict[str, Any]]:
        """The two private crop views: faces (read by a synth-faces recognizer) and plates (synth-plates)."""
        return [
            {"name": "faces", "family": "synth-faces", "size": spec.face_size, "boxes": "face_boxes",
             "fields": {"identity": "face_identity", "label": "face_label"},
             "meta": {"identities": spec.identities, "identity_offset": spec.offset}},
            {"name": "plates", "family": "synth-plates", "size": spec.car_size, "boxes": "car_boxes",
             "fields": {"text": "plate_text", "bbox": "plate_bbox"},
             "meta": {"alphabet": PLATE_ALPHABET, "length": spec.length}},
        ]
