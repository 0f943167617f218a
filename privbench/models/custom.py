"""A user's own ``nn.Module``, named as ``package.module:factory`` and cut by submodule name."""

from __future__ import annotations

import importlib

from torch import nn

from privbench.errors import PrivbenchError
from privbench.models.base import ModelSpec
from privbench.models.fx_split import fx_split
from privbench.registry import MODELS, Param
from privbench.split import SplitModel
from privbench.weights import load_state_dict_file


def import_factory(target: str):
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise PrivbenchError(f"custom model must be 'package.module:factory', got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PrivbenchError(f"cannot import {module_name!r} for the custom model: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise PrivbenchError(f"{target!r}: '{attr}' is not a callable in {module_name}")
    return factory


@MODELS.register("custom")
class CustomModel(ModelSpec):
    summary = "your own nn.Module: --model package.module:factory (factory(num_classes) -> nn.Module)"
    params = (
        Param("factory", str, "", "'package.module:factory'; called as factory(num_classes=K)"),
        Param("weights", str, "", "local state-dict file; empty = train here"),
    )

    def _check_params(self) -> None:
        if not self.params["factory"]:
            raise PrivbenchError("model 'custom' needs factory='package.module:factory'")

    def build(self, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        net = import_factory(self.params["factory"])(num_classes=num_classes)
        if not isinstance(net, nn.Module):
            raise PrivbenchError(f"{self.params['factory']} did not return an nn.Module")
        if self.params["weights"]:
            net.load_state_dict(load_state_dict_file(self.params["weights"]))
        return net

    def split_model(self, network: nn.Module, split: str, num_classes: int,
                    input_shape: tuple[int, int, int]) -> SplitModel:
        front, back = fx_split(network, split)
        return SplitModel(front, back, model=self.params["factory"], split=split, input_shape=input_shape,
                          num_classes=num_classes)
