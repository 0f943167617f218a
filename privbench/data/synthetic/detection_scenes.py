"""``synth-detection``: street scenes for object detection, with the private information *inside* them.

A scene (size×size, default 128) is a street background (the pedestrian family's buildings and ground) with
``persons`` people and ``cars`` cars at non-overlapping places, and a few unlabelled distractors (poles, boxes,
discs) drawn first, so they never cover a face or a plate:

- a **person** (class 1) is a body (torso and legs in random clothes colours) under a head that is a synth-faces
  image of one identity, rendered at ``face_size`` px by the face family's own renderer (identity ``k`` of the
  subset = synth-faces' identity ``k``: the faces of the ``test`` subset are synth-faces' test people, disjoint
  from the ``train`` identities the built-in face recognizer learns) and pasted at native resolution at integer
  coordinates, so the crop of its box is that image exactly;
- a **car** (class 2) is a body around a synth-plates image (a car front with a plate string of ``length``
  characters, ``car_size`` px, the plate family's renderer), pasted the same way.

What a reconstruction reveals is scored on crops (:mod:`privbench.data.crops`, paper 000's protocol): face-id on
the faces (``meta["crops"]`` view ``faces``), plate recognition on the car fronts (view ``plates``); mAP on the
boxes. The k-th person slot of the set shows identity ``slot mod identities``, each time in a new pose, so every
identity appears at least twice when ``n·persons ≥ 2·identities`` (checked).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image, ImageDraw

from privbench.data.base import SEED_PARAM
from privbench.data.synthetic.common import IDENTITY_OFFSETS, SUBSET_PARAM, _rgb, _rng, _SyntheticDataset, generate_items
from privbench.data.synthetic.faces import _IDENTITY_STREAM, _IMAGE_STREAM, FACE_KIND, _face_identity, _face_image
from privbench.data.synthetic.pedestrians import _street_background
from privbench.data.synthetic.plates import PLATE_ALPHABET, _plate_image, random_plate_text
from privbench.errors import PrivbenchError
from privbench.registry import DATASETS, Param

#: RNG stream code of this family (the others use 11-14)
DETECTION_KIND = 15
CLASSES = ("background", "person", "car")


def _place(rng: np.random.Generator, size: int, w: int, h: int, taken: list[list[int]], top: int = 0,
           bottom: int | None = None) -> list[int]:
    """A random free w×h box between rows ``top`` and ``bottom``, 2 px apart from every taken one (chosen among
    the free places on a 2-px grid)."""
    bottom = size if bottom is None else bottom
    xs, ys = np.meshgrid(np.arange(0, size - w + 1, 2), np.arange(top, bottom - h + 1, 2))
    free = np.ones(xs.shape, dtype=bool)
    for a, b, a2, b2 in taken:
        free &= (xs + w + 2 <= a) | (a2 + 2 <= xs) | (ys + h + 2 <= b) | (b2 + 2 <= ys)
    if not free.any():
        raise PrivbenchError(f"synth-detection: no room for the objects in a {size}-px scene (raise size or lower "
                             "persons/cars)")
    k = int(rng.integers(int(free.sum())))
    x, y = int(xs[free][k]), int(ys[free][k])
    taken.append([x, y, x + w, y + h])
    return taken[-1]


def _distractors(rng: np.random.Generator, draw: ImageDraw.ImageDraw, size: int, count: int) -> None:
    for _ in range(count):
        x, y = rng.uniform(0, size, 2)
        w, h = rng.uniform(0.03, 0.12) * size, rng.uniform(0.05, 0.3) * size
        colour = _rgb(rng.uniform(30, 230, 3))
        shape = int(rng.integers(3))
        if shape == 0:
            draw.rectangle([x, y, x + w / 3, y + h], fill=colour)  # a pole
        elif shape == 1:
            draw.rectangle([x, y, x + w, y + w], fill=colour)  # a box
        else:
            draw.ellipse([x, y, x + w, y + w], fill=colour)  # a disc


def _scene(seed: int, subset: str, size: int, persons: int, cars: int, distractors: int, identities: int,
           face_size: int, car_size: int, length: int, i: int) -> dict:
    rng = _rng(seed, DETECTION_KIND, subset, i)
    img = Image.fromarray(np.clip(_street_background(rng, size), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    _distractors(rng, draw, size, distractors)
    taken: list[list[int]] = []
    boxes, classes, face_boxes, face_ids, face_labels, car_boxes, texts, plate_boxes = [], [], [], [], [], [], [], []
    offset = IDENTITY_OFFSETS[subset]
    c = car_size
    for j in range(cars):
        # cars on the road (the lower band), people on the pavement above it
        x, y, x2, y2 = _place(rng, size, round(1.6 * c), round(1.1 * c), taken, top=size - round(1.1 * c) - 4)
        plate_rng = _rng(seed, DETECTION_KIND, subset, i, 100 + j)
        text = random_plate_text(plate_rng, length)
        front, bbox = _plate_image(plate_rng, text, c)
        body = _rgb(rng.uniform(30, 220, 3))
        draw.rounded_rectangle([x, y, x2 - 1, y2 - 1], radius=0.2 * c, fill=body)
        px, py = x + (x2 - x - c) // 2, y
        img.paste(Image.fromarray(front), (px, py))
        draw.rectangle([x + 0.1 * c, y2 - 0.08 * c, x + 0.4 * c, y2 - 1], fill=(20, 20, 20))  # wheels
        draw.rectangle([x2 - 0.4 * c, y2 - 0.08 * c, x2 - 0.1 * c, y2 - 1], fill=(20, 20, 20))
        boxes.append([x, y, x2, y2])
        classes.append(2)
        car_boxes.append([px, py, px + c, py + c])
        texts.append(text)
        plate_boxes.append(bbox)
    f = face_size
    for j in range(persons):
        x, y, x2, y2 = _place(rng, size, f, round(2.2 * f), taken,
                              bottom=size - round(1.1 * c) - 6 if cars else size)
        slot = i * persons + j
        k = slot % identities
        ident = _face_identity(_rng(seed, FACE_KIND, subset, _IDENTITY_STREAM, offset + k, 0), f)
        face = _face_image(ident, _rng(seed, FACE_KIND, subset, _IMAGE_STREAM, offset + k, 1000 + slot), f)
        clothes = [_rgb(rng.uniform(20, 235, 3)) for _ in range(2)]
        draw.rectangle([x + 0.1 * f, y + f, x + 0.9 * f - 1, y + 1.7 * f], fill=clothes[0])
        draw.rectangle([x + 0.2 * f, y + 1.7 * f, x + 0.45 * f, y2 - 1], fill=clothes[1])
        draw.rectangle([x + 0.55 * f, y + 1.7 * f, x + 0.8 * f, y2 - 1], fill=clothes[1])
        img.paste(Image.fromarray(face), (x, y))
        boxes.append([x, y, x2, y2])
        classes.append(1)
        face_boxes.append([x, y, x + f, y + f])
        face_ids.append(offset + k)
        face_labels.append(k)
    return {"image": np.asarray(img), "boxes": boxes, "classes": classes, "face_boxes": face_boxes,
            "face_identity": face_ids, "face_label": face_labels, "car_boxes": car_boxes, "plate_text": texts,
            "plate_bbox": plate_boxes}


def _boxes(values: list[list[int]]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 4)


@DATASETS.register("synth-detection")
class SyntheticDetection(_SyntheticDataset):
    """Street scenes with people (faces of synth-faces identities) and cars (synth-plates fronts); see the module
    docstring."""

    summary = ("synthetic street scenes for detection: people (their faces carry identities) and cars (their plates "
               "carry strings); face-id/plate scored on the crops")
    provides = ("boxes/classes: per scene, float K×4 xyxy boxes and int64 labels (1 person, 2 car); face_boxes, "
                "face_identity, face_label: the faces; car_boxes, plate_text, plate_bbox: the car fronts and plates")
    params = (
        Param("n", int, 100, "number of scenes", low=1),
        Param("identities", int, 20, "distinct people in the set (each appears ≥ 2 times)", low=2, high=999_999),
        Param("persons", int, 2, "people per scene", low=1, high=8),
        Param("cars", int, 1, "cars per scene", low=0, high=8),
        Param("distractors", int, 3, "unlabelled clutter objects per scene", low=0, high=50),
        Param("face_size", int, 32, "face side in pixels (the face family's resolution)", low=16, high=128),
        Param("car_size", int, 32, "car-front side in pixels (the plate family's resolution)", low=16, high=128),
        Param("length", int, 5, "characters per plate", low=5, high=8),
        Param("size", int, 128, "scene side in pixels", low=64, high=512),
        SEED_PARAM, SUBSET_PARAM,
    )

    def build(self):
        p = self.params
        if p["n"] * p["persons"] < 2 * p["identities"]:
            raise PrivbenchError(f"synth-detection: {p['n']} scenes × {p['persons']} people cannot show each of "
                                 f"{p['identities']} identities twice (face-id needs two images per person)")
        scenes = generate_items(functools.partial(
            _scene, p["seed"], p["subset"], p["size"], p["persons"], p["cars"], p["distractors"], p["identities"],
            p["face_size"], p["car_size"], p["length"]), p["n"])
        labels = {
            "boxes": [_boxes(s["boxes"]) for s in scenes],
            "classes": [torch.tensor(s["classes"], dtype=torch.int64) for s in scenes],
            "face_boxes": [_boxes(s["face_boxes"]) for s in scenes],
            "face_identity": [torch.tensor(s["face_identity"], dtype=torch.int64) for s in scenes],
            "face_label": [torch.tensor(s["face_label"], dtype=torch.int64) for s in scenes],
            "car_boxes": [_boxes(s["car_boxes"]) for s in scenes],
            "plate_text": [list(s["plate_text"]) for s in scenes],
            "plate_bbox": [torch.tensor(s["plate_bbox"], dtype=torch.int64).reshape(-1, 4) for s in scenes],
        }
        crops = [{"name": "faces", "family": "synth-faces", "size": p["face_size"], "boxes": "face_boxes",
                  "fields": {"identity": "face_identity", "label": "face_label"},
                  "meta": {"identities": p["identities"], "identity_offset": IDENTITY_OFFSETS[p["subset"]]}}]
        if p["cars"]:
            crops.append({"name": "plates", "family": "synth-plates", "size": p["car_size"], "boxes": "car_boxes",
                          "fields": {"text": "plate_text", "bbox": "plate_bbox"},
                          "meta": {"alphabet": PLATE_ALPHABET, "length": p["length"]}})
        return self._imageset([s["image"] for s in scenes], labels, task="detection", classes=list(CLASSES),
                              crops=crops)
