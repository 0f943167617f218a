"""Your own model and weights: content-keyed results, weights used as given, clear factory errors, one set of
settings for `run` and `attack`, and a loud warning for a task model at chance."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
import torch
from conftest import reduced, write_config

from privbench.cache import Cache
from privbench.cli import main
from privbench.config import config_data, load_config, parse_config, with_model
from privbench.engine.inputs import RunInputs, inputs_for
from privbench.errors import PrivbenchError
from privbench.registry import MODELS
from privbench.results import read_csv
from privbench.sweep import run_benchmark

NET_SOURCE = """
from torch import nn

WIDTH = {width}


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.stem = nn.Conv2d(3, WIDTH, 3, padding=1)
        self.layer2 = nn.Sequential(nn.ReLU(), nn.Conv2d(WIDTH, WIDTH, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(WIDTH, num_classes)

    def forward(self, x):
        return self.head(self.layer2(self.stem(x)).mean(dim=(2, 3)))


def make(num_classes):
    return Net(num_classes)


def make_four():
    return Net(4)


def broken(num_classes):
    raise ValueError("boom")
"""


def write_net(folder, width: int = 4):
    path = folder / "mynet.py"
    path.write_text(NET_SOURCE.format(width=width))
    return path


def tiny(model: dict) -> dict:
    data = reduced(defenses=[{"name": "noise", "params": {"placement": "features"}, "strengths": [0.0]}],
                   attacks=[{"name": "inverse-net", "params": {"epochs": 1}}], metrics=["psnr", "accuracy"])
    data["model"] = {"epochs": 1, "lr": 0.003, "batch_size": 32, **model}
    return data


def run(data: dict, cache_dir) -> tuple[RunInputs, Cache]:
    cache = Cache(cache_dir)
    config = load_config(None, data)
    run_benchmark(config, cache, progress=False)
    return inputs_for(config, cache), cache


def entries(cache_dir, kind: str) -> int:
    return len(list((cache_dir / kind).glob("*.pt")))


def test_editing_the_model_source_recomputes(tmp_path):
    net = write_net(tmp_path)
    data = tiny({"name": "custom", "params": {"factory": f"{net}:make"}, "split": "layer2"})
    run(data, tmp_path / "cache")
    _, warm = run(data, tmp_path / "cache")
    assert warm.misses == 0
    write_net(tmp_path, width=6)  # same file, edited in place
    engine, edited = run(data, tmp_path / "cache")
    assert edited.misses > 0 and entries(tmp_path / "cache", "task-model") == 2
    assert engine.model.front.stem.out_channels == 6


def test_overwritten_weights_are_used_as_given_and_recompute(tmp_path):
    net = write_net(tmp_path)
    weights = tmp_path / "weights.pt"
    spec = MODELS.create("custom", factory=f"{net}:make")
    torch.manual_seed(1)
    torch.save(spec.build(4, (3, 32, 32)).state_dict(), weights)
    data = tiny({"name": "custom", "params": {"factory": f"{net}:make", "weights": str(weights)},
                 "split": "layer2", "epochs": 3})
    engine, _ = run(data, tmp_path / "cache")
    given = torch.load(weights, weights_only=True)
    front = dict(engine.model.front.named_parameters())
    assert front and all(torch.equal(p.cpu(), given[name]) for name, p in front.items())
    assert entries(tmp_path / "cache", "task-model") == 0  # nothing was trained

    torch.manual_seed(2)
    torch.save(spec.build(4, (3, 32, 32)).state_dict(), weights)  # overwritten in place
    engine, cache = run(data, tmp_path / "cache")
    assert cache.misses > 0
    assert torch.equal(engine.model.front.stem.weight.cpu(), torch.load(weights, weights_only=True)["stem.weight"])

    tuned, _ = run({**data, "model": {**data["model"], "fine_tune": True}}, tmp_path / "cache")
    assert not torch.equal(tuned.model.front.stem.weight.cpu(), engine.model.front.stem.weight.cpu())


def test_factory_forms_and_their_errors_are_one_line(tmp_path, monkeypatch):
    write_net(tmp_path)
    monkeypatch.chdir(tmp_path)  # `module:factory` finds modules in the current directory
    monkeypatch.delitem(sys.modules, "mynet", raising=False)  # another test's `mynet`, imported in this process
    assert MODELS.create("custom", factory="mynet:make").build(3, (3, 16, 16)).head.out_features == 3
    assert MODELS.create("custom", factory="mynet:make_four").build(4, (3, 16, 16)).head.out_features == 4
    with pytest.raises(PrivbenchError, match=r"outputs \(1, 4\).*must output \(N, 3\)"):
        MODELS.create("custom", factory="mynet:make_four").build(3, (3, 16, 16))
    with pytest.raises(PrivbenchError, match="mynet:broken failed: ValueError: boom"):
        MODELS.create("custom", factory="mynet:broken").build(3, (3, 16, 16))
    with pytest.raises(PrivbenchError, match="current directory"):
        MODELS.create("custom", factory="no_such_module:make").build(3, (3, 16, 16))
    with pytest.raises(PrivbenchError, match="not found"):
        MODELS.create("custom", factory=str(tmp_path / "missing.py") + ":make").build(3, (3, 16, 16))
    bad = tmp_path / "bad.pt"
    torch.save({"stem.weight": torch.zeros(1)}, bad)
    with pytest.raises(PrivbenchError, match="do not fit"):
        MODELS.create("custom", factory="mynet:make", weights=str(bad)).build(3, (3, 16, 16))


def test_model_on_the_command_line_merges_with_the_config(tmp_path):
    weights = tmp_path / "r18.pt"
    weights.write_bytes(b"")  # only its path matters here
    mine = write_config(tmp_path / "resnet.yaml", {"model": {"name": "resnet18", "params": {"weights": str(weights)},
                                                             "split": "layer2"}})
    model = config_data(mine)["model"]
    assert with_model(model, "resnet18") == model  # naming the config's model keeps its weights and split
    assert with_model(model, "resnet18", "layer3")["params"] == {"weights": str(weights)}
    default = config_data()["model"]
    switched = parse_config({**config_data(), "model": with_model(default, "resnet18")})
    assert switched.model.split == "layer1" and switched.model.epochs == default["epochs"]  # resnet18's own split
    assert with_model(default, "pkg.mod:make")["params"] == {"factory": "pkg.mod:make"}


def test_attack_and_run_give_identical_rows_for_the_same_point(tmp_path, capsys):
    """`attack` starts from the config's settings (here inverse-net epochs 2, not its own default), and a point
    computed alone (its own empty cache) equals the same point computed inside the grid."""
    data = reduced(defenses=[{"name": "dropout", "params": {"placement": "features"}, "strengths": [0.0, 0.5]},
                             {"name": "noise", "params": {"placement": "features"}, "strengths": [1.0]}],
                   attacks=[{"name": "rmle", "params": {"iterations": 5}},
                            {"name": "inverse-net", "params": {"epochs": 2}}],
                   metrics=["psnr", "ssim", "accuracy"])
    config = write_config(tmp_path / "grid.yaml", data)
    main(["run", str(config), "--out", str(tmp_path / "grid"), "--cache-dir", str(tmp_path / "c1"), "--quiet"])
    main(["attack", "--config", str(config), "--defense", "noise", "--strength", "1.0", "--attack",
          "inverse-net", "--out", str(tmp_path / "one"), "--cache-dir", str(tmp_path / "c2"), "--quiet"])
    grid = read_csv(tmp_path / "grid" / "small" / "results.csv")
    one = read_csv(next((tmp_path / "one").glob("*/results.csv")))
    keep = ["dataset", "model", "split", "defense", "defense_params", "strength", "attack", "metric", "kind",
            "value", "ci_low", "ci_high", "n"]

    def point(frame):
        part = frame[(frame.defense == "noise") & frame.attack.isin(["inverse-net", "none"]) & (frame.kind != "cost")]
        return part[keep].sort_values(["kind", "metric", "dataset"]).reset_index(drop=True)

    assert len(point(one)) == 1 + 2  # accuracy; psnr and ssim of the one probe set
    pd.testing.assert_frame_equal(point(one), point(grid))


def test_a_task_model_at_chance_is_a_loud_warning(tmp_path, capsys, small_run):
    data = tiny({"name": "vgg-small", "params": {"width": 8}, "split": "relu12", "epochs": 0})
    config = write_config(tmp_path / "untrained.yaml", data)
    main(["run", str(config), "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    err = capsys.readouterr().err
    assert "privbench: warning: the task model is at chance" in err
    assert "at chance" in (tmp_path / "out" / "small" / "report.md").read_text()
    assert not any("at chance" in note for note in small_run.notes)  # a trained model (SMALL) is not flagged
