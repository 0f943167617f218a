"""Built-in VGG-style CNN for the synthetic data.

Follows the target network of He, Zhang & Lee (ACSAC 2019, their CIFAR-10 code): three blocks of two 3×3
convolutions (pad 1, ReLU) each followed by 2×2 max-pooling, then fc1 (sigmoid in their code) and fc2.
Widths are scaled by ``width`` so the default run fits a 2-core CPU budget, and a BatchNorm follows each
convolution by default (``batchnorm``): the narrow plain net otherwise stays at chance for many epochs.
Every layer is a named child, so the network can be cut at any of them; the names follow the paper (conv11 = first conv's
output, relu22 = second ReLU of block 2, ...).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from privbench.models.base import ModelSpec
from privbench.registry import MODELS, Param
from privbench.split import Normalize

# ImageNet statistics, as He et al. normalize their inputs.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@MODELS.register("vgg-small")
class VGGSmall(ModelSpec):
    summary = "He et al.'s CIFAR target net (conv×2–pool ×3, fc1, fc2), width-scaled; cut at any named layer"
    params = (
        Param("width", int, 16, "channels of block 1 (blocks 2 and 3 use 2× and 4×)", low=4, high=128),
        Param("fc_width", int, 128, "units of fc1", low=8, high=4096),
        Param("batchnorm", bool, True, "BatchNorm after each convolution (not in He et al.'s net; without it "
              "this deep, narrow net barely trains in a CPU budget)"),
    )
    splits = ("conv11", "relu11", "relu12", "pool1", "relu21", "relu22", "pool2", "relu31", "relu32",
              "pool3", "fc1")
    default_split = "relu22"
    strict_splits = True

    def build(self, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Sequential:
        channels, height, width = input_shape
        w = self.params["width"]
        layers: OrderedDict[str, nn.Module] = OrderedDict(normalize=Normalize(IMAGENET_MEAN, IMAGENET_STD))
        in_ch = channels
        for block, out_ch in enumerate((w, 2 * w, 4 * w), start=1):
            for conv in (1, 2):
                layers[f"conv{block}{conv}"] = nn.Conv2d(in_ch, out_ch, 3, padding=1)
                if self.params["batchnorm"]:
                    layers[f"bn{block}{conv}"] = nn.BatchNorm2d(out_ch)
                layers[f"relu{block}{conv}"] = nn.ReLU()
                in_ch = out_ch
            layers[f"pool{block}"] = nn.MaxPool2d(2)
        layers["flatten"] = nn.Flatten()
        layers["fc1_linear"] = nn.Linear(in_ch * (height // 8) * (width // 8), self.params["fc_width"])
        layers["fc1"] = nn.Sigmoid()  # He et al.: fc(2048->512, sigmoid)
        layers["fc2"] = nn.Linear(self.params["fc_width"], num_classes)
        return nn.Sequential(layers)
