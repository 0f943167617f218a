"""Saved trained defenses: one self-describing file per fitted defense (``privbench defend --save FILE``).

The file holds the defense's registered name, its parameters, the key of the task model it was fitted for,
and its state (tensors and plain containers only), so ``run``/``attack`` rebuild the defense from the file
alone and ``torch.load(..., weights_only=True)`` reads it (the habit of Model-Inversion-Attack-ToolBox:
checkpoints that carry what is needed to rebuild). A file fitted for another task model is refused: the
encoder of a bottleneck only means something on top of the front it was trained on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from privbench import __version__
from privbench.cache import atomic_torch_save
from privbench.defenses.base import TrainedDefense
from privbench.errors import PrivbenchError
from privbench.registry import DEFENSES

FORMAT = "privbench-defense/1"


@dataclasses.dataclass(frozen=True)
class SavedDefense:
    path: Path
    name: str
    params: dict[str, Any]
    model_key: str  # spec hash of the task model the defense was fitted for
    model: dict[str, Any]  # a readable summary of that model (name, split), for messages
    state: dict[str, Any]
    digest: str  # SHA-256 of the file's bytes: what downstream cache keys depend on

    def defense(self) -> TrainedDefense:
        """The defense rebuilt from this file: parameters validated, state loaded."""
        cls = DEFENSES.get(self.name)
        if not issubclass(cls, TrainedDefense):
            raise PrivbenchError(f"{self.path}: defense '{self.name}' is not a trained defense")
        try:
            defense = cls(**self.params)
        except PrivbenchError as exc:  # say which file holds the bad setting
            raise PrivbenchError(f"{self.path}: {exc}") from None
        defense.load_state(self.state)
        defense.state_source = self.digest
        return defense

    def check_model(self, model_key: str, model: dict[str, Any]) -> None:
        if model_key != self.model_key:
            raise PrivbenchError(f"{self.path} was fitted for another task model ({_describe(self.model)}, key "
                                 f"{self.model_key}); this run's model is {_describe(model)}, key {model_key}: "
                                 "fit the defense again with `privbench defend` for this model")


def _describe(model: dict[str, Any]) -> str:
    return f"{model.get('model', '?')} cut at {model.get('split', '?')}, seed {model.get('seed', '?')}"


def save_defense(path: Path, defense: TrainedDefense, state: dict[str, Any], model_key: str,
                 model: dict[str, Any]) -> None:
    """Write one self-describing defense file atomically."""
    atomic_torch_save({"format": FORMAT, "privbench": __version__, "defense": defense.name,
                       "params": dict(defense.params), "model_key": model_key, "model": dict(model),
                       "state": state}, Path(path))


def read_defense(path: str | Path) -> SavedDefense:
    """Read and check a defense file; every problem is one :class:`PrivbenchError` line."""
    path = Path(path)
    if not path.is_file():
        raise PrivbenchError(f"defense file not found: {path}")
    data = path.read_bytes()
    try:
        content = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # truncated, not a torch file, or pickled code (refused by weights_only)
        raise PrivbenchError(f"{path} is not a privbench defense file (not a weights-only torch file: truncated, "
                             "another format, or pickled code)") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise PrivbenchError(f"{path} is not a privbench defense file (format {FORMAT} expected)")
    missing = [k for k in ("defense", "params", "model_key", "model", "state") if k not in content]
    if missing:
        raise PrivbenchError(f"{path}: defense file lacks '{missing[0]}'")
    for key in ("params", "model", "state"):  # dict(...) of anything else would raise, or build nonsense
        if not isinstance(content[key], dict):
            raise PrivbenchError(f"{path}: defense file's '{key}' is a {type(content[key]).__name__}, not a mapping")
    if not all(isinstance(k, str) for k in content["params"]):
        raise PrivbenchError(f"{path}: defense file's 'params' has a name that is not a string")
    return SavedDefense(path, str(content["defense"]), dict(content["params"]), str(content["model_key"]),
                        dict(content["model"]), content["state"], hashlib.sha256(data).hexdigest()[:24])
