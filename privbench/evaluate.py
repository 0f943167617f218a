"""``privbench eval``: score one privacy metric on a finished run, or on a folder of reconstructions.

Two sources of reconstructions:

- a **run directory** written by ``privbench run``/``attack``: its ``config.yaml`` names everything upstream,
  so the reconstructions of every grid point come from the content-addressed cache (``recon`` entries; any
  that are missing, e.g. after clearing the cache, are recomputed exactly as the run computed them);
- a **pair of image folders** (``--recon``, ``--orig``): image files with the same relative paths. Labels come
  from a CSV (``--labels``: a ``file`` column with the relative path, then any of ``identity``, ``label``,
  ``text``, ``x1, y1, x2, y2`` (plate box) and 0/1 attribute columns) or, for faces, from a folder per person.
  ``--synthetic FAMILY`` says the images are that synthetic family's: built-in recognizers then train on its
  ``train`` subset at the family's own resolution (:func:`family_resolution`), and folder images of another
  size are resized to it (bilinear, antialiased), with a note that says so.

A metric that cannot score the images stops ``eval`` with one line that says how to provide what it lacks
(:meth:`~privbench.metrics.base.Metric.check`, e.g. facenet weights for real faces), before anything is
computed; an unavailable score is an error here, not a row with a note: ``eval`` scores one metric, so a table
without its value answers nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml

from privbench.cache import Cache
from privbench.data.base import ImageSet
from privbench.data.real import IMAGE_SUFFIXES, RealDataset, read_rgb
from privbench.device import resolve_device
from privbench.errors import MetricUnavailable, PrivbenchError
from privbench.metrics.base import Metric, MetricContext, PrivacyInputs, RecognizerMissing, Style
from privbench.registry import ATTACKS, DATASETS
from privbench.results import EVAL_COLUMNS


def _score(metric: Metric, inputs: PrivacyInputs, context: MetricContext, style: Style,
           **where: Any) -> dict[str, Any]:
    row: dict[str, Any] = {**where, "metric": metric.name}
    try:
        s = metric.score(inputs, context)
    except MetricUnavailable as exc:
        raise _unavailable(metric, str(where.get("dataset", "")), exc, style) from None
    return {**row, "value": s.value, "ci_low": s.ci_low, "ci_high": s.ci_high, "ci_method": s.ci_method,
            "n": s.n}


def _unavailable(metric: Metric, dataset: str, exc: MetricUnavailable, style: Style) -> PrivbenchError:
    """The one-line user error of a metric that cannot score ``dataset``, with its how-to for the command line."""
    if isinstance(exc, RecognizerMissing):
        return PrivbenchError(exc.message(style))
    return PrivbenchError(f"metric '{metric.name}' cannot score {dataset}: {exc}")


def _check(metric: Metric, name: str, synthetic: bool, style: Style) -> None:
    """:meth:`Metric.check` as a user error: run before any reconstruction is computed or recognizer trained."""
    try:
        metric.check(name, synthetic)
    except MetricUnavailable as exc:
        raise _unavailable(metric, name, exc, style) from None


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=[c for c in EVAL_COLUMNS if c in frame.columns])


def check_privacy_metric(metric: Metric) -> None:
    if metric.side != "privacy":
        raise PrivbenchError(f"eval scores privacy metrics; '{metric.name}' is a {metric.side} metric (it is "
                             "in the run's results.csv)")


def score_run(run_dir: Path, metric: Metric, cache: Cache, device: str | None = None) -> pd.DataFrame:
    """One row per (defense setting, attack, probe set) of the run that ``metric`` applies to."""
    from privbench.config import load_config
    from privbench.engine.attack_rows import recon_node
    from privbench.engine.inputs import inputs_for
    from privbench.grid import checked_settings

    check_privacy_metric(metric)
    path = Path(run_dir) / "config.yaml"
    if not Path(run_dir).is_dir():
        raise PrivbenchError(f"run directory not found: {run_dir}")
    if not path.is_file():
        raise PrivbenchError(f"{run_dir} has no config.yaml (written by `privbench run` since `eval` exists; "
                             "run it again)")
    config = load_config(path, {"device": device} if device else None)
    inputs = inputs_for(config, cache)
    # Each probe set and the crop views inside it (the faces and plates of detection scenes) that carry the
    # metric's labels.
    applicable = [(i, label, images, crop) for i in range(len(config.probes))
                  for label, images, crop in inputs.privacy_sets(i, inputs.probe_name(i), inputs.probes[i])
                  if metric.applies_to(images) and (crop is None or metric.requires)]
    for _, label, images, _ in applicable:
        _check(metric, label, bool(images.meta.get("synthetic")), "cli")
    rows = []
    settings, problems = checked_settings(inputs) if applicable else ([], [])
    if problems:  # a codec of the run that cannot run here
        raise PrivbenchError(problems[0])
    originals = {i: inputs.probes[i].floats() for i, _, _, _ in applicable}
    for setting, _ in settings:  # every setting of the run, each codec quality among them
        columns = setting.columns()
        for attack_cfg in config.attacks:
            recon = inputs.graph.get(recon_node(inputs, setting, ATTACKS.create(attack_cfg.name, **attack_cfg.params)))
            for i, label, images, crop in applicable:
                x, x_hat = originals[i], recon[inputs.probe_name(i)].float().div(255.0)
                if crop is not None:
                    x, x_hat = crop(x), crop(x_hat)
                rows.append(_score(metric, PrivacyInputs(x, x_hat, images), inputs.context, "cli",
                                   defense=setting.defense.name, strength=setting.defense.strength,
                                   codec=columns["codec"], quality=columns["quality"], attack=attack_cfg.column,
                                   dataset=label))
    if not rows:
        names = ", ".join(inputs.probe_name(i) for i in range(len(config.probes)))
        raise PrivbenchError(f"metric '{metric.name}' applies to none of the run's probe sets ({names})")
    return _frame(rows)


def _read_image(path: Path) -> np.ndarray:
    """H×W×3 uint8: the same conversion as the dataset loaders (16-bit scaled, palette expanded, ...)."""
    return np.asarray(read_rgb(path), dtype=np.uint8)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _stack(folder: Path, files: list[Path], what: str) -> torch.Tensor:
    arrays = [_read_image(folder / f) for f in files]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise PrivbenchError(f"{what} images must all have the same size, found {sorted(shapes)[:3]}")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _labels_from_csv(path: Path, files: list[Path]) -> dict[str, Any]:
    if not path.is_file():
        raise PrivbenchError(f"labels CSV not found: {path}")
    try:
        # utf-8-sig: a byte-order mark (spreadsheet programs write one) is not part of the first column's name
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if "file" not in (reader.fieldnames or []):
                raise PrivbenchError(f"{path}: needs a 'file' column (image path relative to --orig)")
            rows = {Path(r["file"]).as_posix(): r for r in reader}
    except UnicodeDecodeError as exc:
        raise PrivbenchError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                             "save it as UTF-8") from None
    except csv.Error as exc:
        raise PrivbenchError(f"{path} is not a readable CSV ({exc})") from None
    missing = [f.as_posix() for f in files if f.as_posix() not in rows]
    if missing:
        raise PrivbenchError(f"{path}: no row for image {missing[0]}")
    table = [rows[f.as_posix()] for f in files]
    columns = list(table[0])
    labels: dict[str, Any] = {}
    try:
        if "identity" in columns:
            names = [r["identity"] for r in table]
            index = {n: i for i, n in enumerate(dict.fromkeys(names))}
            labels["identity"] = torch.tensor([index[n] for n in names], dtype=torch.int64)
        if "label" in columns:
            labels["label"] = torch.tensor([int(r["label"]) for r in table], dtype=torch.int64)
        if "text" in columns:
            labels["text"] = [r["text"] for r in table]
        if {"x1", "y1", "x2", "y2"} <= set(columns):
            corners = [[int(float(r[k])) for k in ("x1", "y1", "x2", "y2")] for r in table]
            labels["bbox"] = torch.tensor(corners, dtype=torch.int64)
    except ValueError as exc:
        raise PrivbenchError(f"{path}: bad label value ({exc})") from None
    known = {"file", "identity", "label", "text", "x1", "y1", "x2", "y2"}
    attributes = [c for c in columns if c not in known and all(r[c].strip() in ("0", "1") for r in table)]
    if attributes:
        values = [[int(r[c]) for c in attributes] for r in table]
        labels["attributes"] = torch.tensor(values, dtype=torch.uint8)
    return {"labels": labels, "attribute_names": attributes}


def synthetic_family_class(family: str) -> type:
    """The dataset class of ``--synthetic FAMILY``; a real loader (lfw, ccpd, ...) is no synthetic family."""
    cls = DATASETS.get(family)
    if issubclass(cls, RealDataset):
        synthetic = ", ".join(n for n, c in DATASETS.items() if not issubclass(c, RealDataset))
        raise PrivbenchError(f"--synthetic {family}: '{family}' is a real dataset, not a synthetic family "
                             f"(choose from: {synthetic})")
    return cls


def family_resolution(family: str) -> int:
    """The image size at which a synthetic family's built-in recognizers are trained for folders.

    That is the size of the family's sets in the embedded default benchmark (32 px for all four), where the
    recognizers are validated (README, "Do the identity metrics measure identity?") and where a default run
    has already trained and cached them; a family the default does not use falls back to its declared
    ``size`` default. Not the folder images' size: a recognizer trained at, say, LFW's 250 px would take many
    minutes to train on tens of thousands of generated images, and nobody has checked what it measures.
    """
    from privbench.config import default_config_text

    default = yaml.safe_load(default_config_text())
    for entry in [default["task"]["train"], default["task"]["test"], *default["attacker_data"],
                  *default["probes"]]:
        if entry["name"] == family and "size" in (entry.get("params") or {}):
            return int(entry["params"]["size"])
    sizes = [p.default for p in synthetic_family_class(family).params if p.name == "size"]
    if not sizes:
        raise PrivbenchError(f"--synthetic {family}: the dataset has no 'size' parameter")
    return int(sizes[0])


def _family_meta(family: str, size: int, seed: int) -> dict[str, Any]:
    """Dataset-level meta (alphabet, attribute names, classes, ...) of a synthetic family, from one image."""
    cls = synthetic_family_class(family)
    names = {p.name for p in cls.params}
    small = {k: 1 for k in ("n", "identities", "per_identity") if k in names}
    meta = dict(cls(size=size, seed=seed, **small).build().meta)
    meta.update(subset="test", synthetic=True, seed=seed, family=family)
    return meta


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 N×3×H×W -> uint8 N×3×size×size: bilinear with antialiasing (a downscale that averages what it
    drops instead of aliasing fine detail, as Pillow's does), rounded back to 8 bits like saved images."""
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def load_folder_pair(recon_dir: Path, orig_dir: Path, labels_csv: Path | None = None,
                     family: str | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, ImageSet]:
    """(originals uint8, reconstructions uint8, labelled probe set) from two folders of matching files, at the
    images' own size (:func:`match_family_resolution` resizes them for a family's built-in recognizer)."""
    for folder, what in ((orig_dir, "--orig"), (recon_dir, "--recon")):
        if not Path(folder).is_dir():
            raise PrivbenchError(f"{what} folder not found: {folder}")
    files = _image_files(Path(orig_dir))
    if not files:
        raise PrivbenchError(f"no images in {orig_dir}")
    missing = [f for f in files if not (Path(recon_dir) / f).is_file()]
    if missing:
        raise PrivbenchError(f"{recon_dir} has no reconstruction for {missing[0].as_posix()}")
    originals = _stack(Path(orig_dir), files, "original")
    recon = _stack(Path(recon_dir), files, "reconstructed")
    if originals.shape != recon.shape:
        raise PrivbenchError(f"originals are {tuple(originals.shape[1:])} but reconstructions "
                             f"{tuple(recon.shape[1:])}")
    meta: dict[str, Any] = {"synthetic": False, "subset": "test", "files": [f.as_posix() for f in files]}
    if labels_csv is not None:
        parsed = _labels_from_csv(Path(labels_csv), files)
        labels = parsed["labels"]
        if parsed["attribute_names"]:
            meta["attribute_names"] = parsed["attribute_names"]
    elif all(len(f.parts) >= 2 for f in files):  # folder per person
        names = [f.parts[0] for f in files]
        index = {n: i for i, n in enumerate(dict.fromkeys(names))}
        labels = {"identity": torch.tensor([index[n] for n in names], dtype=torch.int64)}
    else:
        labels = {}
    name = "folder"
    if family:
        meta.update(_family_meta(family, family_resolution(family), seed))
        if labels.get("text"):  # the plates' own length, not the family's default (7 characters)
            meta["length"] = max(len(t) for t in labels["text"])
        name = f"{family}/folder"
    return originals, recon, ImageSet(name, originals, labels, meta)


def match_family_resolution(originals: torch.Tensor, recon: torch.Tensor, probes: ImageSet, family: str,
                            metric: Metric) -> tuple[torch.Tensor, torch.Tensor, ImageSet, str]:
    """The folder images at ``family``'s resolution (plate boxes scaled with them), and the note that says so.

    Square images only: squeezing a 250×200 face into a square changes its geometry, which is what a face
    recognizer reads.
    """
    size = family_resolution(family)
    height, width = probes.size
    what = family.removeprefix("synth-")  # synth-faces -> faces
    trained = f"{family}' built-in recognizer (trained on synthetic {what} at {size}x{size}, not on real ones)"
    if (height, width) == (size, size):
        return originals, recon, probes, f"{metric.name} uses {trained}"
    if height != width:
        raise PrivbenchError(f"--synthetic {family}: the images are {width}x{height}, but {family}' built-in "
                             f"recognizer takes square images ({size}x{size}); crop them to squares first")
    labels = dict(probes.labels)
    if "bbox" in labels:
        labels["bbox"] = (torch.as_tensor(labels["bbox"]).double() * (size / width)).round().clamp(0, size).long()
    originals, recon = resize_images(originals, size), resize_images(recon, size)
    note = f"images resized {width}x{height} -> {size}x{size} (bilinear, antialiased) to match {trained}"
    return originals, recon, ImageSet(probes.name, originals, labels, dict(probes.meta)), note


def score_folders(recon_dir: Path, orig_dir: Path, metric: Metric, cache: Cache, *,
                  labels_csv: Path | None = None, family: str | None = None, seed: int = 0,
                  device: str = "auto", ci_level: float = 0.95,
                  note: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row: ``metric`` on the folder pair. ``note`` receives what the user should know about how it was
    scored (a resize, a recognizer trained on synthetic data) before anything slow runs."""
    check_privacy_metric(metric)
    originals, recon, probes = load_folder_pair(recon_dir, orig_dir, labels_csv, family, seed)
    missing = [field for field in metric.requires if field not in probes.labels]
    if missing:
        need = ", ".join(metric.requires)
        raise PrivbenchError(f"metric '{metric.name}' needs labels {need}: give them with --labels CSV"
                             + (" (or a folder per person)" if "identity" in metric.requires else ""))
    _check(metric, probes.name, bool(probes.meta.get("synthetic")), "folders")
    if not metric.applies_to(probes):
        raise PrivbenchError(f"metric '{metric.name}' does not apply to {probes.name}"
                             + (f" (the {family} family does not carry what it scores)" if family else ""))
    if family and metric.builtin_recognizer():
        originals, recon, probes, text = match_family_resolution(originals, recon, probes, family, metric)
        if note is not None:
            note(text)
    context = MetricContext(cache=cache, device=resolve_device(device), seed=seed, ci_level=ci_level)
    inputs = PrivacyInputs(originals.float().div(255.0), recon.float().div(255.0), probes)
    return _frame([_score(metric, inputs, context, "folders", dataset=probes.name)])
