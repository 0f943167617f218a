"""torchvision two-stage detectors (Faster R-CNN) as split models, cut inside the backbone.

Paper 000 protects an object detector split inside its backbone; this adapter does the same to torchvision's
``GeneralizedRCNN`` family. What it builds from one detector:

- **front** (edge): the detector's own input transform (``GeneralizedRCNNTransform``: per-channel normalization,
  the resize to ``min_size``/``max_size`` and the zero padding to a multiple of 32, all differentiable), then the
  backbone's layers up to and including the named cut. Inputs are images in [0, 1] at the size the user sees,
  so attacks reconstruct, and metrics compare, images in that space (the privbench convention, :mod:`privbench.split`).
- **back** (cloud): the rest of the backbone, the FPN if any, the RPN and the RoI heads. ``back(z)`` returns
  :class:`DetectorOutputs` (the feature maps, still attached to the graph); the task turns it into the detector's
  training losses or into detections (:mod:`privbench.tasks`), with boxes mapped back to the input's pixels.

**What can be cut.** One tensor crosses the network: the cut must come before every feature map the heads read.
For a plain backbone (the built-in ``detector-small``: the heads read its last block) any block can be the cut;
for an FPN backbone (torchvision's ``fasterrcnn_*_fpn``) the cut must come before the first layer the FPN reads
(e.g. ``body.3`` of ``fasterrcnn_mobilenet_v3_large_fpn``, which reads ``body.13`` and ``body.16``). A later cut
would send several tensors; it is refused with the first valid and the last valid cut in the message.
RetinaNet, FCOS and SSD (single-stage heads with their own anchor matching) are not adapted.

**Loss and eval mode.** The RPN and RoI heads decide between "losses" and "detections" by their own ``training``
flag. The back sets that flag on those two modules alone (not on their sub-layers) for the duration of a call, so
the detector's losses can be computed while its backbone stays in eval mode (frozen BatchNorm statistics), as a
defense or an attack trains *through* a frozen detector.

Weights come only from a local state-dict file (``weights=PATH``, torchvision key names, ``weights_only=True``)
or are trained here on the task data; nothing is downloaded.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

import torch
from torch import nn

from privbench.errors import PrivbenchError
from privbench.models.base import ModelSpec
from privbench.models.builtin_cnn import IMAGENET_MEAN, IMAGENET_STD
from privbench.registry import MODELS, Param
from privbench.split import SplitModel
from privbench.tasks import DetectionTargets, get_task
from privbench.weights import load_weights_into


class DetectorInput(nn.Module):
    """The detector's own transform as the first layer of the edge side: [0, 1] images in, the normalized,
    resized and padded batch tensor the backbone reads out."""

    def __init__(self, transform: nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform(list(x))[0].tensors


class _HeadMode:
    """Sets the ``training`` flag of the RPN and the RoI heads themselves (not of their sub-layers) for a block."""

    def __init__(self, back: DetectorBack, training: bool) -> None:
        self.modules = (back.rpn, back.roi_heads)
        self.training = training

    def __enter__(self) -> None:
        self.saved = [m.training for m in self.modules]
        for m in self.modules:
            m.training = self.training

    def __exit__(self, *exc: Any) -> None:
        for m, flag in zip(self.modules, self.saved, strict=True):
            m.training = flag


class DetectorOutputs:
    """The back's output: the feature maps the heads read, and the heads (``back``) that read them."""

    def __init__(self, features: OrderedDict[str, torch.Tensor], back: DetectorBack) -> None:
        self.features = features
        self.back = back

    def __len__(self) -> int:
        return len(next(iter(self.features.values())))

    def losses(self, targets: DetectionTargets) -> dict[str, torch.Tensor]:
        return self.back.losses(self.features, targets)

    def detections(self) -> list[dict[str, torch.Tensor]]:
        return self.back.detections(self.features)


class DetectorBack(nn.Module):
    """The cloud side of a cut detector: remaining backbone layers, FPN, RPN and RoI heads (see the module
    docstring). ``input_size`` is the image size the user sees, ``image_size`` the size after the detector's
    resize and ``padded_size`` the batch tensor's size: fixed by the input shape, so they are stored here."""

    def __init__(self, rest: OrderedDict[str, nn.Module], returned: dict[str, str], cut: str, fpn: nn.Module | None,
                 rpn: nn.Module, roi_heads: nn.Module, input_size: tuple[int, int], image_size: tuple[int, int],
                 padded_size: tuple[int, int]) -> None:
        super().__init__()
        self.rest = nn.ModuleDict(rest)
        self.returned = dict(returned)
        self.cut = cut
        self.fpn = fpn
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.input_size = input_size
        self.image_size = image_size
        self.padded_size = padded_size

    def forward(self, z: torch.Tensor) -> DetectorOutputs:
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        if self.cut in self.returned:
            features[self.returned[self.cut]] = z
        x = z
        for name, layer in self.rest.items():
            x = layer(x)
            if name in self.returned:
                features[self.returned[name]] = x
        if self.fpn is not None:
            features = self.fpn(features)
        return DetectorOutputs(features, self)

    def _images(self, features: OrderedDict[str, torch.Tensor]):
        from torchvision.models.detection.image_list import ImageList

        first = next(iter(features.values()))
        # The anchor generator reads only the batch tensor's shape: a zero-size view stands in for the images.
        placeholder = first.new_zeros(()).expand(len(first), 3, *self.padded_size)
        return ImageList(placeholder, [self.image_size] * len(first))

    def losses(self, features: OrderedDict[str, torch.Tensor], targets: DetectionTargets) -> dict[str, torch.Tensor]:
        """The detector's training losses (RPN objectness and box regression, RoI classification and box
        regression) for ``targets`` given in input pixels."""
        from torchvision.models.detection.transform import resize_boxes

        images = self._images(features)
        if len(targets) != len(images.image_sizes):
            raise PrivbenchError(f"detector loss: {len(targets)} targets for a batch of {len(images.image_sizes)}")
        scaled = [{"boxes": resize_boxes(t["boxes"], self.input_size, self.image_size), "labels": t["labels"]}
                  for t in targets.as_dicts()]
        with _HeadMode(self, training=True):
            proposals, rpn_losses = self.rpn(images, features, scaled)
            _, head_losses = self.roi_heads(features, proposals, images.image_sizes, scaled)
        return {**rpn_losses, **head_losses}

    def detections(self, features: OrderedDict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Boxes (xyxy, input pixels), scores and labels per image, after the detector's own score threshold,
        NMS and detections-per-image limit."""
        from torchvision.models.detection.transform import resize_boxes

        images = self._images(features)
        with _HeadMode(self, training=False):
            proposals, _ = self.rpn(images, features)
            found, _ = self.roi_heads(features, proposals, images.image_sizes)
        for d in found:
            d["boxes"] = resize_boxes(d["boxes"], self.image_size, self.input_size)
        return found


def _sizes(transform: nn.Module, input_shape: tuple[int, int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(resized image size, padded batch size) of the detector's transform for one input of ``input_shape``."""
    was = transform.training
    transform.eval()
    with torch.no_grad():
        images, _ = transform([torch.zeros(input_shape)])
    transform.train(was)
    return tuple(images.image_sizes[0]), tuple(images.tensors.shape[-2:])


def backbone_layers(detector: nn.Module) -> tuple[nn.Module, OrderedDict[str, nn.Module], dict[str, str], nn.Module | None]:
    """(the module whose children are the cut points, its children, {child: feature name} of the maps the heads
    read, the FPN or ``None``) of a torchvision GeneralizedRCNN's backbone. Split names are ``body.<child>`` for
    an FPN backbone and ``<child>`` for a plain ``nn.Sequential`` backbone."""
    backbone = detector.backbone
    body = getattr(backbone, "body", None)
    if body is not None and hasattr(body, "return_layers"):
        children = OrderedDict((f"body.{n}", m) for n, m in body.named_children())
        returned = {f"body.{k}": v for k, v in body.return_layers.items()}
        return body, children, returned, backbone.fpn
    if isinstance(backbone, nn.Sequential):
        children = OrderedDict(backbone.named_children())
        return backbone, children, {next(reversed(children)): "0"}, None
    raise PrivbenchError(f"cannot cut the backbone {type(backbone).__name__}: privbench cuts an FPN backbone "
                         "(body + fpn) or a plain nn.Sequential")


def valid_cuts(detector: nn.Module) -> list[str]:
    """The cut points after which one tensor crosses: every child up to the first one the heads read."""
    _, children, returned, _ = backbone_layers(detector)
    names = list(children)
    first_read = min(names.index(n) for n in returned)
    return names[:first_read + 1]


def cut_detector(detector: nn.Module, split: str, input_shape: tuple[int, int, int]) -> tuple[nn.Module, DetectorBack]:
    """(front, back) of a torchvision GeneralizedRCNN cut after backbone child ``split``; both share the detector's
    modules."""
    _, children, returned, fpn = backbone_layers(detector)
    cuts = valid_cuts(detector)
    if split not in children:
        raise PrivbenchError(f"unknown split '{split}' (the backbone's layers: {', '.join(children)}; one tensor "
                             f"crosses after {cuts[0]} … {cuts[-1]})")
    if split not in cuts:
        reads = ", ".join(n for n in children if n in returned)
        raise PrivbenchError(f"cannot cut after '{split}': the heads read {reads}, so more than one tensor would "
                             f"cross the network; cut at or before '{cuts[-1]}'")
    names = list(children)
    k = names.index(split) + 1
    front = nn.Sequential(OrderedDict([("input", DetectorInput(detector.transform)),
                                       *((n.replace(".", "_"), children[n]) for n in names[:k])]))
    image_size, padded_size = _sizes(detector.transform, input_shape)
    rest = OrderedDict((n.replace(".", "_"), children[n]) for n in names[k:])
    back = DetectorBack(rest, {n.replace(".", "_"): v for n, v in returned.items()}, split.replace(".", "_"), fpn,
                        detector.rpn, detector.roi_heads, tuple(input_shape[1:]), image_size, padded_size)
    return front, back


class DetectorSpec(ModelSpec):
    """Base of the registered detectors: built as a torchvision GeneralizedRCNN, cut by :func:`cut_detector`."""

    task: ClassVar[str] = "detection"

    def detector(self, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        raise NotImplementedError

    def build(self, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        detector = self.detector(num_classes, input_shape)
        if self.given_weights:
            load_weights_into(detector, self.given_weights, f"{self.name} with {num_classes} classes (incl. background)")
        return detector

    def available_splits(self, num_classes: int, input_shape: tuple[int, int, int]) -> tuple[str, ...]:
        return tuple(valid_cuts(self.detector(num_classes, input_shape)))

    def split_model(self, network: nn.Module, split: str, num_classes: int,
                    input_shape: tuple[int, int, int]) -> SplitModel:
        front, back = cut_detector(network, split, input_shape)
        return SplitModel(front, back, model=self.name, split=split, input_shape=input_shape,
                          num_classes=num_classes, task=get_task(self.task))


def _conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


DETECTION_PARAMS = (
    Param("weights", str, "", "local state-dict file (torchvision key names), used as given (fine-tune with "
                              "model.fine_tune); empty = train here"),
    Param("score_thresh", float, 0.05, "detections below this score are dropped (torchvision's box_score_thresh)",
          low=0.0, high=1.0),
    Param("detections", int, 100, "detections kept per image (torchvision's box_detections_per_img; COCO mAP reads "
                                  "at most 100)", low=1, high=1000),
)


@MODELS.register("detector-small")
class DetectorSmall(DetectorSpec):
    """A Faster R-CNN small enough to train on a CPU in minutes: a 4-block VGG-style backbone (stride 8, no FPN),
    torchvision's RPN, RoIAlign and a two-layer box head of ``head_width`` (64 sampled RoIs per training image)."""

    summary = ("small Faster R-CNN (4 conv blocks, stride 8, torchvision RPN + RoI heads) that trains on CPU; cut "
               "after stem, block1, block2 or block3")
    splits = ("stem", "block1", "block2", "block3")
    default_split = "block1"
    strict_splits = True
    params = (
        Param("width", int, 16, "channels of the first block (doubled in block1, quadrupled in block2/3)", low=4,
              high=256),
        Param("anchors", str, "16,32,64", "anchor sizes in pixels of the input (comma-separated)"),
        Param("head_width", int, 256, "width of the two-layer box head (torchvision's default: 1024)", low=16,
              high=4096),
        *DETECTION_PARAMS,
    )

    def detector(self, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        from torchvision.models.detection import FasterRCNN
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
        from torchvision.ops import MultiScaleRoIAlign

        w = self.params["width"]
        backbone = nn.Sequential(OrderedDict(stem=_conv_block(3, w, 2), block1=_conv_block(w, 2 * w, 2),
                                             block2=_conv_block(2 * w, 4 * w, 2), block3=_conv_block(4 * w, 4 * w, 1)))
        backbone.out_channels = 4 * w
        try:
            sizes = tuple(int(s) for s in self.params["anchors"].split(","))
        except ValueError:
            raise PrivbenchError(f"detector-small: anchors must be comma-separated integers, got "
                                 f"'{self.params['anchors']}'") from None
        anchors = AnchorGenerator(sizes=(sizes,), aspect_ratios=((0.5, 1.0, 2.0, 3.0),))
        pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
        # torchvision's default box head is a 1024-wide MLP on 7×7 RoIs: 256 is ample for a few classes, and 4× cheaper
        hidden = self.params["head_width"]
        side = max(input_shape[1:])
        return FasterRCNN(backbone, rpn_anchor_generator=anchors, box_roi_pool=pool,
                          box_head=TwoMLPHead(4 * w * 7 * 7, hidden), box_predictor=FastRCNNPredictor(hidden, num_classes),
                          min_size=side, max_size=side, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD),
                          rpn_batch_size_per_image=128, box_batch_size_per_image=64,
                          rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100,
                          rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
                          box_score_thresh=self.params["score_thresh"],
                          box_detections_per_img=self.params["detections"])


class TorchvisionDetector(DetectorSpec):
    """A torchvision Faster R-CNN by builder name (``arch``), its transform at ``min_size``/``max_size``."""

    arch: ClassVar[str] = ""
    params = (
        *DETECTION_PARAMS,
        Param("min_size", int, 0, "the detector's resize (shorter side); 0 = the input's shorter side (no resize)",
              low=0, high=2048),
        Param("max_size", int, 0, "the detector's resize limit (longer side); 0 = the input's longer side", low=0,
              high=4096),
    )

    def detector(self, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        import torchvision  # on use: importing it costs seconds

        builder = getattr(torchvision.models.detection, self.arch)
        return builder(weights=None, weights_backbone=None, num_classes=num_classes,
                       min_size=self.params["min_size"] or min(input_shape[1:]),
                       max_size=self.params["max_size"] or max(input_shape[1:]),
                       box_score_thresh=self.params["score_thresh"],
                       box_detections_per_img=self.params["detections"])


@MODELS.register("fasterrcnn_mobilenet_v3_large_fpn")
class FasterRCNNMobileNetV3(TorchvisionDetector):
    summary = ("torchvision Faster R-CNN, MobileNetV3-Large FPN backbone; cut inside the body before the FPN "
               "(body.0 … body.13)")
    arch = "fasterrcnn_mobilenet_v3_large_fpn"
    default_split = "body.6"


@MODELS.register("fasterrcnn_resnet50_fpn")
class FasterRCNNResNet50(TorchvisionDetector):
    summary = "torchvision Faster R-CNN, ResNet-50 FPN backbone; cut inside the body before the FPN (conv1 … layer1)"
    arch = "fasterrcnn_resnet50_fpn"
    default_split = "body.maxpool"
