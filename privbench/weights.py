"""Reading state dicts from local files: the one place privbench calls ``torch.load`` on user files.

Weights only ever come from a path the user names (no downloads). ``weights_only=True`` refuses pickled
code, a ``{"state_dict": ...}`` wrapper (training checkpoints) is unwrapped, and ``module.`` prefixes left
by ``nn.DataParallel`` are removed. Every failure is a :class:`PrivbenchError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from privbench.errors import PrivbenchError, first_line


def check_weights_path(path: str | Path, what: str = "weights") -> Path:
    """``path`` (user-expanded) when it is a file; a missing file or a folder is one :class:`PrivbenchError`."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise PrivbenchError(f"{what} {path} is a folder, not a weights file")
    if not path.is_file():
        raise PrivbenchError(f"{what} file not found: {path}")
    return path


def load_state_dict_file(path: str | Path, what: str = "weights") -> dict[str, torch.Tensor]:
    """The state dict stored in ``path``; ``what`` names the weights in error messages."""
    path = check_weights_path(path, what)
    if path.stat().st_size == 0:
        raise PrivbenchError(f"{what} file {path} is empty (0 bytes)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, another format, or pickled code (refused by weights_only)
        raise PrivbenchError(f"cannot read {what} file {path}: {first_line(exc)}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PrivbenchError(f"{what} file {path} does not hold a state dict (names to tensors)")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def load_weights_into(network: torch.nn.Module, path: str | Path, what: str) -> None:
    """Load the state dict in ``path`` into ``network`` exactly (strict), or fail with one line naming the file,
    the model (``what``) and the first mismatch."""
    state = load_state_dict_file(path)
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    where = f"weights {Path(path).expanduser()} do not fit {what}"
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of its {len(expected)} tensors missing (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
        raise PrivbenchError(f"{where}: {'; '.join(parts)} — a file of another architecture?")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise PrivbenchError(f"{where}: {key} has shape {tuple(state[key].shape)} in the file, "
                                 f"{tuple(value.shape)} in the model")
    try:
        network.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else "mismatch"
        raise PrivbenchError(f"{where}: {detail}") from None
