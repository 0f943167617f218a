"""Speed and bits of every real codec at roughly equal PSNR, on feature frames and on input images (issue 13).

For each codec (both ``hevc`` backends; ``vvc`` too when ``PRIVBENCH_VVENC=PATH`` names a VVenC binary):

1. the quality whose PSNR (from the mean MSE over ``--search-frames`` frames) is closest to ``--target`` dB is
   found by bisection on the quality axis (PSNR is monotonic in it);
2. at that quality, ``--frames`` frames are coded and decoded: mean bytes, PSNR, bits per pixel of the frame,
   and frames/s of encode+decode two ways: as the pipeline codes them (:meth:`Codec.roundtrip_batch` of the
   whole chunk on 1 thread; two chunks in a ``concurrent.futures.ThreadPoolExecutor(2)`` on 2 threads, as
   :func:`privbench.codecs.stage.code_frames` does), and one :meth:`Codec.roundtrip` per frame (a plain loop;
   ``pool.map`` over frames). Only ``hevc``/ffmpeg codes a chunk in one call (one ffmpeg process to encode, one
   to decode); for the other codecs both ways do the same work. The 2T/1T ratio says whether the codec releases
   the GIL or runs out of process (≈2 on 2 cores when it does);
3. the file size of a 1×1 frame (gray and RGB): the header/container floor that dominates at 32×32.

Frames: (a) the default task model's relu12 features of the first test images (8×32×32), clipped to
[max(0, min), min(mean + 6σ, max)] of those features, quantized to 8 bits and tiled 4×2 into one 64×128 gray
frame each (done here; the pipeline uses :mod:`privbench.codecs.tiling`); (b) the default test images
themselves, 32×32 RGB. The task model is trained by privbench the first time (1–2 min) and cached.

    python benchmarks/bench_codecs.py [--frames 64] [--search-frames 8] [--target 35] [--cache-dir DIR]
        [--out results/benchmarks/codecs.csv]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from privbench.cache import Cache
from privbench.codecs.base import Codec
from privbench.components import load_components
from privbench.config import load_config
from privbench.engine.inputs import inputs_for
from privbench.errors import PrivbenchError
from privbench.registry import CODECS

#: (label, codec name, fixed params)
CODEC_RUNS = [
    ("jpeg", "jpeg", {}),
    ("jpeg2000", "jpeg2000", {}),
    ("webp", "webp", {}),
    ("avif", "avif", {}),
    ("hevc/ffmpeg", "hevc", {"backend": "ffmpeg"}),
    ("hevc/pillow-heif", "hevc", {"backend": "pillow-heif"}),
]


def feature_frames(features: torch.Tensor) -> np.ndarray:
    """N×8×h×w features → N×(2h)×(4w) uint8 gray frames (clip, quantize, tile 4 wide × 2 high)."""
    f = features.detach().float()
    low = max(0.0, float(f.min()))
    high = min(float(f.mean() + 6 * f.std()), float(f.max()))
    q = ((f.clamp(low, high) - low) * (255.0 / (high - low))).round().to(torch.uint8).numpy()
    n, c, h, w = q.shape
    if c != 8:
        raise SystemExit(f"expected 8 feature channels, got {c}")
    return np.ascontiguousarray(q.reshape(n, 2, 4, h, w).transpose(0, 1, 3, 2, 4).reshape(n, 2 * h, 4 * w))


def mean_psnr(codec: Codec, frames: np.ndarray) -> tuple[float, float, float]:
    """(PSNR of the mean MSE, mean bytes, mean bits per pixel) over ``frames``."""
    mses, sizes = [], []
    for frame, (decoded, bits, _, _) in zip(frames, codec.roundtrip_batch(list(frames)), strict=True):
        mses.append(float(np.mean((decoded.astype(np.float64) - frame.astype(np.float64)) ** 2)))
        sizes.append(bits / 8)
    mse = float(np.mean(mses))
    psnr = 100.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)
    pixels = frames.shape[1] * frames.shape[2]
    return psnr, float(np.mean(sizes)), float(np.mean(sizes)) * 8 / pixels


def quality_at(name: str, params: dict, frames: np.ndarray, target: float) -> tuple[float, float]:
    """(quality, PSNR) of the quality whose PSNR is closest to ``target``: bisection on the quality axis."""
    cls = CODECS.get(name)
    axis = next(p for p in cls.params if p.name == cls.quality_param)
    integer = axis.type is int
    lo, hi = float(axis.low), float(axis.high)
    if not cls.higher_is_better:
        lo, hi = hi, lo  # walk from worst to best either way
    cache: dict[float, float] = {}

    def psnr_of(q: float) -> float:
        q = round(q) if integer else round(q, 1)
        if q not in cache:
            cache[q] = mean_psnr(CODECS.create(name, **params, **{cls.quality_param: q}), frames)[0]
        return cache[q]

    worst, best = lo, hi
    for _ in range(12):
        mid = (worst + best) / 2
        if integer and abs(round(best) - round(worst)) <= 1:
            break
        if not integer and abs(best - worst) <= 0.25:
            break
        if psnr_of(mid) < target:
            worst = mid
        else:
            best = mid
    candidates = {round(q) if integer else round(q, 1) for q in (worst, best)}
    chosen = min(candidates, key=lambda q: abs(psnr_of(q) - target))
    return chosen, psnr_of(chosen)


def speed(codec: Codec, frames: np.ndarray, workers: int, batched: bool) -> float:
    """Frames/s of encode+decode over ``frames`` (best of two passes): ``batched``, one
    :meth:`Codec.roundtrip_batch` per contiguous chunk of ``len(frames) / workers`` frames (the pipeline's way);
    else one :meth:`Codec.roundtrip` per frame."""
    items = list(frames)
    size = -(-len(items) // workers)
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        if workers == 1:
            if batched:
                codec.roundtrip_batch(items)
            else:
                for frame in items:
                    codec.roundtrip(frame)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(codec.roundtrip_batch, chunks) if batched else pool.map(codec.roundtrip, items))
        best = min(best, time.perf_counter() - start)
    return len(frames) / best


def tiny_sizes(codec: Codec) -> tuple[int, int]:
    gray = np.full((1, 1), 128, np.uint8)
    rgb = np.full((1, 1, 3), 128, np.uint8)
    return len(codec.encode(gray)), len(codec.encode(rgb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--search-frames", type=int, default=8)
    parser.add_argument("--target", type=float, default=35.0)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/pb-bench-cache"))
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/codecs.csv"))
    args = parser.parse_args()

    load_components()
    bench = inputs_for(load_config(), Cache(args.cache_dir))
    model, test = bench.model, bench.task_test
    with torch.no_grad():
        features = model.features(test.floats()[: args.frames])
    sources = {
        "features": feature_frames(features),
        "input": np.ascontiguousarray(test.images[: args.frames].numpy().transpose(0, 2, 3, 1)),
    }
    runs = list(CODEC_RUNS)
    if os.environ.get("PRIVBENCH_VVENC"):
        runs.append(("vvc", "vvc", {"encoder": os.environ["PRIVBENCH_VVENC"],
                                     "decoder": os.environ.get("PRIVBENCH_VVDEC", "")}))

    rows = []
    header = (f"{'codec':17s} {'frames':8s} {'shape':>9s} {'quality':>12s} {'PSNR':>6s} {'bytes':>7s} {'bpp':>6s} "
              f"{'fps 1T':>8s} {'fps 2T':>8s} {'2T/1T':>6s} {'per-frame 1T':>12s} {'2T':>6s}")
    print(header)
    for label, name, params in runs:
        try:
            CODECS.create(name, **params).check_available()
        except PrivbenchError as exc:
            print(f"{label:17s} skipped: {exc}")
            continue
        cls = CODECS.get(name)
        gray_1x1, rgb_1x1 = tiny_sizes(CODECS.create(name, **params))
        for source, frames in sources.items():
            quality, _ = quality_at(name, params, frames[: args.search_frames], args.target)
            codec = CODECS.create(name, **params, **{cls.quality_param: quality})
            psnr, size, bpp = mean_psnr(codec, frames)
            fps1, fps2 = speed(codec, frames, 1, True), speed(codec, frames, 2, True)
            single1, single2 = speed(codec, frames, 1, False), speed(codec, frames, 2, False)
            shape = "×".join(str(s) for s in frames.shape[1:])
            row = {"codec": label, "source": source, "frame_shape": shape, "quality_param": cls.quality_param,
                   "quality": quality, "psnr_db": round(psnr, 2), "bytes_mean": round(size, 1), "bpp": round(bpp, 3),
                   "fps_1thread": round(fps1, 1), "fps_2threads": round(fps2, 1), "speedup_2threads": round(fps2 / fps1, 2),
                   "fps_1thread_per_frame": round(single1, 1), "fps_2threads_per_frame": round(single2, 1),
                   "bytes_1x1_gray": gray_1x1, "bytes_1x1_rgb": rgb_1x1, "frames": len(frames)}
            rows.append(row)
            print(f"{label:17s} {source:8s} {shape:>9s} {cls.quality_param + '=' + format(quality, 'g'):>12s} "
                  f"{psnr:6.2f} {size:7.1f} {bpp:6.3f} {fps1:8.1f} {fps2:8.1f} {fps2 / fps1:6.2f} {single1:12.1f} "
                  f"{single2:6.1f}", flush=True)

    print("\n1×1 frame file sizes (header/container floor), bytes:")
    for label, _, _ in runs:
        match = next((r for r in rows if r["codec"] == label), None)
        if match:
            print(f"  {label:17s} gray {match['bytes_1x1_gray']:4d}   rgb {match['bytes_1x1_rgb']:4d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\n-> {args.out} (target {args.target:g} dB; {torch.get_num_threads()} torch threads; "
          f"{os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
