"""Content-addressed cache for expensive, reusable artefacts.

Everything expensive (generated datasets, trained task models, recognizers, fitted attackers, finished
grid points) is stored under a key that is the SHA-256 of the canonical JSON of *everything upstream of
it* (the "spec"). A changed upstream setting changes the key, so stale entries are never reused; an
unchanged one is loaded instead of recomputed. Entries are written atomically (temp file + rename) and
loaded with ``torch.load(..., weights_only=True)``: only tensors and plain containers, never pickled code.

torch is imported where an entry is read, written or keyed, not with this module: the atomic file helpers and
:func:`replace_folder` serve the run record (:mod:`privbench.run_record`), which answers a fully cached
``privbench run`` without importing torch.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from privbench import __version__

T = TypeVar("T")

# Bump when a change to privbench invalidates previously cached artefacts of every kind.
CACHE_FORMAT = 1
#: the cache's folder of entry locks (see :meth:`Cache.locked`)
LOCKS = ".locks"
#: a temporary file younger than this may be a write in progress: ``cache prune`` leaves it
TMP_GRACE_SECONDS = 3600.0


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


#: errors that mean the disk (not privbench) refused a write: full, over quota
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_problem(exc: OSError) -> str:
    """``exc`` in words a user acts on: "the disk is full" for a full disk or quota, else the OS's own text; with
    the path it names."""
    what = "the disk is full" if exc.errno in DISK_FULL else (exc.strerror or str(exc))
    return f"{what}: cannot write {exc.filename}" if exc.filename else what


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and an atomic rename. An ``OSError`` (a full
    disk) leaves no temporary file and names ``path`` (a write through a descriptor names no file by itself)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` into memory, then :func:`atomic_write_bytes`: a crash never leaves a truncated file, and a full
    disk is an ``OSError`` naming ``path`` (torch's own file writer reports it as a RuntimeError such as
    "enforce fail … unexpected pos" or "basic_ios::clear: iostream error")."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _umask() -> int:
    """The process umask (read by setting and restoring it: there is no read-only call)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def check_writable_folder(path: Path, option: str) -> None:
    """Raise :class:`PrivbenchError` unless ``path`` is, or can be created as, a folder this process can write.

    Checked before any compute, so an unusable ``--out`` or ``--cache-dir`` fails in a second rather than after
    the whole benchmark ran. Nothing is created: the nearest existing ancestor must be a folder that accepts a
    new file (a probe file is created and removed — the only test that also catches read-only mounts and
    root-squashed shares, where permission bits say yes).
    """
    from privbench.errors import PrivbenchError

    path = Path(path).expanduser()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is a file)"
        raise PrivbenchError(f"{option} {path} is not a folder{where}")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".privbench-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PrivbenchError(f"{option} {path} is not writable ({exc.strerror or exc})") from None


def replace_folder(target: Path, build: Callable[[Path], None]) -> None:
    """Fill a fresh folder with ``build(folder)``, then put it in place of ``target`` as a whole.

    The new folder is built as ``.NAME.tmp-XXXX`` next to ``target`` (same filesystem, so the moves are
    renames); the old ``target`` is renamed aside, the new one renamed in, and the old one deleted. A failure
    while building leaves ``target`` untouched and removes the temporary folder, so a reader sees the old
    complete outputs or the new complete ones, never a mix — and never a stale file of an earlier run (a plot
    of a metric the new run does not have). An ``OSError`` while writing (a full disk) becomes one
    :class:`PrivbenchError` line.
    """
    import shutil
    import uuid

    from privbench.errors import PrivbenchError

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        os.chmod(fresh, 0o777 & ~_umask())  # mkdtemp makes 0700; a run folder is as readable as mkdir's
        try:
            build(fresh)
        except OSError as exc:
            raise PrivbenchError(f"cannot write the run's outputs under {target.parent} ({disk_problem(exc)}); "
                                 f"{target} is unchanged") from None
        aside = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        had_old = target.exists() or target.is_symlink()
        if had_old:
            os.rename(target, aside)
        try:
            os.rename(fresh, target)
        except OSError:
            if had_old:
                os.rename(aside, target)
            raise
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    if had_old:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink()


class Cache:
    """A folder of ``<kind>/<hash>.pt`` entries; ``enabled=False`` makes every lookup a miss."""

    def __init__(self, root: Path | str | None = None, enabled: bool = True) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def key(self, kind: str, spec: Mapping[str, Any]) -> str:
        import torch

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
        import torch

        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a corrupt entry is a miss, never a crash
            return None

    def save(self, kind: str, spec: Mapping[str, Any], obj: Any) -> None:
        if self.enabled:
            atomic_torch_save({"privbench": __version__, "spec": json.loads(canonical_json(spec)), "value": obj},
                              self.path(kind, spec))

    def lock_path(self, kind: str, spec: Mapping[str, Any]) -> Path:
        return self.root / LOCKS / f"{kind}-{self.key(kind, spec)}.lock"

    @contextlib.contextmanager
    def locked(self, kind: str, spec: Mapping[str, Any]):
        """Hold the entry's lock (``flock`` on ``.locks/<kind>-<key>.lock``) while it is computed, so that concurrent
        writers — the worker processes of ``--jobs N``, Ray tasks on one machine — compute a shared entry (a task
        model, a fitted defense, a dataset) once: the others wait, then load it. The OS releases the lock of a
        killed process. Entries nest only from downstream to upstream (a point needs an attacker, which needs a
        defense, which needs the task model), so two holders never wait on each other."""
        if not self.enabled:
            yield
            return
        import fcntl

        path = self.lock_path(kind, spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def get_or_create(self, kind: str, spec: Mapping[str, Any], create: Callable[[], T],
                      encode: Callable[[T], Any] = lambda v: v, decode: Callable[[Any], T] = lambda v: v) -> T:
        """Return the cached value for ``spec`` or compute, store and return it (under the entry's lock, looking
        again once it is held: another process may have stored it meanwhile)."""
        entry = self.load(kind, spec)
        if not (isinstance(entry, dict) and "value" in entry):
            with self.locked(kind, spec):  # a no-op when the cache is disabled (load is then always a miss)
                entry = self.load(kind, spec)
                if not (isinstance(entry, dict) and "value" in entry):
                    self.misses += 1
                    value = create()
                    self.save(kind, spec, encode(value))
                    return value
        self.hits += 1
        return decode(entry["value"])

    def has(self, kind: str, spec: Mapping[str, Any]) -> bool:
        """Whether an entry exists (without loading it; ``--dry-run``)."""
        return self.enabled and self.path(kind, spec).is_file()

    def summary(self) -> list[dict[str, Any]]:
        """Per kind of entry: how many, their total size in bytes, and the oldest and newest modification times."""
        out = []
        if not self.root.is_dir():
            return out
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            stats = [f.stat() for f in folder.glob("*.pt")]
            if stats:
                out.append({"kind": folder.name, "entries": len(stats), "bytes": sum(s.st_size for s in stats),
                            "oldest": min(s.st_mtime for s in stats), "newest": max(s.st_mtime for s in stats)})
        return out

    def kinds(self) -> list[str]:
        """The kinds of entry the cache folder holds (its entry folders), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def prune(self, kinds: set[str] | None = None, older_than: float | None = None, dry_run: bool = False
              ) -> tuple[int, int, int]:
        """Delete the entries of ``kinds`` (all kinds when None) last written more than ``older_than`` seconds ago
        (all when None), with left-over temporary files of interrupted writes and unused lock files. Returns
        (files deleted, bytes freed, files skipped); ``dry_run`` only counts them.

        What a running privbench holds is skipped, never deleted: a lock file another process holds (deleting it
        would let a second process compute the entry beside the first), and a temporary file written in the last
        :data:`TMP_GRACE_SECONDS` (a write in progress; its rename would fail). Unknown kinds and a non-finite or
        negative age are refused."""
        import time

        from privbench.errors import PrivbenchError

        if older_than is not None and not (math.isfinite(older_than) and older_than >= 0):
            raise PrivbenchError(f"cache prune: --older-than must be a finite number of days >= 0, got {older_than}")
        unknown = sorted(set(kinds or ()) - set(self.kinds()))
        if unknown:
            present = ", ".join(self.kinds()) or "none"
            raise PrivbenchError(f"cache prune: no entries of kind '{unknown[0]}' in {self.root} (its kinds: "
                                 f"{present}; see `privbench cache show`)")
        now = time.time()
        files, freed, skipped = 0, 0, 0
        if not self.root.is_dir():
            return files, freed, skipped
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if folder.name == LOCKS:
                candidates = list(folder.glob("*.lock")) if kinds is None and older_than is None else []
            elif folder.name.startswith(".") or (kinds is not None and folder.name not in kinds):
                continue
            else:
                candidates = [*folder.glob("*.pt"), *folder.glob(".*.tmp")]
            for path in candidates:
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                if older_than is not None and now - stat.st_mtime < older_than:
                    continue
                in_progress = path.suffix == ".tmp" and now - stat.st_mtime < TMP_GRACE_SECONDS
                if in_progress or (path.suffix == ".lock" and not _delete_unheld_lock(path, dry_run)):
                    skipped += 1
                    continue
                files, freed = files + 1, freed + stat.st_size
                if not dry_run and path.suffix != ".lock":
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        return files, freed, skipped


def _delete_unheld_lock(path: Path, dry_run: bool) -> bool:
    """Delete the lock file ``path`` unless another process holds it (a non-blocking ``flock``; deleted while this
    process holds it, so no process can be inside it); True when it was (or, dry run, could be) deleted."""
    import fcntl

    try:
        handle = open(path, "a+b")  # noqa: SIM115 - opened before the lock, closed by the with below
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return True
