"""``attack-acc``: does a classifier still recognise the class of a reconstruction? (papers 002 and 003)

Paper 002's "attack accuracy" and paper 003's auxiliary-model accuracy run a classifier on the adversary's
reconstructions: the more of the input's class evidence survives inversion, the higher it is. The pipeline's
own task network is not handed to metrics, so privbench trains an independent classifier (the small CNN of
:mod:`privbench.recognizers.par` with a softmax head) on the clean ``train`` subset of the probe set's
synthetic family, at the probe images' size, and reports its top-1 accuracy on the reconstructions (Wilson
interval).

It applies to probe sets with class labels (a ``label`` field and the class names in ``meta["classes"]``,
e.g. ``synth-scenes``); ``synth-faces`` also has a ``label`` field, but it is an identity index within the
set, which no classifier trained on other people could predict, so face sets are skipped.
"""

from __future__ import annotations

import torch
from torch import nn

from privbench.data.base import ImageSet
from privbench.metrics.base import Metric, MetricContext, PrivacyInputs, Score
from privbench.progress import step
from privbench.registry import METRICS

#: bump when the classifier's training changes (part of its cache key)
ATTACK_CLASSIFIER_VERSION = 2  # 2: trained at RECOGNIZER_SEED, not the run seed
#: training images and epochs of the scene classifier (clean synthetic train subset)
TRAIN_IMAGES = 2000
EPOCHS = 10


def clean_classifier(probes: ImageSet, context: MetricContext) -> nn.Module:
    """A classifier for ``probes``' classes trained on the clean train subset of its family (cached), in eval
    mode on ``context.device``."""
    from privbench.recognizers import par
    from privbench.recognizers.base import RECOGNIZER_SEED, cached_training, training_data

    classes = len(probes.meta["classes"])
    dataset = training_data(probes, n=TRAIN_IMAGES, classes=classes)
    spec = {"version": ATTACK_CLASSIFIER_VERSION, "data": dataset.spec(), "seed": RECOGNIZER_SEED,
            "hyper": [EPOCHS, par.BATCH, par.LR, par.WIDTH]}

    def train() -> nn.Module:
        data = dataset.load(context.cache)
        with step(f"training the scene classifier of attack-acc ({probes.size[0]} px; once, then cached)"):
            return par.train_classifier(data.images, data.labels["label"], classes, multilabel=False,
                                        seed=RECOGNIZER_SEED, epochs=EPOCHS, kind="attack-classifier",
                                        head="pool", device=context.device)

    network = par.SmallClassifier(classes, size=probes.size[0], head="pool")
    network.load_state_dict(cached_training(context.cache, "attack-classifier", spec, train,
                                            device=context.device))
    return network.to(context.device).eval()


@METRICS.register("attack-acc")
class AttackAccuracy(Metric):
    """Top-1 accuracy of an independently trained classifier on the reconstructions."""

    version = ATTACK_CLASSIFIER_VERSION
    synthetic_family = "synth-scenes"

    summary = "top-1 accuracy of a clean-trained classifier on reconstructions (papers 002/003; Wilson CI)"
    side = "privacy"
    requires = ("label",)

    def applies_to(self, probes: ImageSet) -> bool:
        return "label" in probes.labels and "classes" in probes.meta

    def score(self, inputs: PrivacyInputs, context: MetricContext) -> Score:
        from privbench.recognizers.base import predict

        network = clean_classifier(inputs.probes, context)
        logits = predict(network, inputs.reconstructions.float(), context.device)
        labels = torch.as_tensor(inputs.probes.labels["label"])
        correct = int((logits.argmax(dim=1) == labels).sum())
        return Score.from_proportion(correct, len(labels), context.ci_level)
