"""Content-addressed cache for expensive, reusable artefacts.

Everything expensive (generated datasets, trained task models, recognizers, fitted attackers, finished
grid points) is stored under a key that is the SHA-256 of the canonical JSON of *everything upstream of
it* (the "spec"). A changed upstream setting changes the key, so stale entries are never reused; an
unchanged one is loaded instead of recomputed. Entries are written atomically (temp file + rename) and
loaded with ``torch.load(..., weights_only=True)``: only tensors and plain containers, never pickled code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from privbench import __version__

T = TypeVar("T")

# Bump when a change to privbench invalidates previously cached artefacts of every kind.
CACHE_FORMAT = 1


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace) used for hashing specs."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def spec_hash(spec: Mapping[str, Any], length: int = 16) -> str:
    """Short hex digest of a spec."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:length]


def default_cache_dir() -> Path:
    env = os.environ.get("PRIVBENCH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "privbench"


def _file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0666 less the umask); ``mkstemp`` makes 0600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through a temp file + rename, so a crash never leaves a truncated file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class Cache:
    """A folder of ``<kind>/<hash>.pt`` entries; ``enabled=False`` makes every lookup a miss."""

    def __init__(self, root: Path | str | None = None, enabled: bool = True) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def key(self, kind: str, spec: Mapping[str, Any]) -> str:
        full = {"kind": kind, "format": CACHE_FORMAT, "torch": torch.__version__.split("+")[0], **spec}
        return spec_hash(full, length=24)

    def path(self, kind: str, spec: Mapping[str, Any]) -> Path:
        return self.root / kind / f"{self.key(kind, spec)}.pt"

    def load(self, kind: str, spec: Mapping[str, Any]) -> Any | None:
        if not self.enabled:
            return None
        path = self.path(kind, spec)
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a corrupt entry is a miss, never a crash
            return None

    def save(self, kind: str, spec: Mapping[str, Any], obj: Any) -> None:
        if self.enabled:
            atomic_torch_save({"privbench": __version__, "spec": json.loads(canonical_json(spec)), "value": obj},
                              self.path(kind, spec))

    def get_or_create(self, kind: str, spec: Mapping[str, Any], create: Callable[[], T],
                      encode: Callable[[T], Any] = lambda v: v, decode: Callable[[Any], T] = lambda v: v) -> T:
        """Return the cached value for ``spec`` or compute, store and return it."""
        entry = self.load(kind, spec)
        if entry is not None and isinstance(entry, dict) and "value" in entry:
            self.hits += 1
            return decode(entry["value"])
        self.misses += 1
        value = create()
        self.save(kind, spec, encode(value))
        return value
