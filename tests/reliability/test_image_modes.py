"""Images of every common mode and bit depth become 8-bit RGB correctly (16-bit scaled, not clipped), or are
refused with a reason, through both readers: the dataset loaders and ``eval``'s folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from privbench.data.real import read_rgb
from privbench.errors import PrivbenchError
from privbench.evaluate import _read_image, _stack


def _save(path: Path, img: Image.Image) -> Path:
    img.save(path)
    return path


def _palette() -> Image.Image:
    img = Image.new("P", (4, 4))
    img.putpalette([10, 20, 30] + [200, 100, 50] * 255)
    img.putpixel((0, 0), 1)
    return img


#: (file name, image, expected RGB of pixel (0, 0))
CASES = {
    "palette": ("p.png", _palette(), (200, 100, 50)),
    "la": ("la.png", Image.new("LA", (4, 4), (77, 128)), (77, 77, 77)),
    "rgba": ("rgba.png", Image.new("RGBA", (4, 4), (1, 2, 3, 0)), (1, 2, 3)),
    "one-bit": ("one.png", Image.new("1", (4, 4), 1), (255, 255, 255)),
    "grey": ("l.png", Image.new("L", (4, 4), 42), (42, 42, 42)),
    "16-bit": ("g16.png", Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16)), (128, 128, 128)),
    "16-bit-white": ("w16.png", Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)), (255, 255, 255)),
    "cmyk-jpeg": ("cmyk.jpg", Image.new("CMYK", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
    "32-bit-int": ("i.tif", Image.fromarray(np.full((4, 4), 65535 * 3 // 4, dtype=np.int32)), (191, 191, 191)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mode_becomes_8_bit_rgb(case, tmp_path):
    name, img, expected = CASES[case]
    path = _save(tmp_path / name, img)
    loaded = read_rgb(path, "test")
    assert loaded.mode == "RGB"
    array = _read_image(path)
    assert array.dtype == np.uint8 and array.shape == (4, 4, 3)
    assert tuple(int(v) for v in array[0, 0]) == pytest.approx(expected, abs=2)  # JPEG rounding


def test_16_bit_gradient_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64, dtype=np.float64).round().astype(np.uint16).reshape(8, 8)
    path = _save(tmp_path / "ramp.png", Image.fromarray(ramp))
    got = _read_image(path)[..., 0].astype(int)
    assert np.abs(got - np.rint(ramp / 257.0)).max() <= 1
    assert 120 < got.mean() < 135  # clipping at 255 would make it almost white


def test_float_images_are_refused_with_a_reason(tmp_path):
    path = tmp_path / "f.tif"
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)).save(path)
    with pytest.raises(PrivbenchError, match="floating-point"):
        read_rgb(path, "test")


def test_out_of_range_32_bit_is_refused(tmp_path):
    path = tmp_path / "big.tif"
    Image.fromarray(np.full((4, 4), 70000, dtype=np.int32)).save(path)
    with pytest.raises(PrivbenchError, match="outside 16 bits"):
        _read_image(path)


def test_mixed_modes_stack_to_one_batch(tmp_path):
    files = []
    for case in ("palette", "la", "16-bit", "cmyk-jpeg"):
        name, img, _ = CASES[case]
        _save(tmp_path / name, img)
        files.append(Path(name))
    batch = _stack(tmp_path, files, "original")
    assert tuple(batch.shape) == (4, 3, 4, 4) and str(batch.dtype) == "torch.uint8"
