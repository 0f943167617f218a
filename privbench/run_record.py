"""Run records: a fully cached ``privbench run`` answers in a fraction of a second, without importing torch.

Why. A re-run of a finished config (every grid point in the cache) took 4-6 s on a 2-core CPU: importing torch
(2+ s alone), pandas and the components, building the engine, recomputing every cache key and publishing the run
folder again (issue 28, item 6). Yet the answer is already on disk: the folder the previous run published. So when
``privbench run`` has published a run folder and no grid point failed, it records in the cache folder

- ``runs/<key>.json``: the summary line's numbers, the notes it printed, and the path, size and SHA-256 of every
  file of the folder;
- ``runs/blobs/<sha256>``: those files' bytes, content-addressed (shared by the records that publish the same file).

The next ``privbench run`` computes the key first, from plain files only (YAML, JSON, ``stat``). On a hit whose
folder OUT/NAME still holds exactly the recorded files it prints the summary and returns; when the folder is missing
or changed it is re-published from the blobs (one atomic folder swap, :func:`privbench.cache.replace_folder`).
Neither imports torch, numpy or pandas.

**The key** covers everything that decides the folder's contents and can be read without importing torch:

- the config: the raw YAML mapping (the embedded default updated by the file's top-level keys after
  ``yaml.safe_load``, then by ``--name``/``--seed``/``--device``) with ``--model``/``--split`` as given, as strict
  canonical JSON (a YAML date, a set or a non-string key is refused, not turned into text: two configs never share
  a key);
- privbench's own code: the SHA-256 of every file under its package folders (``privbench`` and ``attacks``,
  ``defenses``, ``metrics``, ``presets`` wherever they are installed: the sources, the presets, shipped weights) by
  content. The digest of each file is remembered per (path, size, mtime, ctime, inode) in ``runs/sources-*.json``,
  so a warm run reads no source file; a file changed less than :data:`RACY_SECONDS` before it was hashed is not
  remembered (a rewrite within the same clock tick would keep its stamp), and ctime changes with every write, even
  one whose mtime is set back;
- the installed distributions: the ``*.dist-info`` / ``*.egg-info`` folders on ``sys.path`` (their names hold the
  name and version that ``importlib.metadata`` reads — torch, torchvision, numpy, ... — and their modification times
  change on a reinstall), and the interpreter;
- the git commit of the checkout (the results' ``git_sha`` column);
- the environment variables of privbench and the numerical libraries (``PRIVBENCH_*``, ``OMP_*``, ``MKL_*``,
  ``CUDA_*``, ...), the operating system's release and the CPU (model and flags: bf16 recognizers, vector
  kernels), whether a CUDA device could be present (``/dev/nvidia*``: ``--device auto``);
- the executor, ``--jobs``, ``--threads`` and the cores this process may use (a point's numbers depend on its
  thread count), and the cache folder.

``--out`` is not in the key: the published files do not name it, so a record publishes into any ``--out``.

**Who takes the fast path.** Only configs that read no user file: every dataset synthetic (``synth-*``), and nowhere
in the config a path, a weights file, a dataset folder, a model factory, a saved defense or a codec binary; no codec
at all (a codec's build — ffmpeg on PATH, the libraries Pillow links — is keyed by running it); no metric that reads
pretrained weights from ``$TORCH_HOME`` (lpips, facenet). The normal path keys such files by their content (a
dataset's images, a weights file's bytes); their mtime would not be good enough here — a file rewritten within one
clock tick, or copied back with its old mtime, would look unchanged. Everything else goes the normal way too:
``--no-cache``, ``--dry-run``, ``--defense-file``, Ray (the cluster is not known here), a journal of an interrupted
run (OUT/NAME.partial), a config that does not read, an unreadable or foreign record, a missing or changed blob. A
run with a failed grid point is never recorded, nor one whose key changed while it ran (a source file edited
mid-run: which code ran is then not known).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from privbench import __version__
from privbench.component_index import source_files
from privbench.fingerprint import file_digest

#: Bump when the record's layout or the key's inputs change.
RECORD_FORMAT = 1
#: the cache's folder of run records (blobs in ``blobs/`` under it)
RECORDS = "runs"
BLOBS = "blobs"
#: records kept per cache folder (the least recently used beyond it are dropped, with the blobs only they held)
KEEP_RECORDS = 32
#: a blob no record names is deleted only when older than this (another run may be writing its record)
BLOB_GRACE_SECONDS = 3600
#: a source file changed this recently when it is hashed is hashed again next time (its stamp may not change)
RACY_SECONDS = 2.0

#: the packages whose files are privbench's code and data (subpackages are inside their folders)
SOURCE_PACKAGES = ("privbench", "privbench.attacks", "privbench.defenses", "privbench.metrics", "privbench.presets")
#: environment variables that can change a run's numbers or files
ENV_PREFIXES = ("PRIVBENCH_", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "ONEDNN_", "DNNL_", "ATEN_", "TORCH_",
                "PYTORCH_", "CUDA_", "PYTHON")
#: ... except those that only change what is shown (``--quiet`` sets PRIVBENCH_QUIET for the run's workers)
ENV_DISPLAY = frozenset({"PRIVBENCH_QUIET"})
#: config keys that name a file or folder (a dataset root, weights, a model factory, a saved defense, a codec binary)
FILE_KEYS = frozenset({"file", "weights", "root", "csv", "annotations", "images", "factory", "encoder", "decoder",
                       "config"})
#: config values naming components that read files the config does not name: lpips' backbone and facenet's
#: checkpoint in $TORCH_HOME, a ``custom`` model's module
IMPLICIT_FILES = frozenset({"lpips", "facenet", "custom"})
#: a run name, as :func:`privbench.config.run_name` accepts it
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


@dataclasses.dataclass(frozen=True)
class Request:
    """What ``privbench run`` was asked: its arguments, with the config resolved to a path (None: the default)."""

    config_file: str | None
    name: str | None = None
    seed: int | list[int] | None = None
    device: str | None = None
    model: str | None = None
    split: str | None = None
    defense_files: tuple[str, ...] = ()
    executor: str | None = None
    jobs: int = 1
    address: str | None = None
    threads: int | None = None
    cache_dir: Path | None = None
    no_cache: bool = False
    dry_run: bool = False


@dataclasses.dataclass(frozen=True)
class RunKey:
    """A request's record key: ``key`` is the SHA-256 of ``inputs``; ``name`` the run folder's name."""

    key: str
    name: str
    cache_root: Path
    inputs: dict[str, Any] = dataclasses.field(compare=False, repr=False)
    started: float = dataclasses.field(default_factory=time.perf_counter, compare=False, repr=False)

    @property
    def path(self) -> Path:
        return self.cache_root / RECORDS / f"{self.key}.json"


@dataclasses.dataclass(frozen=True)
class Replay:
    """A request answered from its record: the lines the normal path would print (stdout, stderr)."""

    summary: str
    notes: list[str]
    republished: bool


def run_key(request: Request) -> RunKey | None:
    """The record key of ``request``, or None when it must go the normal way (see the module's docstring)."""
    if request.no_cache or request.dry_run or request.defense_files or request.executor == "ray":
        return None
    started = time.perf_counter()
    try:
        data = config_mapping(request)
        name = data.get("name", "run")
        name = str(name) if isinstance(name, (str, int)) and not isinstance(name, bool) else ""
        if not _PLAIN_NAME.fullmatch(name) or name in {".", ".."} or reads_files(data):
            return None
        config = strict_json({"config": data, "model": request.model, "split": request.split})
        from privbench.cache import default_cache_dir

        cache_root = Path(request.cache_dir) if request.cache_dir is not None else default_cache_dir()
        inputs = {
            "format": RECORD_FORMAT, "privbench": __version__, "config": json.loads(config),
            "code": source_digest(cache_root), "git": git_commit(), "python": [sys.version, sys.prefix],
            "distributions": distributions(), "environment": environment(), "cpu": cpu_identity(),
            "cuda_devices": cuda_devices(),
            "executor": [request.executor, request.jobs, request.address, request.threads, cores()],
            "cache": os.path.abspath(cache_root),
        }
    except (OSError, ValueError, TypeError, yaml.YAMLError):
        return None
    key = hashlib.sha256(strict_json(inputs).encode()).hexdigest()[:32]
    return RunKey(key, name, cache_root, inputs, started)


def config_mapping(request: Request) -> dict[str, Any]:
    """The raw config of ``request`` as the normal path builds it before validation (:func:`privbench.config.
    config_data` updated by the command line's overrides); raises on a file that does not read as a mapping."""
    from privbench import presets

    data = yaml.safe_load(presets.text(presets.DEFAULT))
    if request.config_file is not None:
        from privbench.yaml_unique import safe_load_unique

        own = safe_load_unique(Path(request.config_file).read_text(encoding="utf-8"))
        if not isinstance(own, dict):
            raise ValueError("not a mapping")
        data.update(own)
    data.update({k: v for k, v in (("name", request.name), ("seed", request.seed), ("device", request.device))
                 if v is not None})
    return data


def strict_json(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces) of plain data; TypeError for anything else (a date, a set, a
    non-string key), which ``default=str`` would turn into text that another config could spell too."""
    def check(item: Any) -> None:
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise TypeError(f"key {k!r}")
                check(v)
        elif isinstance(item, list):
            for v in item:
                check(v)
        elif not (item is None or isinstance(item, (str, bool, int, float))):
            raise TypeError(type(item).__name__)

    check(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def reads_files(data: dict[str, Any]) -> bool:
    """Whether the config may read a file that the key does not cover: a dataset that is not synthetic, a codec, a
    value under a :data:`FILE_KEYS` key, a string that looks like a path or ``module:factory``, or a component in
    :data:`IMPLICIT_FILES`. Errs on the side of True (the normal path is always right)."""
    task = data.get("task")
    datasets = [*(task.values() if isinstance(task, dict) else [task]), *_entries(data.get("attacker_data")),
                *_entries(data.get("probes"))]
    for entry in datasets:
        name = entry.get("name") if isinstance(entry, dict) else entry
        if not (isinstance(name, str) and name.startswith("synth-")):
            return True
    if any(not (isinstance(c, dict) and c.get("name") == "none" and set(c) <= {"name", "defenses"})
           for c in _entries(data.get("codecs"))):
        return True

    def walk(value: Any, key: Any = None) -> bool:
        if key in FILE_KEYS and value not in (None, "", False, [], {}):
            return True
        if key == "device":  # cuda:1 is no path
            return not isinstance(value, str)
        if isinstance(value, dict):
            return any(walk(v, k) for k, v in value.items())
        if isinstance(value, list):
            return any(walk(v, key) for v in value)
        return isinstance(value, str) and (any(c in value for c in "/\\:") or value.startswith(("~", "."))
                                           or value.lower() in IMPLICIT_FILES)

    return walk(data)


def _entries(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def source_folders() -> list[tuple[str, Path]]:
    """(package, folder) of each of :data:`SOURCE_PACKAGES`, found without importing it (an editable install and a
    normal one alike: :func:`privbench.component_index.source_folders`); a package not found is an ``OSError``."""
    from privbench.component_index import source_folders as find_folders

    try:
        return find_folders(SOURCE_PACKAGES)
    except ImportError as exc:
        raise OSError(str(exc)) from exc


def is_package_file(name: str) -> bool:
    """Every file of a package counts (sources, presets, shipped weights) but compiled and hidden ones."""
    return not name.startswith(".") and not name.endswith((".pyc", ".pyo"))


def source_digest(cache_root: Path, folders: list[tuple[str, Path]] | None = None) -> str:
    """SHA-256 over the label and content digest of every file of :func:`source_files` (default: privbench's
    :func:`source_folders`). A file's digest is taken from the memo ``runs/sources-<where>.json`` while its (size,
    mtime, ctime, inode) are those memoized; otherwise the file is read. The memo is rewritten when it changed (a
    cache folder that cannot be written only costs the reads)."""
    folders = source_folders() if folders is None else folders
    where = hashlib.sha256(json.dumps([[p, str(f)] for p, f in folders]).encode()).hexdigest()[:16]
    memo_path = Path(cache_root) / RECORDS / f"sources-{where}.json"
    memo = _read_json(memo_path) or {}
    known = memo.get("files") if memo.get("format") == RECORD_FORMAT else None
    known = known if isinstance(known, dict) else {}
    fresh: dict[str, list[Any]] = {}
    digest = hashlib.sha256()
    for label, path in source_files(folders, is_package_file):
        stat = os.stat(path)
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        entry = known.get(str(path))
        remembered = isinstance(entry, list) and len(entry) == 5 and entry[:4] == stamp and isinstance(entry[4], str)
        sha = entry[4] if remembered else file_digest(path)
        if time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > RACY_SECONDS * 1e9:
            fresh[str(path)] = [*stamp, sha]
        digest.update(f"{label}\0{sha}\n".encode())
    if fresh != known:
        from privbench.cache import atomic_write_text

        with contextlib.suppress(OSError):
            atomic_write_text(memo_path, json.dumps({"format": RECORD_FORMAT, "files": fresh}) + "\n")
    return digest.hexdigest()


def distributions() -> list[list[Any]]:
    """(path entry, folder name, mtime) of every ``*.dist-info`` / ``*.egg-info`` on ``sys.path``: each folder's
    name holds a distribution's name and version (what ``importlib.metadata`` reads, listed instead of parsed: a
    tenth of the time), its mtime changes when it is reinstalled."""
    found = []
    for entry in dict.fromkeys(sys.path):
        if not entry or not os.path.isdir(entry):
            continue
        for name in os.listdir(entry):
            if name.endswith((".dist-info", ".egg-info")):
                with contextlib.suppress(OSError):
                    found.append([entry, name, os.stat(os.path.join(entry, name)).st_mtime_ns])
    return sorted(found)


def git_commit() -> str:
    """The commit of the checkout privbench runs from (results.csv's ``git_sha`` is its prefix), else 'unknown'."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def environment() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES) and k not in ENV_DISPLAY}


def cpu_identity() -> list[str]:
    """The operating system (the manifest names its release), the CPU's model name and feature flags (Linux), else
    what ``platform`` says."""
    system = [platform.system(), platform.release()]
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            fields: dict[str, str] = {}
            for line in handle:
                if not line.strip():
                    break  # the first processor's block
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        return [*system, platform.machine(), fields.get("model name", ""), fields.get("flags", fields.get("Features", ""))]
    return [*system, platform.machine(), platform.processor()]


def cuda_devices() -> list[str]:
    """The NVIDIA device files (``--device auto`` picks CUDA when one works)."""
    with contextlib.suppress(OSError):
        return sorted(n for n in os.listdir("/dev") if n.startswith("nvidia"))
    return []


def cores() -> int:
    """CPU cores this process may use (:func:`privbench.executors.cores`: the default threads per point)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_record(run: RunKey) -> dict[str, Any] | None:
    """The record of ``run``, or None when there is none or it is unreadable, of another format or another key."""
    record = _read_json(run.path)
    if record is None or record.get("format") != RECORD_FORMAT or record.get("key") != run.key:
        return None
    files = record.get("files")
    if not (isinstance(files, dict) and files and all(_valid_entry(rel, info) for rel, info in files.items())
            and isinstance(record.get("rows"), int) and isinstance(record.get("points"), int)
            and isinstance(record.get("notes"), list) and all(isinstance(n, str) for n in record["notes"])):
        return None
    return record


def _valid_entry(rel: Any, info: Any) -> bool:
    parts = rel.split("/") if isinstance(rel, str) else []
    return (bool(parts) and all(p not in {"", ".", ".."} for p in parts) and isinstance(info, dict)
            and isinstance(info.get("size"), int) and isinstance(info.get("sha256"), str)
            and re.fullmatch(r"[0-9a-f]{64}", info["sha256"]) is not None)


def folder_files(folder: Path) -> dict[str, Path] | None:
    """Every file under ``folder`` by its relative path; None when ``folder`` is not a plain folder or holds a
    symbolic link or a special file."""
    if folder.is_symlink() or not folder.is_dir():
        return None
    found = {}
    for parent, dirs, names in os.walk(folder):
        for name in [*dirs, *names]:
            path = Path(parent, name)
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                return None
            if path.is_file():
                found[path.relative_to(folder).as_posix()] = path
    return found


def folder_matches(folder: Path, files: dict[str, dict[str, Any]]) -> bool:
    """Whether ``folder`` holds exactly ``files`` (same paths, sizes and SHA-256), nothing more."""
    found = folder_files(folder)
    if found is None or set(found) != set(files):
        return False
    if any(found[rel].stat().st_size != info["size"] for rel, info in files.items()):
        return False
    return all(file_digest(found[rel]) == info["sha256"] for rel, info in files.items())


def replay(run: RunKey, out_root: Path) -> Replay | None:
    """Answer ``run`` from its record: check OUT/NAME against it and re-publish it from the blobs when it is
    missing or changed. None (the normal path) when there is no usable record, a journal of an interrupted run
    exists, a blob is missing or changed, or the folder cannot be written."""
    from privbench.cli import partial_folder
    from privbench.errors import PrivbenchError

    record = read_record(run)
    if record is None:
        return None
    run_dir = Path(out_root) / run.name
    journal = partial_folder(out_root, run.name)
    if journal.exists() or journal.is_symlink():
        return None
    files = record["files"]
    republished = False
    try:
        if not folder_matches(run_dir, files):
            if (run_dir.exists() or run_dir.is_symlink()) and not run_dir.is_dir():
                return None  # the normal path says what is wrong
            if not _republish(run, run_dir, files):
                return None
            republished = True
        with contextlib.suppress(OSError):
            os.utime(run.path)  # recently used: kept by _tidy
    except (OSError, PrivbenchError):
        return None
    elapsed = time.perf_counter() - run.started
    state = "run folder re-published" if republished else "run folder unchanged"
    summary = (f"{record['rows']} rows -> {run_dir / 'results.csv'} ({elapsed:.1f}s; {record['points']} points: "
               f"0 computed, {record['points']} cached; from the run record, {state})")
    return Replay(summary, list(record["notes"]), republished)


def _republish(run: RunKey, run_dir: Path, files: dict[str, dict[str, Any]]) -> bool:
    """Put the recorded files in place of ``run_dir`` as one folder; False when a blob is missing or changed."""
    from privbench.cache import atomic_write_bytes, replace_folder

    blobs = run.cache_root / RECORDS / BLOBS
    contents = {}
    for rel, info in files.items():
        try:
            data = (blobs / info["sha256"]).read_bytes()
        except OSError:
            return False
        if len(data) != info["size"] or hashlib.sha256(data).hexdigest() != info["sha256"]:
            return False
        contents[rel] = data

    def build(folder: Path) -> None:
        for rel, data in contents.items():
            atomic_write_bytes(folder / rel, data)

    replace_folder(run_dir, build)
    return True


def store(run: RunKey, request: Request, run_dir: Path, rows: int, points: int, notes: list[str]) -> bool:
    """Record the folder a finished run just published (call only when no grid point failed). Not recorded when the
    key changed while the run ran (a source edited, a package installed: the code that ran is not known) or the
    cache folder cannot be written. Returns whether it was recorded."""
    if run_key(request) != run:
        return False
    try:
        from privbench.cache import atomic_write_bytes, atomic_write_text

        found = folder_files(Path(run_dir))
        if not found:
            return False
        blobs = run.cache_root / RECORDS / BLOBS
        files = {}
        for rel, path in sorted(found.items()):
            data = path.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            blob = blobs / sha
            if not (blob.is_file() and blob.stat().st_size == len(data)):
                atomic_write_bytes(blob, data)
            files[rel] = {"size": len(data), "sha256": sha}
        record = {"format": RECORD_FORMAT, "key": run.key, "name": run.name, "rows": rows, "points": points,
                  "notes": notes, "files": files, "published": os.path.abspath(run_dir),
                  "recorded": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                  "inputs": run.inputs}
        atomic_write_text(run.path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        _tidy(run.cache_root / RECORDS)
    except OSError:
        return False
    return True


def _tidy(folder: Path) -> None:
    """Keep the :data:`KEEP_RECORDS` most recently used records, and the blobs that they (or a run storing its
    record right now) use."""
    with contextlib.suppress(OSError):
        records = sorted((p for p in folder.glob("*.json") if not p.name.startswith("sources-")),
                         key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in records[KEEP_RECORDS:]:
            old.unlink(missing_ok=True)
        used = set()
        for path in records[:KEEP_RECORDS]:
            files = (_read_json(path) or {}).get("files")
            if isinstance(files, dict):
                used.update(info.get("sha256") for info in files.values() if isinstance(info, dict))
        now = time.time()
        for blob in (folder / BLOBS).iterdir():
            if blob.name not in used and now - blob.stat().st_mtime > BLOB_GRACE_SECONDS:
                blob.unlink(missing_ok=True)
