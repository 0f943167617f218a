"""coco-detection on a tiny instances JSON built here: boxes checked against hand-computed values, label modes,
selection, refusals, the cache key and the weights_only round trip."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from privbench.cache import Cache
from privbench.components import load_components
from privbench.data.base import ImageSet
from privbench.data.coco import COCODetection
from privbench.errors import PrivbenchError
from privbench.registry import DATASETS

load_components()

RED, BLUE = (200, 30, 30), (20, 40, 220)

# Categories listed out of id order; ids are not contiguous (as in COCO).
CATEGORIES = [{"id": 7, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
IMAGES = [
    {"id": 5, "file_name": "two.png", "width": 150, "height": 100},
    {"id": 1, "file_name": "wide.png", "width": 200, "height": 100},
    {"id": 3, "file_name": "square.png", "width": 120, "height": 120},
    {"id": 2, "file_name": "sub/tall.jpg", "width": 100, "height": 300},
]
ANNOTATIONS = [
    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [50, 25, 100, 50], "iscrowd": 0},
    {"id": 2, "image_id": 1, "category_id": 3, "bbox": [180, 80, 40, 40], "iscrowd": 0},  # overruns: clipped
    {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 3, 3], "iscrowd": 0},  # 0.9 px after scaling: dropped
    {"id": 4, "image_id": 2, "category_id": 7, "bbox": [10, 30, 50, 150], "iscrowd": 0},
    {"id": 5, "image_id": 2, "category_id": 1, "bbox": [0, 0, 50, 50], "iscrowd": 1},  # crowd: skipped
    {"id": 6, "image_id": 3, "category_id": 3, "bbox": [10, 10, 50, 50], "iscrowd": 1},  # image 3: no kept box
    {"id": 7, "image_id": 5, "category_id": 1, "bbox": [0, 0, 75, 50]},
    {"id": 8, "image_id": 5, "category_id": 1, "bbox": [75, 50, 75, 50]},
]


def write_json(path, **changes):
    table = {"images": IMAGES, "annotations": ANNOTATIONS, "categories": CATEGORIES, **changes}
    path.write_text(json.dumps(table))


@pytest.fixture()
def coco(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (200, 100), RED).save(folder / "wide.png")
    Image.new("RGB", (150, 100), BLUE).save(folder / "two.png")
    Image.new("RGB", (120, 120), RED).save(folder / "square.png")
    Image.new("RGB", (100, 300), BLUE).save(folder / "sub" / "tall.jpg", quality=95)
    write_json(tmp_path / "instances.json")
    return {"annotations": str(tmp_path / "instances.json"), "images": str(folder), "size": 60}


def create(coco, **params):
    return DATASETS.create("coco-detection", **{**coco, **params})


def test_boxes_are_letterboxed_top_left_exactly(coco):
    data = create(coco).build()
    assert data.images.shape == (3, 3, 60, 60) and data.images.dtype == torch.uint8
    assert data.labels["image_id"].tolist() == [1, 2, 5]  # ascending id; image 3 has only a crowd box
    assert data.labels["image_id"].dtype == torch.int64
    boxes = data.labels["boxes"]
    assert all(b.dtype == torch.float32 for b in boxes)
    # wide.png 200×100 → scale 0.3, stored 60×30 at the top left; [50,25,100,50] → [15, 7.5, 45, 22.5];
    # the car [180,80,40,40] → [54, 24, 66, 36] clipped to [54, 24, 60, 30]; the 3×3 box (0.9 px) is dropped
    torch.testing.assert_close(boxes[0], torch.tensor([[15.0, 7.5, 45.0, 22.5], [54.0, 24.0, 60.0, 30.0]]))
    # tall.jpg 100×300 → scale 0.2, stored 20×60; [10,30,50,150] → [2, 6, 12, 36]; the crowd box is skipped
    torch.testing.assert_close(boxes[1], torch.tensor([[2.0, 6.0, 12.0, 36.0]]))
    # two.png 150×100 → scale 0.4, stored 60×40
    torch.testing.assert_close(boxes[2], torch.tensor([[0.0, 0.0, 30.0, 20.0], [30.0, 20.0, 60.0, 40.0]]))
    # the picture sits top-left, the rest is the gray canvas
    assert data.images[0, :, :30, :].reshape(3, -1).float().mean(1).round().tolist() == list(map(float, RED))
    assert (data.images[0, :, 30:, :] == 114).all() and (data.images[1, :, :, 20:] == 114).all()
    assert (data.images[2, :, 40:, :] == 114).all() and (data.images[2, :, :40, :].float().mean() > 60)


def test_label_modes_and_category_filter(coco):
    data = create(coco).build()  # all categories, in ascending id: person 1, car 2, dog 3
    assert [c.tolist() for c in data.labels["classes"]] == [[1, 2], [3], [1, 1]]
    assert all(c.dtype == torch.int64 for c in data.labels["classes"])
    assert data.meta["classes"] == ["background", "person", "car", "dog"] and data.meta["category_ids"] == [1, 3, 7]
    assert data.meta["task"] == "detection" and data.meta["synthetic"] is False
    assert set(data.labels) == set(COCODetection.label_fields)

    picked = create(coco, categories=" dog, person").build()  # the order of 'categories'
    assert picked.labels["image_id"].tolist() == [1, 2, 5]
    assert [c.tolist() for c in picked.labels["classes"]] == [[2], [1], [2, 2]]
    assert picked.labels["boxes"][0].tolist() == [[15.0, 7.5, 45.0, 22.5]]  # the car is gone
    assert picked.meta["classes"] == ["background", "dog", "person"] and picked.meta["category_ids"] == [7, 1]

    ids = create(coco, categories="car,dog", label_ids="coco").build()
    assert [c.tolist() for c in ids.labels["classes"]] == [[3], [7]]
    assert ids.meta["classes"] == ["background", "", "", "car", "", "", "", "dog"]
    assert ids.meta["category_ids"] == [3, 7]


def test_count_and_min_objects(coco):
    assert create(coco, count=2).build().labels["image_id"].tolist() == [1, 2]
    assert create(coco, min_objects=2).build().labels["image_id"].tolist() == [1, 5]
    assert create(coco, min_objects=2, count=1).build().labels["image_id"].tolist() == [1]
    empty = create(coco, min_objects=0).build()  # image 3 kept with no boxes
    assert empty.labels["image_id"].tolist() == [1, 2, 3, 5]
    assert empty.labels["boxes"][2].shape == (0, 4) and empty.labels["classes"][2].shape == (0,)
    with pytest.raises(PrivbenchError, match="no image .* has 3 or more kept boxes"):
        create(coco, min_objects=3).build()


def test_refusals_name_the_problem(coco, tmp_path):
    with pytest.raises(PrivbenchError, match=r"unknown category 'bus'.*available: person, car, dog"):
        create(coco, categories="person,bus").build()
    with pytest.raises(PrivbenchError, match="annotations file not found: .*nope.json"):
        create(coco, annotations=str(tmp_path / "nope.json"))  # at construction, like the other real loaders
    with pytest.raises(PrivbenchError, match="parameter 'annotations' is required"):
        DATASETS.create("coco-detection", images=coco["images"])
    with pytest.raises(PrivbenchError, match="images folder not found"):
        create(coco, images=str(tmp_path / "nowhere"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(PrivbenchError, match="no list 'annotations'"):
        create(coco, annotations=str(bad)).build()
    bad.write_text("{not json")
    with pytest.raises(PrivbenchError, match="is not a JSON file"):
        create(coco, annotations=str(bad)).build()
    (tmp_path / "images" / "sub" / "tall.jpg").unlink()
    with pytest.raises(PrivbenchError, match=r"image 2 not found: .*tall\.jpg"):
        create(coco).spec()
    with pytest.raises(PrivbenchError, match=r"image 2 not found: .*tall\.jpg"):
        create(coco).build()
    assert len(create(coco, categories="person,car").build()) == 2  # an image not selected is not needed


def test_cache_key_follows_the_json_and_the_images(coco, tmp_path):
    before = create(coco).spec()
    assert create(coco).spec() == before
    moved = [dict(a, bbox=[51, 25, 100, 50]) if a["id"] == 1 else a for a in ANNOTATIONS]
    write_json(tmp_path / "instances.json", annotations=moved)
    after_json = create(coco).spec()
    assert after_json != before
    Image.new("RGB", (200, 100), BLUE).save(tmp_path / "images" / "wide.png")  # same name and size
    assert create(coco).spec() != after_json


def test_weights_only_round_trip_and_cache(coco, tmp_path):
    data = create(coco).build()
    torch.save(data.to_state(), tmp_path / "set.pt")
    back = ImageSet.from_state(torch.load(tmp_path / "set.pt", weights_only=True))
    assert torch.equal(back.images, data.images) and back.meta == data.meta
    assert torch.equal(back.labels["image_id"], data.labels["image_id"])
    for key in ("boxes", "classes"):
        assert all(torch.equal(a, b) for a, b in zip(back.labels[key], data.labels[key], strict=True))
    cache = Cache(tmp_path / "cache")
    create(coco).load(cache)
    again = create(coco).load(cache)
    assert cache.hits == 1 and torch.equal(again.images, data.images)
    assert again.labels["boxes"][0].tolist() == data.labels["boxes"][0].tolist()
    sub = data.subset([2, 0])
    assert sub.labels["image_id"].tolist() == [5, 1] and sub.labels["boxes"][1].shape == (2, 4)
