"""Tests for the procedurally generated synthetic datasets (privbench.data.synthetic)."""

from __future__ import annotations

import pytest
import torch

from privbench.data import synthetic
from privbench.errors import PrivbenchError
from privbench.registry import DATASETS

SMALL = {
    "synth-scenes": {"n": 12},
    "synth-faces": {"identities": 3, "per_identity": 2},
    "synth-plates": {"n": 6},
    "synth-pedestrians": {"n": 6},
}


def build(name: str, **params):
    return DATASETS.create(name, **{**SMALL[name], **params}).build()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_registered_with_declared_params(name):
    cls = DATASETS.get(name)
    declared = {p.name for p in cls.declared_params()}
    assert {"size", "seed", "subset"} <= declared
    assert cls.summary and cls.provides


@pytest.mark.parametrize("name", sorted(SMALL))
def test_deterministic_and_seed_dependent(name):
    a, b = build(name, seed=3), build(name, seed=3)
    assert torch.equal(a.images, b.images)
    for key, value in a.labels.items():
        other = b.labels[key]
        assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other
    assert not torch.equal(a.images, build(name, seed=4).images)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("size", [32, 64])
def test_shapes_dtypes_and_label_lengths(name, size):
    s = build(name, size=size)
    n = len(s)
    assert s.images.dtype == torch.uint8 and s.images.shape == (n, 3, size, size)
    assert s.images.float().std() > 5  # not blank
    for value in s.labels.values():
        assert len(value) == n


@pytest.mark.parametrize("name", sorted(SMALL))
def test_subsets_differ(name):
    images = {sub: build(name, subset=sub).images for sub in synthetic.SUBSETS}
    assert not torch.equal(images["train"], images["test"])
    assert not torch.equal(images["test"], images["attacker"])
    assert not torch.equal(images["train"], images["attacker"])


def test_prefix_independent_of_set_size():
    small = DATASETS.create("synth-scenes", n=5).build()
    large = DATASETS.create("synth-scenes", n=9).build()
    assert torch.equal(small.images, large.images[:5])


def test_scenes_labels_and_classes():
    s = build("synth-scenes", classes=4)
    assert s.labels["label"].dtype == torch.int64
    assert set(s.labels["label"].tolist()) == {0, 1, 2, 3}
    assert s.meta["classes"] == list(synthetic.SCENE_CLASSES[:4])


def test_faces_identity_labels_and_disjoint_subsets():
    ids = {}
    for sub in synthetic.SUBSETS:
        s = build("synth-faces", subset=sub)
        assert s.labels["identity"].dtype == torch.int64 and s.labels["label"].dtype == torch.int64
        assert s.labels["label"].tolist() == [0, 0, 1, 1, 2, 2]
        assert (s.labels["identity"] - s.labels["label"] == synthetic.IDENTITY_OFFSETS[sub]).all()
        ids[sub] = set(s.labels["identity"].tolist())
    assert not ids["train"] & ids["test"] and not ids["test"] & ids["attacker"]
    assert not ids["train"] & ids["attacker"]


def test_faces_same_identity_images_differ():
    s = build("synth-faces")
    assert not torch.equal(s.images[0], s.images[1])  # per-image nuisance


def test_plates_text_bbox_and_disjoint_subsets():
    texts = {}
    for sub in synthetic.SUBSETS:
        s = build("synth-plates", subset=sub, n=20, length=6)
        assert s.meta["alphabet"] == synthetic.PLATE_ALPHABET
        for text in s.labels["text"]:
            assert len(text) == 6 and set(text) <= set(synthetic.PLATE_ALPHABET)
            assert text[0].isalpha() and text[1].isalpha()
        texts[sub] = set(s.labels["text"])
    assert not texts["train"] & texts["test"] and not texts["test"] & texts["attacker"]
    assert not texts["train"] & texts["attacker"]


def test_plate_alphabet_excludes_i_and_o():
    assert "I" not in synthetic.PLATE_ALPHABET and "O" not in synthetic.PLATE_ALPHABET
    assert len(set(synthetic.PLATE_ALPHABET)) == len(synthetic.PLATE_ALPHABET) == 34


@pytest.mark.parametrize("size", [32, 64, 96])
def test_plate_bbox_inside_image_and_wide(size):
    s = build("synth-plates", n=15, size=size)
    box = s.labels["bbox"]
    assert box.dtype == torch.int64 and box.shape == (15, 4)
    assert (box[:, 0] >= 0).all() and (box[:, 1] >= 0).all()
    assert (box[:, 2] <= size).all() and (box[:, 3] <= size).all()
    assert (box[:, 2] > box[:, 0]).all() and (box[:, 3] > box[:, 1]).all()
    width = (box[:, 2] - box[:, 0]).float() / size
    height = (box[:, 3] - box[:, 1]).float() / size
    assert (width > 0.75).all() and (width <= 1.0).all()
    assert (height > 0.2).all() and (height < 0.5).all()


def test_pedestrian_attribute_prevalence():
    s = DATASETS.create("synth-pedestrians", n=400, size=32).build()
    attrs = s.labels["attributes"]
    names = s.meta["attribute_names"]
    assert attrs.dtype == torch.uint8 and attrs.shape == (400, len(names)) and len(names) >= 8
    assert set(attrs.unique().tolist()) <= {0, 1}
    prevalence = attrs.float().mean(0)
    assert ((prevalence > 0.1) & (prevalence < 0.9)).all(), dict(zip(names, prevalence.tolist(), strict=True))
    both = attrs[:, names.index("upper_red")] & attrs[:, names.index("upper_dark")]
    assert not both.any()


@pytest.mark.parametrize(("name", "params"), [
    ("synth-faces", {"identities": 0}),
    ("synth-faces", {"per_identity": -1}),
    ("synth-scenes", {"classes": 11}),
    ("synth-scenes", {"classes": 1}),
    ("synth-plates", {"length": 9}),
    ("synth-plates", {"length": 4}),
    ("synth-pedestrians", {"subset": "validation"}),
    ("synth-pedestrians", {"colour": 3}),
    ("synth-scenes", {"size": 8}),
])
def test_bad_parameters_raise(name, params):
    with pytest.raises(PrivbenchError):
        DATASETS.create(name, **params)


def test_preview_writes_png(tmp_path):
    path = synthetic.preview(tmp_path / "sheet.png", size=32, zoom=1, blur=1.5)
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name,params", [("synth-scenes", {"n": 48}), ("synth-faces", {"identities": 12, "per_identity": 4}),
                                         ("synth-plates", {"n": 48}), ("synth-pedestrians", {"n": 48})])
def test_parallel_generation_equals_serial(monkeypatch, name, params):
    """Sets above PARALLEL_MIN_ITEMS are made by worker processes: the images and labels must not change."""
    monkeypatch.setattr(synthetic.common, "PARALLEL_MIN_ITEMS", 10**9)
    serial = build(name, size=16, **params)
    monkeypatch.setattr(synthetic.common, "PARALLEL_MIN_ITEMS", 8)
    parallel = build(name, size=16, **params)
    assert torch.equal(serial.images, parallel.images)
    for key, value in serial.labels.items():
        other = parallel.labels[key]
        assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other
