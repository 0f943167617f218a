"""The README's "Bring your own model and data" example, run as written: its YAML files and commands are read
from the README and run on fixtures made here (your module, a torchvision checkpoint, an LFW-style tree, a
CCPD folder, facenet and LPRNet weights with random values)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from privbench.cli import main
from privbench.results import read_csv

README = Path(__file__).resolve().parents[1] / "README.md"

NET = """
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes, width=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.MaxPool2d(4), nn.Flatten(), nn.Linear(width * 64, num_classes))

    def forward(self, x):
        return self.head(self.layer2(self.stem(x)))


def make(num_classes):
    return Net(num_classes)


def make_wide(num_classes):
    return Net(num_classes, width=16)
"""

# CCPD file names: area-tilt-box-vertices-plate indices-brightness-blur (the plate indices vary).
CCPD_NAMES = [f"025-95_113-154&383_386&473-386&473_177&454_154&383_363&402-0_0_{a}_{b}_27_33_16-37-15.jpg"
              for a, b in ((22, 27), (3, 5), (10, 11))]


def example() -> tuple[dict[str, str], list[list[str]]]:
    """The section's YAML files (by the name in their first comment line) and its `privbench` commands."""
    text = README.read_text()
    section = text[text.index("## Bring your own model and data"):]
    section = section[:section.index("\n## ", 10)]
    files = {}
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        name = re.match(r"# (\S+\.yaml):", block)
        assert name, f"a YAML block of the example does not start with '# NAME.yaml:': {block[:40]!r}"
        files[name.group(1)] = block
    commands = [shlex.split(line)[1:] for block in re.findall(r"```bash\n(.*?)```", section, re.S)
                for line in block.splitlines() if line.startswith("privbench ")]
    return files, commands


def make_fixtures(folder: Path) -> None:
    import torchvision
    from facenet_pytorch import InceptionResnetV1

    from privbench.recognizers.lpr import LPRNet

    (folder / "mynet.py").write_text(NET)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), folder / "r18.pt")
    facenet = InceptionResnetV1(pretrained=None, classify=False).state_dict()
    torch.save(facenet, folder / "facenet.pt")
    torch.save(LPRNet().state_dict(), folder / "lprnet.pt")
    rng = np.random.default_rng(0)
    for person in ("Ada_Lovelace", "Alan_Turing", "Grace_Hopper"):
        (folder / "lfw" / person).mkdir(parents=True)
        base = rng.integers(0, 255, (1, 1, 3))
        for k in range(2):
            face = np.clip(base + rng.normal(0, 30, (64, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(face).save(folder / "lfw" / person / f"{person}_{k + 1:04d}.jpg")
    (folder / "ccpd").mkdir()
    for name in CCPD_NAMES:
        img = rng.integers(0, 80, (480, 720, 3)).astype(np.uint8)
        img[383:473, 154:386] = 230
        Image.fromarray(img).save(folder / "ccpd" / name)


@pytest.fixture(scope="module")
def worked_example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("byo")
    make_fixtures(folder)
    files, commands = example()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder, files, commands


def test_the_readme_example_runs_as_written(worked_example, monkeypatch, capsys):
    folder, files, commands = worked_example
    assert set(files) == {"mine.yaml", "resnet.yaml", "real.yaml"} and len(commands) == 5
    monkeypatch.chdir(folder)
    for args in commands:
        main([*args, "--cache-dir", str(folder / "cache")])
    out = capsys.readouterr().out
    runs = folder / "results" / "runs"
    mine = read_csv(runs / "mine" / "results.csv")
    assert set(mine["model"]) == {"mynet.py:make_wide"}  # the second command re-ran `mine` with make_wide
    resnet = read_csv(next(runs.glob("attack-noise-rmle/results.csv")))
    assert set(resnet["model"]) == {"resnet18"} and set(resnet["split"]) == {"layer1"}
    assert (resnet[resnet.kind == "privacy"]["attack"] == "rmle").all()
    real = read_csv(runs / "real" / "results.csv")
    scored = set(zip(real["dataset"], real["metric"], strict=True))
    assert {("lfw", "face-id"), ("lfw", "psnr"), ("ccpd", "plate"), ("ccpd", "psnr")} <= scored
    assert "face-id" in out  # the eval table
