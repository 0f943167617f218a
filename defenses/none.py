"""No defense: the pipeline as it is (the undefended reference, e.g. paper 000's "Benchmark-input" and
"Benchmark-latent" pipelines, which only code what crosses the network). It shares every cached result with the
zero-strength settings of the other defenses (all are the identity)."""

from __future__ import annotations

from privbench.defenses.base import Defense
from privbench.registry import DEFENSES
from privbench.split import SplitModel


@DEFENSES.register("none")
class NoDefense(Defense):
    summary = "no defense: the undefended pipeline (the reference of every comparison)"

    @property
    def transforms_input(self) -> bool:
        return False

    def is_identity(self) -> bool:
        return True

    def apply(self, model: SplitModel) -> SplitModel:
        return model
