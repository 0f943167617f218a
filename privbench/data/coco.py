"""``coco-detection``: an object-detection set read from a COCO "instances" JSON and its image folder.

**Format.** The annotation file is the JSON of the COCO detection challenge (``instances_val2017.json`` and
the like): a top-level object with three lists,

- ``images``: ``{"id", "file_name", "width", "height", ...}``; ``file_name`` is relative to the ``images`` folder,
  ``width``/``height`` are the stored pixel dimensions (checked against the file when it is read);
- ``annotations``: ``{"image_id", "category_id", "bbox": [x, y, w, h], "iscrowd", ...}`` with the box in the
  original image's pixels, ``(x, y)`` its top-left corner;
- ``categories``: ``{"id", "name", ...}``.

Segmentations, areas, licences and ``info`` are not read. Nothing is downloaded.

**Selection.** ``categories`` names the categories to keep (comma-separated; empty = every category of the
JSON). An annotation is *kept* when its category is kept, it is not a crowd region and its box survives the
resize (below). Images are taken in ascending image id; those with fewer than ``min_objects`` kept boxes are
dropped (``min_objects=0`` keeps images without boxes, with empty K×4 targets), then the first ``count`` remain.
The selection is made from the JSON alone (its ``width``/``height``), before any image is opened.

**Crowd regions.** Annotations with ``iscrowd=1`` are skipped: they mark a group of objects with one box (a
crowd, a pile of bananas), which torchvision's COCO reference training also drops; they are neither targets
nor ignore regions here, and an image whose only boxes are crowds counts as having none.

**Letterbox.** Each image is scaled by ``size / max(height, width)`` (PIL bilinear, which low-pass filters when
shrinking) to ``round(width·s) × round(height·s)`` pixels and pasted at the **top-left** corner of a
``size``×``size`` gray (114, 114, 114) canvas; the padding is on the right or at the bottom. Top-left rather
than centred keeps the box transform a pure scaling with no offset. Boxes are mapped with the resize's actual
per-axis factors (``new_width / width``, ``new_height / height``; the longer side's is exactly ``size / side``),
so they land on the resampled pixels exactly.

**Boxes.** ``[x, y, w, h]`` becomes ``x1 = x·sx, y1 = y·sy, x2 = (x + w)·sx, y2 = (y + h)·sy`` in stored-image
pixels (float32 xyxy), clipped to the pasted image (COCO boxes sometimes overrun the border by a fraction of a
pixel). A box narrower or lower than **1 stored pixel after clipping** is dropped as degenerate: it covers no
whole pixel of the stored image, and torchvision's detectors refuse boxes of zero size.

**Labels** (``label_ids``). ``contiguous``: labels 1..K in the order of ``categories``, or of ascending category
id when every category is kept; ``meta["classes"]`` is ``["background", name_1, ..., name_K]``. ``coco``: the
COCO category id itself, as torchvision's COCO-trained detectors expect; ``meta["classes"]`` then has length
``max id + 1`` over *all* categories of the JSON (91 for COCO 2017, the size of torchvision's COCO heads), with
the kept categories' names at their ids and ``""`` elsewhere. Label 0 is never used: it is background.
``meta["category_ids"]`` lists the kept COCO ids in label order.

**Output.** uint8 N×3×size×size images; labels ``boxes`` (list of float32 K×4), ``classes`` (list of int64 K)
and ``image_id`` (int64 N, the COCO ids); meta ``task="detection"``, ``classes``, ``category_ids``, ``label_ids``,
``letterbox="top-left"`` and what every real set carries (``synthetic=False``, ``subset``).

**Cache key.** Like the other real loaders (:mod:`privbench.data.real`): the SHA-256 of the JSON's bytes and of
every selected image file's bytes, so an edited annotation or a replaced image is re-read. EXIF orientation is
not applied (COCO's ``width``/``height`` and boxes refer to the stored pixels, as in torchvision's
``CocoDetection``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from privbench.data.base import ImageSet
from privbench.data.real import RealDataset, _existing_dir, _existing_file, read_rgb
from privbench.errors import PrivbenchError
from privbench.registry import DATASETS, Param

#: the padding colour of the letterbox (the usual detector gray)
PAD = (114, 114, 114)


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One selected image: its id, file, original and resized dimensions, and kept boxes and labels."""

    image_id: int
    path: Path
    width: int
    height: int
    new_width: int
    new_height: int
    boxes: list[list[float]]
    labels: list[int]


def _scaled_size(width: int, height: int, size: int) -> tuple[int, int]:
    scale = size / max(width, height)
    return max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale)))


def letterbox_box(bbox: list[float], width: int, height: int, size: int) -> list[float] | None:
    """COCO ``[x, y, w, h]`` in a ``width``×``height`` image → xyxy in the top-left letterboxed ``size``×``size``
    image, clipped to the pasted image; ``None`` when less than 1 stored pixel wide or high."""
    new_width, new_height = _scaled_size(width, height, size)
    sx, sy = new_width / width, new_height / height
    x, y, w, h = bbox
    x1, x2 = min(max(x * sx, 0.0), new_width), min(max((x + w) * sx, 0.0), new_width)
    y1, y2 = min(max(y * sy, 0.0), new_height), min(max((y + h) * sy, 0.0), new_height)
    if x2 - x1 < 1.0 or y2 - y1 < 1.0:
        return None
    return [x1, y1, x2, y2]


def _read_json(path: Path, dataset: str) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PrivbenchError(f"dataset '{dataset}': {path} is not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise PrivbenchError(f"dataset '{dataset}': {path} is not a COCO instances file (top level is not an object)")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise PrivbenchError(f"dataset '{dataset}': {path} is not a COCO instances file: no list "
                             f"'{missing[0]}' at the top level (expected 'images', 'annotations', 'categories')")
    return data


def _field(items: list[Any], index: int, what: str, keys: tuple[str, ...], path: Path, dataset: str) -> list[Any]:
    item = items[index]
    if not isinstance(item, dict) or any(k not in item for k in keys):
        absent = next((k for k in keys if not isinstance(item, dict) or k not in item), keys[0])
        raise PrivbenchError(f"dataset '{dataset}': {path}: {what}[{index}] has no '{absent}'")
    return [item[k] for k in keys]


@DATASETS.register("coco-detection")
class COCODetection(RealDataset):
    """Object detection from a COCO instances JSON and its image folder, letterboxed to a square."""

    path_param = "annotations"

    summary = "object detection from a local COCO instances JSON + image folder (letterboxed, boxes in pixels)"
    label_fields = ("boxes", "classes", "image_id")
    provides = ("boxes: per image float32 K×4 xyxy in stored pixels; classes: per image int64 K (1..K or COCO ids); "
                "image_id: int64 N; meta classes: names by label (0 background), category_ids")
    params = (Param("annotations", str, "", "COCO instances JSON (required)"),
              Param("images", str, "", "folder the JSON's file_name entries are relative to (required)"),
              Param("categories", str, "", "comma-separated category names to keep ('' = all categories of the JSON)"),
              Param("count", int, 0, "keep at most this many images, in ascending image id (0 = all)", low=0),
              Param("size", int, 320, "side of the square (letterboxed) stored images, in pixels", low=16, high=2048),
              Param("min_objects", int, 1, "keep only images with at least this many kept boxes", low=0),
              Param("label_ids", str, "contiguous", "class labels: 1..K in category order (contiguous) or the COCO "
                    "category id itself (coco, as torchvision's COCO-trained detectors expect)",
                    choices=("contiguous", "coco")))

    def _check_params(self) -> None:
        # both paths at construction, like the other real loaders: a wrong config fails before anything runs
        if not self.params["annotations"]:
            raise PrivbenchError(f"dataset '{self.name}': parameter 'annotations' is required (a COCO instances JSON)")
        _existing_file(self.params["annotations"], self.name, "annotations file")
        _existing_dir(self.params["images"], self.name, "images")

    def _names(self) -> list[str]:
        names = [n.strip() for n in self.params["categories"].split(",") if n.strip()]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise PrivbenchError(f"dataset '{self.name}': category '{doubled[0]}' is named twice in 'categories'")
        return names

    def index(self) -> tuple[list[_Entry], list[str], list[int]]:
        """The selected images (with their kept boxes), ``meta["classes"]`` and the kept COCO ids in label
        order; read from the JSON alone."""
        path = _existing_file(self.params["annotations"], self.name, "annotations file")
        folder = _existing_dir(self.params["images"], self.name, "images")
        data = _read_json(path, self.name)
        size = self.params["size"]

        id_of: dict[str, int] = {}
        name_of: dict[int, str] = {}
        for i in range(len(data["categories"])):
            cid, name = _field(data["categories"], i, "categories", ("id", "name"), path, self.name)
            if not isinstance(cid, int) or cid <= 0:
                raise PrivbenchError(f"dataset '{self.name}': {path}: categories[{i}] has id {cid!r}, expected a "
                                     "positive integer (0 is background)")
            if cid in name_of:
                raise PrivbenchError(f"dataset '{self.name}': {path}: category id {cid} is listed twice")
            name_of[cid] = str(name)
            id_of.setdefault(str(name), cid)
        if not name_of:
            raise PrivbenchError(f"dataset '{self.name}': {path} lists no categories")

        wanted = self._names()
        unknown = [n for n in wanted if n not in id_of]
        if unknown:
            available = ", ".join(name_of[c] for c in sorted(name_of))
            raise PrivbenchError(f"dataset '{self.name}': unknown category '{unknown[0]}' in {path} "
                                 f"(available: {available})")
        kept = [id_of[n] for n in wanted] if wanted else sorted(name_of)
        if self.params["label_ids"] == "coco":
            label_of = {c: c for c in kept}
            classes = [""] * (max(name_of) + 1)
            classes[0] = "background"
            for c in kept:
                classes[c] = name_of[c]
        else:
            label_of = {c: k + 1 for k, c in enumerate(kept)}
            classes = ["background"] + [name_of[c] for c in kept]

        images: dict[int, tuple[str, int, int]] = {}
        for i in range(len(data["images"])):
            iid, file_name, width, height = _field(data["images"], i, "images", ("id", "file_name", "width", "height"),
                                                   path, self.name)
            if not isinstance(iid, int) or not isinstance(width, int) or not isinstance(height, int) \
                    or width <= 0 or height <= 0:
                raise PrivbenchError(f"dataset '{self.name}': {path}: images[{i}] needs an integer id and positive "
                                     f"integer width and height, got {iid!r}, {width!r}, {height!r}")
            if iid in images:
                raise PrivbenchError(f"dataset '{self.name}': {path}: image id {iid} is listed twice")
            images[iid] = (str(file_name), width, height)

        found: dict[int, list[tuple[list[float], int]]] = {iid: [] for iid in images}
        for i in range(len(data["annotations"])):
            item = data["annotations"][i]
            iid, cid, bbox = _field(data["annotations"], i, "annotations", ("image_id", "category_id", "bbox"), path,
                                    self.name)
            if cid not in name_of:
                raise PrivbenchError(f"dataset '{self.name}': {path}: annotations[{i}] has category_id {cid!r}, "
                                     "which is not in 'categories'")
            if iid not in images:
                raise PrivbenchError(f"dataset '{self.name}': {path}: annotations[{i}] has image_id {iid!r}, "
                                     "which is not in 'images'")
            if cid not in label_of or item.get("iscrowd", 0):
                continue
            if not isinstance(bbox, list) or len(bbox) != 4 or \
                    not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
                raise PrivbenchError(f"dataset '{self.name}': {path}: annotations[{i}] has bbox {bbox!r}, expected "
                                     "[x, y, width, height]")
            _, width, height = images[iid]
            box = letterbox_box([float(v) for v in bbox], width, height, size)
            if box is not None:
                found[iid].append((box, label_of[cid]))

        entries = []
        for iid in sorted(images):
            if len(found[iid]) < self.params["min_objects"]:
                continue
            file_name, width, height = images[iid]
            new_width, new_height = _scaled_size(width, height, size)
            entries.append(_Entry(iid, folder / file_name, width, height, new_width, new_height,
                                  [b for b, _ in found[iid]], [c for _, c in found[iid]]))
            if self.params["count"] and len(entries) == self.params["count"]:
                break
        if not entries:
            raise PrivbenchError(f"dataset '{self.name}': no image in {path} has {self.params['min_objects']} or "
                                 "more kept boxes (check 'categories' and 'min_objects')")
        return entries, classes, kept

    def files(self) -> list[Path]:
        """The JSON and every selected image (each checked to exist, before anything is fingerprinted)."""
        entries, _, _ = self.index()
        path = _existing_file(self.params["annotations"], self.name, "annotations file")
        return [path] + [_existing_file(e.path, self.name, f"image {e.image_id}") for e in entries]

    def _image(self, entry: _Entry) -> np.ndarray:
        img = read_rgb(_existing_file(entry.path, self.name, f"image {entry.image_id}"), self.name)
        if img.size != (entry.width, entry.height):
            raise PrivbenchError(f"dataset '{self.name}': image {entry.path} is {img.width}x{img.height} but the "
                                 f"annotations say {entry.width}x{entry.height}")
        size = self.params["size"]
        canvas = Image.new("RGB", (size, size), PAD)
        canvas.paste(img.resize((entry.new_width, entry.new_height), Image.Resampling.BILINEAR), (0, 0))
        return np.asarray(canvas, dtype=np.uint8)

    def build(self) -> ImageSet:
        entries, classes, kept = self.index()
        images = [self._image(e) for e in entries]
        boxes = [torch.tensor(e.boxes, dtype=torch.float32).view(-1, 4) for e in entries]
        labels = [torch.tensor(e.labels, dtype=torch.int64) for e in entries]
        image_id = torch.tensor([e.image_id for e in entries], dtype=torch.int64)
        return self._imageset(images, {"boxes": boxes, "classes": labels, "image_id": image_id}, task="detection",
                              classes=classes, category_ids=kept, label_ids=self.params["label_ids"],
                              letterbox="top-left")

