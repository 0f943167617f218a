"""The shipped presets (issue 16): each is found by name, parses as a grid and expands without running anything;
the attack-table preset is the sweep benchmarks/attack_table.py used to hand-write (a list of splits and one
attack twice under a label)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from privbench import presets
from privbench.cache import Cache
from privbench.cli import resolve_config
from privbench.config import load_config, load_grid
from privbench.errors import PrivbenchError
from privbench.worst_case import WORST

#: what issue 16 asks to ship: the quick default, detection, compression, and each paper's experiment
EXPECTED = {"quick", "default", "compression", "detection", "attack-table", "autoencoder", "patrol",
            "perturbation", "obfuscation"}


def test_the_presets_ship_in_the_package_and_resolve_by_name():
    assert set(presets.names()) >= EXPECTED
    for name in presets.names():
        path = Path(resolve_config(name))
        assert path.name == f"{name}.yaml" and path.parent.name == "presets"
        data = yaml.safe_load(path.read_text())
        assert data["name"] == name, f"{name}.yaml runs under another name ({data['name']})"
        assert path.read_text().lower().startswith(f"# the {name} preset"), f"{name}.yaml: no header saying what it is"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_preset_parses_and_expands_to_a_grid(name, tmp_path):
    from privbench.grid import expand

    grid = load_grid(resolve_config(name))
    points = expand(grid, Cache(tmp_path, enabled=False))
    assert points and all(p.key for p in points)
    assert len({p.id for p in points}) == len(points), "two grid points share a cache key"


def test_the_attack_table_preset_sweeps_splits_and_labels_a_second_shadow(tmp_path):
    from privbench.grid import expand

    grid = load_grid(resolve_config("attack-table"))
    assert [g.model.split for g in grid.groups] == ["conv11", "relu12", "relu22", "relu32"]
    columns = [a.column for a in grid.groups[0].attacks]
    assert columns == ["rmle", "inverse-net", "shadow", "shadow-he", "fora"]
    points = [p for p in expand(grid, Cache(tmp_path, enabled=False)) if p.attack is not None]
    shadows = [p for p in points if p.attack.name == "shadow" and p.split == "relu12"]
    assert len(shadows) == 2 and shadows[0].key != shadows[1].key


def test_an_attack_given_twice_needs_a_label():
    twice = {"attacks": [{"name": "inverse-net"}, {"name": "inverse-net", "params": {"epochs": 2}}]}
    with pytest.raises(PrivbenchError, match="attack 'inverse-net' is listed twice.*give one of them a 'label'"):
        load_config(None, twice)
    labelled = {"attacks": [{"name": "inverse-net"}, {"name": "inverse-net", "label": "inv2", "params": {"epochs": 2}}]}
    assert [a.column for a in load_config(None, labelled).attacks] == ["inverse-net", "inv2"]
    for bad in ("", "a,b", 3):
        with pytest.raises(PrivbenchError, match="label"):
            load_config(None, {"attacks": [{"name": "rmle", "label": bad}]})
    # a label that reads as another attack, or as the worst-case rows, is refused; its own name is allowed
    for misleading in ("shadow", WORST):
        with pytest.raises(PrivbenchError, match=f"label' '{misleading}' names another attack"):
            load_config(None, {"attacks": [{"name": "rmle", "label": misleading}]})
    assert load_config(None, {"attacks": [{"name": "rmle", "label": "rmle"}]}).attacks[0].column == "rmle"


def test_a_label_only_renames_the_rows_of_an_attack(tmp_path):
    """The label is in the point's key (its rows carry it) but not in the fitted attack's: relabelling an attack
    refits nothing."""
    from privbench.engine.inputs import inputs_for
    from privbench.grid import checked_settings, point_node

    plain = load_config(resolve_config("quick"))
    labelled = load_config(resolve_config("quick"), {"attacks": [{"name": "rmle", "label": "white-box",
                                                                  "params": dict(plain.attacks[1].params)}]})
    cache = Cache(tmp_path, enabled=False)
    a, b = inputs_for(plain, cache), inputs_for(labelled, cache)
    from privbench.engine.settings import SettingChoice

    (setting, file), *_ = checked_settings(a)[0]
    choice = SettingChoice.of(setting, file)
    rows_a, rows_b = point_node(a, choice, plain.attacks[1]), point_node(b, choice, labelled.attacks[0])
    assert rows_a.digest != rows_b.digest and rows_b.params["column"] == "white-box"
    assert rows_a.input("recon").input("attacker").digest == rows_b.input("recon").input("attacker").digest


def test_listing_a_grid_needs_no_codec_binary_but_running_it_does(tmp_path, monkeypatch):
    """Parsing and expanding a preset whose codec needs ffmpeg works on a machine without ffmpeg (the missing binary
    is reported, issue 28); a run of it is refused with one line before any compute."""
    from privbench.grid import codec_problems, expand

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no ffmpeg (nor anything else) on PATH
    grid = load_grid(resolve_config("compression"))
    cache = Cache(tmp_path, enabled=False)
    assert expand(grid, cache)
    problems = codec_problems(grid, cache)
    assert len(problems) == 1 and "ffmpeg is not on PATH" in problems[0]
    with pytest.raises(PrivbenchError, match="codec 'hevc' backend=ffmpeg needs ffmpeg"):
        expand(grid, cache, require_codecs=True)
