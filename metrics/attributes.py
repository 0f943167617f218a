"""``par-ma``, ``par-f1``: which pedestrian attributes can still be recognised in reconstructions? (paper 004)

Two protocols (``protocol``):

``clean-model``
    A PAR model trained on clean images is applied to the reconstructions of all probes. The built-in model is
    trained on clean synthetic pedestrians of the probe set's size (``train`` subset). For real data (no
    synthetic family to train on) it is trained on the clean originals of a random half of the probes and
    applied to the reconstructions of the other half.
``adversary-trained``
    Paper 004's protocol: the adversary *trains* PAR on reconstructed (obfuscated) images and is tested on
    held-out ones. The probes are split in two random halves (fixed by the run seed); PAR is fine-tuned on the
    reconstructions of the first half with their true attributes and tested on the reconstructions of the
    second. With only a few dozen probes, training from scratch learns nothing at all, so by default the
    adversary starts from the clean model (``init=clean``: public clean data is the adversary's prior);
    ``init=scratch`` is the literal protocol.

Scores (see :mod:`privbench.recognizers.par` for the formulas): ``par-ma`` is label-based mA over the
attributes that are not > 99 % one class in the evaluated images (others have no meaningful balanced accuracy
and are dropped), ``par-f1`` is the instance-based F1. Both carry a percentile bootstrap interval over
images (``bootstrap`` resamples, seeded by the run seed; attributes lacking a class in a resample are skipped
in that resample).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from privbench.data.base import ImageSet
from privbench.device import derive_seed
from privbench.errors import MetricUnavailable, PrivbenchError
from privbench.metrics.base import Metric, MetricContext, PrivacyInputs, Score
from privbench.progress import step
from privbench.registry import METRICS, Param

#: bump when the built-in PAR model's training changes (part of its cache key)
PAR_RECOGNIZER_VERSION = 2  # 2: trained at RECOGNIZER_SEED, not the run seed (shipped weights)
ADAPT_LR = 1e-3


def clean_par_model(probes: ImageSet, context: MetricContext) -> tuple[nn.Module, dict]:
    """The built-in PAR model for ``probes``' size, trained on clean synthetic pedestrians (cached), in eval
    mode on ``context.device``."""
    from privbench.recognizers import par
    from privbench.recognizers.base import RECOGNIZER_SEED, cached_training, training_data

    dataset = training_data(probes, n=par.TRAIN_IMAGES)
    attributes = int(probes.labels["attributes"].shape[1])
    spec = {"version": PAR_RECOGNIZER_VERSION, "data": dataset.spec(), "seed": RECOGNIZER_SEED,
            "hyper": [par.EPOCHS, par.BATCH, par.LR, par.WIDTH]}

    def train() -> nn.Module:
        data = dataset.load(context.cache)
        with step(f"training the pedestrian-attribute recognizer of par-ma ({probes.size[0]} px; once, then "
                  f"cached)"):
            return par.train_classifier(data.images, data.labels["attributes"], attributes, multilabel=True,
                                        seed=RECOGNIZER_SEED, device=context.device)

    network = par.SmallClassifier(attributes, size=probes.size[0])
    network.load_state_dict(cached_training(context.cache, "par", spec, train, device=context.device))
    return network.to(context.device).eval(), spec


def bootstrap_weights(n: int, resamples: int, seed: int) -> torch.Tensor:
    """resamples×n multiplicities of images drawn with replacement (a percentile bootstrap's resamples)."""
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, n, (resamples, n), generator=generator)
    return torch.zeros(resamples, n).scatter_add_(1, draws, torch.ones(resamples, n))


def percentile_interval(values: torch.Tensor, level: float) -> tuple[float, float]:
    v = values[torch.isfinite(values)].double()
    if len(v) == 0:
        return float("nan"), float("nan")
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.quantile(v, q).tolist()
    return low, high


class _ParMetric(Metric):
    version = PAR_RECOGNIZER_VERSION
    side = "privacy"
    requires = ("attributes",)
    synthetic_family = "synth-pedestrians"
    params = (
        Param("protocol", str, "clean-model", "clean-model: PAR trained on clean images; adversary-trained: "
              "PAR trained on reconstructions of half the probes, tested on the other half (paper 004)",
              choices=("clean-model", "adversary-trained")),
        Param("epochs", int, 20, "adversary-trained: training epochs on the reconstructions", low=1,
              high=1000),
        Param("init", str, "clean", "adversary-trained: start from the clean PAR model or from scratch",
              choices=("clean", "scratch")),
        Param("bootstrap", int, 1000, "bootstrap resamples for the confidence interval", low=50,
              high=100_000),
    )

    def check(self, probes: str, synthetic: bool) -> None:
        """Always scorable: on real data PAR is trained on one half of the probes (clean originals for
        ``clean-model``, reconstructions for ``adversary-trained``) and tested on the other (n is half)."""

    def predictions(self, inputs: PrivacyInputs, context: MetricContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted, true) binary N'×A attributes of the evaluated images."""
        from privbench.recognizers import par
        from privbench.recognizers.base import cached_training, content_hash, freeze_batchnorm, halves, predict

        probes = inputs.probes
        gt = torch.as_tensor(probes.labels["attributes"]).bool()
        recon = inputs.reconstructions.float()
        adversary = self.params["protocol"] == "adversary-trained"
        synthetic = bool(probes.meta.get("synthetic"))
        if not adversary and synthetic:
            network, _ = clean_par_model(probes, context)
            return predict(network, recon, context.device) > 0, gt

        if len(gt) < 4:
            raise PrivbenchError(f"{self.name}: this protocol splits the probes in halves, needs ≥ 4 images")
        train_idx, test_idx = halves(len(gt), context.seed, "par", probes.name)
        if adversary:
            images, epochs, lr = recon[train_idx], self.params["epochs"], ADAPT_LR
            start, base = (clean_par_model(probes, context) if self.params["init"] == "clean" and synthetic
                           else (None, {"init": "scratch"}))
            if start is None:
                lr = par.LR
        else:  # clean model for real data: trained on the clean originals of the other half
            images, epochs, lr = inputs.originals.float()[train_idx], par.EPOCHS, par.LR
            start, base = None, {}
        key = {"version": PAR_RECOGNIZER_VERSION, "protocol": self.params["protocol"], "base": base,
               "epochs": epochs, "lr": lr, "seed": context.seed, "data": content_hash(images, gt[train_idx])}

        def train() -> nn.Module:
            network = copy.deepcopy(start) if start is not None else None
            what = "reconstructions" if adversary else "clean originals"
            with step(f"training the attribute recognizer of par-ma on half of the {what} of {probes.name}"):
                return par.train_classifier(images, gt[train_idx], gt.shape[1], multilabel=True,
                                            seed=context.seed, epochs=epochs, network=network, lr=lr,
                                            kind="par-adapt", train_mode=freeze_batchnorm if network else None,
                                            device=context.device)

        network = par.SmallClassifier(gt.shape[1], size=int(recon.shape[-1]))
        network.load_state_dict(cached_training(context.cache, "par-adapt", key, train, device=context.device))
        network.to(context.device)
        return predict(network, recon[test_idx], context.device) > 0, gt[test_idx]

    def weights(self, n: int, context: MetricContext, name: str) -> torch.Tensor:
        seed = derive_seed(context.seed, "bootstrap", self.name, name)
        return bootstrap_weights(n, self.params["bootstrap"], seed)


@METRICS.register("par-ma")
class ParMeanAccuracy(_ParMetric):
    """Label-based mean accuracy (mA) of pedestrian attributes recognised in reconstructions."""

    summary = "pedestrian-attribute mA on reconstructions (paper 004; clean-model or adversary-trained PAR)"

    def score(self, inputs: PrivacyInputs, context: MetricContext) -> Score:
        from privbench.recognizers.par import informative_attributes, label_based

        pred, gt = self.predictions(inputs, context)
        keep = informative_attributes(gt)
        if not bool(keep.any()):
            raise MetricUnavailable("no attribute has both classes in the evaluated images")
        value = float(label_based(pred, gt)[keep].mean())
        w = self.weights(len(gt), context, inputs.probes.name)
        pos, neg = w @ gt[:, keep].float(), w @ (~gt[:, keep]).float()
        per = label_based(pred[:, keep], gt[:, keep], w).float()
        per[(pos == 0) | (neg == 0)] = float("nan")
        low, high = percentile_interval(per.nanmean(dim=1), context.ci_level)
        return Score(value, low, high, len(gt), f"bootstrap{int(round(context.ci_level * 1000)) / 10:g}")


@METRICS.register("par-f1")
class ParInstanceF1(_ParMetric):
    """Instance-based F1 of pedestrian attributes recognised in reconstructions."""

    summary = "pedestrian-attribute instance F1 on reconstructions (same protocols as par-ma)"

    def score(self, inputs: PrivacyInputs, context: MetricContext) -> Score:
        from privbench.recognizers.par import instance_based, instance_f1

        pred, gt = self.predictions(inputs, context)
        value = instance_based(pred, gt)["f1"]
        resampled = instance_f1(pred, gt, self.weights(len(gt), context, inputs.probes.name))
        low, high = percentile_interval(resampled, context.ci_level)
        return Score(value, low, high, len(gt), f"bootstrap{int(round(context.ci_level * 1000)) / 10:g}")
