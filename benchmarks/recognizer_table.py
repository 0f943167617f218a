"""Do the privacy metrics measure identity? Clean / pure-noise / blurred probes (issue 4, "Must show").

For the embedded default's probe sets (32 px: 20 face identities × 3 images, 40 five-character plates,
40 pedestrians) this scores the built-in recognizers on

- the clean probes (no defense, no attack): the recognizers must read them (face-id ≥ 0.9, plate ≥ 0.9,
  par-ma ≥ 0.85);
- uniform noise images of the same shape: chance level (face-id ≈ 1/20, plate ≈ 0, mA ≈ 0.5);
- Gaussian blurs of the probes, next to the default task model's accuracy on equally blurred task test
  images: the private information is detail-borne when a blur that keeps task accuracy within 5 points
  of clean lowers face-id and plate accuracy by ≥ 30 points.

Everything (data, task model, recognizers) comes from the engine and its cache, exactly as ``privbench run``
builds them. Prints a markdown table for the README.

    .venv/bin/python benchmarks/recognizer_table.py [--cache-dir DIR] [--sigmas 0.75,1.0,1.25,1.5]
"""

from __future__ import annotations

import argparse
import time

import torch

from privbench.cache import Cache, default_cache_dir
from privbench.config import load_config
from privbench.data.base import gaussian_blur as blur
from privbench.engine.inputs import inputs_for
from privbench.metrics.base import PrivacyInputs
from privbench.registry import METRICS

METRIC_FOR_FAMILY = {"synth-faces": "face-id", "synth-plates": "plate", "synth-pedestrians": "par-ma"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument("--sigmas", default="0.75,1.0,1.25,1.5", help="blur σ values in pixels (the README's)")
    args = parser.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]

    start = time.perf_counter()
    bench = inputs_for(load_config(), Cache(args.cache_dir))
    test = bench.task_test
    labels = test.labels["label"]

    def task_accuracy(images: torch.Tensor) -> float:
        return (bench.model.predict(images).argmax(1) == labels).float().mean().item()

    columns = ["clean", "noise"] + [f"blur σ={s:g}" for s in sigmas]
    rows = {"task accuracy (default model)": [task_accuracy(test.floats()), float("nan")]
            + [task_accuracy(blur(test.floats(), s)) for s in sigmas]}
    noise_generator = torch.Generator().manual_seed(0)
    for i, probe in enumerate(bench.probes):
        family = probe.name.split("/")[0]
        metric = METRICS.create(METRIC_FOR_FAMILY[family])
        x = probe.floats()
        variants = [x, torch.rand(x.shape, generator=noise_generator)] + [blur(x, s) for s in sigmas]
        scores = [metric.score(PrivacyInputs(x, v, probe), bench.context) for v in variants]
        rows[f"{metric.name} on {bench.probe_name(i)} (n={scores[0].n})"] = [s.value for s in scores]

    print("| measure | " + " | ".join(columns) + " |")
    print("| --- | " + " | ".join("---" for _ in columns) + " |")
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join("–" if v != v else f"{v:.3f}" for v in values) + " |")
    print(f"\n(total {time.perf_counter() - start:.0f} s, including any training not yet cached)")


if __name__ == "__main__":
    main()
