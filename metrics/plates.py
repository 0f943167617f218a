"""``plate``, ``plate-char``: can the adversary read the licence plate in a reconstruction? (paper 000 §V-B)

Every plate is cut out of the reconstruction with the probe set's bounding box, read by an LPRNet-style CTC
recognizer (greedy decoding) and compared with the true string:

- ``plate``: exact-string accuracy (the CCPD criterion: every character right), Wilson interval;
- ``plate-char``: per-character accuracy (position-aligned: character i of the reading against character i of
  the truth, over the truth's length), mean over plates with a normal interval.

Recognizer: the built-in one is trained on clean synthetic plates of the probe set's size and length (train
subset, disjoint strings); ``weights`` loads a pretrained LPRNet state dict instead (PyTorch-port layout and
68-class alphabet, for real Chinese plates such as CCPD).

``adapt`` (epochs, 0 = off) is the stronger adversary of paper 000 §V-B, who fine-tunes the recognizer on
reconstructions before reading. The adversary must not fine-tune on the images being scored, and the runner
only hands metrics the probes' reconstructions, so the probes are split in two random halves (fixed by the run
seed): the recognizer is fine-tuned on the reconstructions of the first half, labelled with their true
strings (standing in for the attacker's own reconstructed, labelled plates), and scored on the second half.
With ``adapt`` > 0, n is therefore half the probe set.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from privbench.data.base import ImageSet
from privbench.errors import PrivbenchError
from privbench.metrics.base import Metric, MetricContext, PrivacyInputs, Remedy, Score
from privbench.progress import step
from privbench.registry import METRICS, Param

#: bump when the built-in recognizer's training changes (part of its cache key)
PLATE_RECOGNIZER_VERSION = 2  # 2: trained at RECOGNIZER_SEED, not the run seed (shipped weights)
ADAPT_LR = 1e-3


def builtin_recognizer(probes: ImageSet, context: MetricContext) -> tuple[nn.Module, str, dict]:
    """(network, alphabet, cache spec) of the built-in recognizer for ``probes``' size and plate length."""
    from privbench.recognizers import lpr
    from privbench.recognizers.base import RECOGNIZER_SEED, cached_training, training_data

    length = int(probes.meta.get("length") or max(len(t) for t in probes.labels["text"]))
    dataset = training_data(probes, n=lpr.TRAIN_PLATES, length=length)
    alphabet = str(probes.meta.get("alphabet", ""))
    spec = {"version": PLATE_RECOGNIZER_VERSION, "data": dataset.spec(), "seed": RECOGNIZER_SEED,
            "alphabet": alphabet, "hyper": [lpr.EPOCHS, lpr.BATCH, lpr.LR, lpr.WIDTH]}

    def train() -> nn.Module:
        data = dataset.load(context.cache)
        with step(f"training the plate reader of the plate metric ({probes.size[0]} px; once, then cached)"):
            return lpr.train_small_lpr(data.images, data.labels["bbox"], data.labels["text"],
                                       str(data.meta["alphabet"]), RECOGNIZER_SEED, device=context.device)

    network = lpr.SmallLPR(len(alphabet) + 1)
    network.load_state_dict(cached_training(context.cache, "lpr", spec, train, device=context.device))
    return network.eval(), alphabet, spec


class _PlateMetric(Metric):
    version = PLATE_RECOGNIZER_VERSION
    side = "privacy"
    requires = ("text", "bbox")
    synthetic_family = "synth-plates"
    params = (
        Param("adapt", int, 0, "fine-tune the recognizer this many epochs on reconstructions of a held-out "
              "half of the probes before reading the other half (paper 000 §V-B); 0 = off", low=0, high=1000),
        Param("weights", str, "", "pretrained LPRNet state dict (PyTorch-port layout, 68 classes, blank "
              "last) instead of the built-in recognizer"),
    )

    def _check_params(self) -> None:
        if self.params["weights"] and not Path(self.params["weights"]).expanduser().is_file():
            raise PrivbenchError(f"metric '{self.name}': LPRNet weights not found: {self.params['weights']}")

    def builtin_recognizer(self) -> bool:
        return not self.params["weights"]

    def real_data_remedies(self) -> list[Remedy]:
        return [Remedy({"weights": "PATH"}, "PATH: an LPRNet state dict, PyTorch-port layout, 68 classes with the "
                       "blank last, for Chinese plates such as CCPD")]

    def recognizer(self, probes: ImageSet, context: MetricContext) -> tuple[nn.Module, str, dict]:
        if self.params["weights"]:
            from privbench.recognizers.lpr import LPRNET_CHARS, load_lprnet

            network = load_lprnet(self.params["weights"])
            if network.classes != len(LPRNET_CHARS):
                raise PrivbenchError(f"LPRNet weights with {network.classes} classes: only the 68-class "
                                     "alphabet of the PyTorch port is known")
            path = Path(self.params["weights"]).expanduser().resolve()
            return network, LPRNET_CHARS[:-1], {"weights": str(path), "mtime": path.stat().st_mtime}
        return builtin_recognizer(probes, context)

    def per_plate(self, inputs: PrivacyInputs, context: MetricContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(exact match, character accuracy) of every scored plate."""
        from privbench.recognizers import lpr
        from privbench.recognizers.base import cached_training, content_hash, freeze_batchnorm, halves

        probes = inputs.probes
        network, alphabet, spec = self.recognizer(probes, context)
        texts = list(probes.labels["text"])
        boxes = torch.as_tensor(probes.labels["bbox"])
        recon = inputs.reconstructions.float()
        scored = torch.arange(len(texts))
        if self.params["adapt"] > 0:
            if len(texts) < 4:
                raise PrivbenchError(f"{self.name}: adapt needs at least 4 probe plates")
            tune, scored = halves(len(texts), context.seed, "plate-adapt", probes.name)
            epochs = self.params["adapt"]
            key = {"base": spec, "adapt": epochs, "lr": ADAPT_LR, "seed": context.seed,
                   "data": content_hash(recon[tune], boxes[tune]), "texts": [texts[i] for i in tune.tolist()]}

            def fine_tune() -> nn.Module:
                tuned = copy.deepcopy(network)
                freeze_batchnorm(tuned)
                with step(f"adapting the plate reader to the reconstructions of {probes.name} ({epochs} epochs)"):
                    return lpr.train_small_lpr(recon[tune], boxes[tune], [texts[i] for i in tune.tolist()],
                                               alphabet, context.seed, epochs=epochs, network=tuned, lr=ADAPT_LR,
                                               train_mode=freeze_batchnorm, device=context.device)

            network = copy.deepcopy(network)
            network.load_state_dict(cached_training(context.cache, "lpr-adapt", key, fine_tune,
                                                    device=context.device))
        decoded = lpr.read_plates(network, recon[scored], boxes[scored], context.device)
        length = max(len(t) for t in texts)
        targets = lpr.encode_texts([texts[i] for i in scored.tolist()], alphabet, length)
        return lpr.plate_scores(decoded, targets)


@METRICS.register("plate")
class PlateAccuracy(_PlateMetric):
    """Exact-string licence-plate recognition accuracy on reconstructions."""

    summary = "licence plates read exactly from reconstructions (LPRNet-style CTC recognizer; Wilson CI)"

    def score(self, inputs: PrivacyInputs, context: MetricContext) -> Score:
        exact, _ = self.per_plate(inputs, context)
        return Score.from_proportion(int(exact.sum()), len(exact), context.ci_level)


@METRICS.register("plate-char")
class PlateCharacterAccuracy(_PlateMetric):
    """Per-character licence-plate recognition accuracy on reconstructions."""

    summary = "licence-plate characters read correctly (position-aligned), mean over plates (normal CI)"

    def score(self, inputs: PrivacyInputs, context: MetricContext) -> Score:
        _, chars = self.per_plate(inputs, context)
        return Score.from_values(chars, context.ci_level)
