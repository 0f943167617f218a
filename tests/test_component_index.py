"""`privbench list` from the component index (issue 16): the same bytes as importing every component, no torch
when the index is fresh, a rebuild when a source file changed or the index is corrupt; `--help` imports nothing
heavy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from privbench import component_index
from privbench.component_index import (
    KEEP_INDEXES,
    KINDS,
    index_path,
    listing_data,
    live_listing,
    read_index,
    render,
    source_files,
    source_folders,
    source_key,
    write_index,
)

#: modules that none of `privbench --help`, `privbench CMD --help` and an indexed `privbench list` may import
HEAVY = ("torch", "torchvision", "torchmetrics", "pandas", "numpy", "matplotlib", "PIL", "piq", "lpips", "sklearn",
         "facenet_pytorch", "pycocotools", "bjontegaard", "scipy")

#: runs the command line in-process in a fresh interpreter, then names the heavy modules it imported on stderr
PROBE = textwrap.dedent("""
    import json, sys
    from privbench.cli import cli, main

    commands = [[]] + [[name] for name in sorted(cli.commands)] if sys.argv[1] == "--help-all" else [sys.argv[1:]]
    for args in commands:
        try:
            main(args + ["--help"] if sys.argv[1] == "--help-all" else args)
        except SystemExit as exc:
            assert not exc.code, (args, exc.code)
    sys.stdout.flush()
    print(json.dumps([m for m in {heavy!r} if m in sys.modules]), file=sys.stderr)
""").format(heavy=HEAVY)


def probe(cache: Path, *args: str) -> tuple[bytes, list[str]]:
    """(stdout bytes, heavy modules imported) of ``privbench ARGS`` in a fresh process with ``cache`` as its cache."""
    env = {**os.environ, "PRIVBENCH_CACHE": str(cache)}
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, env=env, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout, json.loads(result.stderr.decode().strip().splitlines()[-1])


def test_help_of_every_command_imports_nothing_heavy(tmp_path):
    out, heavy = probe(tmp_path / "cache", "--help-all")
    assert b"Usage: privbench list" in out and b"Usage: privbench run" in out
    assert heavy == []


def test_list_from_the_index_is_the_direct_listing_and_imports_no_torch(tmp_path):
    cache = tmp_path / "cache"
    direct, _ = probe(cache, "list", "--no-index")
    assert not (cache / "component-index").exists()  # --no-index stores nothing
    cold, _ = probe(cache, "list")  # builds the index
    stored = list((cache / "component-index").glob("*.json"))
    assert len(stored) == 1
    warm, heavy = probe(cache, "list")
    assert heavy == []
    assert direct == cold == warm
    assert b"defenses:\n  autoencoder [strength = w_rec; trained]: " in warm and b"codecs:\n" in warm
    # every `list WHAT` renders from the stored data exactly as from the live registries
    from privbench.components import load_components

    load_components()
    listing = json.loads(stored[0].read_text(encoding="utf-8"))["components"]
    assert listing == live_listing()
    for what in (None, *KINDS):
        assert render(listing, what) == render(live_listing(), what)
    codecs, heavy = probe(cache, "list", "codecs")
    assert heavy == [] and codecs == (render(live_listing(), "codecs") + "\n").encode()


def test_kinds_are_the_registries():
    from privbench.registry import ALL_REGISTRIES

    assert tuple(ALL_REGISTRIES) == KINDS


def test_cache_root_is_the_cache_modules(monkeypatch, tmp_path):
    from privbench.cache import default_cache_dir

    for env in ({"PRIVBENCH_CACHE": str(tmp_path / "a")}, {"XDG_CACHE_HOME": str(tmp_path / "x")}, {}):
        for name in ("PRIVBENCH_CACHE", "XDG_CACHE_HOME"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert component_index.cache_root() == default_cache_dir()


def test_the_key_covers_every_component_package():
    labels = {label for label, _ in source_files(source_folders())}
    for label in ("privbench/registry.py", "privbench/components.py", "privbench/codecs/jpeg.py",
                  "privbench/models/torchvision_models.py", "privbench/data/synthetic/__init__.py",
                  "privbench.attacks/fora.py", "privbench.defenses/noise.py", "privbench.metrics/identity.py"):
        assert label in labels, label
    assert not any("__pycache__" in label for label in labels)


def test_a_changed_source_file_changes_the_key(tmp_path):
    folder = tmp_path / "pkg"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.py").write_text("A = 1\n")
    (folder / "sub" / "b.py").write_text("B = 2\n")
    folders, env = [("pkg", folder)], {"python": "3"}
    key = source_key(folders, env)
    assert source_key(folders, env) == key
    (folder / "notes.txt").write_text("not a source")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "a.cpython-311.py").write_text("stray")
    assert source_key(folders, env) == key  # neither changes what is imported

    stat = (folder / "a.py").stat()
    (folder / "a.py").write_text("A = 3\n")  # same size, same modification time: the bytes decide
    os.utime(folder / "a.py", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    edited = source_key(folders, env)
    assert edited != key
    (folder / "sub" / "c.py").write_text("")
    added = source_key(folders, env)
    assert added not in {key, edited}
    (folder / "sub" / "c.py").rename(folder / "c.py")
    assert source_key(folders, env) not in {key, edited, added}  # a moved file is another module
    (folder / "c.py").unlink()
    assert source_key(folders, env) == edited
    assert source_key(folders, {"python": "4"}) != edited


@pytest.fixture
def fresh_process(monkeypatch, tmp_path):
    """The index path of a process that registered nothing yet, with the cache in ``tmp_path``."""
    from privbench.components import load_components

    load_components()  # this test process may have loaded them already; the index path must be taken anyway
    monkeypatch.setenv("PRIVBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(component_index, "_registered_anything", lambda: False)
    return tmp_path


def test_a_stale_index_is_not_read(fresh_process, monkeypatch):
    live = live_listing()
    fake = {**live, "attacks": [{"name": "telepathy", "extra": " [query-free]", "summary": "stored", "params": []}]}
    write_index(index_path("old"), "old", fake)
    monkeypatch.setattr(component_index, "source_key", lambda: "old")
    assert listing_data() == fake  # a fresh index is what is printed ...
    monkeypatch.setattr(component_index, "source_key", lambda: "new")
    assert listing_data() == live  # ... and a changed source gives another key: rebuilt from the components
    assert read_index(index_path("new"), "new") == live


@pytest.mark.parametrize("content", ["", "{not json", "\udcff", '{"format": 1, "key": "k", "components": []}',
                                     '{"format": 999, "key": "k", "components": {}}', "[1, 2]"])
def test_a_corrupt_index_is_rebuilt(fresh_process, monkeypatch, content):
    path = index_path("k")
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert read_index(path, "k") is None
    monkeypatch.setattr(component_index, "source_key", lambda: "k")
    assert listing_data() == live_listing()
    assert read_index(path, "k") == live_listing()


def test_an_index_of_another_key_or_layout_is_refused(tmp_path):
    from privbench.components import load_components

    load_components()
    live = live_listing()
    write_index(tmp_path / "k.json", "k", live)
    assert read_index(tmp_path / "k.json", "k") == live
    assert read_index(tmp_path / "k.json", "other") is None
    document = json.loads((tmp_path / "k.json").read_text(encoding="utf-8"))
    document["components"]["defenses"][0]["params"] = [1]
    (tmp_path / "k.json").write_text(json.dumps(document), encoding="utf-8")
    assert read_index(tmp_path / "k.json", "k") is None


def test_a_source_edited_during_the_rebuild_is_not_stored(fresh_process, monkeypatch):
    keys = iter(["before", "after"])
    monkeypatch.setattr(component_index, "source_key", lambda: next(keys))
    assert listing_data() == live_listing()
    assert not index_path("before").exists() and not index_path("after").exists()


def test_an_unwritable_cache_still_lists(fresh_process, monkeypatch):
    (fresh_process / "component-index").write_text("a file where the folder should be")
    monkeypatch.setattr(component_index, "source_key", lambda: "k")
    assert listing_data() == live_listing()


def test_old_indexes_are_pruned(tmp_path):
    from privbench.components import load_components

    load_components()
    live = live_listing()
    for i in range(KEEP_INDEXES + 3):
        path = index_path(f"old{i}", tmp_path)
        write_index(path, f"old{i}", live)
        os.utime(path, ns=(i * 10**9, i * 10**9))
    write_index(index_path("new", tmp_path), "new", live)
    kept = sorted(p.stem for p in (tmp_path / "component-index").glob("*.json"))
    assert len(kept) == KEEP_INDEXES and "new" in kept and "old0" not in kept
