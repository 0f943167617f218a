"""Start-up time of the command line (issue 16): `privbench --help`, `privbench run --help`, `privbench list`.

Each command runs ``--runs`` times as a fresh process (the installed ``privbench`` script beside this Python, as a
user's shell starts it) and its wall time is taken around the whole process: min / median / max. ``list`` is
timed three ways, each with a temporary cache folder (``PRIVBENCH_CACHE``; the user's own cache is not touched):

- ``warm``: the component index is fresh (built once before the timed runs) — every run after the first;
- ``cold``: the index is removed before each run, so each run imports the components and writes it (the first
  run after a source file changed);
- ``--no-index``: imports the components and stores nothing (what ``list`` did before the index).

``python -c pass`` and ``python -c "import torch"`` are timed for reference: the interpreter's floor, and the
cost that the fast paths must not pay. With ``--limit S`` the exit status is 1 when the median of ``--help``,
``run --help`` or warm ``list`` is above S seconds (issue 16's target: 1 s).

    python benchmarks/bench_cli_startup.py [--runs 7] [--cold-runs 3] [--limit 1.0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def privbench_command() -> list[str]:
    """The installed console script beside this interpreter, else the one on PATH, else ``python -m``."""
    beside = Path(sys.executable).parent / "privbench"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("privbench")
    return [found] if found else [sys.executable, "-m", "privbench.cli"]


def wall_times(command: list[str], runs: int, env: dict[str, str], before=None) -> list[float]:
    """Wall seconds of ``runs`` fresh processes of ``command`` (``before()`` runs untimed ahead of each)."""
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        started = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each fast command")
    parser.add_argument("--cold-runs", type=int, default=3, help="timed runs of the slow ones (cold, --no-index, torch)")
    parser.add_argument("--limit", type=float, default=None, help="exit 1 when a fast median is above this (seconds)")
    args = parser.parse_args()

    privbench = privbench_command()
    with tempfile.TemporaryDirectory(prefix="privbench-bench-cache-") as cache:
        env = {**os.environ, "PRIVBENCH_CACHE": cache}
        index = Path(cache) / "component-index"

        def drop_index() -> None:
            shutil.rmtree(index, ignore_errors=True)

        rows = [("python -c pass", "", wall_times([sys.executable, "-c", "pass"], args.runs, env)),
                ('python -c "import torch"', "", wall_times([sys.executable, "-c", "import torch"], args.cold_runs,
                                                            env)),
                ("privbench --help", "", wall_times([*privbench, "--help"], args.runs, env)),
                ("privbench run --help", "", wall_times([*privbench, "run", "--help"], args.runs, env)),
                ("privbench list", "cold", wall_times([*privbench, "list"], args.cold_runs, env, before=drop_index))]
        subprocess.run([*privbench, "list"], env=env, stdout=subprocess.DEVNULL, check=True)  # the warm index
        rows += [("privbench list", "warm", wall_times([*privbench, "list"], args.runs, env)),
                 ("privbench list --no-index", "none", wall_times([*privbench, "list", "--no-index"], args.cold_runs,
                                                                  env))]

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{' '.join(privbench)}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; load average {load}\n")
    print("| command | index | runs | min (s) | median (s) | max (s) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for command, state, times in rows:
        print(f"| `{command}` | {state} | {len(times)} | {min(times):.3f} | {statistics.median(times):.3f} | "
              f"{max(times):.3f} |")
    if args.limit is not None:
        fast = {(c, s): statistics.median(t) for c, s, t in rows
                if (c, s) in {("privbench --help", ""), ("privbench run --help", ""), ("privbench list", "warm")}}
        over = [f"{c}{f' ({s})' if s else ''}: {m:.3f} s" for (c, s), m in fast.items() if m > args.limit]
        if over:
            print(f"\nabove the {args.limit:g} s limit: {'; '.join(over)}")
            sys.exit(1)


if __name__ == "__main__":
    main()
