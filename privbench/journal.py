"""The journal of a running sweep: every finished grid point's rows, appended as the point finishes.

``OUT/NAME.partial/`` holds ``points.jsonl`` (one JSON line per finished point: its id, rows and notes — the
journal of record), ``results.csv`` (the same rows appended as a results table, to look at while the sweep runs)
and ``samples/<id>.pt`` (the point's reconstruction samples, written before its line). Each line is one
``write`` on a file opened for appending, so an interrupted sweep (Ctrl-C, SIGKILL, a crash) keeps every point
it finished; a torn last line is dropped on reading. Rerunning the same command reads the journal, runs only
the points it lacks and writes no row twice; when the grid is complete the run folder is built from the journal
and the partial folder removed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from privbench.cache import atomic_torch_save, atomic_write_text
from privbench.errors import PrivbenchError
from privbench.results import COLUMNS

POINTS = "points.jsonl"


def _csv_text(rows: list[dict[str, Any]], header: bool) -> str:
    import pandas as pd

    buffer = io.StringIO()
    pd.DataFrame(rows, columns=COLUMNS).to_csv(buffer, index=False, header=header, float_format="%.6g")
    return buffer.getvalue()


class Journal:
    """The partial folder of one run (``folder``); :meth:`finished` is what an earlier, interrupted run kept."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def points_path(self) -> Path:
        return self.folder / POINTS

    def finished(self) -> dict[str, dict[str, Any]]:
        """point id -> {"rows", "notes", "samples"} of every point the journal holds. A torn last line (the
        process was killed while writing it) is cut off, so the next append starts on a clean line."""
        path = self.points_path
        if not path.is_file():
            return {}
        data = path.read_bytes()
        out: dict[str, dict[str, Any]] = {}
        good = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                entry = json.loads(line)
                point_id, rows, notes = entry["point"], entry["rows"], entry["notes"]
            except (ValueError, KeyError, TypeError):
                break
            out[point_id] = {"rows": rows, "notes": notes, "samples": self._samples(point_id)}
            good += len(line)
        if good < len(data):
            with open(path, "r+b") as handle:
                handle.truncate(good)
        return out

    def _samples(self, point_id: str) -> dict[str, torch.Tensor]:
        path = self.folder / "samples" / f"{point_id}.pt"
        if not path.is_file():
            return {}
        try:
            value = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a torn samples file: the grid image of that point is missing, its rows are not
            return {}
        return value if isinstance(value, dict) else {}

    def start(self, finished: dict[str, dict[str, Any]], annotate) -> None:
        """Open the journal for appending; ``results.csv`` is rewritten from the ``finished`` points first, so it
        holds each journal row exactly once (``annotate`` adds the run's columns to a row)."""
        if not finished:  # nothing to resume: the folder appears with the first finished point
            self.remove()
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        rows = [annotate(row) for entry in finished.values() for row in entry["rows"]]
        atomic_write_text(self.folder / "results.csv", _csv_text(rows, header=True))

    def append(self, point_id: str, rows: list[dict[str, Any]], notes: list[str], samples: dict[str, Any],
               annotate) -> dict[str, Any]:
        """Record one finished point; returns its entry as :meth:`finished` would read it back (rows through JSON,
        so a point's rows are the same objects whether it finished in this run or an earlier one)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "results.csv").is_file():
            atomic_write_text(self.folder / "results.csv", _csv_text([], header=True))
        if samples:
            atomic_torch_save(samples, self.folder / "samples" / f"{point_id}.pt")
        line = json.dumps({"point": point_id, "rows": rows, "notes": notes}, separators=(",", ":")) + "\n"
        entry = json.loads(line)
        _append(self.points_path, line.encode())
        _append(self.folder / "results.csv", _csv_text([annotate(r) for r in entry["rows"]], header=False).encode())
        return {"rows": entry["rows"], "notes": entry["notes"], "samples": samples}

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _append(path: Path, data: bytes) -> None:
    """One ``write`` of ``data`` at the end of ``path`` (O_APPEND), flushed to the disk."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise PrivbenchError(f"cannot append to {path}: the disk is full")
        os.fsync(fd)
    finally:
        os.close(fd)
