"""Preview contact sheet of the four synthetic datasets (:func:`preview`)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from privbench.data.base import ImageSet
from privbench.data.synthetic.common import FONT_PATH
from privbench.data.synthetic.faces import SyntheticFaces
from privbench.data.synthetic.pedestrians import PEDESTRIAN_ATTRIBUTES, SyntheticPedestrians
from privbench.data.synthetic.plates import SyntheticPlates
from privbench.data.synthetic.scenes import SyntheticScenes

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
