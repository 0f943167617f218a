"""The built-in recognizers ship with the package (issue 28): keyed by their spec and the code that makes them,
used as given where the key matches, trained where it does not; stale weights cannot land."""

from __future__ import annotations

import pytest
import torch

from privbench.build_recognizers import missing_recognizers, preset_paths, stale_files
from privbench.cache import Cache
from privbench.recognizers import shipped
from privbench.recognizers.base import PRECISION_ENV, cached_training
from privbench.recognizers.shipped import load_shipped, read_manifest, shipped_key


def test_every_recognizer_the_default_and_quick_presets_score_with_ships_for_todays_code():
    """Fails after a change to a synthetic generator or a recognizer until `privbench build-recognizers` is run
    again (and its files committed)."""
    missing = missing_recognizers(preset_paths(("default", "quick")))
    assert not missing, ("recognizer weights missing for today's code (run `privbench build-recognizers` and commit "
                         f"privbench/recognizers/weights/): {[m.file for m in missing]}")


def test_no_stale_weights_ship_and_every_listed_file_exists():
    assert stale_files() == [], "weights whose code changed: delete them and their manifest entries"
    manifest = read_manifest()
    assert manifest["files"], "no shipped recognizers"
    on_disk = {p.name for p in shipped.WEIGHTS_DIR.glob("*.pt")}
    assert on_disk == set(manifest["files"]), "manifest and weights folder disagree"
    for name, entry in manifest["files"].items():
        assert name == shipped.file_name(entry["kind"], entry["key"])
        assert entry["precision"] == "fp32"


def _one_shipped():
    name, entry = next(iter(sorted(read_manifest()["files"].items())))
    return entry["kind"], entry["spec"]


def test_shipped_weights_are_used_as_given_and_nothing_is_trained(tmp_path, monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    kind, spec = _one_shipped()

    def train():
        raise AssertionError("a shipped recognizer was trained")

    state = cached_training(Cache(tmp_path), kind, spec, train, device="cpu")
    expected = torch.load(shipped.WEIGHTS_DIR / shipped.file_name(kind, shipped_key(kind, spec)), weights_only=True)
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in state)


def test_another_spec_or_an_explicit_precision_trains(tmp_path, monkeypatch):
    kind, spec = _one_shipped()
    other = {**spec, "hyper": [*spec["hyper"], "changed"]}
    assert load_shipped(kind, other) is None

    trained = []

    def train():
        trained.append(1)
        return torch.nn.Linear(1, 1)

    monkeypatch.setenv(PRECISION_ENV, "bf16")  # another precision asked for is a request to train in it
    cached_training(Cache(tmp_path, enabled=False), kind, spec, train, device="cpu")
    assert trained == [1]
    monkeypatch.setenv(PRECISION_ENV, "fp32")  # the shipped weights' own precision: they answer it
    cached_training(Cache(tmp_path, enabled=False), kind, spec, train, device="cpu")
    assert trained == [1]


def test_the_key_follows_the_code(tmp_path, monkeypatch):
    """Editing a file a recognizer's weights depend on changes its key (so the old file is no longer found)."""
    kind, spec = _one_shipped()
    before = shipped_key(kind, spec)
    source = tmp_path / "generator.py"
    source.write_text("x = 1\n")
    monkeypatch.setattr(shipped, "_ROOT", tmp_path)
    monkeypatch.setitem(shipped.CODE, kind, ("generator.py",))
    first = shipped_key(kind, spec)
    source.write_text("x = 2\n")
    shipped._file_hash.cache_clear()
    assert shipped_key(kind, spec) != first != before
    shipped._file_hash.cache_clear()


def test_a_damaged_shipped_file_is_refused(tmp_path, monkeypatch):
    from privbench.errors import PrivbenchError

    kind, spec = _one_shipped()
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / shipped.file_name(kind, shipped_key(kind, spec))).write_bytes(b"not a torch file")
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", folder)
    with pytest.raises(PrivbenchError, match="cannot be read"):
        load_shipped(kind, spec)
