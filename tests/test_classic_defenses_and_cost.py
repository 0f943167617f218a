"""Paper 004's classic input obfuscations (blur, pixelate, quantize) and the edge cost of a defended front."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from privbench.cache import Cache
from privbench.components import load_components
from privbench.edge_cost import EdgeCost, count_macs, edge_cost
from privbench.errors import PrivbenchError
from privbench.registry import DATASETS, DEFENSES, MODELS
from privbench.split import pipeline_stages

load_components()

CLASSIC = ("blur", "pixelate", "quantize")
IDENTITY = {"blur": 0.0, "pixelate": 1.0, "quantize": 256.0}
#: Increasing strength for each defense (quantize: fewer levels is stronger), as a sweep passes them (floats).
SWEEPS = {"blur": [0.0, 0.5, 1.0, 2.0, 4.0], "pixelate": [1.0, 2.0, 4.0, 8.0, 16.0],
          "quantize": [256.0, 16.0, 8.0, 4.0, 2.0]}


def defense(name, strength, **params):
    cls = DEFENSES.get(name)
    return cls(**{**params, cls.strength_param: strength})


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    data = DATASETS.create("synth-faces", subset="test", identities=4, per_identity=2, size=32)
    return data.load(Cache(tmp_path_factory.mktemp("cache-faces"))).floats()


def small_split(split="relu22", size=32):
    spec = MODELS.create("vgg-small", width=4)
    return spec.split_model(spec.build(10, (3, size, size)), split, 10, (3, size, size))


# ---- parameters ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CLASSIC)
def test_registered_with_one_strength_axis_and_input_only_placement(name):
    cls = DEFENSES.get(name)
    declared = {p.name: p for p in cls.declared_params()}
    assert set(declared) == {cls.strength_param, "placement"}
    assert declared["placement"].choices == ("input",)
    assert cls().params["placement"] == "input"
    doc = sys.modules[cls.__module__].__doc__
    assert "paper 004" in doc and "De Coninck" in doc and cls.strength_param in doc
    with pytest.raises(PrivbenchError, match="'placement'"):
        cls(placement="features")


@pytest.mark.parametrize("name, values, bad", [
    ("blur", {"sigma": -0.5}, "'sigma'"),
    ("pixelate", {"block": 2.5}, "'block'"),
    ("pixelate", {"block": 0}, "'block'"),
    ("quantize", {"levels": 1}, "'levels'"),
    ("quantize", {"levels": 2.5}, "'levels'"),
    ("quantize", {"levels": 257}, "'levels'"),
])
def test_bad_values_are_refused_naming_the_parameter(name, values, bad):
    with pytest.raises(PrivbenchError, match=bad):
        DEFENSES.create(name, **values)


@pytest.mark.parametrize("name", ["pixelate", "quantize"])
def test_integer_strengths_accept_whole_floats_from_sweeps(name):
    d = defense(name, 4.0)
    value = d.params[type(d).strength_param]
    assert value == 4 and isinstance(value, int)
    assert d.strength == 4.0


# ---- behaviour -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CLASSIC)
def test_identity_settings_leave_images_and_the_model_unchanged(name, faces):
    d = defense(name, IDENTITY[name])
    assert d.is_identity() and d.spec() == {"defense": "identity"}
    assert not defense(name, SWEEPS[name][1]).is_identity()
    assert torch.equal(d.stage()(faces), faces)  # quantize: 256 levels reproduce 8-bit images bit for bit
    model = small_split()
    assert d.apply(model) is model


@pytest.mark.parametrize("name", CLASSIC)
@pytest.mark.parametrize("size", [32, 30])
def test_outputs_keep_shape_and_stay_in_the_unit_range(name, size, faces):
    x = faces[..., :size, :size]
    for strength in SWEEPS[name][1:]:
        out = defense(name, strength).stage()(x)
        assert out.shape == x.shape and out.dtype == x.dtype
        slack = 1e-5 if name == "blur" else 0.0  # a normalized float kernel sums to 1 only up to rounding
        assert out.min() >= -slack and out.max() <= 1.0 + slack


@pytest.mark.parametrize("name", CLASSIC)
def test_stronger_settings_destroy_more_detail(name, faces):
    errors = [torch.mean((defense(name, s).stage()(faces) - faces) ** 2).item() for s in SWEEPS[name]]
    assert errors[0] == 0.0
    assert all(a < b for a, b in zip(errors, errors[1:], strict=False)), errors


@pytest.mark.parametrize("size, block", [(32, 4), (30, 4), (7, 3), (5, 8)])
def test_pixelate_is_the_cell_mean_on_every_cell_including_cut_ones(size, block):
    x = torch.rand(2, 3, size, size + 1, generator=torch.Generator().manual_seed(0))
    out = DEFENSES.create("pixelate", block=block).stage()(x)
    assert out.shape == x.shape
    for top in range(0, size, block):
        for left in range(0, size + 1, block):
            cell, source = out[..., top:top + block, left:left + block], x[..., top:top + block, left:left + block]
            expected = source.mean(dim=(-2, -1), keepdim=True).expand_as(cell)
            torch.testing.assert_close(cell, expected)


def test_blur_matches_the_dataset_helper_and_handles_a_kernel_wider_than_the_image():
    from privbench.data.base import gaussian_blur

    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(DEFENSES.create("blur", sigma=1.5).stage()(x), gaussian_blur(x, 1.5))
    wide = DEFENSES.create("blur", sigma=20.0).stage()(x)  # radius 60 > 31: truncated kernel
    assert wide.shape == x.shape and wide.std(dim=(-2, -1)).max() < 0.1 * x.std()


@pytest.mark.parametrize("levels", [2, 3, 8, 255])
def test_quantize_takes_at_most_levels_values_on_the_uniform_grid(levels):
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(levels)) * 1.2 - 0.1  # some outside [0, 1]
    out = DEFENSES.create("quantize", levels=levels).stage()(x)
    values = out.unique()
    assert len(values) <= levels
    torch.testing.assert_close(values * (levels - 1), torch.round(values * (levels - 1)), rtol=0, atol=1e-4)
    assert (out - x.clamp(0, 1)).abs().max() <= 0.5 / (levels - 1) + 1e-6


def test_quantize_declares_a_straight_through_gradient():
    stage = DEFENSES.create("quantize", levels=4).stage()
    assert stage.differentiable is False and stage.approximation == "straight-through"
    assert stage.stochastic is False
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    stage(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


@pytest.mark.parametrize("name, strength", [("blur", 1.0), ("pixelate", 4.0)])
def test_blur_and_pixelate_are_exactly_differentiable(name, strength):
    stage = defense(name, strength).stage()
    assert stage.differentiable and not stage.stochastic
    x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    weights = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    (stage(x) * weights).sum().backward()
    # both are linear maps that preserve the mean (blur: up to border reflection), so the gradient is dense
    assert x.grad.abs().min() > 0 and x.grad.sum().item() == pytest.approx(weights.sum().item(), rel=0.05)


@pytest.mark.parametrize("name, strength", [("blur", 2.0), ("pixelate", 4.0), ("quantize", 4.0)])
def test_applied_to_a_split_model_the_stage_sits_at_the_input(name, strength):
    model = small_split()
    d = defense(name, strength)
    defended = d.apply(model)
    assert list(dict(defended.front.named_children())) == ["defense", "front"]
    assert [s.label for s in pipeline_stages(defended.front)] == [f"{name}@input"]
    assert defended.back is model.back and defended.front.front is model.front
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(defended.features(x), model.features(d.stage()(x)))
    assert not torch.allclose(defended.features(x), model.features(x))


# ---- edge cost -------------------------------------------------------------------------------------------
def known_front():
    """Conv(3→8, 3×3, bias) → BN(8) → ReLU → Conv(8→16, 3×3, stride 2, no bias) → Flatten → Linear(4096→10)."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.Flatten(), nn.Linear(16 * 16 * 16, 10))
    net[0].requires_grad_(False)  # frozen parameters still count
    return net


# parameters: conv1 3·8·9 + 8, BN 2·8 (running stats are buffers), conv2 8·16·9, linear 4096·10 + 10
KNOWN_PARAMS = (3 * 8 * 9 + 8) + 2 * 8 + 8 * 16 * 9 + (4096 * 10 + 10)
# MACs: output elements × (inputs per output) for the convs, in × out for the linear; BN/ReLU/bias count zero
KNOWN_MACS = 8 * 32 * 32 * (3 * 9) + 16 * 16 * 16 * (8 * 9) + 4096 * 10


def test_edge_cost_of_a_known_network_is_exact_and_does_not_touch_it():
    net = known_front().train()
    net[1].eval()  # mixed modes must come back as they were
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    cost = edge_cost(net, (3, 32, 32), torch.device("cpu"), repeats=5, batch=4)
    assert isinstance(cost, EdgeCost)
    assert (cost.params, cost.macs) == (KNOWN_PARAMS, KNOWN_MACS) == (42_362, 557_056)
    assert cost.latency_ms > 0 and cost.images_per_s > 0 and cost.batch == 4 and cost.device == "cpu"
    assert [m.training for m in net.modules()] == [True, True, False, True, True, True, True]
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # BN statistics untouched
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.get_num_threads() >= 1


def test_edge_cost_of_a_defended_front_counts_the_blur_convolution():
    model = small_split("relu12")
    plain = edge_cost(model.front, (3, 32, 32), repeats=3, batch=2)
    blurred = DEFENSES.create("blur", sigma=1.0).apply(model).front  # radius 3: a depthwise 7×7 kernel
    noisy = DEFENSES.create("noise", scale=0.1, placement="input").apply(model).front  # stochastic, 0 MACs
    cost = edge_cost(blurred, (3, 32, 32), repeats=3, batch=2)
    assert cost.params == plain.params == sum(p.numel() for p in model.front.parameters())
    # the depthwise convolution, plus torchvision building the 7×7 kernel as an outer product (a 7×1·1×7 mm)
    assert cost.macs == plain.macs + 3 * 32 * 32 * 7 * 7 + 7 * 7
    rng = torch.get_rng_state()
    assert count_macs(noisy, (3, 32, 32)) == plain.macs
    assert edge_cost(noisy, (3, 32, 32), repeats=3, batch=2).latency_ms > 0
    assert torch.equal(torch.get_rng_state(), rng), "timing a stochastic front must not advance the global RNG"


def test_edge_cost_refuses_a_device_the_module_is_not_on():
    with pytest.raises(PrivbenchError, match="not moved"):
        edge_cost(known_front(), (3, 32, 32), "cuda", repeats=1)
