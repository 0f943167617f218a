"""A user's own ``nn.Module``: ``--model package.module:factory`` or ``--model path/to/file.py:factory``, cut
by submodule name.

Where the factory comes from:

- ``package.module:factory`` is imported like ``python -m`` would: the **current directory is importable**
  (it is put first on ``sys.path``), then ``PYTHONPATH`` and the installed packages;
- ``path/to/file.py:factory`` loads that file (its folder is put on ``sys.path``, so it can import its
  siblings).

The factory is called as ``factory(num_classes=K)`` when it accepts ``num_classes`` (or ``**kwargs``) and
as ``factory()`` otherwise; either way its output must have K logits, checked on one blank input before
anything trains. Results are keyed by the *content* of the model's source (the module's file, or every
``.py`` file of its top-level package) and of the weights file, so editing either recomputes.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from privbench.errors import PrivbenchError, described
from privbench.fingerprint import file_digest, files_digest, module_digest
from privbench.models.base import ModelSpec
from privbench.models.fx_split import fx_split
from privbench.registry import MODELS, Param
from privbench.split import SplitModel
from privbench.weights import load_weights_into


def _parse(target: str) -> tuple[str, str]:
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise PrivbenchError(f"custom model must be 'package.module:factory' or 'path/to/file.py:factory', "
                             f"got {target!r}")
    return where, attr


def is_file_target(where: str) -> bool:
    return where.endswith(".py") or os.sep in where or "/" in where


def _import_file(path: Path):
    if not path.is_file():
        raise PrivbenchError(f"custom model file not found: {path}")
    name = f"privbench_user_{path.stem}_{file_digest(path)[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PrivbenchError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise PrivbenchError(f"importing {path} failed: {described(exc)}") from None
    return module


def _import_module(name: str):
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise PrivbenchError(f"cannot import {name!r} for the custom model ({exc}); privbench looks in the "
                             f"current directory ({cwd}), PYTHONPATH and the installed packages, or give a "
                             f"file: --model path/to/file.py:factory") from None
    except Exception as exc:
        raise PrivbenchError(f"importing {name!r} for the custom model failed: {described(exc)}") from None


def import_factory(target: str):
    """The callable named by ``target`` (see the module docstring for the two forms)."""
    where, attr = _parse(target)
    module = _import_file(Path(where).expanduser().resolve()) if is_file_target(where) else _import_module(where)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise PrivbenchError(f"{target!r}: '{attr}' is not a callable in {where}")
    return factory


def source_digest(target: str) -> str:
    """Digest of the source a factory comes from (a file target: that file; a module: its package)."""
    where, _ = _parse(target)
    if is_file_target(where):
        path = Path(where).expanduser().resolve()
        return files_digest([path], root=path.parent)
    import_factory(target)  # imports the module (with its errors) before its files are looked up
    return module_digest(where)


def _accepts_num_classes(factory) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # builtins and C extensions: assume the documented keyword
        return True
    return any(p.name == "num_classes" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


@MODELS.register("custom")
class CustomModel(ModelSpec):
    summary = ("your own nn.Module: --model package.module:factory or path/to/file.py:factory "
               "(called as factory(num_classes=K) when it takes num_classes, else factory())")
    params = (
        Param("factory", str, "", "'package.module:factory' (current directory importable) or 'file.py:factory'"),
        Param("weights", str, "", "local state-dict file, used as given (fine-tune with model.fine_tune); "
                                  "empty = train here"),
    )

    def _check_params(self) -> None:
        if not self.params["factory"]:
            raise PrivbenchError("model 'custom' needs factory='package.module:factory'")
        _parse(self.params["factory"])

    @property
    def label(self) -> str:
        return self.params["factory"]

    def build(self, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        target = self.params["factory"]
        factory = import_factory(target)
        try:
            net = factory(num_classes=num_classes) if _accepts_num_classes(factory) else factory()
        except Exception as exc:
            raise PrivbenchError(f"the model factory {target} failed: {described(exc)}") from None
        if not isinstance(net, nn.Module):
            raise PrivbenchError(f"{target} returned a {type(net).__name__}, not an nn.Module")
        if self.params["weights"]:
            load_weights_into(net, self.params["weights"], f"{target} with {num_classes} classes")
        self._check_output(net, num_classes, input_shape)
        return net

    def _check_output(self, net: nn.Module, num_classes: int, input_shape: tuple[int, int, int]) -> None:
        """One blank image through the network: it must give ``num_classes`` logits."""
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                out = net(torch.zeros(1, *input_shape))
        except Exception as exc:
            raise PrivbenchError(f"{self.params['factory']} fails on a {tuple(input_shape)} input: "
                                 f"{described(exc)}") from None
        finally:
            net.train(was_training)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise PrivbenchError(f"{self.params['factory']} outputs {shape} for one image; the task has "
                                 f"{num_classes} classes, so it must output (N, {num_classes})")

    def content(self) -> dict[str, Any]:
        return {**super().content(), "source": source_digest(self.params["factory"])}

    def split_model(self, network: nn.Module, split: str, num_classes: int,
                    input_shape: tuple[int, int, int]) -> SplitModel:
        front, back = fx_split(network, split)
        return SplitModel(front, back, model=self.label, split=split, input_shape=input_shape,
                          num_classes=num_classes)
