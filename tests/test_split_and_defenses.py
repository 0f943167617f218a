"""SplitModel cuts, torchvision/custom splitting, and the behaviour of the transform defenses."""

import sys

import pytest
import torch
from torch import nn

from privbench.components import load_components
from privbench.errors import PrivbenchError
from privbench.models.fx_split import check_split, fx_split
from privbench.registry import DEFENSES, MODELS
from privbench.split import pipeline_stages

load_components()


def small_split(split="relu22", size=32):
    spec = MODELS.create("vgg-small", width=4)
    net = spec.build(10, (3, size, size))
    return net, spec.split_model(net, split, 10, (3, size, size))


@pytest.mark.parametrize("split", ["conv11", "relu22", "relu32", "fc1"])
def test_builtin_split_composes_to_the_whole_network(split):
    net, model = small_split(split)
    x = torch.rand(4, 3, 32, 32)
    net.eval()
    torch.testing.assert_close(model.eval()(x), net(x))


def test_deeper_splits_have_lower_resolution():
    shapes = [small_split(s)[1].feature_shape() for s in ("conv11", "relu22", "relu32")]
    assert [s[1] for s in shapes] == [32, 16, 8]


def test_unknown_split_names_choices():
    spec = MODELS.create("vgg-small", width=4)
    with pytest.raises(PrivbenchError, match="unknown split 'layer9'.*relu22"):
        spec.split_model(spec.build(10, (3, 32, 32)), "layer9", 10, (3, 32, 32))


def test_torchvision_resnet_cut_by_name():
    spec = MODELS.create("resnet18")
    net = spec.build(5, (3, 32, 32))
    model = spec.split_model(net, "layer2", 5, (3, 32, 32))
    x = torch.rand(2, 3, 32, 32)
    net.eval()
    torch.testing.assert_close(model.eval()(x), net(x))
    assert model.feature_shape() == (128, 4, 4)


def test_fx_split_rejects_cut_crossed_by_skip_connection():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 3, 1)
            self.b = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.b(self.a(x)) + x

    with pytest.raises(PrivbenchError, match="crossed by a connection"):
        fx_split(Skip(), "a")

def test_custom_module_split(tmp_path, monkeypatch):
    (tmp_path / "mynet.py").write_text(
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, num_classes):\n"
        "        super().__init__()\n"
        "        self.stem = nn.Conv2d(3, 4, 3, padding=1)\n"
        "        self.layer2 = nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))\n"
        "        self.head = nn.Linear(4, num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.layer2(self.stem(x)).mean(dim=(2, 3)))\n"
        "def make(num_classes):\n"
        "    return Net(num_classes)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mynet", raising=False)  # the test leaves no `mynet` module behind
    spec = MODELS.create("custom", factory="mynet:make")
    net = spec.build(3, (3, 16, 16))
    model = spec.split_model(net, "layer2", 3, (3, 16, 16))
    check_split(net, model.front, model.back, torch.rand(2, 3, 16, 16))
    with pytest.raises(PrivbenchError, match="cannot import"):
        MODELS.create("custom", factory="no_such_module:make").build(3, (3, 16, 16))


@pytest.mark.parametrize("distribution", ["gaussian", "laplacian"])
def test_noise_has_requested_spread(distribution):
    stage = DEFENSES.create("noise", scale=0.5, distribution=distribution).stage()
    torch.manual_seed(0)
    noise = stage(torch.zeros(200_000))
    expected_std = 0.5 if distribution == "gaussian" else 0.5 * 2**0.5  # Laplace(b): std = b·√2
    assert noise.mean().abs() < 0.01
    assert noise.std().item() == pytest.approx(expected_std, rel=0.02)


@pytest.mark.parametrize("rescale", [False, True])
def test_dropout_rate_and_rescaling(rescale):
    stage = DEFENSES.create("dropout", rate=0.3, rescale=rescale).stage()
    torch.manual_seed(0)
    out = stage(torch.ones(100_000))
    assert (out == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    kept = out[out != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.7 if rescale else 1.0))


def test_defense_placement_and_identity():
    _, model = small_split()
    x = torch.rand(3, 3, 32, 32)
    assert DEFENSES.create("noise", scale=0.0).apply(model) is model
    at_input = DEFENSES.create("noise", scale=0.3, placement="input").apply(model)
    at_features = DEFENSES.create("dropout", rate=0.5, placement="features").apply(model)
    assert [s.label for s in pipeline_stages(at_input.front)] == ["noise@input"]
    assert list(dict(at_input.front.named_children())) == ["defense", "front"]
    assert list(dict(at_features.front.named_children())) == ["front", "defense"]
    torch.manual_seed(1)
    a = at_input.features(x)
    torch.manual_seed(2)
    b = at_input.features(x)
    assert not torch.equal(a, b), "the defense must stay stochastic at inference"
    assert at_input.back is model.back


def test_blur_augmentation_blurs_only_the_second_half_of_a_batch():
    from privbench.training import random_blur

    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = random_blur(x, 2.0, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    assert torch.equal(out[:4], x[:4])

    def roughness(t):
        return (t[..., 1:] - t[..., :-1]).abs().mean()

    assert roughness(out[4:]) < 0.7 * roughness(x[4:])


def test_split_model_predicts_through_its_task():
    from privbench.tasks import Classification

    spec = MODELS.create("vgg-small", width=4)
    network = spec.build(3, (3, 16, 16))
    model = spec.split_model(network, "relu12", 3, (3, 16, 16))
    assert isinstance(model.task, Classification)
    images = torch.rand(10, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    logits = model.predict(images, batch_size=4)
    assert logits.shape == (10, 3)
    torch.testing.assert_close(logits, network.eval()(images))
    labels = logits.argmax(dim=1)
    assert model.task.sanity(logits, labels, 0.95, 3).value == 1.0
    assert model.task.sanity(logits, (labels + 1) % 3, 0.95, 3).useless
    assert model.derive(model.front, model.back).task is model.task
