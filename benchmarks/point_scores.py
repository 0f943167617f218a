"""What the attack-budget benchmarks report of one grid point's rows: PSNR over all probes, face PSNR and face-id
(the faces of the default benchmark's probe sets), and one printed line per measurement."""

from __future__ import annotations

from typing import Any

import pandas as pd


def face_scores(rows: list[dict[str, Any]]) -> dict[str, float]:
    frame = pd.DataFrame(rows)
    faces = frame[frame.dataset.str.startswith("synth-faces")]
    return {"psnr": frame[frame.metric == "psnr"].value.mean(), "face_psnr": faces[faces.metric == "psnr"].value.mean(),
            "face_id": faces[faces.metric == "face-id"].value.mean()}


def show(row: dict[str, Any]) -> None:
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
