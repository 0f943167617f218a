"""Where a rate sweep spends its time: codecs vs networks (issue 13's performance figure).

Runs a rate sweep (by default the shipped ``compression`` preset) with every grid point uncached, but with the
inputs that are not part of the sweep — datasets, the task model, trained defenses, recognizers — copied from a
primed cache (``--primed``; the first run primes it), and reports the wall time of the grid, the wall time spent
inside the codecs (``privbench.codecs.stage.CLOCK``: encode + decode of every frame, both cores), the frames
coded and the rest (networks: attack fitting, reconstruction, utility, metrics).

    python benchmarks/bench_rate_sweep.py [--config compression] [--primed /tmp/pb-rate-primed] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from privbench.cache import Cache
from privbench.codecs import stage
from privbench.config import load_config
from privbench.sweep import run_benchmark

#: cache kinds that are inputs of the sweep, not part of it
INPUT_KINDS = ("data", "task-model", "defense", "recognizer", "model-check", "feature-stats", "originals")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="compression", help="a shipped preset name or a YAML path")
    parser.add_argument("--primed", type=Path, default=Path("/tmp/pb-rate-primed"), help="cache of the inputs")
    parser.add_argument("--keep", type=Path, default=None, help="copy the sweep's cache here afterwards (a later "
                        "`privbench run CONFIG --cache-dir KEEP` is then warm)")
    args = parser.parse_args()
    path = args.config if args.config.endswith((".yaml", ".yml")) else \
        str(Path(__file__).resolve().parents[1] / "presets" / f"{args.config}.yaml")
    config = load_config(path)
    if not (args.primed / "task-model").exists():
        print(f"priming {args.primed} (one full run of {args.config}) ...")
        run_benchmark(config, Cache(args.primed), progress=False)
    with tempfile.TemporaryDirectory(prefix="pb-rate-") as folder:
        for kind in INPUT_KINDS:
            if (args.primed / kind).exists():
                shutil.copytree(args.primed / kind, Path(folder) / kind)
        stage.CLOCK.seconds, stage.CLOCK.frames = 0.0, 0
        start = time.perf_counter()
        output = run_benchmark(config, Cache(folder), progress=False)
        total = time.perf_counter() - start
        if args.keep is not None:
            shutil.copytree(folder, args.keep, dirs_exist_ok=True)
    coding, frames = stage.CLOCK.seconds, stage.CLOCK.frames
    print(f"{args.config}: {len(output.frame)} rows, grid wall {total:.1f} s")
    print(f"  codecs:   {coding:.1f} s ({100 * coding / total:.1f} %), {frames} frames, "
          f"{frames / max(coding, 1e-9):.1f} frames/s (encode + decode, both cores)")
    print(f"  networks and metrics: {total - coding:.1f} s ({100 * (total - coding) / total:.1f} %)")


if __name__ == "__main__":
    main()
