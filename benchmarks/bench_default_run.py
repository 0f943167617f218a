"""The README's main job, cold: `privbench run` (the embedded default benchmark) with an empty cache, timed as a whole
process, with its breakdown per grid point and per stage (issue 28: ≤ 300 s wall on a 2-core CPU without native
bf16).

Runs ``privbench run [CONFIG]`` in a fresh process on a new empty cache folder (the shipped recognizers are part of
the package, so they are not trained), measures the wall time and the child's CPU time and peak RSS
(``resource.getrusage(RUSAGE_CHILDREN)``), then reads the run's ``manifest.json``: each point's seconds and status,
and the time per stage. Writes ``results/perf/default_run_points.csv`` (one row per grid point: its own time, beside
the node tasks it waited for), ``default_run_nodes.csv`` (one row per node task: task model, defense fits, attack
fits, reconstructions) and
``default_run_summary.csv`` (one row: wall, CPU, peak RSS, the machine, its CPU flags, the precision setting),
``default_run_jobsN_*.csv`` with ``--jobs N``, and prints both.

``--fp32`` sets PRIVBENCH_PRECISION=fp32 for the run: on a CPU with native bf16 that measures the path every CPU
without bf16 takes. Without it, the run takes the machine's own path (bf16 where native).

    .venv/bin/python benchmarks/bench_default_run.py [--config default] [--fp32] [--jobs N] [--out results/perf]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from bench_cli_startup import privbench_command  # the installed script beside this Python


def cpu_flags() -> dict[str, str]:
    """The CPU's model name and whether it has the instruction sets that decide the precision path."""
    model, flags = platform.processor() or platform.machine(), set()
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return {"cpu": model, "cores": str(os.cpu_count()), "avx2": str("avx2" in flags),
            "avx512f": str("avx512f" in flags), "avx512_bf16": str("avx512_bf16" in flags),
            "amx_bf16": str("amx_bf16" in flags)}


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="config or preset (default: the embedded default)")
    parser.add_argument("--fp32", action="store_true", help="force the fp32 path (PRIVBENCH_PRECISION=fp32)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default="results/perf")
    args = parser.parse_args()

    env = dict(os.environ)
    if args.fp32:
        env["PRIVBENCH_PRECISION"] = "fp32"
    with tempfile.TemporaryDirectory() as tmp:
        command = [*privbench_command(), "run", *([args.config] if args.config else []), "--cache-dir",
                   f"{tmp}/cache", "--out", f"{tmp}/out", "--quiet", *(["--jobs", str(args.jobs)] if args.jobs > 1 else [])]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        (manifest_path,) = Path(tmp, "out").glob("*/manifest.json")
        manifest = json.loads(manifest_path.read_text())
    points = [{"point": p["point"], "status": p["status"], "seconds": p["seconds"]} for p in manifest["points"]]
    name = ("default_run" if not args.config else f"{Path(args.config).stem}_run") + (f"_jobs{args.jobs}" if args.jobs > 1
                                                                                        else "")
    out = Path(args.out)
    write_rows(out / f"{name}_points.csv", points)
    if manifest.get("nodes"):  # the expensive nodes, each a task of its own (privbench.schedule)
        write_rows(out / f"{name}_nodes.csv", manifest["nodes"])
    summary = {"config": args.config or "default", "config_hash": manifest.get("config_hash", ""),
               "git_sha": manifest.get("git_sha", ""), "wall_s": round(wall, 1),
               "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
               "peak_rss_mb": round(after.ru_maxrss / 1024, 1), "jobs": args.jobs,
               "precision_env": env.get("PRIVBENCH_PRECISION", "auto"), "points": len(points),
               **{f"stage: {s['stage']}": s["seconds"] for s in manifest["stages"]}, **cpu_flags(),
               "torch": manifest["versions"]["torch"], "threads": manifest["versions"]["threads"]}
    write_rows(out / f"{name}_summary.csv", [summary])
    for key, value in summary.items():
        print(f"{key}: {value}")
    print("\nslowest points:")
    for row in sorted(points, key=lambda r: -(r["seconds"] or 0))[:15]:
        print(f"  {row['seconds']:8.1f} s  {row['point']}")


if __name__ == "__main__":
    main()
