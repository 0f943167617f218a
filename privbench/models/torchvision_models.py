"""torchvision classifiers as split models (ResNet, VGG, MobileNetV2, ...).

The architecture comes from ``torchvision.models``; weights come only from a local file the user names
(``weights=PATH``, a state dict loaded with ``weights_only=True``) or are trained here on the task data.
Nothing is downloaded. The model is cut after a named submodule with ``torch.fx`` (e.g. ``layer2`` for
ResNet, ``features.8`` for VGG/MobileNetV2).
"""

from __future__ import annotations

import torch
from torch import nn

from privbench.models.base import ModelSpec
from privbench.models.builtin_cnn import IMAGENET_MEAN, IMAGENET_STD
from privbench.models.fx_split import fx_split
from privbench.registry import MODELS, Param
from privbench.split import Normalize, SplitModel
from privbench.weights import load_weights_into


class WithNormalize(nn.Module):
    """Prepends ImageNet normalization so the pipeline feeds [0, 1] images, as everywhere in privbench."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))



class TorchvisionClassifier(ModelSpec):
    """Base for torchvision classifiers; subclasses set ``arch`` and their split names."""

    arch = ""
    params = (
        Param("weights", str, "", "local state-dict file (torchvision key names), used as given (fine-tune "
                                  "with model.fine_tune); empty = train here"),
    )

    def build(self, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        import torchvision  # on use: importing it costs ~2.5 s (torch._dynamo)

        net = getattr(torchvision.models, self.arch)(weights=None, num_classes=num_classes)
        if self.params["weights"]:
            load_weights_into(net, self.params["weights"], f"{self.arch} with {num_classes} classes")
        return WithNormalize(net)

    def split_model(self, network: nn.Module, split: str, num_classes: int,
                    input_shape: tuple[int, int, int]) -> SplitModel:
        target = split if split.startswith("net.") else f"net.{split}"
        front, back = fx_split(network, target)
        return SplitModel(front, back, model=self.name, split=split, input_shape=input_shape,
                          num_classes=num_classes)


@MODELS.register("resnet18")
class ResNet18(TorchvisionClassifier):
    summary = "torchvision ResNet-18, cut after a named stage (layer1..layer4)"
    arch = "resnet18"
    splits = ("maxpool", "layer1", "layer2", "layer3", "layer4")
    default_split = "layer1"


@MODELS.register("vgg11")
class VGG11(TorchvisionClassifier):
    summary = "torchvision VGG-11, cut after a named layer of `features` (e.g. features.5)"
    arch = "vgg11"
    splits = ("features.1", "features.4", "features.9", "features.14", "features.19")
    default_split = "features.4"


@MODELS.register("mobilenet_v2")
class MobileNetV2(TorchvisionClassifier):
    summary = "torchvision MobileNetV2, cut after a named inverted-residual block (features.N)"
    arch = "mobilenet_v2"
    splits = ("features.1", "features.3", "features.6", "features.13")
    default_split = "features.3"
