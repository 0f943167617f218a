"""A setting of the grid: one defense setting and, optionally, one codec at one quality.

The pipeline of a setting is ``front → defense → codec → back`` (DESIGN §1). A setting's :meth:`Setting.spec`
is the cache identity of everything downstream of it; without a codec it is the defense's own spec, so
uncoded results share the cache entries they had before codecs existed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from privbench.codecs.base import Codec
from privbench.defenses.base import Defense
from privbench.errors import PrivbenchError
from privbench.results import params_json


@dataclasses.dataclass(frozen=True, eq=False)
class Setting:
    defense: Defense
    codec: Codec | None = None

    def spec(self) -> dict[str, Any]:
        spec = self.defense.spec()
        if self.codec is None:
            return spec
        return {**spec, "codec": {"codec": self.codec.name, "params": self.codec.params,
                                  "version": self.codec.version()}}

    @property
    def coded_input(self) -> bool:
        return self.codec is not None and self.codec.params["placement"] == "input"

    @property
    def transforms_input(self) -> bool:
        """True when the image itself is changed before it crosses or enters the network (x′ ≠ x): an image-space
        defense, or input coding (the decoded image)."""
        return (not self.defense.is_identity() and self.defense.transforms_input) or self.coded_input

    def deployed_split(self, model_split: str) -> str:
        return "input" if self.coded_input else self.defense.deployed_split(model_split)

    def check(self) -> None:
        """Refuse, before compute, a defense that cannot run before input coding."""
        if self.coded_input and not self.defense.is_identity() and not self.defense.transforms_input:
            raise PrivbenchError(f"codec '{self.codec.name}' with placement=input sends the image, so the whole "
                                 f"network runs in the cloud: defense '{self.defense.name}' changes the network, "
                                 f"not the image, and cannot run before it (restrict the codec entry with "
                                 f"'defenses: [...]')")

    def columns(self) -> dict[str, Any]:
        """The result columns that name this setting."""
        codec = self.codec
        return {"defense": self.defense.name, "defense_params": params_json(self.defense.params),
                "strength": self.defense.strength, "codec": codec.name if codec else "none",
                "codec_params": params_json(self.codec_params) if codec else "",
                "quality": codec.quality if codec else ""}

    @property
    def codec_params(self) -> dict[str, Any]:
        """The codec's parameters other than its quality; input coding has no clipping, so no clip parameters."""
        assert self.codec is not None
        unused = {"clip_sigma", "clip_min", "clip_max"} if self.coded_input else set()
        return {k: v for k, v in self.codec.params.items() if k != self.codec.quality_param and k not in unused}

    @property
    def label(self) -> str:
        text = f"{self.defense.name}={self.defense.strength:g}" if self.defense.strength_param else self.defense.name
        if self.codec is not None:
            text += f" {self.codec.name}@{self.codec.params['placement']} {self.codec.quality_param}={self.codec.quality:g}"
        return text
