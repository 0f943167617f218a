"""attack-acc (papers 002/003), and the blur check: the synthetic scene task is coarse, identities are not."""

import pytest
import torch
from conftest import gaussian_blur  # noqa: I001

from privbench.components import load_components
from privbench.metrics.attack_accuracy import AttackAccuracy
from privbench.metrics.base import PrivacyInputs
from privbench.registry import DATASETS, METRICS

load_components()


@pytest.fixture(scope="module")
def scenes(recognizer_context):
    return DATASETS.create("synth-scenes", subset="test", n=200, size=32).load(recognizer_context.cache)


def test_applies_only_to_class_labels(recognizer_context):
    metric = METRICS.create("attack-acc")
    faces = DATASETS.create("synth-faces", subset="test", identities=2, per_identity=2, size=32).build()
    assert not metric.applies_to(faces)  # an identity index within the set is not a class
    assert isinstance(metric, AttackAccuracy)


def test_clean_classifier_on_clean_noise_and_blur(scenes, recognizer_context):
    metric = METRICS.create("attack-acc")
    x = scenes.floats()
    clean = metric.score(PrivacyInputs(x, x, scenes), recognizer_context)
    assert clean.value >= 0.8 and clean.n == 200
    noise = metric.score(PrivacyInputs(x, torch.rand(x.shape, generator=torch.Generator().manual_seed(0)), scenes),
                         recognizer_context)
    assert noise.value <= 0.25  # chance is 0.1
    mild = metric.score(PrivacyInputs(x, gaussian_blur(x, 0.75), scenes), recognizer_context)
    assert clean.value - mild.value <= 0.10
