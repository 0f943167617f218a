"""Each defense at its default setting next to the undefended model, on the embedded default benchmark.

Runs the default config's task model, attacker data, probes, attacks and metrics with one setting per
registered defense — its declared defaults (the autoencoder also as the non-adversarial bottleneck, w_rec 0) —
and prints a markdown table: task accuracy, worst-case attack PSNR on faces, worst-case face-id, plate and
par-ma, and the edge side's parameters, MACs and latency. Shares the cache with `privbench run`, so points the
default run already computed are reused.

    python benchmarks/defense_table.py [--cache-dir DIR] [--out results/runs]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from privbench.cache import Cache
from privbench.components import load_components
from privbench.config import default_config_text, load_config
from privbench.defenses.base import TrainedDefense
from privbench.registry import DEFENSES
from privbench.results import write_csv
from privbench.sweep import run_benchmark


def settings() -> list[dict]:
    out = [{"name": "noise", "strengths": [0.0]}]  # the undefended pipeline
    for name, cls in DEFENSES.items():
        defaults = {p.name: p.default for p in cls.params}
        strength = defaults.pop(cls.strength_param)
        strengths = [0.0, strength] if name == "autoencoder" else [strength]
        out.append({"name": name, "params": defaults, "strengths": strengths})
    return out


def label(row) -> str:
    if row["defense"] == "noise" and row["strength"] == 0:
        return "none"
    if row["defense"] == "autoencoder":
        return "bottleneck (w_rec 0)" if row["strength"] == 0 else f"autoencoder (w_rec {row['strength']:g})"
    cls = DEFENSES.get(row["defense"])
    return f"{row['defense']} ({cls.strength_param} {row['strength']:g})"


def table(frame) -> str:
    frame = frame.copy()
    frame["setting"] = frame.apply(label, axis=1)
    order = list(dict.fromkeys(frame["setting"]))

    def pick(kind, metric, dataset=None, attack=None):
        part = frame[(frame["kind"] == kind) & (frame["metric"] == metric)]
        if dataset:
            part = part[part["dataset"] == dataset]
        if attack:
            part = part[part["attack"] == attack]
        return part.groupby("setting")["value"].first()

    columns = [("accuracy", pick("utility", "accuracy"), "{:.3f}"),
               ("worst face PSNR (dB)", pick("privacy", "psnr", "synth-faces", "worst"), "{:.2f}"),
               ("worst face-id", pick("privacy", "face-id", "synth-faces", "worst"), "{:.3f}"),
               ("worst plate", pick("privacy", "plate", "synth-plates", "worst"), "{:.3f}"),
               ("worst par-ma", pick("privacy", "par-ma", "synth-pedestrians", "worst"), "{:.3f}"),
               ("edge params", pick("cost", "edge-params"), "{:.0f}"),
               ("edge MMACs", pick("cost", "edge-macs") / 1e6, "{:.2f}"),
               ("edge ms/image", pick("cost", "edge-latency-ms"), "{:.3f}")]
    lines = ["| setting | " + " | ".join(c for c, _, _ in columns) + " |",
             "| --- |" + " --- |" * len(columns)]
    for setting in order:
        cells = [fmt.format(values[setting]) if setting in values else "–" for _, values, fmt in columns]
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("results") / "runs")
    args = parser.parse_args()
    load_components()
    data = yaml.safe_load(default_config_text())
    data["name"] = "defense-table"
    data["defenses"] = settings()
    config = load_config(None, data)
    output = run_benchmark(config, Cache(args.cache_dir), progress=False)
    run_dir = args.out / config.name
    run_dir.mkdir(parents=True, exist_ok=True)
    write_csv(output.frame, run_dir / "results.csv")
    trained = [n for n, c in DEFENSES.items() if issubclass(c, TrainedDefense)]
    print(f"default benchmark, one setting per defense (trained: {', '.join(trained)}); "
          f"rows -> {run_dir / 'results.csv'}")
    print(table(output.frame))


if __name__ == "__main__":
    main()
