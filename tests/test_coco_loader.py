"""coco-detection: a small instances JSON made here, read back with boxes, labels and refusals checked by hand."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from privbench.data.base import ImageSet
from privbench.errors import PrivbenchError
from privbench.registry import DATASETS


@pytest.fixture()
def coco(tmp_path):
    import privbench.data  # noqa: F401  (registrations)

    folder = tmp_path / "images"
    folder.mkdir()
    for name, (w, h) in {"a.png": (200, 100), "b.jpg": (100, 200), "c.png": (50, 50)}.items():
        Image.new("RGB", (w, h), (200, 30, 30)).save(folder / name)
    table = {
        "images": [{"id": 3, "file_name": "c.png", "width": 50, "height": 50},
                   {"id": 1, "file_name": "a.png", "width": 200, "height": 100},
                   {"id": 2, "file_name": "b.jpg", "width": 100, "height": 200}],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [20, 10, 40, 60], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 3, "bbox": [100, 50, 80, 40], "iscrowd": 0},
            {"id": 12, "image_id": 1, "category_id": 1, "bbox": [0, 0, 200, 100], "iscrowd": 1},
            {"id": 13, "image_id": 2, "category_id": 7, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 14, "image_id": 3, "category_id": 3, "bbox": [5, 5, 10, 10]},
        ]}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(table))
    return {"annotations": str(path), "images": str(folder), "size": 100}


def test_boxes_are_letterboxed_exactly_and_crowds_skipped(coco):
    data = DATASETS.create("coco-detection", **coco, categories="person,car").load()
    assert data.images.shape == (2, 3, 100, 100) and data.labels["image_id"].tolist() == [1, 3]  # b: only a dog
    # a.png 200×100 → scale 0.5, top-left: person [20,10,40,60] → [10, 5, 30, 35]; car → [50, 25, 90, 45]
    torch.testing.assert_close(data.labels["boxes"][0], torch.tensor([[10.0, 5, 30, 35], [50, 25, 90, 45]]))
    assert data.labels["classes"][0].tolist() == [1, 2]  # contiguous, in the order asked for
    assert data.images[0, :, 60, 50].tolist() == [114, 114, 114]  # below the scaled picture: padding
    # c.png 50×50 → scale 2
    torch.testing.assert_close(data.labels["boxes"][1], torch.tensor([[10.0, 10, 30, 30]]))
    assert data.meta["classes"] == ["background", "person", "car"] and data.meta["task"] == "detection"


def test_coco_label_ids_count_and_min_objects(coco):
    data = DATASETS.create("coco-detection", **coco, label_ids="coco").load()
    assert data.labels["image_id"].tolist() == [1, 2, 3]
    assert data.labels["classes"][0].tolist() == [1, 3] and data.labels["classes"][1].tolist() == [7]
    assert data.meta["classes"][3] == "car" and data.meta["classes"][2] == "" and len(data.meta["classes"]) == 8
    assert len(DATASETS.create("coco-detection", **coco, count=1).load()) == 1
    assert len(DATASETS.create("coco-detection", **coco, min_objects=2).load()) == 1


def test_refusals_name_the_problem(coco, tmp_path):
    with pytest.raises(PrivbenchError, match="unknown category 'bus'.*car, dog, person"):
        DATASETS.create("coco-detection", **coco, categories="bus").load()
    (tmp_path / "images" / "c.png").unlink()
    with pytest.raises(PrivbenchError, match="image not found.*c.png"):
        DATASETS.create("coco-detection", **coco).spec()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(PrivbenchError, match="no 'annotations' list"):
        DATASETS.create("coco-detection", **{**coco, "annotations": str(bad)}).load()


def test_the_cache_key_follows_the_json_and_the_set_survives_weights_only(coco, tmp_path):
    before = DATASETS.create("coco-detection", **coco).spec()
    path = tmp_path / "instances.json"
    table = json.loads(path.read_text())
    table["annotations"][0]["bbox"] = [21, 10, 40, 60]
    path.write_text(json.dumps(table))
    assert DATASETS.create("coco-detection", **coco).spec() != before
    data = DATASETS.create("coco-detection", **coco).load()
    torch.save(data.to_state(), tmp_path / "set.pt")
    back = ImageSet.from_state(torch.load(tmp_path / "set.pt", weights_only=True))
    torch.testing.assert_close(back.labels["boxes"][0], data.labels["boxes"][0])
    assert back.meta == data.meta
