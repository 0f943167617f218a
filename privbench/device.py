"""Device selection (``--device auto`` uses CUDA when present) and seeding."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

from privbench.errors import PrivbenchError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PrivbenchError(f"device '{name}' requested but CUDA is not available (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise PrivbenchError(f"unknown device '{name}' (use auto, cpu or cuda[:N])") from None


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed derived from a base seed and a path of names, stable across runs and machines."""
    text = "/".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
