"""What the attack-budget benchmarks report of one grid point: PSNR over all probes, face PSNR and face-id (the
faces of the default benchmark's probe sets) and the seconds it took, one printed line per measurement, and the
table of them as CSV."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from privbench.results import write_csv


def face_scores(rows: list[dict[str, Any]]) -> dict[str, float]:
    frame = pd.DataFrame(rows)
    faces = frame[frame.dataset.str.startswith("synth-faces")]
    return {"psnr": frame[frame.metric == "psnr"].value.mean(), "face_psnr": faces[faces.metric == "psnr"].value.mean(),
            "face_id": faces[faces.metric == "face-id"].value.mean()}


def measure(inputs, setting, attack, **labels: Any) -> dict[str, Any]:
    """``attack`` (a ComponentConfig) against ``setting`` through the engine: ``labels``, its scores and seconds."""
    from privbench.grid import rows_of

    start = time.perf_counter()
    scores = face_scores(rows_of(inputs, setting, attack)["rows"])
    row = {"setting": setting.label, **labels, **scores, "seconds": round(time.perf_counter() - start, 1)}
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    return row


def save(rows: list[dict[str, Any]], folder: str, name: str) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_csv(table, Path(folder) / name)
    print(table.to_string(index=False))
    return table
