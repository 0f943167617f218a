"""The protective perturbation defense of paper 003 (Ye et al., MMSys '22): its U-Net, parameters, fit → state →
load_state → apply lifecycle, the input stage it puts in front of the task network, the auxiliary diagnostic,
and one behavioural check at a tiny scale."""

from __future__ import annotations

import pytest
import torch
from conftest import colour_set, tiny_vgg, trained_task_model

from privbench.components import load_components
from privbench.data.base import ImageSet
from privbench.defenses.base import FitContext
from privbench.defenses.perturbation import Perturbation, PerturbationGenerator, WarmupAdamW, ssim_similarity
from privbench.errors import PrivbenchError
from privbench.models.unet import UNet
from privbench.registry import DEFENSES
from privbench.split import SplitModel

CPU = torch.device("cpu")
TINY = {"width": 4, "depth": 3, "epochs": 1, "aux_epochs": 1}


pytestmark = pytest.mark.usefixtures("one_thread")


def context(model: SplitModel, train: ImageSet, seed: int = 0) -> FitContext:
    return FitContext(model=model, train=train, device=CPU, seed=seed)


# ---- the U-Net ---------------------------------------------------------------------------------------------
def test_unet_maps_an_image_to_a_residual_of_its_size_and_refuses_sizes_it_cannot_pool():
    torch.manual_seed(0)
    net = UNet(widths=(4, 8, 16)).eval()
    seen = []
    net.head.register_forward_hook(lambda module, inputs, output: seen.append(output))
    delta = net(torch.rand(2, 3, 32, 32))
    assert delta.shape == (2, 3, 32, 32)
    assert isinstance(net.head, torch.nn.Conv2d) and net.head.kernel_size == (1, 1)
    assert delta is seen[0]  # no output activation: δ is the 1×1 convolution's output, a residual
    assert UNet().widths == (32, 64, 128, 256, 512) and UNet().multiple == 16
    with pytest.raises(PrivbenchError, match="multiples of 4"):
        net(torch.rand(1, 3, 30, 32))


# ---- parameters ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, bad", [({"w_ssim": -1}, "w_ssim"), ({"w_aux": -0.5}, "w_aux"),
                                         ({"width": 0}, "width"), ({"depth": 1}, "depth"),
                                         ({"epochs": 0}, "epochs"), ({"aux": "resnet18"}, "aux"),
                                         ({"warmup": 1.5}, "warmup"), ({"lr": 0}, "lr"),
                                         ({"w_target": 0, "w_aux": 0, "w_ssim": 0}, "all 0"),
                                         ({"sigma": 1}, "unknown parameter 'sigma'")])
def test_perturbation_parameters_are_validated(params, bad):
    load_components()
    with pytest.raises(PrivbenchError, match=bad):
        DEFENSES.create("perturbation", **params)


def test_defaults_are_the_papers_and_the_strength_is_w_ssim():
    load_components()
    defense = DEFENSES.create("perturbation")
    assert isinstance(defense, Perturbation) and defense.trained and not defense.is_identity()
    assert defense.transforms_input  # the engine scores x′ itself and asks for the diagnostics
    assert (defense.params["w_target"], defense.params["w_aux"], defense.params["w_ssim"]) == (1.0, 1.0, 0.5)
    assert defense.widths == (32, 64, 128, 256, 512)
    assert defense.strength == 0.5
    assert DEFENSES.create("perturbation", w_ssim=0.0, w_aux=0.0).is_identity() is False


def test_an_unfitted_apply_and_a_too_deep_unet_are_refused():
    model = tiny_vgg()
    with pytest.raises(PrivbenchError, match="fit it"):
        Perturbation().apply(model)
    with pytest.raises(PrivbenchError, match="multiples of 64.*lower 'depth'"):
        Perturbation(depth=7).generator(model)


# ---- lifecycle and the defended pipeline ---------------------------------------------------------------------
def test_fit_state_round_trip_gives_the_same_defended_pipeline(tmp_path):
    model = tiny_vgg()
    train = colour_set(64, 0)
    fitted = Perturbation(**TINY)
    state = fitted.fit(context(model, train))
    assert set(state) == {"generator", "aux"}
    assert set(state["aux"]) == set(model.state_dict())  # the auxiliary has the task network's architecture
    task_weight = model.state_dict()["front.conv11.weight"]
    assert not torch.equal(state["aux"]["front.conv11.weight"], task_weight)  # re-initialised and trained
    torch.save(state, tmp_path / "state.pt")
    loaded = torch.load(tmp_path / "state.pt", weights_only=True)
    fitted.load_state(state)
    fresh = Perturbation(**TINY)
    fresh.load_state(loaded)
    a, b = fitted.apply(model), fresh.apply(model)
    x = torch.rand(6, 3, 32, 32)
    assert torch.equal(a.defended_input(x), b.defended_input(x))
    assert torch.equal(a.predict(x), b.predict(x))
    labels = torch.arange(6) % 4
    assert fitted.diagnostics(a.defended_input(x), labels) == fresh.diagnostics(b.defended_input(x), labels)


def test_the_defended_model_perturbs_its_input_first_and_reports_the_auxiliarys_accuracy():
    model = tiny_vgg()
    defense = Perturbation(**TINY)
    defense.load_state(defense.fit(context(model, colour_set(64, 0))))
    defended = defense.apply(model)
    stage = defended.input_stage
    assert isinstance(stage, PerturbationGenerator) and stage.label == "perturbation.generator"
    assert next(iter(defended.front.children())) is stage
    assert defended.front.front is model.front and defended.back is model.back
    x = torch.rand(8, 3, 32, 32)
    x_prime = defended.defended_input(x)
    assert x_prime.shape == x.shape and x_prime.min() >= 0 and x_prime.max() <= 1
    assert (x_prime - x).abs().mean() > 1e-3
    assert torch.allclose(defended.predict(x), model.predict(x_prime))  # the task network sees x′
    correct, n = defense.diagnostics(x_prime, torch.arange(8) % 4)["aux-acc"]
    assert n == 8 and 0 <= correct <= 8
    assert not any(p.requires_grad for p in defense._aux.parameters()) and not defense._aux.training


def test_without_auxiliary_none_is_trained_and_no_diagnostic_is_reported():
    model = tiny_vgg()
    defense = Perturbation(**TINY, w_aux=0.0)
    state = defense.fit(context(model, colour_set(64, 0)))
    assert set(state) == {"generator"}
    defense.load_state(state)
    defended = defense.apply(model)
    assert defense.diagnostics(defended.defended_input(torch.rand(4, 3, 32, 32)), torch.zeros(4).long()) == {}


def test_fit_leaves_the_task_network_untouched():
    model = tiny_vgg()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Perturbation(**TINY).fit(context(model, colour_set(64, 0)))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics
    assert not model.training


def test_a_state_that_does_not_fit_is_refused_in_one_line():
    model = tiny_vgg()
    state = Perturbation(**TINY).fit(context(model, colour_set(64, 0)))
    for defense, broken in ((Perturbation(**{**TINY, "width": 8}), state),
                            (Perturbation(**TINY), {"generator": state["generator"]}),
                            (Perturbation(**TINY), {})):
        defense.load_state(broken)
        with pytest.raises(PrivbenchError, match="state does not fit") as info:
            defense.apply(model)
        assert "\n" not in str(info.value)


class OnlyTaskLabels(dict):
    """A labels mapping that fails on any access to a field other than the task's ``label``."""

    def __getitem__(self, key):
        if key != "label":
            raise AssertionError(f"fit read the label field {key!r}")
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key != "label":
            raise AssertionError(f"fit read the label field {key!r}")
        return super().get(key, default)

    def items(self):
        raise AssertionError("fit iterated over all label fields")

    def values(self):
        raise AssertionError("fit iterated over all label fields")


def test_fit_reads_only_the_task_label():
    train = colour_set(64, 0)
    guarded = ImageSet("colours", train.images, {"label": train.labels["label"], "identity": torch.arange(64)})
    guarded.labels = OnlyTaskLabels(guarded.labels)
    with pytest.raises(AssertionError, match="identity"):
        guarded.labels["identity"]
    state = Perturbation(**TINY).fit(context(tiny_vgg(), guarded))
    assert set(state) == {"generator", "aux"}


def test_warm_up_scales_the_first_steps_and_restores_the_rate():
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = WarmupAdamW([weight], 0.1, 0.0, warmup_steps=4)
    moves = []
    for _ in range(5):
        before = weight.detach().clone()
        weight.grad = torch.ones(1)
        optimizer.step()
        moves.append(float((before - weight.detach()).abs()))
        assert optimizer.param_groups[0]["lr"] == 0.1
    # Adam's step is ≈ lr·sign(g) for a constant gradient, so the moves are lr·(1/4, 2/4, 3/4, 1, 1)
    assert moves == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1], rel=1e-3)


# ---- behaviour (paper 003 eq. 4): the SSIM term makes x′ structurally unlike x --------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_ssim_term_lowers_the_similarity_of_held_out_images(seed):
    """With only the task term, SSIM(x, x′) on held-out images stayed at 0.43–0.70 over six seeds; with
    ω_s = 10 at 0.05–0.20, the gap never below 0.25 (4 generator epochs of 200 images, a 4-8-16 U-Net)."""
    train, test = colour_set(200, 0), colour_set(100, 1)
    model = trained_task_model(train, seed)
    x = test.floats()
    assert (model.predict(x).argmax(1) == test.labels["label"]).float().mean() > 0.5  # above chance (0.25)
    similarity = {}
    for w_ssim in (0.0, 10.0):
        defense = Perturbation(width=4, depth=3, epochs=4, w_aux=0.0, w_ssim=w_ssim)
        defense.load_state(defense.fit(context(model, train, seed)))
        similarity[w_ssim] = float(ssim_similarity(x, defense.apply(model).defended_input(x)))
    assert similarity[10.0] < similarity[0.0] - 0.1, similarity
