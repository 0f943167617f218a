"""`--jobs 2` against a serial run of the same uncached grid (issue 16: ≥ 1.6× on the 2-core machine).

The grid is the quick preset's model, data and attacks with its noise defense at ``--strengths`` strengths: with
the two attacks, ``2 × strengths`` uncached points (16 by default). What every point shares — the task model,
the datasets, the cached probes — is computed first by a warm-up run of the same config at a strength outside
the grid, so the timed runs compute only points: for each, the defended pipeline's utility rows, the attacks'
fits against it and the privacy metrics. Each timed run is a fresh ``privbench run`` process on its own copy of
the warmed cache (so neither finds the other's points), its wall time taken around the whole process, start-up
and worker start-up included. Serial runs at the default threads (the machine's cores), ``--jobs 2`` at one
thread per worker, as a user would run them. ``--repeats`` alternates the pair; the median ratio is printed.
With ``--limit R`` the exit status is 1 when the median speed-up is below R.

    python benchmarks/bench_jobs_speedup.py [--strengths 8] [--jobs 2] [--repeats 1] [--limit 1.6]
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PRESET = Path(__file__).resolve().parents[1] / "presets" / "quick.yaml"
#: the warm-up's strength: outside every timed grid, so the warm-up caches no timed point
WARMUP_STRENGTH = 9.0


def privbench_command() -> list[str]:
    """The installed console script beside this interpreter, else ``python -m privbench.cli``."""
    beside = Path(sys.executable).parent / "privbench"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "privbench.cli"]


def grid_config(strengths: list[float], name: str) -> dict:
    """The quick preset with its noise defense at ``strengths``."""
    data = copy.deepcopy(yaml.safe_load(PRESET.read_text()))
    data["name"] = name
    (defense,) = data["defenses"]
    defense["strengths"] = strengths
    return data


def timed_run(config: Path, cache: Path, out: Path, extra: list[str]) -> float:
    """Wall seconds of one ``privbench run`` process."""
    command = [*privbench_command(), "run", str(config), "--cache-dir", str(cache), "--out", str(out), "--quiet",
               *extra]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strengths", type=int, default=8, help="noise strengths in the grid (2 points each)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of the parallel run")
    parser.add_argument("--repeats", type=int, default=1, help="serial / parallel pairs to time")
    parser.add_argument("--limit", type=float, default=None, help="fail when the median speed-up is below this")
    args = parser.parse_args()

    strengths = [round(0.1 * (i + 1), 2) for i in range(args.strengths)]
    with tempfile.TemporaryDirectory(prefix="privbench-jobs-") as tmp:
        tmp_path = Path(tmp)
        warm_cfg, grid_cfg = tmp_path / "warmup.yaml", tmp_path / "grid.yaml"
        warm_cfg.write_text(yaml.safe_dump(grid_config([WARMUP_STRENGTH], "warmup")))
        grid_cfg.write_text(yaml.safe_dump(grid_config(strengths, "grid")))
        warm_cache = tmp_path / "warm-cache"
        seconds = timed_run(warm_cfg, warm_cache, tmp_path / "out", [])
        print(f"warm-up (task model, data, recognizers; strength {WARMUP_STRENGTH}): {seconds:.1f} s", flush=True)

        serial, parallel = [], []
        for repeat in range(args.repeats):
            for label, extra, times in (("serial", [], serial), (f"--jobs {args.jobs}", ["--jobs", str(args.jobs)],
                                                                 parallel)):
                cache = tmp_path / f"cache-{label.strip('-').replace(' ', '')}-{repeat}"
                shutil.copytree(warm_cache, cache)
                times.append(timed_run(grid_cfg, cache, tmp_path / f"out-{len(times)}-{label[-1]}", extra))
                print(f"  {label:>9}: {times[-1]:7.1f} s  ({2 * len(strengths)} uncached points)", flush=True)
                shutil.rmtree(cache)

    ratios = [s / p for s, p in zip(serial, parallel, strict=True)]
    speedup = statistics.median(ratios)
    print(f"serial median {statistics.median(serial):.1f} s, --jobs {args.jobs} median "
          f"{statistics.median(parallel):.1f} s: speed-up {speedup:.2f}× "
          f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)})")
    if args.limit is not None and speedup < args.limit:
        print(f"speed-up {speedup:.2f}× is below the limit {args.limit}×")
        sys.exit(1)


if __name__ == "__main__":
    main()
