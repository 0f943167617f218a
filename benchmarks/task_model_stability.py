"""Does the default benchmark's task model train reliably? (issue 29: mean test accuracy ≥ 0.80 with a spread
≤ 0.04 over seeds 0–4, at 1 and at 2 torch threads.)

Trains the preset's task model (``privbench.task_model.train_weights``, the run's own code path) once per seed and
thread count, each in a fresh process (a process's thread count is set before torch does any work), on an empty
cache, and scores it on the preset's test set. Prints one line per training and, per thread count, the mean,
the spread (max − min) and the seconds; writes ``results/perf/task_model_stability.csv``.

``--set model.epochs=12`` (repeatable) overrides a key of the preset's ``model`` / ``task`` entries (a YAML value),
for trying a change without editing the preset.

    .venv/bin/python benchmarks/task_model_stability.py [--config default] [--seeds 0 1 2 3 4] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from bench_default_run import cpu_flags  # the CPU's model name, as the other benchmarks record it


def override(data: dict, assignment: str) -> None:
    """Set ``a.b.c=value`` (value parsed as YAML) inside ``data``."""
    path, _, text = assignment.partition("=")
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = yaml.safe_load(text)


def train_once(config_data: dict, seed: int, cache_dir: str) -> dict:
    """One training in this process: the test accuracy, the train accuracy and the seconds."""
    import torch

    from privbench.cache import Cache
    from privbench.config import parse_config
    from privbench.device import resolve_device
    from privbench.registry import DATASETS
    from privbench.task_model import build_task_model, train_weights
    from privbench.tasks import get_task

    config = parse_config({**config_data, "seed": seed})
    cache, device = Cache(Path(cache_dir)), resolve_device(config.device)
    train = DATASETS.create(config.task_train.name, **config.task_train.params).load(cache)
    test = DATASETS.create(config.task_test.name, **config.task_test.params).load(cache)
    start = time.perf_counter()
    weights = train_weights(config.model, train, seed, device)
    seconds = time.perf_counter() - start
    model = build_task_model(config.model, train, device, weights)

    def accuracy(data) -> float:
        labels = get_task("classification").targets(data)
        with torch.no_grad():
            logits = torch.cat([model(data.images[i:i + 256].to(device).float() / 255)
                                for i in range(0, len(data.images), 256)])
        return float((logits.argmax(1).cpu() == labels).float().mean())

    return {"test_accuracy": accuracy(test), "train_accuracy": accuracy(train), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="a preset name or YAML file (default: the default preset)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default="results/perf/task_model_stability.csv")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one training, in a process whose thread count the parent set
        job = json.loads(args.child)
        print(json.dumps(train_once(job["config"], job["seed"], job["cache"])))
        return

    from privbench import presets
    from privbench.config import config_data

    data = (yaml.safe_load(presets.text(args.config)) if presets.find(args.config or "") else
            config_data(args.config))
    for assignment in args.set:
        override(data, assignment)
    rows = []
    with tempfile.TemporaryDirectory(prefix="privbench-task-") as cache:
        for threads in args.threads:
            for seed in args.seeds:
                env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                       "PRIVBENCH_QUIET": "1"}
                job = json.dumps({"config": data, "seed": seed, "cache": cache})
                out = subprocess.run([sys.executable, __file__, "--child", job], env=env, check=True,
                                     capture_output=True, text=True).stdout
                result = json.loads(out.strip().splitlines()[-1])
                rows.append({"threads": threads, "seed": seed, **result})
                print(f"threads {threads} seed {seed}: test {result['test_accuracy']:.3f} "
                      f"train {result['train_accuracy']:.3f} ({result['seconds']:.1f} s)", flush=True)
    for threads in args.threads:
        acc = [r["test_accuracy"] for r in rows if r["threads"] == threads]
        secs = [r["seconds"] for r in rows if r["threads"] == threads]
        print(f"threads {threads}: mean {statistics.mean(acc):.3f} spread {max(acc) - min(acc):.3f} "
              f"(min {min(acc):.3f}, max {max(acc):.3f}), {statistics.mean(secs):.1f} s per training")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0], "cpu", "overrides"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "cpu": cpu_flags()["cpu"], "overrides": " ".join(args.set)})


if __name__ == "__main__":
    main()
