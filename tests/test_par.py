"""par-ma / par-f1 (paper 004; "Rethinking of PAR" formulas): metric functions, clean / noise, protocols."""

import pytest
import torch

from privbench.components import load_components
from privbench.errors import MetricUnavailable
from privbench.metrics.base import PrivacyInputs
from privbench.recognizers.par import informative_attributes, instance_based, label_based, mean_accuracy
from privbench.registry import DATASETS, METRICS

load_components()


@pytest.fixture(scope="module")
def pedestrians(recognizer_context):
    """The default run's pedestrian probes at 32 px: 60 images, 11 attributes."""
    return DATASETS.create("synth-pedestrians", subset="test", n=60, size=32).load(recognizer_context.cache)


def score(name, probes, recon, context, **params):
    return METRICS.create(name, **params).score(PrivacyInputs(probes.floats(), recon, probes), context)


def test_ma_formula_and_an_attribute_without_positives():
    gt = torch.tensor([[1, 0], [0, 0], [1, 0], [0, 0]])
    pred = torch.tensor([[1, 0], [1, 0], [1, 0], [0, 0]])
    per = label_based(pred, gt)
    # attribute 0: pos recall 2/2, neg recall 1/2 -> 0.75; attribute 1 has no positives: 0/ε = 0 and 4/4 -> 0.5
    assert per.tolist() == pytest.approx([0.75, 0.5])
    keep = informative_attributes(gt)
    assert keep.tolist() == [True, False]  # 100 % one class: dropped, it would pin mA at 0.5
    assert mean_accuracy(pred, gt, keep) == pytest.approx(0.75)
    inst = instance_based(pred, gt)
    # per image acc |∩|/|∪|: 1, 0, 1, 0 (empty ∪ -> 0 with ε) -> 0.5; prec 1, 0, 1, 0 -> 0.5; rec 1, 0, 1, 0
    assert inst["accuracy"] == pytest.approx(0.5) and inst["precision"] == pytest.approx(0.5)
    assert inst["f1"] == pytest.approx(0.5)


def test_metric_drops_an_attribute_with_no_positives(pedestrians, recognizer_context):
    with_all = score("par-ma", pedestrians, pedestrians.floats(), recognizer_context)
    labels = dict(pedestrians.labels)
    attrs = labels["attributes"].clone()
    attrs[:, 5] = 0  # "hat": nobody wears one in this evaluated set
    labels["attributes"] = attrs
    probes = type(pedestrians)(pedestrians.name, pedestrians.images, labels, dict(pedestrians.meta))
    dropped = score("par-ma", probes, probes.floats(), recognizer_context)
    assert 0.0 < dropped.value <= 1.0 and dropped.value != pytest.approx(with_all.value)
    none = dict(labels)
    none["attributes"] = torch.zeros_like(attrs)
    with pytest.raises(MetricUnavailable, match="no attribute has both classes"):
        score("par-ma", type(pedestrians)(pedestrians.name, pedestrians.images, none, dict(pedestrians.meta)),
              pedestrians.floats(), recognizer_context)


def test_clean_model_recognises_clean_attributes_and_noise_is_chance(pedestrians, recognizer_context):
    x = pedestrians.floats()
    clean = score("par-ma", pedestrians, x, recognizer_context)
    assert clean.value >= 0.85 and clean.n == 60
    assert clean.ci_low <= clean.value <= clean.ci_high and clean.ci_method.startswith("bootstrap")
    noise = score("par-ma", pedestrians, torch.rand(x.shape, generator=torch.Generator().manual_seed(0)),
                  recognizer_context)
    assert abs(noise.value - 0.5) <= 0.08
    f1 = score("par-f1", pedestrians, x, recognizer_context)
    assert 0.7 <= f1.value <= 1.0


def test_adversary_trained_protocol_tests_on_held_out_half(pedestrians, recognizer_context):
    noise = torch.rand(pedestrians.images.shape, generator=torch.Generator().manual_seed(1))
    s = score("par-ma", pedestrians, noise, recognizer_context, protocol="adversary-trained", epochs=2)
    assert s.n == 30
    assert abs(s.value - 0.5) <= 0.15  # nothing to learn from noise
