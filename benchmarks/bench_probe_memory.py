"""Peak memory against probe-set size (issue 16: a run whose probe set is 10× larger grows by ≤ 20 %).

The quick preset runs three times as fresh processes on one temporary cache: first a warm-up with one image per
probe set (it trains the task model and fits the attacks and recognizers, none of which depend on the probes),
then with the preset's probe sets (``1×``) and with every probe set ``--factor`` times larger (``10×``). The two
measured runs therefore compute the same things — probe images, defended features, reconstructions, privacy
metrics — on 10× the images, and their peak resident set sizes (``ru_maxrss`` of each child, from ``wait4``) are
compared. With ``--limit P`` the exit status is 1 when the growth is above P percent (the target: 20).

    python benchmarks/bench_probe_memory.py [--factor 10] [--limit 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PRESET = Path(__file__).resolve().parents[1] / "presets" / "quick.yaml"
#: the parameter that sets each probe family's size
SIZE_PARAM = {"synth-faces": "identities", "synth-plates": "n", "synth-pedestrians": "n"}


def scaled(data: dict, factor: float, name: str) -> dict:
    """The preset with every probe set ``factor`` times its size (at least one image, or one identity)."""
    out = copy.deepcopy(data)
    out["name"] = name
    for probe in out["probes"]:
        param = SIZE_PARAM[probe["name"]]
        probe["params"][param] = max(1, round(probe["params"][param] * factor))
        if probe["name"] == "synth-faces" and factor < 1:
            probe["params"]["per_identity"] = 2  # face-id needs a gallery and a probe image per identity
    return out


def child(config_path: str, cache_dir: str, threads: int) -> None:
    """One run of the benchmark (the measured process)."""
    import torch

    torch.set_num_threads(threads)
    from privbench.cache import Cache
    from privbench.components import load_components
    from privbench.config import load_config
    from privbench.sweep import run_benchmark

    load_components()
    run_benchmark(load_config(config_path), Cache(cache_dir), progress=False)


def peak_rss_mb(config_path: Path, cache_dir: Path, threads: int) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one child run."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(config_path), str(cache_dir), str(threads)])
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the run of {config_path.name} failed (exit status {os.waitstatus_to_exitcode(status)})")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=10.0, help="how many times larger the big probe set is")
    parser.add_argument("--limit", type=float, default=None, help="fail when the growth is above this percent")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return

    data = yaml.safe_load(PRESET.read_text())
    with tempfile.TemporaryDirectory(prefix="privbench-memory-") as tmp:
        tmp_path, cache = Path(tmp), Path(tmp) / "cache"
        results = {}
        for label, factor in (("warm-up", 0.0), ("1x", 1.0), (f"{args.factor:g}x", args.factor)):
            path = tmp_path / f"{label}.yaml"
            path.write_text(yaml.safe_dump(scaled(data, factor, f"memory-{label}")))
            results[label] = peak_rss_mb(path, cache, args.threads)
            n = sum(p["params"][SIZE_PARAM[p["name"]]] * p["params"].get("per_identity", 1)
                    for p in scaled(data, factor, label)["probes"])
            print(f"{label:>8s}: {n:5d} probe images  peak RSS {results[label][0]:7.1f} MB  "
                  f"({results[label][1]:.1f} s)", flush=True)
    small, big = results["1x"][0], results[f"{args.factor:g}x"][0]
    growth = 100 * (big / small - 1)
    print(f"peak memory growth at {args.factor:g}x the probe images: {growth:+.1f} % (target ≤ 20 %)")
    if args.limit is not None and growth > args.limit:
        sys.exit(1)


if __name__ == "__main__":
    main()
