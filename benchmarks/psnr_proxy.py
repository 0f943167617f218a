"""Is PSNR a good proxy for privacy? Pairs of grid points with the same PSNR but different identification.

Paper 000 §V argues that PSNR/SSIM are poor proxies for what a reconstruction reveals. Given a run's
``results.csv``, this lists pairs of (defense, strength, attack) points on one probe set whose mean PSNR
differs by at most ``--tolerance`` dB, ordered by how far their identity metric (face-id by default)
differs, and says whether the two confidence intervals overlap.

    .venv/bin/python benchmarks/psnr_proxy.py results/runs/default/results.csv [--metric face-id]
"""

from __future__ import annotations

import argparse
import itertools
import sys

import pandas as pd

DATASET_OF_METRIC = {"face-id": "synth-faces", "plate": "synth-plates", "par-ma": "synth-pedestrians"}


def proxy_pairs(frame: pd.DataFrame, metric: str, dataset: str, tolerance: float) -> pd.DataFrame:
    """Pairs of points with |ΔPSNR| ≤ tolerance, sorted by |Δmetric| (largest first)."""
    rows = frame[(frame["dataset"] == dataset) & (frame["attack"] != "worst") & (frame["kind"] == "privacy")]
    keys = ["defense", "strength", "attack"]
    psnr = rows[rows["metric"] == "psnr"].set_index(keys)["value"].rename("psnr")
    other = rows[rows["metric"] == metric].set_index(keys)[["value", "ci_low", "ci_high"]]
    points = other.join(psnr, how="inner").reset_index()
    pairs = []
    for a, b in itertools.combinations(points.itertuples(index=False), 2):
        if abs(a.psnr - b.psnr) > tolerance:
            continue
        hi, lo = (a, b) if a.value >= b.value else (b, a)
        pairs.append({
            "point_a": f"{hi.defense}={hi.strength:g} / {hi.attack}", "psnr_a": hi.psnr, f"{metric}_a": hi.value,
            "point_b": f"{lo.defense}={lo.strength:g} / {lo.attack}", "psnr_b": lo.psnr, f"{metric}_b": lo.value,
            "difference": hi.value - lo.value, "intervals_overlap": bool(lo.ci_high >= hi.ci_low)})
    if not pairs:
        return pd.DataFrame()
    return pd.DataFrame(pairs).sort_values("difference", ascending=False, kind="stable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a run's results.csv")
    parser.add_argument("--metric", default="face-id", choices=sorted(DATASET_OF_METRIC))
    parser.add_argument("--tolerance", type=float, default=0.25, help="largest PSNR difference (dB)")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    frame = pd.read_csv(args.results)
    pairs = proxy_pairs(frame, args.metric, DATASET_OF_METRIC[args.metric], args.tolerance)
    if pairs.empty:
        print(f"no two points within {args.tolerance} dB PSNR", file=sys.stderr)
        sys.exit(1)
    top = pairs.head(args.top)
    print("| " + " | ".join(top.columns) + " |")
    print("| " + " | ".join("---" for _ in top.columns) + " |")
    for row in top.itertuples(index=False):
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
