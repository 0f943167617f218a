"""Recognizer weights that ship with the package (issue 28).

The built-in recognizers of the synthetic families (face embedder, plate reader, attribute classifier) are
the evaluator's instruments: every run of the embedded benchmark scores with them. Training them on first use
cost a quarter of a cold default run, and trained on two CPUs they came out different (another summation order,
bf16 on one, fp32 on the other), so two machines scored the same reconstructions with different instruments.
So the ones the shipped presets need are weights files in the package, under ``weights/``, written by
``privbench build-recognizers`` from the generators, and used as given on every machine.

A shipped file is found by its **key**: the hash of the recognizer's spec (its kind, training data spec, training
seed and hyper-parameters, exactly as the cache keys it) and of the **code** that generates its training data and
defines and trains the network (:data:`CODE`: the source files by content, and for plates the font's bytes). Change
a generator or a recognizer and the key changes: the old file is no longer found, the cache trains the recognizer
as before, and ``tests/test_shipped_recognizers.py`` fails until ``privbench build-recognizers`` is run again, so
stale weights cannot land. A family with other parameters (another size, plate length, identity count) has another
key and is trained on first use, as before.

Shipped weights (trained in fp32) are used unless another training precision is asked for (a metric's
``precision`` or ``$PRIVBENCH_PRECISION`` set to ``bf16``: a request to train in it). ``weights/manifest.json``
records, per file, its kind, key, spec, the code hashes, and the machine and precision it was trained on.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import torch

from privbench.cache import spec_hash
from privbench.errors import PrivbenchError
from privbench.fingerprint import file_digest

#: where shipped weights live (package data)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = "manifest.json"
#: the recognizers that ship; adaptations to an attack's reconstructions (``par-adapt``, ``lpr-adapt``) are per run
SHIPPED_KINDS = ("face", "lpr", "par", "attack-classifier")

_ROOT = Path(__file__).resolve().parents[1]  # the privbench package
_SYNTHETIC = ("data/synthetic/common.py", "data/base.py")
_TRAINING = ("recognizers/base.py",)
#: per kind, the package files whose code decides the recognizer's weights: its training data's generator, the
#: network and its training loop
CODE: dict[str, tuple[str, ...]] = {
    "face": (*_SYNTHETIC, "data/synthetic/faces.py", *_TRAINING, "recognizers/face.py"),
    "lpr": (*_SYNTHETIC, "data/synthetic/plates.py", *_TRAINING, "recognizers/lpr.py"),
    "par": (*_SYNTHETIC, "data/synthetic/faces.py", "data/synthetic/pedestrians.py", *_TRAINING, "recognizers/par.py"),
    "attack-classifier": (*_SYNTHETIC, "data/synthetic/faces.py", "data/synthetic/pedestrians.py",
                          "data/synthetic/plates.py", "data/synthetic/scenes.py", *_TRAINING, "recognizers/par.py"),
}


@functools.cache
def _file_hash(path: str) -> str:
    return file_digest(path)[:16]


def code_hashes(kind: str) -> dict[str, str]:
    """Content hashes of the files that decide recognizer ``kind``'s weights (plates: the font too)."""
    hashes = {name: _file_hash(str(_ROOT / name)) for name in CODE[kind]}
    if kind in ("lpr", "attack-classifier"):
        from privbench.data.synthetic.common import FONT_PATH

        hashes["font"] = _file_hash(str(FONT_PATH))
    return hashes


def shipped_key(kind: str, spec: dict[str, Any]) -> str:
    """The key a shipped weights file of recognizer ``kind`` with cache spec ``spec`` is filed under."""
    return spec_hash({"recognizer": kind, "spec": spec, "code": code_hashes(kind)}, length=20)


def file_name(kind: str, key: str) -> str:
    return f"{kind}-{key}.pt"


#: the precision every shipped recognizer was trained in (``build-recognizers`` refuses any other)
SHIPPED_PRECISION = "fp32"


def other_precision_requested(precision: str) -> bool:
    """Whether a training precision other than the shipped weights' was asked for (a metric's ``precision``, else
    ``$PRIVBENCH_PRECISION``): a request to train in it, which shipped fp32 weights do not answer."""
    from privbench.recognizers.base import PRECISION_ENV

    choice = (precision or "auto").strip().lower()
    if choice == "auto":
        choice = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
    return choice not in ("auto", SHIPPED_PRECISION)


def load_shipped(kind: str, spec: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The shipped state dict of ``kind`` for ``spec``, or None when none ships for this spec and code (read once
    per process: every point of a run scores with it; callers copy it into their network)."""
    if kind not in SHIPPED_KINDS:
        return None
    path = WEIGHTS_DIR / file_name(kind, shipped_key(kind, spec))
    return _read_state(path) if path.is_file() else None


@functools.lru_cache(maxsize=8)
def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file is refused, never half-used
        raise PrivbenchError(f"shipped recognizer weights {path} cannot be read ({exc}); reinstall privbench or "
                             f"run `privbench build-recognizers`") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PrivbenchError(f"shipped recognizer weights {path} are not a state dict")
    return state


def read_manifest(folder: Path = WEIGHTS_DIR) -> dict[str, Any]:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {"files": {}}
