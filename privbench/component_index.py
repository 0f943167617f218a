"""The component index: what ``privbench list`` prints, without importing the components.

Importing the built-in components pulls in torch, torchvision, piq, lpips, facenet-pytorch, torchmetrics and
more (several seconds here; ``import torch`` alone is about 3 s), only to read declarations that are plain class
attributes. The first ``privbench list`` imports them once (:func:`~privbench.components.load_components`) and
stores the declarations — per kind, each component's name, its bracketed extras (attack access, metric side,
defense strength and training, codec quality axis, model splits), summary and :meth:`Param.describe` lines —
as one JSON document in the privbench cache folder (``$PRIVBENCH_CACHE``, else ``~/.cache/privbench``):
``component-index/<key>.json``. Later runs read it and import neither torch nor any component.

The key is the SHA-256 of the bytes of every ``.py`` file of the packages that hold components (``privbench``
with its ``codecs``, ``data``, ``models`` ..., and the separately mapped ``privbench.attacks``,
``privbench.defenses``, ``privbench.metrics``), with their relative paths, plus privbench's version, the
interpreter (``sys.version``, ``sys.prefix``) and the modification times of the site-packages folders (an
installed, upgraded or removed distribution changes them). An edited, added or removed source file therefore
gives a new key, and the index is rebuilt (slow once, then fast again); a corrupt or unreadable one is rebuilt
too. Both ways print through :func:`render`, so their output is the same byte for byte.

Only the built-in components are indexed: the registry has no plug-in entry points. A process that already
registered components (a test, an embedding program) lists its live registries instead (see
:func:`listing_data`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from privbench import __version__

#: Bump when the layout of the stored document changes.
INDEX_FORMAT = 1

#: the packages whose sources the declarations come from (privbench's subpackages are inside its folder)
SOURCE_PACKAGES = ("privbench", "privbench.attacks", "privbench.defenses", "privbench.metrics")

#: the kinds of ``privbench list``, in its order (the keys of :data:`privbench.registry.ALL_REGISTRIES`)
KINDS = ("defenses", "attacks", "metrics", "datasets", "models", "codecs")

#: index files kept in ``component-index/`` (other checkouts and environments sharing the cache have their own)
KEEP_INDEXES = 8

#: one kind's components as stored: dicts with ``name``, ``extra``, ``summary`` and ``params`` (describe() lines)
Listing = dict[str, list[dict[str, Any]]]


def cache_root() -> Path:
    """The privbench cache folder, as :func:`privbench.cache.default_cache_dir` gives it.

    Repeated here because :mod:`privbench.cache` imports torch at module level; a test checks the two agree.
    """
    env = os.environ.get("PRIVBENCH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "privbench"


def source_folders(packages: Iterable[str] = SOURCE_PACKAGES) -> list[tuple[str, Path]]:
    """(package, folder) of every package in ``packages``, found without importing it.

    ``importlib.util.find_spec`` imports only the parent (``privbench``, which is light), so this works for an
    editable install (``attacks/`` beside ``privbench/``) and a normal one (``privbench/attacks/``) alike.
    """
    folders = []
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"package {package} not found")
        folders.extend((package, Path(location)) for location in spec.submodule_search_locations)
    return folders


def is_python_source(name: str) -> bool:
    return name.endswith(".py")


def source_files(folders: Iterable[tuple[str, Path]],
                 keep: Callable[[str], bool] = is_python_source) -> list[tuple[str, Path]]:
    """Every file under ``folders`` whose name ``keep`` accepts (default: ``.py`` files) as (label, path), sorted;
    a file reached twice is listed once.

    The label is the package and the path relative to its folder (``privbench.attacks/fora.py``), so the key
    does not depend on where the checkout lives. ``__pycache__`` and hidden folders are skipped.
    """
    seen: set[Path] = set()
    files = []
    for package, folder in folders:
        for parent, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
            for name in sorted(names):
                if not keep(name):
                    continue
                path = Path(parent, name)
                real = path.resolve()
                if real in seen:
                    continue
                seen.add(real)
                files.append((f"{package}/{path.relative_to(folder).as_posix()}", path))
    return sorted(files)


def environment() -> dict[str, Any]:
    """What else the key covers: privbench's version, the interpreter and the installed distributions."""
    site_folders = {}
    for entry in sys.path:
        if entry and os.path.basename(entry.rstrip(os.sep)) in {"site-packages", "dist-packages"}:
            with contextlib.suppress(OSError):
                site_folders[entry] = os.stat(entry).st_mtime_ns
    return {"format": INDEX_FORMAT, "privbench": __version__, "python": sys.version, "prefix": sys.prefix,
            "site": site_folders}


def source_key(folders: Iterable[tuple[str, Path]] | None = None, env: Mapping[str, Any] | None = None) -> str:
    """SHA-256 over :func:`environment` and the label, size and bytes of every source file under ``folders``
    (default: :func:`source_folders`)."""
    digest = hashlib.sha256(json.dumps(environment() if env is None else env, sort_keys=True).encode())
    for label, path in source_files(source_folders() if folders is None else folders):
        data = path.read_bytes()
        digest.update(f"\0{label}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def index_path(key: str, root: Path | None = None) -> Path:
    """Where the index of ``key`` lives: ``<cache>/component-index/<key>.json``."""
    return (cache_root() if root is None else Path(root)) / "component-index" / f"{key}.json"


def _extra(kind: str, cls: type) -> str:
    """The bracketed part after a component's name in ``privbench list``."""
    if kind == "attacks":
        return f" [{cls.access.value}]"
    if kind == "metrics":
        return f" [{cls.side}]"
    if kind == "defenses":
        return f" [strength = {cls.strength_param or '(none)'}{'; trained' if cls.trained else ''}]"
    if kind == "codecs":
        direction = "higher = more bits" if cls.higher_is_better else "lower = more bits"
        return (f" [quality = {cls.quality_param}: {cls.quality_meaning or direction}; "
                f"gray {'native' if cls.native_gray else 'coded as RGB'}; needs {cls.requires or 'nothing'}]")
    if kind == "models" and cls.splits:
        return f" [splits: {', '.join(cls.splits)}]"
    return ""


def live_listing() -> Listing:
    """The listing read from the registries as they are in this process (components must be loaded)."""
    from privbench.registry import ALL_REGISTRIES

    listing: Listing = {}
    for kind, registry in ALL_REGISTRIES.items():
        listing[kind] = [
            {"name": name, "extra": _extra(kind, cls), "summary": cls.summary,
             "params": [p.describe() for p in (cls.declared_params() if kind == "codecs" else cls.params)]}
            for name, cls in registry.items()
        ]
    return listing


def render(listing: Listing, what: str | None = None) -> str:
    """The text of ``privbench list [WHAT]`` (without the final newline)."""
    lines = []
    for kind, entries in listing.items():
        if what and kind != what:
            continue
        lines.append(f"{kind}:")
        if not entries:
            lines.append("  (none yet)")
        for entry in entries:
            lines.append(f"  {entry['name']}{entry['extra']}: {entry['summary']}")
            lines.extend(f"      {line}" for line in entry["params"])
    return "\n".join(lines)


def _valid(listing: Any) -> bool:
    """Whether ``listing`` has the stored layout (a corrupt or foreign file is rebuilt, never printed)."""
    if not isinstance(listing, dict) or tuple(listing) != KINDS:
        return False
    for entries in listing.values():
        if not isinstance(entries, list):
            return False
        for entry in entries:
            if not isinstance(entry, dict) or set(entry) != {"name", "extra", "summary", "params"}:
                return False
            if not all(isinstance(entry[k], str) for k in ("name", "extra", "summary")):
                return False
            if not isinstance(entry["params"], list) or not all(isinstance(p, str) for p in entry["params"]):
                return False
    return True


def read_index(path: Path, key: str) -> Listing | None:
    """The listing stored at ``path`` for ``key``, or None when it is missing, unreadable, corrupt or another key's."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != INDEX_FORMAT or document.get("key") != key:
        return None
    listing = document.get("components")
    return listing if _valid(listing) else None


def write_index(path: Path, key: str, listing: Listing) -> None:
    """Store ``listing`` for ``key`` atomically, then drop all but the :data:`KEEP_INDEXES` newest index files.

    Uses :func:`privbench.cache.atomic_write_text`, which imports torch: only the rebuild, which has just
    imported the components (and torch with them), calls this.
    """
    from privbench.cache import atomic_write_text

    document = {"format": INDEX_FORMAT, "key": key, "privbench": __version__, "components": listing}
    atomic_write_text(path, json.dumps(document, ensure_ascii=False, indent=1) + "\n")
    with contextlib.suppress(OSError):
        others = sorted((p for p in path.parent.glob("*.json") if p != path), key=lambda p: p.stat().st_mtime_ns,
                        reverse=True)
        for old in others[KEEP_INDEXES - 1:]:
            old.unlink(missing_ok=True)


def _registered_anything() -> bool:
    from privbench.registry import ALL_REGISTRIES

    return any(registry.names() for registry in ALL_REGISTRIES.values())


def listing_data(use_index: bool = True) -> Listing:
    """The listing ``privbench list`` prints: from the index when it is fresh, else built and stored.

    The live registries are read instead (after :func:`load_components`) when ``use_index`` is False or this
    process has already registered components: then they are loaded anyway, and may hold more than the
    built-ins. Without a usable source key (a package folder not found) or a writable cache, the listing is
    built directly and not stored.
    """
    from privbench.components import load_components

    if not use_index or _registered_anything():
        load_components()
        return live_listing()
    try:
        key = source_key()
    except (ImportError, OSError):
        load_components()
        return live_listing()
    path = index_path(key)
    listing = read_index(path, key)
    if listing is not None:
        return listing
    load_components()
    listing = live_listing()
    # A source edited while the components were imported: the listing may be of either version; not stored.
    with contextlib.suppress(ImportError, OSError):
        if source_key() == key:
            write_index(path, key, listing)
    return listing
