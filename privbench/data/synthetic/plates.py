"""``synth-plates``: licence plates (CCPD stand-in).

A random string over :data:`PLATE_ALPHABET` rendered with a real TrueType font (DejaVu, shipped with
matplotlib) on a plate that fills most of the image width, with a mild perspective warp. Characters are
only ~6–8 px wide at 64 px, so blur destroys them.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from privbench.data.base import SEED_PARAM, SIZE_PARAM, ImageSet
from privbench.data.synthetic.common import (
    PLATE_KIND,
    SUBSET_PARAM,
    _background,
    _canvas,
    _finish,
    _font,
    _jitter,
    _rgb,
    _rng,
    _rotate,
    _supersample,
    _SyntheticDataset,
    generate_items,
)
from privbench.registry import DATASETS, Param

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
