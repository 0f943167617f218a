"""Wall time of a warm re-run of a preset (issue 16: ≤ 5 s; issue 28, item 6: ≤ 2 s without importing torch).

A warm re-run is the second ``privbench run PRESET`` on the same cache. The first run (cold, untimed: minutes for
the quick preset's task model; in effect skipped when ``--cache-dir`` already holds it) publishes the run folder and
records it (:mod:`privbench.run_record`); each timed re-run is then answered from that record — it checks the run
folder and prints the summary, without importing torch. Timed as whole processes (start-up included), ``--runs``
times each: min / median / max of

- ``record``: the re-run as a user runs it (the run record answers);
- ``record, folder removed``: OUT/NAME deleted before each run, so the record re-publishes it;
- ``normal`` (with ``--normal``): the run records removed before each run, so the engine loads every cached point,
  rebuilds the tables, plots and reports and publishes the folder (what a warm re-run did before the record; it
  records again, hence the removal);
- ``python -c "import torch"``: the import the record path saves, for comparison.

With ``--limit S`` the exit status is 1 when the median of ``record`` is above S seconds.

    python benchmarks/bench_warm_rerun.py [--preset quick] [--runs 7] [--cache-dir DIR] [--normal] [--limit 2]
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

from bench_cli_startup import privbench_command  # the installed script beside this Python


def wall_times(command: list[str], runs: int, before=None) -> list[float]:
    """Wall seconds of ``runs`` fresh processes of ``command`` (``before()`` runs untimed ahead of each)."""
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", help="preset (or config file) to re-run")
    parser.add_argument("--runs", type=int, default=7, help="timed warm re-runs of each kind")
    parser.add_argument("--cache-dir", type=Path, default=None, help="cache to use (default: a temporary one)")
    parser.add_argument("--normal", action="store_true", help="also time the warm re-run without its run record")
    parser.add_argument("--limit", type=float, default=None,
                        help="fail when the median of the re-run from the record is above this (seconds)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="privbench-warm-") as tmp:
        cache = args.cache_dir or Path(tmp) / "cache"
        out = Path(tmp) / "out"
        command = [*privbench_command(), "run", args.preset, "--cache-dir", str(cache), "--out", str(out), "--quiet"]
        started = time.perf_counter()
        first = subprocess.run(command, check=True, capture_output=True, text=True)
        print(f"first run: {time.perf_counter() - started:.1f} s: {first.stdout.strip()}", flush=True)
        run_dir = Path(first.stdout.split(" rows -> ")[1].split(" (")[0]).parent
        # untimed: records the run when the first one could not (a source file edited while it ran)
        again = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()
        print(f"a re-run says: {again}", flush=True)
        if "from the run record" not in again:
            print("warning: the re-run did not come from the run record", flush=True)

        def drop_folder() -> None:
            shutil.rmtree(run_dir, ignore_errors=True)

        def drop_records() -> None:
            for record in (cache / "runs").glob("[0-9a-f]*.json"):
                record.unlink()

        rows = [("record", wall_times(command, args.runs))]
        rows.append(("record, folder removed", wall_times(command, args.runs, before=drop_folder)))
        if args.normal:
            rows.append(("normal (no record)", wall_times(command, args.runs, before=drop_records)))
    rows.append(('python -c "import torch"', wall_times([sys.executable, "-c", "import torch"], args.runs)))

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\nwarm re-run of {args.preset}; {os.cpu_count()} CPUs; load average {load}\n")
    print("| run | runs | min (s) | median (s) | max (s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, times in rows:
        print(f"| {label} | {len(times)} | {min(times):.2f} | {statistics.median(times):.2f} | {max(times):.2f} |")
    median = statistics.median(rows[0][1])
    if args.limit is not None and median > args.limit:
        print(f"median {median:.2f} s is above the limit {args.limit} s")
        sys.exit(1)


if __name__ == "__main__":
    main()
