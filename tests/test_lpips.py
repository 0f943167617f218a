"""lpips: scored only with the pretrained backbone on disk, never with a random one; without it, a how-to."""

import pytest
import torch

from privbench.components import load_components
from privbench.errors import MetricUnavailable, PrivbenchError
from privbench.metrics.base import MetricContext, PrivacyInputs, RecognizerMissing
from privbench.registry import DATASETS, METRICS

load_components()


@pytest.fixture
def inputs():
    faces = DATASETS.create("synth-faces", subset="test", identities=3, per_identity=2, size=32).build()
    x = faces.floats()
    return x, PrivacyInputs(x, x.flip(-1), faces)


def context(tmp_path):
    from privbench.cache import Cache

    return MetricContext(cache=Cache(tmp_path / "cache"), device=torch.device("cpu"))


def test_without_backbone_weights_lpips_says_where_to_put_them(tmp_path, monkeypatch, inputs):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    with pytest.raises(RecognizerMissing) as caught:  # run's pre-flight and eval call check before any compute
        METRICS.create("lpips").check("synth-faces/test", synthetic=True)
    assert f"put alexnet-owt-7be5be79.pth in {checkpoints}" in caught.value.message("cli")
    assert "--param weights=PATH" in caught.value.message("cli")
    assert "metrics: [{name: lpips, params: {weights: PATH}}]" in caught.value.message("config")
    with pytest.raises(MetricUnavailable, match="alexnet-owt-7be5be79.pth"):  # scoring anyway: still refused
        METRICS.create("lpips").score(inputs[1], context(tmp_path))
    with pytest.raises(PrivbenchError, match="LPIPS backbone weights not found"):
        METRICS.create("lpips", weights=str(tmp_path / "missing.pth"))


def test_backbone_found_in_torch_home_is_loaded(tmp_path, monkeypatch, inputs):
    from torchvision.models import alexnet

    torch.manual_seed(0)
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    reference = alexnet(weights=None)
    torch.save(reference.state_dict(), checkpoints / "alexnet-owt-7be5be79.pth")  # stands in for the real file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    metric = METRICS.create("lpips")
    x, flipped = inputs
    same = metric.score(PrivacyInputs(x, x, flipped.probes), context(tmp_path))
    assert same.value == pytest.approx(0.0, abs=1e-6)
    differ = metric.score(flipped, context(tmp_path))
    assert differ.value > 0 and differ.n == len(x)
    from privbench.metrics.perceptual import _lpips_model, backbone_path

    path = backbone_path("alex")
    model = _lpips_model("alex", str(path.resolve()), path.stat().st_mtime)
    assert torch.equal(model.net.slice1._modules["0"].weight, reference.features[0].weight)
    assert torch.equal(model.net.slice5._modules["10"].weight, reference.features[10].weight)
