"""`privbench eval`: a run directory (reconstructions from the cache) or a pair of image folders."""

import copy

import numpy as np
import pytest
from conftest import SMALL, cli, gaussian_blur, write_config
from PIL import Image

from privbench.components import load_components
from privbench.registry import DATASETS

load_components()

TINY = copy.deepcopy(SMALL)
TINY.update(
    name="tiny-eval",
    model={**SMALL["model"], "epochs": 1},
    task={"train": {"name": "synth-scenes", "params": {"subset": "train", "n": 128, "size": 32}},
          "test": {"name": "synth-scenes", "params": {"subset": "test", "n": 32, "size": 32}}},
    attacker_data=[{"name": "synth-scenes", "params": {"subset": "attacker", "n": 64, "size": 32}}],
    probes=[{"name": "synth-faces", "params": {"subset": "test", "identities": 4, "per_identity": 2, "size": 32}}],
    defenses=[{"name": "noise", "params": {"placement": "features"}, "strengths": [0.0, 4.0]}],
    attacks=[{"name": "inverse-net", "params": {"epochs": 1}}],
    metrics=["psnr"],
)


@pytest.fixture(scope="module")
def face_folders(tmp_path_factory):
    """Synthetic faces saved as PNG, a folder per person; reconstructions = the same faces blurred."""
    root = tmp_path_factory.mktemp("folders")
    faces = DATASETS.create("synth-faces", subset="test", identities=20, per_identity=3, size=32).build()
    blurred = (gaussian_blur(faces.floats(), 1.5) * 255).round().byte()
    for i, gid in enumerate(faces.labels["identity"].tolist()):
        for folder, images in (("orig", faces.images), ("recon", blurred)):
            path = root / folder / f"person{gid:03d}" / f"{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(path)
    return root


def test_eval_on_folders(capsys, face_folders, recognizer_context):
    code, out, err = cli(capsys, "eval", "--metric", "psnr", "--recon", str(face_folders / "recon"), "--orig",
                         str(face_folders / "orig"), "--no-cache")
    assert code in (0, None), err
    assert "psnr" in out and "folder" in out
    # face-id from the folder-per-person layout; the built-in embedder trains on the synth-faces train subset
    code, out, err = cli(capsys, "eval", "--metric", "face-id", "--recon", str(face_folders / "orig"), "--orig",
                         str(face_folders / "orig"), "--synthetic", "synth-faces", "--cache-dir",
                         str(recognizer_context.cache.root))
    assert code in (0, None), err
    value = float(out.splitlines()[1].split()[2])
    assert value >= 0.95  # the probes of tests/test_face_id.py: measured 1.0 in fp32 and bf16, 0.975 other seeds
    # 32-px images are synth-faces' own resolution: nothing resized, but the output says what scored them
    assert "note: face-id uses synth-faces' built-in recognizer (trained on" in err and "resized" not in err


def test_eval_folder_errors(capsys, tmp_path, face_folders):
    code, _, err = cli(capsys, "eval", "--metric", "psnr", "--recon", str(tmp_path / "none"), "--orig",
                       str(face_folders / "orig"))
    assert code == 2 and "--recon folder not found" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "r").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "r" / "x.png")
    code, _, err = cli(capsys, "eval", "--metric", "psnr", "--recon", str(tmp_path / "r"), "--orig",
                       str(face_folders / "orig"))
    assert code == 2 and "has no reconstruction for" in err
    code, _, err = cli(capsys, "eval", "--metric", "accuracy", "--recon", str(face_folders / "recon"), "--orig",
                       str(face_folders / "orig"))
    assert code == 2 and "utility metric" in err
    code, _, err = cli(capsys, "eval", "--metric", "psnr")
    assert code == 2 and "--run RUN_DIR" in err
    code, _, err = cli(capsys, "eval", "--metric", "plate", "--recon", str(face_folders / "recon"), "--orig",
                       str(face_folders / "orig"))
    assert code == 2 and "needs labels text, bbox" in err
    code, _, err = cli(capsys, "eval", "--metric", "face-id", "--recon", str(face_folders / "recon"), "--orig",
                       str(face_folders / "orig"), "--synthetic", "lfw")
    assert code == 2 and "'lfw' is a real dataset, not a synthetic family" in err
    # without --synthetic the folders are real images: the built-in embedder does not apply (exit 2, how-to)
    code, out, err = cli(capsys, "eval", "--metric", "face-id", "--recon", str(face_folders / "recon"), "--orig",
                         str(face_folders / "orig"))
    assert code == 2 and out == "" and "--param embedder=facenet --param weights=PATH" in err


def test_eval_on_a_run_directory(capsys, tmp_path):
    config = write_config(tmp_path / "tiny.yaml", TINY)
    cache = str(tmp_path / "cache")
    code, _, err = cli(capsys, "run", str(config), "--out", str(tmp_path / "runs"), "--cache-dir", cache, "--quiet")
    assert code in (0, None), err
    run_dir = tmp_path / "runs" / "tiny-eval"
    assert (run_dir / "config.yaml").is_file()
    code, out, err = cli(capsys, "eval", "--metric", "ssim", "--run", str(run_dir), "--cache-dir", cache)
    assert code in (0, None), err
    lines = out.strip().splitlines()
    assert len(lines) == 3 and "ssim" in lines[1] and "synth-faces" in lines[1]  # header + two strengths
    (run_dir / "config.yaml").unlink()
    code, _, err = cli(capsys, "eval", "--metric", "ssim", "--run", str(run_dir), "--cache-dir", cache)
    assert code == 2 and "no config.yaml" in err
