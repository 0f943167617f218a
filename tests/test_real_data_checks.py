"""Real data and resolutions: identity metrics score with real recognizers or stop, before any compute, with a
line that says how to provide them; mismatched image sizes are refused; `eval --synthetic` resizes to the
family's resolution and says so. Fixtures are small PNG folders written here; nothing here trains for real."""

import copy
import time

import numpy as np
import pytest
import torch
from conftest import SMALL, cli, write_config
from PIL import Image

from privbench.components import load_components
from privbench.config import load_config
from privbench.data.base import ImageSet
from privbench.errors import PrivbenchError
from privbench.evaluate import family_resolution, match_family_resolution
from privbench.metrics.base import RecognizerMissing
from privbench.preflight import check_grid
from privbench.registry import DATASETS, METRICS

load_components()

FACENET_FILE = "20180402-114759-vggface2.pt"


@pytest.fixture(autouse=True)
def no_pretrained_weights(tmp_path, monkeypatch):
    """An empty $TORCH_HOME: no facenet checkpoint, no LPIPS backbone, whatever this machine has."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def write_faces(root, images, identities):
    """A folder per person of PNG files, LFW style."""
    for i, (image, person) in enumerate(zip(images, identities, strict=True)):
        path = root / f"person{person:03d}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(image)).save(path)


@pytest.fixture
def real_folders(tmp_path):
    """Six 64-px "real" faces of three people (random pixels: nothing here gets scored)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    for folder in ("orig", "recon"):
        write_faces(tmp_path / folder, images, [0, 0, 1, 1, 2, 2])
    files = sorted(p.relative_to(tmp_path / "orig").as_posix() for p in (tmp_path / "orig").rglob("*.png"))
    rows = [f"{f},AB12{i}X,4,20,60,40,{i % 2}" for i, f in enumerate(files)]
    (tmp_path / "labels.csv").write_text("file,text,x1,y1,x2,y2,label\n" + "\n".join(rows) + "\n")
    return tmp_path


def eval_folders(capsys, root, *args):
    return cli(capsys, "eval", "--recon", str(root / "recon"), "--orig", str(root / "orig"), "--cache-dir",
               str(root / "cache"), *args)


def test_identity_metrics_on_real_folders_without_weights_stop_with_the_how_to(capsys, real_folders):
    started = time.perf_counter()
    code, out, err = eval_folders(capsys, real_folders, "--metric", "face-id")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("privbench: error: metric 'face-id': 'folder' holds real images")
    assert "--param embedder=facenet --param weights=PATH" in err
    assert f"{FACENET_FILE} in {real_folders / 'torch' / 'checkpoints'}" in err
    assert "--synthetic synth-faces" in err

    code, _, err = eval_folders(capsys, real_folders, "--metric", "face-id", "--param", "embedder=facenet")
    assert code == 2 and "facenet's VGGFace2 weights are not on disk" in err and f"put {FACENET_FILE}" in err

    labels = ("--labels", str(real_folders / "labels.csv"))
    for metric in ("plate", "plate-char"):
        code, _, err = eval_folders(capsys, real_folders, "--metric", metric, *labels)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "--param weights=PATH (PATH: an LPRNet state dict" in err and "--synthetic synth-plates" in err
    code, _, err = eval_folders(capsys, real_folders, "--metric", "attack-acc", *labels)
    assert code == 2 and "holds real images" in err and "--synthetic synth-scenes" in err
    code, _, err = eval_folders(capsys, real_folders, "--metric", "lpips")
    assert code == 2 and "put alexnet-owt-7be5be79.pth in" in err and "--param weights=PATH" in err
    assert not (real_folders / "cache").exists()  # refused before any recognizer was trained or data generated
    assert time.perf_counter() - started < 20


def run_config(tmp_path, **changes):
    data = copy.deepcopy(SMALL)
    data.update(name="real-check", defenses=[{"name": "noise", "params": {"placement": "features"},
                                              "strengths": [0.0]}], **changes)
    return write_config(tmp_path / "config.yaml", data)


def lfw_tree(root, size=48):
    rng = np.random.default_rng(1)
    write_faces(root, rng.integers(0, 256, (4, size, size, 3), dtype=np.uint8), [0, 0, 1, 1])
    return root


def run_cli(capsys, tmp_path, config):
    started = time.perf_counter()
    code, out, err = cli(capsys, "run", str(config), "--out", str(tmp_path / "runs"), "--cache-dir",
                         str(tmp_path / "cache"), "--quiet")
    return code, out, err, time.perf_counter() - started


def test_run_with_real_probes_and_builtin_face_id_is_refused_before_training(capsys, tmp_path):
    lfw = {"name": "lfw", "params": {"root": str(lfw_tree(tmp_path / "lfw")), "size": 32}}
    config = run_config(tmp_path, probes=[lfw], metrics=["psnr", "face-id"])
    code, out, err, seconds = run_cli(capsys, tmp_path, config)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "metric 'face-id': 'lfw' holds real images" in err
    assert "metrics: [{name: face-id, params: {embedder: facenet, weights: PATH}}]" in err
    assert "drop face-id from metrics" in err and "--synthetic" not in err
    assert not (tmp_path / "cache" / "task-model").exists() and not (tmp_path / "runs").exists()
    assert seconds < 10

    # what can score real data passes: par-ma trains on half the probes, plate does not apply to faces,
    # facenet with its weights named
    weights = tmp_path / FACENET_FILE
    weights.write_bytes(b"")
    pa = {"name": "attribute-csv", "params": {"csv": str(tmp_path / "attributes.csv"), "size": 32}}
    (tmp_path / "attributes.csv").write_text("image,hat\nlfw/person000/000.png,1\nlfw/person001/002.png,0\n")
    check_grid(load_config(config, {"probes": [lfw, pa], "metrics": [
        "psnr", "plate", "par-ma", {"name": "face-id", "params": {"embedder": "facenet", "weights": str(weights)}}]}))
    with pytest.raises(PrivbenchError, match="metric 'lpips': the pretrained alex backbone is not on disk"):
        check_grid(load_config(config, {"probes": [pa], "metrics": ["psnr", "lpips"]}))


def test_mismatched_image_sizes_are_refused_before_compute(capsys, tmp_path):
    probes = [{"name": "synth-faces", "params": {"subset": "test", "identities": 4, "per_identity": 2, "size": 64}}]
    code, _, err, seconds = run_cli(capsys, tmp_path, run_config(tmp_path, probes=probes))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert ("image sizes differ: the task model takes 32x32 (task.train synth-scenes) but probes[0] synth-faces "
            "is 64x64; give every dataset the same size (params: {size: 32})") in err
    assert not (tmp_path / "cache" / "task-model").exists() and seconds < 10

    attacker = copy.deepcopy(SMALL["attacker_data"])
    attacker[1]["params"]["size"] = 48
    lfw = {"name": "lfw", "params": {"root": str(lfw_tree(tmp_path / "lfw"))}}  # lfw's own default: 64
    with pytest.raises(PrivbenchError, match=r"attacker_data\[1\] synth-faces is 48x48, probes\[0\] lfw is 64x64"):
        check_grid(load_config(None, {**SMALL, "attacker_data": attacker, "probes": [lfw]}))


def test_synthetic_family_folders_are_resized_to_the_family_resolution(capsys, tmp_path, monkeypatch):
    from privbench.recognizers import face

    size = family_resolution("synth-faces")
    assert size == 32  # the default benchmark's faces, where the built-in embedder is validated
    faces = DATASETS.create("synth-faces", subset="test", identities=3, per_identity=2, size=64).build()
    for folder in ("orig", "recon"):
        write_faces(tmp_path / folder, faces.images.permute(0, 2, 3, 1).numpy(), faces.labels["identity"].tolist())
    trained_at = []

    def quick_training(images, identities, seed, **kwargs):  # stands in for minutes of metric learning
        trained_at.append(tuple(images.shape[-2:]))
        return face.FaceEmbedder(images.shape[-1])

    monkeypatch.setattr(face, "TRAIN_IDENTITIES", 4)
    monkeypatch.setattr(face, "train_face_embedder", quick_training)
    code, out, err = eval_folders(capsys, tmp_path, "--metric", "face-id", "--synthetic", "synth-faces")
    assert code in (0, None), err
    assert (f"note: images resized 64x64 -> {size}x{size} (bilinear, antialiased) to match synth-faces' built-in "
            "recognizer") in err and "not on real ones" in err
    assert trained_at == [(size, size)]
    header, row = out.splitlines()[:2]
    assert header.split()[-1] == "n" and row.split()[-1] == "3"  # 3 identities × 2 images: 3 probes


def test_resizing_scales_plate_boxes_and_refuses_non_square_images():
    images = torch.zeros((2, 3, 64, 64), dtype=torch.uint8)
    boxes = torch.tensor([[4, 20, 60, 40], [0, 0, 64, 64]])
    probes = ImageSet("synth-plates/folder", images, {"text": ["AB123", "CD456"], "bbox": boxes}, {"synthetic": True})
    metric = METRICS.create("plate")
    originals, recon, resized, note = match_family_resolution(images, images, probes, "synth-plates", metric)
    assert resized.size == (32, 32) and originals.shape[-1] == recon.shape[-1] == 32
    assert resized.labels["bbox"].tolist() == [[2, 10, 30, 20], [0, 0, 32, 32]]
    assert note.startswith("images resized 64x64 -> 32x32")
    wide = ImageSet("synth-plates/folder", torch.zeros((1, 3, 48, 64), dtype=torch.uint8), {}, {"synthetic": True})
    with pytest.raises(PrivbenchError, match="the images are 64x48.*crop them to squares first"):
        match_family_resolution(wide.images, wide.images, wide, "synth-plates", metric)


def test_recognizer_missing_is_rendered_for_the_command_line_and_for_a_config():
    with pytest.raises(RecognizerMissing) as caught:
        METRICS.create("plate").check("ccpd", synthetic=False)
    assert "--param weights=PATH" in caught.value.message("folders") and "--synthetic synth-plates" in str(caught.value)
    assert "--synthetic" not in caught.value.message("cli")
    assert "metrics: [{name: plate, params: {weights: PATH}}]" in caught.value.message("config")
    METRICS.create("plate").check("synth-plates", synthetic=True)  # the built-in recognizer applies
    METRICS.create("par-ma").check("pa100k", synthetic=False)  # trains on half the probes
