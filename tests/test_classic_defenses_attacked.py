"""Classic obfuscations (paper 004's baselines) against an adaptive white-box attacker: a stronger setting
leaves less for rMLE to reconstruct. rMLE optimizes through blur and pixelate exactly and through quantize by
the stage's straight-through gradient.

Margins, measured on this config (rMLE 300 steps; task model 1 and 3 epochs, seeds 0–2): pixelate 2 → 8 and
quantize 32 → 2 levels lower PSNR by 6–17 dB. Blur is subtler: through σ ≤ 1 rMLE reconstructs *as well as or
better than* without a defense (the blur's smoothing helps its optimization), so the test compares σ 1 with σ 4:
PSNR fell by 1.2–6.9 dB and edge-PSNR by 4.4–10.6 dB in all five cases.
"""

from __future__ import annotations

import pytest
from conftest import reduced

from privbench.cache import Cache
from privbench.config import load_config
from privbench.sweep import run_benchmark

WEAK_STRONG = {"blur": (1.0, 4.0), "pixelate": (2.0, 8.0), "quantize": (32.0, 2.0)}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    data = reduced()
    data["defenses"] = [{"name": name, "strengths": list(pair)} for name, pair in WEAK_STRONG.items()]
    data["attacks"] = [{"name": "rmle", "params": {"iterations": 300}}]
    data["metrics"] = ["psnr", "edge-psnr"]
    frame = run_benchmark(load_config(None, data), Cache(tmp_path_factory.mktemp("cache")), progress=False).frame
    frame = frame[frame["kind"] == "privacy"]  # the reconstructions' scores (kind=input scores x′ itself)
    return frame.set_index(["defense", "strength", "metric"])["value"]


@pytest.mark.parametrize("name, psnr_margin, edge_margin", [("blur", 0.0, 2.0), ("pixelate", 2.0, 2.0),
                                                             ("quantize", 2.0, 2.0)])
def test_a_stronger_classic_obfuscation_lowers_attack_psnr(attacked, name, psnr_margin, edge_margin):
    weak, strong = WEAK_STRONG[name]
    assert attacked[(name, strong, "psnr")] < attacked[(name, weak, "psnr")] - psnr_margin, attacked.to_dict()
    assert attacked[(name, strong, "edge-psnr")] < attacked[(name, weak, "edge-psnr")] - edge_margin
