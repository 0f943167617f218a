"""``coco-detection``: a COCO-format detection set (an instances JSON and its image folder), read from local paths.

The JSON's ``images``, ``annotations`` and ``categories`` are read; ``categories`` (comma-separated names) keeps a
subset of the classes, ``count`` the first N images (ascending image id) that keep at least ``min_objects`` boxes.
Crowd annotations (``iscrowd: 1``) are skipped — COCO evaluation ignores them rather than counting them as
objects — and so are boxes thinner than one stored pixel. Images are letterboxed to size×size (scaled by
size / longer side, antialiased, pasted top-left on a gray 114 canvas: box coordinates just scale), boxes
``[x, y, w, h]`` become xyxy in stored pixels. Labels: ``contiguous`` (1..K in the order of ``categories``, or of
category id when all are kept) or ``coco`` (the category id itself, as torchvision's COCO-trained detectors expect).
The cache key hashes the JSON and every image read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from privbench.data.base import ImageSet
from privbench.data.real import RealDataset, _existing_dir, _existing_file, _fingerprint, read_rgb
from privbench.errors import PrivbenchError
from privbench.registry import DATASETS, Param

PAD = (114, 114, 114)


@DATASETS.register("coco-detection")
class COCODetection(RealDataset):
    summary = "COCO-format detection set: instances JSON + image folder, letterboxed; a subset by category/count"
    provides = ("boxes: float K×4 xyxy in stored pixels; classes: int64 K (contiguous 1..K or COCO ids); "
                "image_id: COCO image ids")
    label_fields: ClassVar[tuple[str, ...]] = ("boxes", "classes", "image_id")
    path_param = "annotations"
    params = (
        Param("annotations", str, "", "COCO instances JSON (required)"),
        Param("images", str, "", "folder of the images the JSON names (required)"),
        Param("categories", str, "", "comma-separated category names to keep ('' = all)"),
        Param("count", int, 0, "keep the first N images by id (0 = all)", low=0),
        Param("size", int, 320, "stored square side in pixels (letterboxed)", low=16, high=2048),
        Param("min_objects", int, 1, "keep images with at least this many kept boxes", low=0),
        Param("label_ids", str, "contiguous", "labels 1..K (contiguous) or the COCO category ids (coco)",
              choices=("contiguous", "coco")),
    )

    def _table(self) -> dict[str, Any]:
        path = _existing_file(self.params["annotations"], self.name, "annotations JSON")
        try:
            table = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PrivbenchError(f"dataset '{self.name}': cannot read {path}: {exc}") from None
        missing = [k for k in ("images", "annotations", "categories") if not isinstance(table.get(k), list)]
        if missing:
            raise PrivbenchError(f"dataset '{self.name}': {path} has no '{missing[0]}' list (not a COCO instances file)")
        return table

    def selection(self) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]], list[int], list[str]]:
        """(kept images, their kept annotations by image id, kept category ids in label order, their names)."""
        table = self._table()
        by_name = {c["name"]: int(c["id"]) for c in table["categories"]}
        wanted = [n.strip() for n in self.params["categories"].split(",") if n.strip()]
        for name in wanted:
            if name not in by_name:
                raise PrivbenchError(f"dataset '{self.name}': unknown category '{name}' (the file has: "
                                     f"{', '.join(sorted(by_name))})")
        ids = [by_name[n] for n in wanted] if wanted else sorted(by_name.values())
        names = {int(c["id"]): c["name"] for c in table["categories"]}
        annotations: dict[int, list[dict[str, Any]]] = {}
        for a in table["annotations"]:
            if int(a["category_id"]) in ids and not a.get("iscrowd", 0):
                annotations.setdefault(int(a["image_id"]), []).append(a)
        images = []
        for image in sorted(table["images"], key=lambda i: int(i["id"])):
            if len(self._boxes(image, annotations.get(int(image["id"]), []), ids)[0]) >= self.params["min_objects"]:
                images.append(image)
            if self.params["count"] and len(images) == self.params["count"]:
                break
        return images, annotations, ids, [names[i] for i in ids]

    def _scale(self, image: dict[str, Any]) -> float:
        return self.params["size"] / max(int(image["width"]), int(image["height"]))

    def _boxes(self, image: dict[str, Any], annotations: list[dict[str, Any]], ids: list[int]
               ) -> tuple[list[list[float]], list[int]]:
        scale = self._scale(image)
        boxes, labels = [], []
        for a in annotations:
            x, y, w, h = (float(v) * scale for v in a["bbox"])
            if w < 1 or h < 1:
                continue
            boxes.append([x, y, x + w, y + h])
            cid = int(a["category_id"])
            labels.append(cid if self.params["label_ids"] == "coco" else ids.index(cid) + 1)
        return boxes, labels

    def files(self) -> list[Path]:
        folder = _existing_dir(self.params["images"], self.name, "images")
        images, _, _, _ = self.selection()
        paths = [folder / i["file_name"] for i in images]
        for p in paths:
            _existing_file(p, self.name, "image")
        return [_existing_file(self.params["annotations"], self.name, "annotations JSON"), *paths]

    def spec(self) -> dict[str, Any]:
        return {**super(RealDataset, self).spec(), "files": _fingerprint(self.files())}

    def build(self) -> ImageSet:
        folder = _existing_dir(self.params["images"], self.name, "images")
        images, annotations, ids, names = self.selection()
        size = self.params["size"]
        pixels, boxes, classes = [], [], []
        for image in images:
            picture = read_rgb(_existing_file(folder / image["file_name"], self.name, "image"), self.name)
            scale = self._scale(image)
            w, h = max(1, round(picture.width * scale)), max(1, round(picture.height * scale))
            canvas = Image.new("RGB", (size, size), PAD)
            canvas.paste(picture.resize((w, h), Image.Resampling.LANCZOS), (0, 0))
            pixels.append(np.asarray(canvas, dtype=np.uint8))
            b, c = self._boxes(image, annotations.get(int(image["id"]), []), ids)
            boxes.append(torch.tensor(b, dtype=torch.float32).reshape(-1, 4))
            classes.append(torch.tensor(c, dtype=torch.int64))
        if self.params["label_ids"] == "coco":  # indexed by COCO id, "" for ids not kept
            class_names = ["background"] + [""] * max(ids)
            for i, n in zip(ids, names, strict=True):
                class_names[i] = n
        else:
            class_names = ["background", *names]
        labels = {"boxes": boxes, "classes": classes,
                  "image_id": torch.tensor([int(i["id"]) for i in images], dtype=torch.int64)}
        return self._imageset(pixels, labels, task="detection", classes=class_names, category_ids=ids)
