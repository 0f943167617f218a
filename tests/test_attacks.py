"""The three attack classes of He et al. (rMLE, inverse network, shadow model), access levels, worst case."""

from __future__ import annotations

import copy

import pandas as pd
import piq
import pytest
import torch
from torch import nn

from privbench.attacks.rmle import RMLESettings, default_settings, rmle_invert, total_variation
from privbench.attacks.shadow import mirror_of_shape_encoder
from privbench.cache import Cache
from privbench.components import load_components
from privbench.config import load_config
from privbench.defenses.base import DefenseStage
from privbench.errors import PrivbenchError
from privbench.losses import reconstruction_loss
from privbench.registry import ATTACKS, DATASETS, DEFENSES, METRICS, MODELS
from privbench.sweep import run_benchmark
from privbench.threat import Access, attacker_view
from privbench.worst_case import add_worst_case

load_components()
CPU = torch.device("cpu")
SIZE = 32


def split_model(split: str, seed: int = 0):
    torch.manual_seed(seed)
    spec = MODELS.create("vgg-small", width=4)
    net = spec.build(10, (3, SIZE, SIZE)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return spec.split_model(net, split, 10, (3, SIZE, SIZE))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tensors are tiny: one thread is as fast idle and avoids OpenMP stalls on a busy 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def faces():
    return DATASETS.create("synth-faces", identities=3, per_identity=2, size=SIZE).build().floats()


@pytest.fixture(scope="module")
def attacker():
    data = DATASETS.create("synth-scenes", subset="attacker", n=48, size=SIZE).build()
    return data.floats(), data.labels["label"]


def psnr(x_hat, x):
    return piq.psnr(x_hat.clamp(0, 1), x, data_range=1.0, reduction="none").mean().item()


def view_for(access, model, attacker, seed=0):
    data, labels = attacker
    return attacker_view(access, model, data, CPU, seed, task_data=data, task_labels=labels)


# ---- rMLE ------------------------------------------------------------------------------------------------
def test_rmle_at_the_shallowest_split_recovers_the_image(faces, attacker):
    model = split_model("conv11")
    attack = ATTACKS.create("rmle", iterations=150)
    attack.fit(view_for(Access.WHITE_BOX, model, attacker))
    x_hat = attack.reconstruct(model.features(faces))
    assert x_hat.shape == faces.shape and x_hat.min() >= 0.0 and x_hat.max() <= 1.0
    blank = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand_as(faces)
    mean_image = attacker[0].mean(dim=0, keepdim=True).expand_as(faces)
    baseline = max(psnr(blank, faces), psnr(mean_image, faces))
    assert psnr(x_hat, faces) > 25.0
    assert psnr(x_hat, faces) > baseline + 10.0


def test_rmle_batched_equals_image_by_image(faces):
    model = split_model("relu22")
    z = model.features(faces[:3])
    settings = RMLESettings(iterations=15, lr=0.05, lambda_tv=0.5, lambda_l2=0.1)
    kwargs = dict(input_shape=model.input_shape, device=CPU, seed=0)
    batched, loss_b = rmle_invert(model.front, z, settings, **kwargs)
    one_by_one = RMLESettings(**{**settings.__dict__, "batch_size": 1})
    single, loss_s = rmle_invert(model.front, z, one_by_one, **kwargs)
    torch.testing.assert_close(loss_b, loss_s, rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-3)


def test_rmle_through_a_stochastic_defense_uses_eot_and_loses_quality(faces, attacker):
    clean = split_model("conv11")
    noisy = DEFENSES.create("noise", scale=1.0, placement="features").apply(clean)
    results = {}
    for name, model in (("clean", clean), ("noisy", noisy)):
        attack = ATTACKS.create("rmle", iterations=60, eot_samples=2)
        attack.fit(view_for(Access.WHITE_BOX, model, attacker))
        torch.manual_seed(1)
        results[name] = psnr(attack.reconstruct(model.features(faces)), faces)
    assert results["clean"] > results["noisy"] + 3.0, results


def test_rmle_depth_defaults_and_tv():
    shallow, mid, deep, flat = (default_settings(s, (3, 64, 64))
                                for s in [(8, 64, 64), (16, 32, 32), (32, 16, 16), (128,)])
    assert shallow[1] == 0.0  # conv11: no TV prior (He et al.)
    assert shallow[1] < mid[1] <= deep[1] <= flat[1]
    ramp = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 3, 8, 8)
    assert total_variation(torch.zeros(2, 3, 8, 8)).tolist() == [0.0, 0.0]
    torch.testing.assert_close(total_variation(ramp), torch.tensor([(1 / 7) ** 2]))


@pytest.mark.parametrize("name, params, bad", [("rmle", {"lr": 0}, "'lr'"),
                                               ("rmle", {"lambda_tv": -0.5}, "'lambda_tv'"),
                                               ("shadow", {"rmle_lr": -0.2}, "'rmle_lr'")])
def test_by_depth_sentinel_is_the_only_negative_value(name, params, bad):
    with pytest.raises(PrivbenchError, match=bad):
        ATTACKS.create(name, **params)


# ---- access levels ---------------------------------------------------------------------------------------
class Rounding(DefenseStage):
    differentiable = False

    def forward(self, x):
        return torch.round(x * 8) / 8


def test_white_box_through_a_non_differentiable_stage_names_the_stage(attacker):
    model = split_model("conv11")
    stage = Rounding()
    stage.label = "rounding@features"
    defended = model.with_front(nn.Sequential(model.front, stage))
    with pytest.raises(PrivbenchError, match="rounding@features"):
        view_for(Access.WHITE_BOX, defended, attacker)
    # the same front is fine for attacks that do not need gradients
    assert view_for(Access.BLACK_BOX, defended, attacker).front is None


@pytest.mark.parametrize("name, wrong", [("rmle", Access.BLACK_BOX), ("shadow", Access.WHITE_BOX),
                                         ("inverse-net", Access.QUERY_FREE)])
def test_fit_with_the_wrong_view_raises(attacker, name, wrong):
    attack = ATTACKS.create(name)
    with pytest.raises(PrivbenchError, match=f"{attack.access.value} but was handed a {wrong.value}"):
        attack.fit(view_for(wrong, split_model("relu22"), attacker))


def test_views_hand_over_only_their_level(attacker):
    model = split_model("relu22")
    white, black, free = (view_for(a, model, attacker) for a in Access)
    assert white.front is model.front and white.query is None and white.back is None
    assert black.front is None and black.query is not None and black.back is None
    assert free.front is None and free.query is None and free.back is model.back
    # query-free gets the (public) architecture, never the trained weights
    copy_ = free.front_architecture()
    real = model.front.state_dict()
    assert copy_.state_dict().keys() == real.keys()
    for key, value in copy_.named_parameters():
        assert value.shape == real[key].shape
        if value.ndim >= 2:  # conv / linear weights are re-drawn (buffers such as Normalize's are public)
            assert not torch.equal(value, real[key])


# ---- shadow model ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    {"then": "rmle", "rmle_iterations": 10},
    {"then": "rmle", "rmle_iterations": 5, "bn_matching": 1.0},
    {"then": "inverse-net", "decoder_epochs": 1, "architecture": "mirror-of-shape"},
])
def test_shadow_reconstructs_images_and_reloads_from_state(faces, attacker, params):
    model = split_model("relu22")
    attack = ATTACKS.create("shadow", epochs=2, **params)
    view = view_for(Access.QUERY_FREE, model, attacker)
    attack.fit(view)
    z = model.features(faces)
    x_hat = attack.reconstruct(z)
    assert x_hat.shape == faces.shape and x_hat.min() >= 0.0 and x_hat.max() <= 1.0
    # a fitted shadow is cached through state(): the reloaded attack reconstructs the same images
    reloaded = ATTACKS.create("shadow", epochs=2, **params)
    reloaded.load_state(view, copy.deepcopy(attack.state()))
    torch.testing.assert_close(reloaded.reconstruct(z), x_hat)


def test_shadow_needs_labelled_task_data(attacker):
    model = split_model("relu22")
    view = attacker_view(Access.QUERY_FREE, model, attacker[0], CPU, 0)
    with pytest.raises(PrivbenchError, match="labelled task images"):
        ATTACKS.create("shadow", epochs=1).fit(view)


@pytest.mark.parametrize("feature_shape", [(16, 16, 16), (8, 32, 32), (128,)])
def test_mirror_of_shape_encoder_matches_the_feature_shape(feature_shape):
    encoder = mirror_of_shape_encoder((3, SIZE, SIZE), feature_shape)
    assert tuple(encoder(torch.rand(2, 3, SIZE, SIZE)).shape[1:]) == feature_shape


# ---- inverse network options -----------------------------------------------------------------------------
def test_inverse_net_residual_decoder_with_edge_loss_and_limited_data(faces, attacker):
    model = split_model("relu22")
    view = view_for(Access.BLACK_BOX, model, attacker)
    queried = []
    query = view.query
    view.query = lambda x: (queried.append(len(x)), query(x))[1]
    attack = ATTACKS.create("inverse-net", decoder="residual", loss="l1+edge", epochs=2, attacker_samples=20,
                            batch_size=8)
    attack.fit(view)
    # 20 of the attacker's 48 images, each queried once: the undefended pipeline is deterministic, so the pairs
    # (z, x) are reused for both epochs (a stochastic one is queried afresh every batch: tests/test_fit_decoder.py)
    assert sum(queried) == 20
    x_hat = attack.reconstruct(model.features(faces))
    assert x_hat.shape == faces.shape and x_hat.min() >= 0.0 and x_hat.max() <= 1.0


def test_edge_loss_adds_the_sobel_term(faces):
    x, y = faces[:2], faces[2:4]
    l1 = reconstruction_loss("l1", y, x)
    assert reconstruction_loss("l1+edge", x, x).item() == 0.0
    assert reconstruction_loss("l1+edge", y, x, beta=0.0).item() == pytest.approx(l1.item())
    # a blurred copy has the same l1-scale error but a much larger edge term
    blurred = nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    assert reconstruction_loss("l1+edge", blurred, x) > 2 * reconstruction_loss("l1", blurred, x)


# ---- worst case ------------------------------------------------------------------------------------------
def test_worst_case_picks_the_most_revealing_attack():
    point = dict(model="m", split="s", defense="noise", defense_params="{}", strength=1.0, codec="none",
                 quality="")
    rows = []
    for attack, psnr_value, mse_value in (("a", 20.0, 0.010), ("b", 25.0, 0.004), ("c", 15.0, 0.020)):
        for metric, value in (("psnr", psnr_value), ("mse", mse_value)):
            rows.append(dict(dataset="faces", **point, attack=attack, metric=metric, kind="privacy",
                             value=value, ci_low=value - 1, ci_high=value + 1, ci_method="normal95", n=7))
    rows.append(dict(dataset="scenes", **point, attack="none", metric="accuracy", kind="utility", value=0.9,
                     ci_low=0.8, ci_high=0.95, ci_method="wilson95", n=100))
    frame = add_worst_case(pd.DataFrame(rows), METRICS)
    worst = frame[frame.attack == "worst"].set_index("metric")
    assert worst.loc["psnr", "value"] == 25.0 and worst.loc["mse", "value"] == 0.004
    assert worst.loc["psnr", "ci_low"] == 24.0 and worst.loc["psnr", "n"] == 7
    assert worst.loc["mse", "ci_method"] == "normal95"
    assert len(frame) == len(rows) + 2 and list(frame.columns) == list(pd.DataFrame(rows).columns)
    assert len(add_worst_case(frame, METRICS)) == len(frame)  # idempotent


def test_a_run_with_all_three_attacks_reports_the_worst_case(tmp_path):
    tiny = {
        "name": "attacks", "device": "cpu",
        "model": {"name": "vgg-small", "params": {"width": 4, "fc_width": 16}, "split": "conv11", "epochs": 1,
                  "lr": 0.003, "batch_size": 32},
        "task": {"train": {"name": "synth-scenes", "params": {"subset": "train", "n": 64, "size": SIZE}},
                 "test": {"name": "synth-scenes", "params": {"subset": "test", "n": 20, "size": SIZE}}},
        "attacker_data": [{"name": "synth-scenes", "params": {"subset": "attacker", "n": 48, "size": SIZE}}],
        "probes": [{"name": "synth-faces", "params": {"identities": 3, "per_identity": 2, "size": SIZE}}],
        "defenses": [{"name": "noise", "params": {"placement": "features"}, "strengths": [0.0, 1.0]}],
        "attacks": [{"name": "inverse-net", "params": {"epochs": 1}},
                    {"name": "rmle", "params": {"iterations": 40}},
                    {"name": "shadow", "params": {"epochs": 1, "rmle_iterations": 5}}],
        "metrics": ["psnr", "mse", "accuracy"],
    }
    frame = run_benchmark(load_config(None, tiny), Cache(tmp_path), progress=False).frame
    privacy = frame[frame.kind == "privacy"]
    assert set(privacy.attack) == {"inverse-net", "rmle", "shadow", "worst"}
    for (_, metric), part in privacy.groupby(["strength", "metric"]):
        attacks = part[part.attack != "worst"].value
        best = attacks.max() if metric == "psnr" else attacks.min()
        assert part[part.attack == "worst"].value.tolist() == [best]
    # white-box rMLE at the shallowest split beats the query-free attack on the clean pipeline
    clean = privacy[(privacy.strength == 0.0) & (privacy.metric == "psnr")].set_index("attack").value
    assert clean["rmle"] > 25.0 and clean["rmle"] > clean["shadow"] + 5.0, clean
