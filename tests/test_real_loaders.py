"""Real-data loaders on small fixtures built here: an LFW-style tree, CCPD file names, PA-100K and CSV tables."""

import numpy as np
import pytest
import torch
from PIL import Image

from privbench.components import load_components
from privbench.data.real import parse_ccpd_name
from privbench.errors import PrivbenchError
from privbench.registry import DATASETS

load_components()


def save(path, size=(40, 30), colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_lfw_tree_builds_the_identification_protocol(tmp_path):
    for person, count in (("Alice_A", 3), ("Bob_B", 2), ("Carol_C", 1)):
        for k in range(count):
            save(tmp_path / person / f"{person}_{k + 1:04d}.jpg", (250, 250), (20 * k, 100, 50))
    data = DATASETS.create("lfw", root=str(tmp_path), size=32).build()
    assert data.images.shape == (5, 3, 32, 32)
    assert data.labels["identity"].tolist() == [0, 0, 0, 1, 1]  # Carol has one image: skipped
    assert data.meta["names"] == ["Alice_A", "Bob_B"] and data.meta["synthetic"] is False
    assert set(data.labels) == set(DATASETS.get("lfw").label_fields)  # what run's pre-flight relies on
    assert len(DATASETS.create("lfw", root=str(tmp_path), min_images=3, size=16).build()) == 3
    with pytest.raises(PrivbenchError, match="root not found"):
        DATASETS.create("lfw", root=str(tmp_path / "nope"))  # fails at construction (config validation)
    with pytest.raises(PrivbenchError, match="'root' is required"):
        DATASETS.create("lfw").build()


def test_ccpd_names_give_plate_and_box(tmp_path):
    name = "025-95_113-154&383_386&473-386&473_177&454_154&383_363&402-0_0_22_27_27_33_16-37-15.jpg"
    assert parse_ccpd_name(name) == ("皖AY339S", (154, 383, 386, 473))
    # an 8-character green plate, and the 'O' = no character convention
    text, _ = parse_ccpd_name("01-90_90-10&20_110&50-0&0_0&0_0&0_0&0-12_1_24_25_26_27_28_29-50-5.jpg")
    assert text == "京B012345"
    assert parse_ccpd_name("01-90_90-10&20_110&50-0&0_0&0_0&0_0&0-0_0_34_0_0_0_0-50-5.jpg")[0] == "皖AAAAA"
    with pytest.raises(ValueError, match="not a CCPD file name"):
        parse_ccpd_name("holiday.jpg")

    img = np.zeros((480, 720, 3), np.uint8)
    img[383:473, 154:386] = 255  # the plate region is white
    Image.fromarray(img).save(tmp_path / name)
    data = DATASETS.create("ccpd", root=str(tmp_path), size=64).build()
    assert data.labels["text"] == ["皖AY339S"]
    assert set(data.labels) == set(DATASETS.get("ccpd").label_fields)
    x1, y1, x2, y2 = data.labels["bbox"][0].tolist()
    assert 0 <= x1 < 8 and 56 < x2 <= 64 and y1 < y2
    patch = data.images[0, :, (y1 + y2) // 2, (x1 + x2) // 2]
    assert patch.min() > 200  # the box lands on the plate in the resized crop
    (tmp_path / "holiday.jpg").write_bytes((tmp_path / name).read_bytes())
    with pytest.raises(PrivbenchError, match="not a CCPD file name"):
        DATASETS.create("ccpd", root=str(tmp_path), size=32).build()


def test_pa100k_annotation_table(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    names = ["000001.jpg", "000002.jpg", "000003.jpg"]
    for n in names:
        save(tmp_path / "data" / n, (40, 90))
    attributes = ["Female", "Hat", "Glasses"]
    labels = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]], dtype=np.uint8)
    cell = lambda items: np.array([[np.array([s])] for s in items], dtype=object)  # noqa: E731 (MATLAB cells)
    scipy_io.savemat(tmp_path / "annotation.mat", {
        "attributes": cell(attributes), "test_images_name": cell(names), "test_label": labels,
        "train_images_name": cell(names[:1]), "train_label": labels[:1],
        "val_images_name": cell(names[:1]), "val_label": labels[:1]})
    data = DATASETS.create("pa100k", root=str(tmp_path), size=32).build()
    assert data.images.shape == (3, 3, 32, 32)
    assert data.meta["attribute_names"] == attributes
    assert torch.equal(data.labels["attributes"], torch.from_numpy(labels))
    assert set(data.labels) == set(DATASETS.get("pa100k").label_fields)
    assert len(DATASETS.create("pa100k", root=str(tmp_path), split="train", size=16).build()) == 1
    (tmp_path / "annotation.mat").unlink()
    with pytest.raises(PrivbenchError, match="annotation.mat not found"):
        DATASETS.create("pa100k", root=str(tmp_path)).build()


def test_attribute_csv(tmp_path):
    save(tmp_path / "img" / "a.png")
    save(tmp_path / "img" / "b.png")
    (tmp_path / "table.csv").write_text("image,hat,bag\nimg/a.png,1,0\nimg/b.png,0,0\n")
    data = DATASETS.create("attribute-csv", csv=str(tmp_path / "table.csv"), size=16).build()
    assert data.labels["attributes"].tolist() == [[1, 0], [0, 0]]
    assert data.meta["attribute_names"] == ["hat", "bag"]
    assert set(data.labels) == set(DATASETS.get("attribute-csv").label_fields)
    (tmp_path / "bad.csv").write_text("image,hat\nimg/a.png,yes\n")
    with pytest.raises(PrivbenchError, match="column 'hat' row 2 is 'yes'"):
        DATASETS.create("attribute-csv", csv=str(tmp_path / "bad.csv")).build()
    with pytest.raises(PrivbenchError, match="csv not found"):
        DATASETS.create("attribute-csv", csv=str(tmp_path / "missing.csv"))
