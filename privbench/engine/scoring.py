"""Rows of the results table from scores: one row per (setting, attack, dataset, metric), in the schema of
:mod:`privbench.results`, and the privacy metrics of a probe set and its crop views."""

from __future__ import annotations

from typing import Any

import torch

from privbench.codecs.stage import CodingTally
from privbench.engine.inputs import RunInputs
from privbench.errors import MetricUnavailable, PrivbenchError
from privbench.metrics.base import Metric, PrivacyInputs, Score
from privbench.results import base_row
from privbench.setting import Setting


def row(inputs: RunInputs, setting: Setting, attack: str, dataset: str, metric: str, kind: str, score: Score,
        seconds: float) -> dict[str, Any]:
    return base_row(
        seed=inputs.seed, dataset=dataset, model=inputs.model_spec.label,
        split=setting.deployed_split(inputs.config.model.split), **setting.columns(),
        attack=attack, metric=metric, kind=kind, value=score.value,
        ci_low=score.ci_low, ci_high=score.ci_high, ci_method=score.ci_method, n=score.n, seconds=round(seconds, 3))


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """8-bit images, as if saved; a reconstruction with NaN or ±inf (a diverged attack) is refused, since
    casting it would give arbitrary pixels that score like a real reconstruction."""
    if not bool(torch.isfinite(x).all()):
        raise PrivbenchError("the attack's reconstructions contain NaN or infinite values (it diverged)")
    return x.clamp(0, 1).mul(255.0).round().to(torch.uint8)


def score_privacy(inputs: RunInputs, metrics: list[Metric], index: int, name: str, images, x: torch.Tensor,
                  x_hat: torch.Tensor) -> list[tuple[str, Metric, Score | MetricUnavailable]]:
    """Score ``metrics`` on originals ``x`` and what the observer holds, ``x_hat``, of probe set ``index`` (-1:
    the task's test set): pixel metrics on the whole images, label-reading metrics (face-id, plate, ...) on every
    set or crop view that carries their labels. An unavailable metric is returned as its exception."""
    out: list[tuple[str, Metric, Score | MetricUnavailable]] = []
    for label, target, crop in inputs.privacy_sets(index, name, images):
        pair = None
        for metric in metrics:
            if not metric.applies_to(target) or (crop is not None and not metric.requires):
                continue
            if pair is None:
                pair = PrivacyInputs(x if crop is None else crop(x), x_hat if crop is None else crop(x_hat), target)
            try:
                out.append((label, metric, metric.score(pair, inputs.context)))
            except MetricUnavailable as exc:
                out.append((label, metric, exc))
    return out


def coded_rows(inputs: RunInputs, setting: Setting, dataset: str, images: torch.Tensor, tally: CodingTally,
               seconds: float, timing: bool = False) -> list[dict[str, Any]]:
    """The ``kind=rate`` row of ``images`` coded into ``tally``: bpp = total bits of the real bitstreams / total
    input-image pixels (paper 000); with ``timing``, ``kind=cost`` rows of the codec's mean encode and decode time
    per frame (``codec-encode-ms``, ``codec-decode-ms``)."""
    pixels = images.shape[0] * images.shape[2] * images.shape[3]
    nan = float("nan")
    rows = [row(inputs, setting, "none", dataset, "bpp", "rate", Score(tally.bits / pixels, nan, nan, len(images), ""),
                seconds)]
    if timing:
        for metric, total in (("codec-encode-ms", tally.encode_seconds), ("codec-decode-ms", tally.decode_seconds)):
            rows.append(row(inputs, setting, "none", dataset, metric, "cost",
                            Score(1000.0 * total / tally.frames, nan, nan, tally.frames, ""), seconds))
    return rows
