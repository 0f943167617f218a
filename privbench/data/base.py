"""In-memory image sets and the dataset component base.

Every dataset, synthetic or real, loads into an :class:`ImageSet`: uint8 images ``N×3×H×W`` plus named
label fields (class labels, identities, plate strings, attribute vectors). Images are small enough here
to live in memory; pipelines convert batches to float in [0, 1] on the fly.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch

from privbench.cache import Cache
from privbench.registry import Component, Param


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of float N×3×H×W images, σ in pixels, kernel 2·max(1, round(3σ))+1 (torchvision)."""
    from torchvision.transforms.functional import gaussian_blur as blur  # on use: torchvision is slow to import

    radius = max(1, int(round(3 * sigma)))
    return blur(images, [2 * radius + 1] * 2, [sigma] * 2)


@dataclasses.dataclass
class ImageSet:
    """Images (uint8, N×3×H×W) with per-image label fields and dataset-level metadata.

    ``labels`` maps a field name to a tensor with first dimension N, or a list of length N (e.g. plate
    strings). ``meta`` holds dataset-level facts (class names, attribute names, the role of the set).
    """

    name: str
    images: torch.Tensor
    labels: dict[str, Any] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"ImageSet {self.name}: images must be uint8 N×3×H×W, got "
                             f"{tuple(self.images.shape)} {self.images.dtype}")
        for key, value in self.labels.items():
            if len(value) != len(self.images):
                raise ValueError(f"ImageSet {self.name}: label '{key}' has {len(value)} entries for "
                                 f"{len(self.images)} images")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def floats(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """All images as float32 in [0, 1]."""
        return self.images.to(device).float().div_(255.0)

    def subset(self, index: torch.Tensor | list[int] | slice) -> ImageSet:
        if isinstance(index, slice):
            index = list(range(len(self)))[index]
        idx = torch.as_tensor(index, dtype=torch.long)
        labels = {}
        for key, value in self.labels.items():
            labels[key] = value[idx] if isinstance(value, torch.Tensor) else [value[i] for i in idx.tolist()]
        return ImageSet(self.name, self.images[idx], labels, dict(self.meta))

    def to_state(self) -> dict[str, Any]:
        """A ``torch.load(weights_only=True)``-safe representation (tensors, lists, strings)."""
        return {"name": self.name, "images": self.images, "labels": self.labels, "meta": self.meta}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ImageSet:
        return cls(state["name"], state["images"], dict(state["labels"]), dict(state["meta"]))


def concat(sets: list[ImageSet], name: str | None = None) -> ImageSet:
    """Concatenate image sets of equal size; keeps only label fields that all of them share."""
    if not sets:
        raise ValueError("concat needs at least one ImageSet")
    shared = set.intersection(*(set(s.labels) for s in sets))
    labels: dict[str, Any] = {}
    for key in sorted(shared):
        parts = [s.labels[key] for s in sets]
        labels[key] = torch.cat(parts) if isinstance(parts[0], torch.Tensor) else sum((list(p) for p in parts), [])
    return ImageSet(name or "+".join(s.name for s in sets), torch.cat([s.images for s in sets]), labels,
                    {"parts": [s.name for s in sets]})


class Dataset(Component):
    """A registered dataset: declares its parameters and builds an :class:`ImageSet`.

    ``build()`` does the work; ``load(cache)`` memoizes it in the content-addressed cache keyed by the
    dataset name and its parameters (synthetic data is a pure function of them).
    """

    kind: ClassVar[str] = "dataset"
    #: What the label fields mean, for ``privbench list``.
    provides: ClassVar[str] = ""
    #: Bump when the generator changes so old cached copies are not reused.
    version: ClassVar[int] = 1
    #: Whether ``build()`` is cheap enough not to cache (real data read from disk is cached too by default).
    cacheable: ClassVar[bool] = True

    def build(self) -> ImageSet:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        return {"dataset": self.name, "version": self.version, "params": self.params}

    def load(self, cache: Cache | None = None) -> ImageSet:
        if cache is None or not self.cacheable:
            return self.build()
        return cache.get_or_create("data", self.spec(), self.build, ImageSet.to_state, ImageSet.from_state)


SIZE_PARAM = Param("size", int, 64, "image side in pixels (square images)", low=16, high=512)
SEED_PARAM = Param("seed", int, 0, "generator seed; the set is a pure function of all parameters", low=0)
