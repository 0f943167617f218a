"""`--jobs 2` against a serial run of the same uncached grid (issue 16: ≥ 1.6× on the 2-core machine).

The grid is the quick preset's model, data and attacks with its noise defense at ``--strengths`` strengths:
with each setting's utility rows and the two attacks, ``3 × strengths`` uncached points (24 by default). The
attacks run at research budgets (``--inverse-epochs 10``, ``--rmle-iterations 200``, rMLE's registered default)
rather than the preset's CI budgets (3 epochs, 15 steps), at which a point takes about a second and process
start-up is most of what is timed. What every point shares — the task model, the datasets — is computed first
by a warm-up run of the same config at a strength outside the grid, so the timed runs compute only points.
Each timed run is a fresh ``privbench run`` process on its own copy of the warmed cache (so none finds another's
points), its wall time taken around the whole process, start-up and worker start-up included. Serial runs at
the default threads (the machine's cores), ``--jobs 2`` at one thread per worker, as a user would run them;
serial at one thread is timed as well, to separate what ``--jobs`` gains from what a serial run already gets
from torch's intra-op threads. ``--repeats`` runs the three in rounds; median ratios are printed. With
``--limit R`` the exit status is 1 when the median speed-up over the default serial run is below R.

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
from bench_cli_startup import privbench_command  # the installed script beside this Python

PRESET = Path(__file__).resolve().parents[1] / "presets" / "quick.yaml"
#: the warm-up's strength: outside every timed grid, so the warm-up caches no timed point
WARMUP_STRENGTH = 9.0


def grid_config(strengths: list[float], name: str, inverse_epochs: int, rmle_iterations: int) -> dict:
    """The quick preset with its noise defense at ``strengths`` and its attacks at the given budgets."""
    data = copy.deepcopy(yaml.safe_load(PRESET.read_text()))
    data["name"] = name
    (defense,) = data["defenses"]
    defense["strengths"] = strengths
    budgets = {"inverse-net": {"epochs": inverse_epochs}, "rmle": {"iterations": rmle_iterations}}
    for attack in data["attacks"]:
        attack["params"].update(budgets[attack["name"]])
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
    parser.add_argument("--strengths", type=int, default=8, help="noise strengths in the grid (3 points each)")
    parser.add_argument("--inverse-epochs", type=int, default=10, help="inverse-net epochs (the preset: 3)")
    parser.add_argument("--rmle-iterations", type=int, default=200,
                        help="rMLE steps (the preset: 15; 200 is the registered default)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of the parallel run")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the three timed runs")
    parser.add_argument("--limit", type=float, default=None,
                        help="fail when the median speed-up over the default serial run is below this")
    args = parser.parse_args()

    strengths = [round(0.1 * (i + 1), 2) for i in range(args.strengths)]
    budgets = (args.inverse_epochs, args.rmle_iterations)
    runs = {"serial": [], "serial --threads 1": ["--threads", "1"], f"--jobs {args.jobs}": ["--jobs", str(args.jobs)]}
    times: dict[str, list[float]] = {label: [] for label in runs}
    with tempfile.TemporaryDirectory(prefix="privbench-jobs-") as tmp:
        tmp_path = Path(tmp)
        warm_cfg, grid_cfg = tmp_path / "warmup.yaml", tmp_path / "grid.yaml"
        warm_cfg.write_text(yaml.safe_dump(grid_config([WARMUP_STRENGTH], "warmup", *budgets)))
        grid_cfg.write_text(yaml.safe_dump(grid_config(strengths, "grid", *budgets)))
        warm_cache = tmp_path / "warm-cache"
        seconds = timed_run(warm_cfg, warm_cache, tmp_path / "out", [])
        print(f"warm-up (task model, data; strength {WARMUP_STRENGTH}): {seconds:.1f} s", flush=True)
        points = 3 * len(strengths)  # per setting: its utility rows and the two attacks
        for repeat in range(args.repeats):
            for index, (label, extra) in enumerate(runs.items()):
                cache = tmp_path / f"cache-{repeat}-{index}"
                shutil.copytree(warm_cache, cache)
                times[label].append(timed_run(grid_cfg, cache, tmp_path / f"out-{repeat}-{index}", extra))
                print(f"  {label:>18}: {times[label][-1]:7.1f} s  ({points} uncached points)", flush=True)
                shutil.rmtree(cache)

    parallel = times[f"--jobs {args.jobs}"]
    speedups = {}
    for label in ("serial", "serial --threads 1"):
        ratios = [s / p for s, p in zip(times[label], parallel, strict=True)]
        speedups[label] = statistics.median(ratios)
        print(f"--jobs {args.jobs} over {label} (median {statistics.median(times[label]):.1f} s vs "
              f"{statistics.median(parallel):.1f} s): {speedups[label]:.2f}× "
              f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    if args.limit is not None and speedups["serial"] < args.limit:
        print(f"speed-up {speedups['serial']:.2f}× over the default serial run is below the limit {args.limit}×")
        sys.exit(1)


if __name__ == "__main__":
    main()
