"""A detector through the whole engine: trained on synthetic scenes, defended, attacked; mAP for utility and
face-id / plate on the crops of the reconstructed scenes for privacy."""

from __future__ import annotations

import copy

import pytest

from privbench.cache import Cache
from privbench.config import parse_config
from privbench.errors import PrivbenchError
from privbench.sweep import run_benchmark

SCENES = {"size": 96, "persons": 2, "cars": 1, "face_size": 24, "car_size": 24}
DETECTION = {
    "name": "det",
    "seed": 0,
    "device": "cpu",
    "model": {"name": "detector-small", "params": {"width": 8}, "split": "block1", "epochs": 6, "lr": 0.003,
              "batch_size": 8},
    "task": {"train": {"name": "synth-detection", "params": {"subset": "train", "n": 160, **SCENES}},
             "test": {"name": "synth-detection", "params": {"subset": "test", "n": 40, **SCENES}}},
    "attacker_data": [{"name": "synth-detection", "params": {"subset": "attacker", "n": 60, **SCENES}}],
    "probes": [{"name": "synth-detection", "params": {"subset": "test", "n": 24, "identities": 6, **SCENES}}],
    "defenses": [{"name": "noise", "params": {"placement": "features"}, "strengths": [0.0, 1.0, 8.0]}],
    "attacks": [{"name": "inverse-net", "params": {"epochs": 4}}],
    "metrics": ["map50", "map", {"name": "ap", "params": {"class": "person"}}, "psnr", "face-id", "plate"],
}


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory):
    cache = Cache(tmp_path_factory.mktemp("detection-cache"))
    return run_benchmark(parse_config(copy.deepcopy(DETECTION)), cache, progress=False)


def _values(frame, metric, dataset=None):
    rows = frame[(frame.metric == metric) & (frame.attack != "worst")]
    if dataset is not None:
        rows = rows[rows.dataset == dataset]
    return rows.sort_values("strength").value.tolist()


def test_a_detection_run_scores_map_and_privacy_on_the_crops(detection_run):
    frame = detection_run.frame
    map50 = _values(frame, "map50")
    assert len(map50) == 3 and map50[0] > 0.3, map50  # the undefended detector learnt the scenes
    assert map50[2] < map50[0] - 0.1, map50  # strong feature noise costs detection accuracy
    assert set(frame[frame.metric == "ap-person"].dataset) == {"synth-detection"}
    faces = "synth-detection#probe:faces"
    assert set(frame[frame.metric == "face-id"].dataset) == {faces}
    assert set(frame[frame.metric == "plate"].dataset) == {"synth-detection#probe:plates"}
    assert set(frame[frame.metric == "psnr"].dataset) == {"synth-detection#probe"}  # pixels: the whole scene
    psnr = _values(frame, "psnr")
    assert psnr[2] < psnr[0], psnr  # the noise also costs the inverse network
    assert not detection_run.notes, detection_run.notes


@pytest.mark.parametrize(("section", "entry", "message"), [
    ("metrics", ["accuracy"], "metric 'accuracy' scores classification models; model 'detector-small' is a detection"),
    ("defenses", [{"name": "pruning", "strengths": [0.0004]}], "defense 'pruning' protects classification models"),
])
def test_what_cannot_serve_a_detector_is_refused_before_training(tmp_path, section, entry, message):
    data = copy.deepcopy(DETECTION)
    data[section] = entry
    with pytest.raises(PrivbenchError, match=message):
        run_benchmark(parse_config(data), Cache(tmp_path), progress=False)
