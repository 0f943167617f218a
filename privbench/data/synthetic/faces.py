"""``synth-faces``: identities (LFW stand-in).

Identity lives in **fine facial geometry and texture**: eye shape and spacing, brow shape, nose, mouth,
hairline, moles/freckles and a per-identity skin micro-texture, all drawn from the identity's own RNG.
Everything coarse — skin tone, hair colour, face outline — is either drawn from a small palette *shared*
by many identities or swamped by per-image nuisance (pose, lighting, white balance, expression, clothing,
background). A blur therefore leaves a generic face and identification collapses, which is exactly the
behaviour real face recognisers show on blurry model-inversion reconstructions.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from privbench.data.base import SEED_PARAM, SIZE_PARAM, ImageSet
from privbench.data.synthetic.common import (
    _IDENTITY_STREAM,
    _IMAGE_STREAM,
    FACE_KIND,
    IDENTITY_OFFSETS,
    SUBSET_PARAM,
    _background,
    _canvas,
    _downsample,
    _finish,
    _rgb,
    _rng,
    _supersample,
    _SyntheticDataset,
    generate_items,
)
from privbench.registry import DATASETS, Param

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
