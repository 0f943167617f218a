"""Reading state dicts from local files: the one place privbench calls ``torch.load`` on user files.

Weights only ever come from a path the user names (no downloads). ``weights_only=True`` refuses pickled
code, a ``{"state_dict": ...}`` wrapper (training checkpoints) is unwrapped, and ``module.`` prefixes left
by ``nn.DataParallel`` are removed. Every failure is a :class:`PrivbenchError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from privbench.errors import PrivbenchError


def load_state_dict_file(path: str | Path, what: str = "weights") -> dict[str, torch.Tensor]:
    """The state dict stored in ``path``; ``what`` names the weights in error messages."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PrivbenchError(f"{what} file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PrivbenchError(f"cannot read {what} file {path}: {str(exc).splitlines()[0]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise PrivbenchError(f"{what} file {path} does not hold a state dict")
    return {str(k).removeprefix("module."): v for k, v in state.items()}
