"""The trained defenses of issue 12 (pruning, perturbation, obfuscator) through every command: `list`, `defend
--save`, `run` from the saved file (never refitted), and `attack`; and what each adds to the results (the deployed
split and the unpruned front's cost for pruning; the defended image's own rows for the input stages)."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import cli, reduced, write_config

from privbench.defenses.saved import read_defense
from privbench.results import read_csv

TINY = {
    "pruning": {"split": "relu22", "epochs": 1, "epochs_finetune": 1},
    "perturbation": {"width": 4, "depth": 3, "epochs": 1, "aux_epochs": 1},
    "obfuscator": {"epochs": 1, "width": 8, "blocks": 2, "deobfuscator_width": 8},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_list_shows_the_three_defenses(capsys):
    code, out, _ = cli(capsys, "list", "defenses")
    assert code == 0
    for name in TINY:
        assert name in out


@pytest.mark.parametrize("name", list(TINY))
def test_defend_save_then_run_from_the_file_and_attack(name, tmp_path, capsys):
    data = reduced()
    data["attacks"] = [{"name": "inverse-net", "params": {"epochs": 1}}]
    data["metrics"] = ["psnr", "ssim", "accuracy"]
    data["defenses"] = [{"name": name, "params": TINY[name]}]
    config = write_config(tmp_path / "tiny.yaml", data)
    cache = tmp_path / "cache"
    saved = tmp_path / f"{name}.pt"
    code, _, err = cli(capsys, "defend", "--defense", name, "--config", str(config), "--cache-dir", str(cache),
                       "--save", str(saved), *[f"--param={k}={v}" for k, v in TINY[name].items()])
    assert code == 0, err
    record = read_defense(saved)
    assert record.name == name

    data["defenses"] = [{"file": str(saved)}]
    run_config = write_config(tmp_path / "from-file.yaml", data)
    out_dir = tmp_path / "out"
    code, _, err = cli(capsys, "run", str(run_config), "--out", str(out_dir), "--cache-dir", str(cache), "--quiet")
    assert code == 0, err
    frame = read_csv(out_dir / "small" / "results.csv")
    assert set(frame["defense"]) == {name}
    assert {"utility", "cost", "privacy"} <= set(frame["kind"])
    if name == "pruning":
        assert set(frame["split"]) == {"relu22"}
        cost = frame[(frame["kind"] == "cost") & (frame["metric"] == "edge-params")].set_index("dataset")["value"]
        assert cost["edge"] < cost["edge-unpruned"]
    else:
        seen = frame[frame["kind"] == "input"]
        assert set(seen["attack"]) == {"none"}
        assert {"psnr", "ssim"} <= set(seen["metric"])
        assert (seen[seen["metric"] == "ssim"]["value"] < 1.0).all()
    if name == "perturbation":
        assert "aux-acc" in set(frame[frame["kind"] == "input"]["metric"])

    attack_out = tmp_path / "attack"
    code, _, err = cli(capsys, "attack", "--config", str(config), "--defense", name, "--attack", "inverse-net",
                       "--attack-param", "epochs=1", "--out", str(attack_out), "--cache-dir", str(cache), "--quiet")
    assert code == 0, err
    attacked = pd.concat([read_csv(p) for p in attack_out.rglob("results.csv")])
    assert name in set(attacked["defense"]) and "inverse-net" in set(attacked["attack"])
