"""Real datasets read from local paths, in their published layouts (nothing is downloaded).

``lfw``            Labeled Faces in the Wild: ``root/<person>/<image>.jpg`` (one folder per person). People
                   with fewer than ``min_images`` images are skipped, so the identification protocol of paper
                   000 §V-A (one gallery image per person, the rest probes) applies. Labels ``identity``,
                   ``label``.
``ccpd``           Chinese City Parking Dataset: the annotation is the file name, seven '-'-separated fields
                   ``area-tilt-bbox-vertices-plate-brightness-blur``; bbox ``x1&y1_x2&y2``; plate ``i_j_k...``
                   indices into the province list, the letter list, then letters+digits (CCPD README). Each
                   image is cropped to a square around the plate (``context`` × the plate width) and resized,
                   so the plate fills most of the width like in ``synth-plates``. Labels ``text``, ``bbox``.
``pa100k``         PA-100K: ``annotation.mat`` (read with ``scipy.io.loadmat``) with ``<split>_images_name``,
                   ``<split>_label`` and ``attributes``; images letterboxed to a square. Label ``attributes``.
``attribute-csv``  Any attribute table: a CSV with an image-path column and 0/1 attribute columns.

All images are converted to RGB and resized to ``size``×``size``; ``limit`` keeps the first N (people for
LFW). A missing path is a :class:`PrivbenchError` with one clear line. The cache key includes the file count
and a content digest (SHA-256 of names and bytes) of the source, so edited data is re-read.

Every loader is a :class:`RealDataset` and declares the label fields it provides (``label_fields``), so
``privbench run`` can tell before loading anything which identity metrics apply to it and refuse those that
have no recognizer for real images (:mod:`privbench.preflight`).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from privbench.data.base import SIZE_PARAM, Dataset, ImageSet
from privbench.errors import PrivbenchError
from privbench.fingerprint import files_digest
from privbench.registry import DATASETS, Param

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}

#: CCPD character lists (CCPD README). The last entry of each, letter 'O', means "no character".
CCPD_PROVINCES = ("皖", "沪", "津", "渝", "冀", "晋", "蒙", "辽", "吉", "黑", "苏", "浙",
                  "京", "闽", "赣", "鲁", "豫", "鄂", "湘", "粤", "桂", "琼", "川", "贵",
                  "云", "藏", "陕", "甘", "青", "宁", "新", "警", "学", "O")
CCPD_ALPHABETS = tuple("ABCDEFGHJKLMNPQRSTUVWXYZO")
CCPD_ADS = tuple("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789O")
CCPD_ALPHABET = "".join(CCPD_PROVINCES[:-1]) + "".join(CCPD_ADS[:-1])


def _existing_dir(path: str, dataset: str, what: str = "root") -> Path:
    if not path:
        raise PrivbenchError(f"dataset '{dataset}': parameter '{what}' is required (a folder)")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise PrivbenchError(f"dataset '{dataset}': {what} folder not found: {folder}")
    return folder


def _existing_file(path: str | Path, dataset: str, what: str) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise PrivbenchError(f"dataset '{dataset}': {what} not found: {file}")
    return file


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _fingerprint(paths: Sequence[Path]) -> list[Any]:
    """(count, SHA-256 of the names and bytes) of the files a dataset reads: part of its cache key, so a file
    replaced in place — even with the same size and modification time — is re-read."""
    root = Path(os.path.commonpath([str(p.resolve().parent) for p in paths])) if paths else None
    return [len(paths), files_digest([p.resolve() for p in paths], root=root)]


#: integer modes of more than 8 bits per sample; Pillow's ``convert("RGB")`` clips them at 255 (a 16-bit
#: image turns almost white), so they are scaled down instead
_WIDE_INTEGER_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def rgb8(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit RGB, whatever its mode, or ``ValueError`` saying why it cannot be.

    Palette, 1-bit, L, LA, RGBA (alpha dropped), CMYK and YCbCr go through Pillow's conversion. 16-bit
    samples (``I;16*``, and ``I`` as Pillow opens 16-bit PNGs) are scaled by 255/65535 and rounded; a 32-bit
    ``I`` image with values outside 0..65535 and floating-point ``F`` images have no agreed range and are refused.
    """
    if img.mode in _WIDE_INTEGER_MODES:
        values = np.asarray(img, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"{img.mode} image with values {values.min()}..{values.max()} outside 16 bits")
        scaled = np.rint(values * (255.0 / 65535.0)).astype(np.uint8)
        return Image.fromarray(scaled, "L").convert("RGB")
    if img.mode == "F":
        raise ValueError("32-bit floating-point image (mode F): its value range is unknown; save it as 8 or "
                         "16-bit integers")
    return img.convert("RGB")


def read_rgb(path: Path, dataset: str | None = None) -> Image.Image:
    """The image at ``path`` as 8-bit RGB (:func:`rgb8`); an unreadable file or unsupported mode is one
    :class:`PrivbenchError` line naming the file."""
    where = f"dataset '{dataset}': " if dataset else ""
    try:
        with Image.open(path) as img:
            img.load()
            return rgb8(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # OSError covers unreadable and truncated files (UnidentifiedImageError is one); some decoders raise
        # ValueError or SyntaxError on a malformed header
        text = [line for line in str(exc).splitlines() if line.strip()]
        raise PrivbenchError(f"{where}cannot read image {path}: {text[0] if text else type(exc).__name__}") from None


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def square_resize(img: Image.Image, size: int, letterbox: bool = False, crop: float = 1.0) -> np.ndarray:
    """Resize to size×size: centre crop to ``crop`` of the shorter side first, or letterbox (pad)."""
    if letterbox:
        side = max(img.size)
        canvas = Image.new("RGB", (side, side), (124, 116, 104))
        canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
        img = canvas
    else:
        side = min(img.size) * crop
        left, top = (img.width - side) / 2, (img.height - side) / 2
        img = img.crop((round(left), round(top), round(left + side), round(top + side)))
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


class RealDataset(Dataset):
    """Common parts: the fingerprinted cache key, the meta of real data, paths checked at construction.

    ``label_fields`` names the label fields ``build()`` provides: a run's pre-flight reads it to decide which
    metrics apply before any image is loaded (a warm run loads none).
    """

    label_fields: ClassVar[tuple[str, ...]] = ()

    #: the parameter naming the dataset's folder or file (checked when the component is constructed, so a
    #: config with a wrong path fails before anything runs)
    path_param: str = "root"

    def _check_params(self) -> None:
        value = self.params[self.path_param]
        if not value:
            raise PrivbenchError(f"dataset '{self.name}': parameter '{self.path_param}' is required")
        if not Path(value).expanduser().exists():
            raise PrivbenchError(f"dataset '{self.name}': {self.path_param} not found: {Path(value).expanduser()}")

    def files(self) -> list[Path]:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "files": _fingerprint(self.files())}

    def _imageset(self, images: list[np.ndarray], labels: dict[str, Any], **meta: Any) -> ImageSet:
        if not images:
            raise PrivbenchError(f"dataset '{self.name}': no images found")
        return ImageSet(self.name, to_tensor(images), labels, {"synthetic": False, "subset": "test", **meta})


ROOT_PARAM = Param("root", str, "", "dataset folder (required)")
LIMIT_PARAM = Param("limit", int, 0, "keep only the first N items (0 = all)", low=0)


@DATASETS.register("lfw")
class LFW(RealDataset):
    """Labeled Faces in the Wild from a folder-per-person tree."""

    summary = "LFW faces from a local folder per person (identification protocol of paper 000 §V-A)"
    label_fields = ("identity", "label")
    provides = "identity: person index (int64); label: same; meta names: person names"
    params = (ROOT_PARAM, Param("min_images", int, 2, "skip people with fewer images", low=2), SIZE_PARAM,
              Param("crop", float, 1.0, "centre crop, fraction of the image side, before resizing (LFW faces "
                    "fill about the central half)", low=0.1, high=1.0), LIMIT_PARAM)

    def people(self) -> list[tuple[str, list[Path]]]:
        root = _existing_dir(self.params["root"], self.name)
        people = []
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            images = _images_in(folder)
            if len(images) >= self.params["min_images"]:
                people.append((folder.name, images))
        if self.params["limit"]:
            people = people[: self.params["limit"]]
        if not people:
            raise PrivbenchError(f"dataset 'lfw': no person folder in {root} has {self.params['min_images']} "
                                 "or more images")
        return people

    def files(self) -> list[Path]:
        return [p for _, images in self.people() for p in images]

    def build(self) -> ImageSet:
        images, ids, names = [], [], []
        for index, (name, paths) in enumerate(self.people()):
            names.append(name)
            for path in paths:
                img = read_rgb(path, self.name)
                images.append(square_resize(img, self.params["size"], crop=self.params["crop"]))
                ids.append(index)
        identity = torch.tensor(ids, dtype=torch.int64)
        return self._imageset(images, {"identity": identity, "label": identity.clone()}, names=names,
                              identities=len(names))


_CCPD_NAME = re.compile(r"^[^-]*-[^-]*-(\d+)&(\d+)_(\d+)&(\d+)-[^-]*-([\d_]+)-[^-]*-[^-]*$")


def parse_ccpd_name(filename: str) -> tuple[str, tuple[int, int, int, int]]:
    """(plate string, bbox x1, y1, x2, y2) from a CCPD file name; raises ValueError if it is not one.

    Example: ``025-95_113-154&383_386&473-386&473_177&454_154&383_363&402-0_0_22_27_27_33_16-37-15.jpg`` is
    ``皖AY339S`` in the box (154, 383)-(386, 473). Index 'O' entries (no character) are dropped.
    """
    stem = Path(filename).stem
    match = _CCPD_NAME.match(stem)
    if not match:
        raise ValueError(f"not a CCPD file name (7 '-'-separated fields with bbox and plate): {filename}")
    x1, y1, x2, y2 = (int(v) for v in match.group(1, 2, 3, 4))
    indices = [int(v) for v in match.group(5).split("_") if v != ""]
    if len(indices) < 2:
        raise ValueError(f"CCPD plate field has fewer than 2 characters: {filename}")
    tables = [CCPD_PROVINCES, CCPD_ALPHABETS] + [CCPD_ADS] * (len(indices) - 2)
    chars = []
    for k, (table, i) in enumerate(zip(tables, indices, strict=True)):
        if not 0 <= i < len(table):
            raise ValueError(f"CCPD plate index {i} out of range at position {k}: {filename}")
        chars.append(table[i])
    return "".join(c for c in chars if c != "O"), (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


@DATASETS.register("ccpd")
class CCPD(RealDataset):
    """CCPD licence plates: annotation parsed from the file names, square crop around the plate."""

    summary = "CCPD licence plates from a local folder; plate string and box parsed from the file names"
    label_fields = ("text", "bbox")
    provides = "text: plate string (list[str]); bbox: plate box x1,y1,x2,y2 in output pixels (int64 N×4)"
    params = (ROOT_PARAM, SIZE_PARAM,
              Param("context", float, 1.15, "side of the square crop as a multiple of the plate width",
                    low=1.0, high=10.0),
              LIMIT_PARAM)

    def files(self) -> list[Path]:
        root = _existing_dir(self.params["root"], self.name)
        paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        return paths[: self.params["limit"]] if self.params["limit"] else paths

    def build(self) -> ImageSet:
        size = self.params["size"]
        images, texts, boxes = [], [], []
        for path in self.files():
            try:
                text, (x1, y1, x2, y2) = parse_ccpd_name(path.name)
            except ValueError as exc:
                raise PrivbenchError(f"dataset 'ccpd': {exc}") from None
            img = read_rgb(path, self.name)
            side = max(x2 - x1, y2 - y1) * self.params["context"]
            left, top = (x1 + x2) / 2 - side / 2, (y1 + y2) / 2 - side / 2
            crop = img.crop((round(left), round(top), round(left + side), round(top + side)))
            images.append(np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8))
            scale = size / round(side)
            box = [(x1 - round(left)) * scale, (y1 - round(top)) * scale, (x2 - round(left)) * scale,
                   (y2 - round(top)) * scale]
            boxes.append([int(np.clip(round(v), 0, size)) for v in box])
            texts.append(text)
        bbox = torch.tensor(boxes, dtype=torch.int64).view(-1, 4)
        return self._imageset(images, {"text": texts, "bbox": bbox}, alphabet=CCPD_ALPHABET,
                              length=max((len(t) for t in texts), default=0))


def _mat_strings(value: Any) -> list[str]:
    """Strings out of a MATLAB cell array as loadmat returns it (nested object arrays)."""
    out = []
    for item in np.asarray(value, dtype=object).ravel():
        while isinstance(item, np.ndarray) and item.dtype == object and item.size == 1:
            item = item.ravel()[0]
        if isinstance(item, np.ndarray):
            flat = item.ravel()
            item = flat[0] if item.size == 1 and item.dtype.kind in "OU" else "".join(map(str, flat))
        out.append(str(item).strip())
    return out


def _load_mat(path: Path) -> dict[str, Any]:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise PrivbenchError("dataset 'pa100k' needs scipy to read annotation.mat (pip install scipy)"
                             ) from None
    try:
        return loadmat(str(path))
    except Exception as exc:
        raise PrivbenchError(f"dataset 'pa100k': cannot read {path}: {str(exc).splitlines()[0]}") from None


@DATASETS.register("pa100k")
class PA100K(RealDataset):
    """PA-100K pedestrian attributes: ``annotation.mat`` plus its image folder."""

    summary = "PA-100K pedestrian attributes from a local folder (annotation.mat via scipy)"
    label_fields = ("attributes",)
    provides = "attributes: uint8 N×26 binary matrix, columns in meta attribute_names"
    params = (ROOT_PARAM,
              Param("split", str, "test", "which split of annotation.mat", choices=("train", "val", "test")),
              Param("images", str, "", "image folder (default: the first of data/, "
                    "release_data/release_data/, images/ under root that exists, else root)"),
              SIZE_PARAM, LIMIT_PARAM)

    def image_folder(self) -> Path:
        root = _existing_dir(self.params["root"], self.name)
        if self.params["images"]:
            return _existing_dir(self.params["images"], self.name, "images")
        for sub in ("data", "release_data/release_data", "images"):
            if (root / sub).is_dir():
                return root / sub
        return root

    def annotation(self) -> tuple[list[str], np.ndarray, list[str]]:
        root = _existing_dir(self.params["root"], self.name)
        mat = _load_mat(_existing_file(root / "annotation.mat", self.name, "annotation.mat"))
        split = self.params["split"]
        try:
            names = _mat_strings(mat[f"{split}_images_name"])
            labels = np.asarray(mat[f"{split}_label"]).astype(np.uint8)
            attributes = _mat_strings(mat["attributes"])
        except KeyError as exc:
            raise PrivbenchError(f"dataset 'pa100k': annotation.mat has no field {exc}") from None
        if labels.shape != (len(names), len(attributes)):
            raise PrivbenchError(f"dataset 'pa100k': {split}_label is {labels.shape}, expected "
                                 f"({len(names)}, {len(attributes)})")
        if self.params["limit"]:
            names, labels = names[: self.params["limit"]], labels[: self.params["limit"]]
        return names, labels, attributes

    def files(self) -> list[Path]:
        folder = self.image_folder()
        return [folder / name for name in self.annotation()[0]]

    def build(self) -> ImageSet:
        names, labels, attributes = self.annotation()
        folder = self.image_folder()
        images = [square_resize(read_rgb(_existing_file(folder / n, self.name, "image"), self.name),
                                self.params["size"], letterbox=True) for n in names]
        return self._imageset(images, {"attributes": torch.from_numpy(labels)}, attribute_names=attributes)


@DATASETS.register("attribute-csv")
class AttributeCSV(RealDataset):
    """Images with binary attributes listed in a CSV table (PETA-style or your own)."""

    path_param = "csv"

    summary = "images + binary attributes from a CSV (image path column, then 0/1 columns)"
    label_fields = ("attributes",)
    provides = "attributes: uint8 N×A binary matrix, columns in meta attribute_names"
    params = (Param("csv", str, "", "CSV file (required)"),
              Param("root", str, "", "folder the image paths are relative to (default: the CSV's folder)"),
              Param("image_column", str, "image", "column holding the image paths"),
              SIZE_PARAM, Param("letterbox", bool, True, "pad to square instead of cropping"), LIMIT_PARAM)

    def table(self) -> tuple[list[Path], np.ndarray, list[str]]:
        if not self.params["csv"]:
            raise PrivbenchError("dataset 'attribute-csv': parameter 'csv' is required")
        path = _existing_file(self.params["csv"], self.name, "CSV file")
        base = _existing_dir(self.params["root"], self.name) if self.params["root"] else path.parent
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                rows = list(csv.DictReader(fh))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise PrivbenchError(f"dataset 'attribute-csv': {path} is not a UTF-8 CSV table ({exc})") from None
        column = self.params["image_column"]
        if not rows or column not in rows[0]:
            raise PrivbenchError(f"dataset 'attribute-csv': {path} has no column '{column}'")
        attributes = [c for c in rows[0] if c != column]
        if not attributes:
            raise PrivbenchError(f"dataset 'attribute-csv': {path} has no attribute columns")
        if self.params["limit"]:
            rows = rows[: self.params["limit"]]
        values = np.zeros((len(rows), len(attributes)), dtype=np.uint8)
        for i, row in enumerate(rows):
            for j, name in enumerate(attributes):
                cell = (row.get(name) or "").strip()
                if cell not in ("0", "1"):
                    raise PrivbenchError(f"dataset 'attribute-csv': column '{name}' row {i + 2} is {cell!r}, "
                                         "expected 0 or 1")
                values[i, j] = cell == "1"
        paths = []
        for i, row in enumerate(rows):
            if not (row.get(column) or "").strip():
                raise PrivbenchError(f"dataset 'attribute-csv': {path} row {i + 2} has no image path")
            image = base / os.path.normpath(row[column].strip())
            if not image.is_file():  # every image is checked here, before the data is fingerprinted or loaded
                raise PrivbenchError(f"dataset 'attribute-csv': {path} row {i + 2} names a missing image: {image}")
            paths.append(image)
        return paths, values, attributes

    def files(self) -> list[Path]:
        return self.table()[0]

    def build(self) -> ImageSet:
        paths, values, attributes = self.table()
        images = [square_resize(read_rgb(_existing_file(p, self.name, "image"), self.name),
                                self.params["size"], letterbox=self.params["letterbox"]) for p in paths]
        return self._imageset(images, {"attributes": torch.from_numpy(values)}, attribute_names=attributes)
