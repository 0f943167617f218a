"""``privbench build-recognizers``: train the built-in recognizers the shipped presets score with and write them into
the package (:mod:`privbench.recognizers.shipped`), or check that every one of them ships for today's code.

Which recognizers a config needs is found the way a run finds them: each privacy metric scores every probe set
(and the task's test set) of the config, here on the clean images themselves, and every recognizer it asks
:func:`~privbench.recognizers.base.cached_training` for is recorded. With ``dry`` nothing is trained: a recognizer
that does not ship is reported missing.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import tempfile
from pathlib import Path

import torch

from privbench.cache import Cache, atomic_torch_save, atomic_write_text
from privbench.config import load_grid
from privbench.errors import PrivbenchError
from privbench.recognizers.base import NotShipped, Trained, fast_bf16, recording, training_precision
from privbench.recognizers.shipped import (
    MANIFEST,
    SHIPPED_KINDS,
    SHIPPED_PRECISION,
    WEIGHTS_DIR,
    code_hashes,
    file_name,
    read_manifest,
    shipped_key,
)

#: the presets whose recognizers ship (the detection preset's crops are 64-px faces and plates: trained on use)
SHIPPED_PRESETS = ("default", "quick", "attack-table", "autoencoder", "patrol", "perturbation", "obfuscation",
                   "compression")


@dataclasses.dataclass(frozen=True)
class Needed:
    kind: str
    key: str
    spec_json: str

    @property
    def file(self) -> str:
        return file_name(self.kind, self.key)


def _scan(config_paths: list[str], cache: Cache, dry: bool) -> tuple[list[Trained], list[Needed]]:
    """(recognizers trained or found, recognizers missing) over every group of every config."""
    from privbench.engine.graph import Graph
    from privbench.engine.inputs import RunInputs
    from privbench.engine.scoring import score_privacy

    found: list[Trained] = []
    missing: list[Needed] = []
    for path in config_paths:
        for group in load_grid(path).groups:
            engine = RunInputs(group, Graph(cache))
            privacy = [m for m in engine.metrics if m.side == "privacy"]
            sets = [(-1, group.task_test.name, engine.task_test)]
            sets += [(i, engine.probe_name(i), probe) for i, probe in enumerate(engine.probes)]
            for index, name, images in sets:
                x = images.floats()
                for metric in privacy:
                    with recording(dry=dry) as record:
                        try:
                            score_privacy(engine, [metric], index, name, images, x, x)
                        except NotShipped as absent:
                            if absent.kind in SHIPPED_KINDS:
                                missing.append(Needed(absent.kind, shipped_key(absent.kind, absent.spec),
                                                      json.dumps(absent.spec, sort_keys=True, default=str)))
                    found += [t for t in record.found if t.kind in SHIPPED_KINDS]
    return found, list(dict.fromkeys(missing))


def missing_recognizers(config_paths: list[str], cache: Cache | None = None) -> list[Needed]:
    """The recognizers ``config_paths`` need that do not ship for today's code (nothing is trained)."""
    with tempfile.TemporaryDirectory() as tmp:
        return _scan(config_paths, cache or Cache(Path(tmp), enabled=False), dry=True)[1]


def build(config_paths: list[str], out: Path = WEIGHTS_DIR, cache: Cache | None = None,
          echo=print) -> list[str]:
    """Train (or take from ``cache``) every recognizer ``config_paths`` need that does not ship yet, write each
    as ``out/<kind>-<key>.pt`` with its entry in ``out/manifest.json``; returns the files written."""
    if training_precision("auto") != SHIPPED_PRECISION:
        raise PrivbenchError("build the shipped recognizers in fp32 (PRIVBENCH_PRECISION=fp32): the weights are "
                             "used as given on every CPU, most of which have no native bf16")
    with tempfile.TemporaryDirectory() as tmp:
        cache = cache or Cache(Path(tmp) / "cache")
        found, _ = _scan(config_paths, cache, dry=False)
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out)
    written: list[str] = []
    for trained in found:
        key = shipped_key(trained.kind, trained.spec)
        name = file_name(trained.kind, key)
        if name in manifest["files"] and (out / name).is_file():
            continue
        atomic_torch_save({k: v.contiguous().clone() for k, v in trained.state.items()}, out / name)
        manifest["files"][name] = {
            "kind": trained.kind, "key": key, "spec": trained.spec, "code": code_hashes(trained.kind),
            "precision": trained.precision, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.machine(), "native_bf16": fast_bf16(),
            "train_seconds": trained.seconds}
        written.append(name)
        echo(f"{name}: {trained.kind}, trained in {trained.seconds:.0f}s")
    for name in stale_files(out):  # weights of older code: nothing can find them any more
        manifest["files"].pop(name, None)
        (out / name).unlink(missing_ok=True)
        echo(f"{name}: stale (its code changed), removed")
    manifest["files"] = dict(sorted(manifest["files"].items()))
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n")
    return written


def stale_files(out: Path = WEIGHTS_DIR) -> list[str]:
    """Shipped files whose key no longer matches today's code (safe to delete: nothing finds them)."""
    manifest = read_manifest(out)
    stale = []
    for name, entry in manifest["files"].items():
        if shipped_key(entry["kind"], entry["spec"]) != entry["key"]:
            stale.append(name)
    return stale


def preset_paths(names: tuple[str, ...] = SHIPPED_PRESETS) -> list[str]:
    from privbench import presets

    return [str(presets.find(name)) for name in names]

