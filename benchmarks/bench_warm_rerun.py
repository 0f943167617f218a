"""Wall time of a warm re-run of a preset (issue 16: the quick preset's warm re-run ≤ 5 s).

A warm re-run is the second ``privbench run PRESET`` on the same cache: every grid point is cached, so the run
loads them, rebuilds the tables, plots and reports and publishes the run folder. The preset first runs once on
the cache (cold, untimed, minutes for the quick preset's task model; skipped in effect when ``--cache-dir``
already holds it), then ``--runs`` warm re-runs are timed as whole processes (start-up included): min / median /
max. With ``--limit S`` the exit status is 1 when the median is above S seconds.

    python benchmarks/bench_warm_rerun.py [--preset quick] [--runs 5] [--cache-dir DIR] [--limit 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_cli_startup import privbench_command  # the installed script beside this Python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", help="preset (or config file) to re-run")
    parser.add_argument("--runs", type=int, default=5, help="timed warm re-runs")
    parser.add_argument("--cache-dir", type=Path, default=None, help="cache to use (default: a temporary one)")
    parser.add_argument("--limit", type=float, default=None, help="fail when the median is above this (seconds)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="privbench-warm-") as tmp:
        cache = args.cache_dir or Path(tmp) / "cache"
        command = [*privbench_command(), "run", args.preset, "--cache-dir", str(cache), "--out", str(Path(tmp) / "out"),
                   "--quiet"]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        print(f"first run (fills the cache): {time.perf_counter() - started:.1f} s", flush=True)
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(f"warm re-run of {args.preset}: min {min(times):.2f} s, median {median:.2f} s, max {max(times):.2f} s "
          f"({args.runs} runs)")
    if args.limit is not None and median > args.limit:
        print(f"median {median:.2f} s is above the limit {args.limit} s")
        sys.exit(1)


if __name__ == "__main__":
    main()
