"""Crop views: the private objects *inside* a scene, scored as their own image sets.

A detection scene holds people and cars; what it reveals is in their faces and plates. Paper 000 scores a
reconstructed scene by cutting those objects out of it and running the face and plate recognizers on the crops.
A dataset declares such views in ``meta["crops"]`` (see ``synth-detection``): per view a ``name``, the synthetic
``family`` the crops belong to (its built-in recognizer then trains on that family's clean ``train`` subset at
the crops' size), the crop ``size``, the per-image label field of the crop ``boxes`` (float M×4, xyxy pixels), and
``fields``: the family's label names mapped to the per-image label fields that hold them (one entry per crop).

:meth:`CropView.crop` cuts the same boxes out of any images of the scene set — the originals, a defended image, a
reconstruction — with RoIAlign (bilinear, one batched call), so a box pasted at the crop size at integer
coordinates comes back pixel for pixel.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from privbench.data.base import ImageSet
from privbench.errors import PrivbenchError


@dataclasses.dataclass(frozen=True)
class CropView:
    """One crop view of a scene set: which image each crop comes from, its box, and the crops' own labels."""

    name: str
    size: int
    image_index: torch.Tensor  # int64 M: the scene of each crop
    boxes: torch.Tensor  # float32 M×4, xyxy in scene pixels
    template: ImageSet  # the crops' labels and meta (images: the crops of the originals)

    def crop(self, images: torch.Tensor) -> torch.Tensor:
        """The crops (float, M×3×size×size) of float scene images ``images`` (N×3×H×W, in this set's order)."""
        from torchvision.ops import roi_align

        rois = torch.cat([self.image_index.to(images.dtype)[:, None], self.boxes.to(images.dtype)], dim=1)
        return roi_align(images, rois.to(images.device), output_size=self.size, spatial_scale=1.0, sampling_ratio=1,
                         aligned=True)

    def imageset(self, crops: torch.Tensor) -> ImageSet:
        """The crop view as an ImageSet whose images are ``crops`` (float in [0, 1])."""
        images = crops.clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
        return ImageSet(self.template.name, images, self.template.labels, self.template.meta)


def crop_views(scenes: ImageSet) -> list[CropView]:
    """The crop views ``scenes`` declares (none for an ordinary image set), built on its original images."""
    views = []
    for spec in scenes.meta.get("crops", []):
        try:
            boxes_field, size, fields = spec["boxes"], int(spec["size"]), dict(spec["fields"])
            per_image = scenes.labels[boxes_field]
            counts = [len(b) for b in per_image]
            labels: dict[str, Any] = {}
            for family_field, field in fields.items():
                values = scenes.labels[field]
                flat = [v for image in values for v in (image.tolist() if isinstance(image, torch.Tensor) else image)]
                first = values[0] if len(values) else None
                labels[family_field] = torch.tensor(flat) if isinstance(first, torch.Tensor) else flat
        except KeyError as exc:
            raise PrivbenchError(f"{scenes.name}: crop view '{spec.get('name', '?')}' names the label field "
                                 f"{exc}, which the set does not have") from None
        if not sum(counts):
            continue
        boxes = torch.cat([torch.as_tensor(b, dtype=torch.float32).reshape(-1, 4) for b in per_image])
        index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
        if "bbox" in labels and isinstance(labels["bbox"], torch.Tensor):
            labels["bbox"] = labels["bbox"].reshape(-1, 4)
        meta = {"subset": scenes.meta.get("subset"), "synthetic": bool(scenes.meta.get("synthetic")),
                "seed": scenes.meta.get("seed", 0), "family": spec["family"], "crop_of": scenes.name,
                **spec.get("meta", {})}
        name = f"{scenes.name}:{spec['name']}"
        empty = ImageSet(name, torch.zeros(len(boxes), 3, size, size, dtype=torch.uint8), labels, meta)
        view = CropView(spec["name"], size, index, boxes, empty)
        views.append(dataclasses.replace(view, template=view.imageset(view.crop(scenes.floats()))))
    return views
