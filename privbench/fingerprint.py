"""Content digests of the files a result depends on: weights, a user's model source, real datasets.

A cache key that names a file by its path (or its modification time) returns stale results when the file is
edited or replaced in place; privbench keys such inputs by the SHA-256 of their bytes. Nothing is memoized
here: file timestamps are coarse (a few milliseconds), so (path, size, mtime) cannot tell two quick writes of
the same length apart. Callers compute a run's keys once (hashing a 45 MB checkpoint takes about 0.1 s).
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Iterable
from pathlib import Path

#: bytes read at a time while hashing
CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(Path(path).expanduser(), "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def files_digest(paths: Iterable[Path], root: Path | None = None) -> str:
    """One digest of several files: their names (relative to ``root`` when given) and contents, in order."""
    h = hashlib.sha256()
    for path in paths:
        name = str(path.relative_to(root)) if root is not None else path.name
        h.update(name.encode() + b"\0" + file_digest(path).encode() + b"\n")
    return h.hexdigest()


def module_source_files(module_name: str) -> list[Path]:
    """The Python source files a user's module stands for: the module's own file, or, when it belongs to a
    package, every ``.py`` file of its top-level package (a factory often imports its building blocks from
    sibling modules, and editing those must invalidate results too)."""
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    top = sys.modules.get(module_name.split(".")[0], module)
    package_dirs = [Path(p) for p in getattr(top, "__path__", None) or []]
    if package_dirs:
        return sorted(p for d in package_dirs for p in d.rglob("*.py"))
    source = getattr(module, "__file__", None)
    return [Path(source)] if source else []


def module_digest(module_name: str) -> str:
    """Digest of the source of ``module_name`` (see :func:`module_source_files`); names are relative to the
    files' common folder, so moving the project elsewhere keeps its results."""
    files = [f.resolve() for f in module_source_files(module_name)]
    if not files:
        return ""
    root = files[0].parent
    while not all(root == f.parent or root in f.parents for f in files):
        root = root.parent
    return files_digest(files, root=root)
