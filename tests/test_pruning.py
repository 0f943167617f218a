"""PATROL pruning (paper 002): FISTA's proximal step, soft masks and physically smaller layers, the defense's
parameters, fit/save/load, and its behaviour on a tiny task."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from conftest import colour_set, trained_task_model
from torch import nn

from privbench.components import load_components
from privbench.defenses.base import FitContext
from privbench.edge_cost import count_macs, count_params
from privbench.errors import PrivbenchError
from privbench.models.channel_pruning import (
    ChannelMask,
    blocks,
    channel_scales,
    fold_masks,
    prune,
    pruned_params,
    with_masks,
)
from privbench.proximal import FISTA, sparse_group_prox
from privbench.registry import DEFENSES, MODELS
from privbench.split import SplitModel
from privbench.training import Update, train

QUICK = {"epochs": 1, "epochs_finetune": 4}
THREADS = torch.get_num_threads()


def vgg(split="relu12", seed=0) -> SplitModel:
    load_components()
    spec = MODELS.create("vgg-small", width=8)
    torch.manual_seed(seed)
    network = spec.build(4, (3, 32, 32))
    with torch.no_grad():  # non-trivial BatchNorm statistics and scales, so folding is really tested
        for m in network.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    network.eval()
    for p in network.parameters():
        p.requires_grad_(False)
    return spec.split_model(network, split, 4, (3, 32, 32))


# ---- FISTA (Beck & Teboulle 2009) and the prox of λ1‖·‖₁ + λ2‖·‖₂ -------------------------------------------
def test_sparse_group_prox_soft_thresholds_then_shrinks_the_length():
    v = torch.tensor([3.0, -1.0, 0.5, 4.0])
    (out,) = sparse_group_prox([v], l1=1.0, l2=0.0)
    assert torch.allclose(out, torch.tensor([2.0, 0.0, 0.0, 3.0]))
    (out,) = sparse_group_prox([v], l1=1.0, l2=1.0)  # soft = (2, 0, 0, 3), length √13, shrunk by 1 − 1/√13
    assert torch.allclose(out, torch.tensor([2.0, 0.0, 0.0, 3.0]) * (1 - 1 / 13**0.5))
    assert torch.equal(sparse_group_prox([v], l1=10.0, l2=0.0)[0], torch.zeros(4))


def test_fista_reaches_the_lasso_solution():
    """min ½‖x − b‖² + λ‖x‖₁ has the closed form x = soft(b, λ): FISTA must land on it, zeros exactly."""
    b = torch.tensor([3.0, -0.4, 1.5, 0.2, -2.0])
    x = nn.Parameter(torch.zeros(5))
    optimizer = FISTA([x], lr=0.5, l1=1.0, l2=0.0)
    for _ in range(200):
        optimizer.zero_grad()
        (0.5 * (x - b).square().sum()).backward()
        optimizer.step()
    optimizer.finish()
    assert torch.allclose(x.detach(), torch.tensor([2.0, 0.0, 0.5, 0.0, -1.0]), atol=1e-5)
    assert (x.detach() == 0).sum() == 2


def test_fista_runs_inside_the_training_loop():
    target = torch.tensor([1.0, 0.0, -3.0])
    x = nn.Parameter(torch.zeros(3))
    made = []

    def factory(params, lr):
        made.append(FISTA(params, lr, l1=0.5, l2=0.0))
        return made[-1]

    train(10, [Update([x], lambda idx: 0.5 * (x - target).square().sum(), 0.3, schedule="constant",
                      optimizer=factory)], epochs=150, batch_size=10)
    made[0].finish()
    assert torch.allclose(x.detach(), torch.tensor([0.5, 0.0, -2.5]), atol=1e-4)


# ---- masks and physically smaller layers ------------------------------------------------------------------
def test_masks_fold_exactly_and_pruning_zero_masks_keeps_the_function_with_fewer_parameters():
    deep = vgg().recut("relu22")
    masked, masks = with_masks(deep.front)
    assert set(masks) == {"conv11", "conv12", "conv21", "conv22"}
    names = [n for n, _ in masked.named_children()]
    assert names.index("conv11_mask") == names.index("bn11") + 1  # after the BatchNorm: folds into it
    torch.manual_seed(1)
    kept = {}
    with torch.no_grad():
        for name, mask in masks.items():
            mask.mask.uniform_(0.2, 1.5)
            off = torch.randperm(len(mask.mask))[: len(mask.mask) // 2]
            mask.mask[off] = 0.0
            kept[name] = sorted(set(range(len(mask.mask))) - set(off.tolist()))
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        reference = deep.back(masked(x))
        folded = fold_masks(masked)
        assert not any(isinstance(m, ChannelMask) for m in folded.modules())
        assert torch.allclose(deep.back(folded(x)), reference, atol=1e-5)
        front, back = prune(folded, deep.back, kept)
        assert torch.allclose(back(front(x)), reference, atol=1e-4)
    assert front(x).shape[1] == len(kept["conv22"])  # fewer channels cross the network
    assert count_params(front) == pruned_params(folded, {k: len(v) for k, v in kept.items()})
    assert count_params(front) < count_params(deep.front)
    assert count_macs(front, (3, 32, 32)) < count_macs(deep.front, (3, 32, 32))


def test_pruning_follows_the_channels_into_a_linear_back():
    model = vgg("pool3")
    kept = {"conv11": [0, 1, 2, 3, 4, 5, 6, 7], "conv32": [1, 4, 9, 30]}
    masked, masks = with_masks(model.front)
    with torch.no_grad():
        m = torch.zeros(32)
        m[kept["conv32"]] = 1.0
        masks["conv32"].mask.copy_(m)
        x = torch.rand(2, 3, 32, 32)
        front, back = prune(fold_masks(masked), model.back, kept)
        assert torch.allclose(back(front(x)), model.back(masked(x)), atol=1e-5)
    assert back.fc1_linear.in_features == 4 * 4 * 4


def test_blocks_cut_the_front_at_each_convolution_and_scales_read_batchnorm():
    deep = vgg().recut("relu22")
    parts = blocks(deep.front)
    assert [next(iter(p._modules)) for p in parts] == ["normalize", "conv12", "conv21", "conv22"]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = x
        for part in parts:
            out = part(out)
        assert torch.equal(out, deep.front(x))
    scales = channel_scales(deep.front)
    assert torch.equal(scales["conv11"], deep.front.bn11.weight.abs())


def test_unsupported_fronts_are_refused_by_name():
    with pytest.raises(PrivbenchError, match="depthwise"):
        with_masks(nn.Sequential(nn.Conv2d(4, 4, 3, groups=4)))
    with pytest.raises(PrivbenchError, match="'1' is a Linear"):
        with_masks(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 4)))
    with pytest.raises(PrivbenchError, match="not valid"):
        prune(nn.Sequential(nn.Conv2d(3, 4, 3)), nn.Sequential(nn.Conv2d(4, 2, 1)), {"0": [5]})


# ---- the defense's parameters -----------------------------------------------------------------------------
@pytest.mark.parametrize("params, bad", [({"beta": -1}, "beta"), ({"alpha": "5,x"}, "alpha"),
                                         ({"alpha": "-1"}, "alpha"), ({"edge_ratio": -0.5}, "edge_ratio"),
                                         ({"surrogate": "unet"}, "surrogate"), ({"epochs": 0}, "epochs"),
                                         ({"width": 3}, "unknown parameter 'width'")])
def test_pruning_parameters_are_validated(params, bad):
    load_components()
    with pytest.raises(PrivbenchError, match=bad):
        DEFENSES.create("pruning", **params)


def test_the_deployed_split_is_checked_against_the_model_before_compute():
    load_components()
    spec = MODELS.create("vgg-small", width=8)
    DEFENSES.create("pruning", split="relu22").check_model(spec, "relu12")
    with pytest.raises(PrivbenchError, match="shallower"):
        DEFENSES.create("pruning", split="relu11").check_model(spec, "relu12")
    with pytest.raises(PrivbenchError, match="unknown split 'relu99'"):
        DEFENSES.create("pruning", split="relu99").check_model(spec, "relu12")
    with pytest.raises(PrivbenchError, match="built-in model"):
        DEFENSES.create("pruning", split="layer2").check_model(MODELS.create("resnet18"), "layer1")
    assert DEFENSES.create("pruning", split="relu22").deployed_split("relu12") == "relu22"
    assert DEFENSES.create("pruning").deployed_split("relu12") == "relu12"


# ---- fit, save, load, behaviour ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained():
    """A tiny vgg-small task model at relu12 that does its (easy, 4-class) task almost perfectly."""
    torch.set_num_threads(1)
    train_set, test = colour_set(240, seed=0), colour_set(200, seed=1)
    model = trained_task_model(train_set, seed=0)
    yield model, train_set, test
    torch.set_num_threads(THREADS)


def accuracy(model, test) -> float:
    return float((model.predict(test.floats()).argmax(1) == test.labels["label"]).float().mean())


def test_pruning_fits_a_deeper_front_within_the_budget_and_round_trips_through_a_file(trained):
    model, data, test = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    defense = DEFENSES.create("pruning", split="relu22", **QUICK)
    state = defense.fit(FitContext(model=model, train=data, device=torch.device("cpu"), seed=0))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    fresh = DEFENSES.create("pruning", split="relu22", **QUICK)
    fresh.load_state(loaded)
    defended = fresh.apply(model)
    defense.load_state(state)
    x = test.floats()[:8]
    assert torch.equal(defended(x), defense.apply(model)(x))
    assert defended.split == "relu22" and model.split == "relu12"
    assert count_params(defended.front) <= count_params(model.front)  # edge_ratio 1: no bigger than the shallow front
    assert defended.feature_shape()[0] < 16 and defended.feature_shape()[1:] == (16, 16)
    assert not any(isinstance(m, ChannelMask) for m in defended.modules())
    assert not any(p.requires_grad for p in defended.parameters())
    # the task model itself is untouched by fitting, building and loading (a pruned back once shared its layers)
    assert model.split == "relu12" and len(model.front) == 7
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    shared = {id(p) for p in model.parameters()} & {id(p) for p in defended.parameters()}
    assert not shared
    # behaviour: pruned to ≤ the shallow front's parameters and fine-tuned, the deeper pipeline still does the task
    assert accuracy(model, test) > 0.95
    assert accuracy(defended, test) > 0.9, accuracy(defended, test)


def test_an_explicit_budget_is_met_and_an_impossible_one_refused(trained):
    model, data, _ = trained
    context = FitContext(model=model, train=data, device=torch.device("cpu"), seed=0)
    defense = DEFENSES.create("pruning", split="relu22", edge_params=500, beta=0.0, alpha="0", epochs=1,
                              epochs_finetune=0)
    defense.load_state(defense.fit(context))
    assert count_params(defense.apply(model).front) <= 500
    with pytest.raises(PrivbenchError, match="exceeds the edge budget of 50 parameters"):
        DEFENSES.create("pruning", split="relu22", edge_params=50, beta=0.0, alpha="0", epochs=1,
                        epochs_finetune=0).fit(context)


def test_a_state_that_does_not_fit_is_refused(trained):
    model, _, _ = trained
    defense = DEFENSES.create("pruning", split="relu22")
    defense.load_state({"kept": {"conv11": [0, 1]}, "front": {}, "back": {}})
    with pytest.raises(PrivbenchError, match="state does not fit"):
        defense.apply(model)


# ---- the masks select channels by the task (issue 31) --------------------------------------------------------
@pytest.fixture(scope="module")
def scenes_model():
    """vgg-small width 8 at relu12 trained 6 epochs on 1000 synthetic scenes (10 classes, ≈ 0.58 train accuracy):
    a task whose loss is not saturated, so the masks have something to trade against."""
    from conftest import tiny_vgg

    from privbench.registry import DATASETS
    from privbench.training import fit_task

    torch.set_num_threads(1)
    load_components()
    scenes = DATASETS.create("synth-scenes", subset="train", n=1000, size=32).load()
    model = tiny_vgg(0, "relu12", classes=10)
    for p in model.parameters():
        p.requires_grad_(True)
    fit_task(model, scenes.images, scenes.labels["label"], epochs=6, lr=3e-3, batch_size=32,
             device=torch.device("cpu"), seed=0)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    yield model, scenes
    torch.set_num_threads(THREADS)


def test_the_task_gradient_moves_the_masks_only_with_frozen_batchnorm_statistics(scenes_model, monkeypatch):
    """In train mode the next BatchNorm normalizes a layer's common mask scale away: the task loss is invariant to it
    and its gradient is orthogonal to the mask vector, so only the penalties move the masks. With the statistics
    frozen (the mode Algorithm 1 trains in) the task gradient has a component along the masks."""
    from privbench.defenses import pruning

    model, scenes = scenes_model
    x, y = scenes.floats()[:256], scenes.labels["label"][:256]
    cosine = torch.nn.functional.cosine_similarity

    def cosines() -> list[float]:
        return [float(cosine(g, m, dim=0)) for m, g in pruning.mask_task_gradients(model, "relu22", x, y).values()]

    frozen = cosines()
    # the same gradients with every module, BatchNorms included, in train mode
    monkeypatch.setattr(pruning, "algorithm_mode", lambda front, back: (front.train(), back.train()))
    plain = cosines()
    assert max(abs(c) for c in plain) < 1e-3, plain
    assert min(abs(c) for c in frozen) > 0.05, frozen


def test_the_kept_channels_depend_on_the_task_not_on_the_seed(scenes_model):
    """Two fits at different seeds rank the channels alike (the masks' rank correlation), a dead channel (constant 0
    output) is not held up by the task — only the penalties shrink its mask, below most of its layer — and under a
    budget it is among the first removed."""
    from scipy.stats import spearmanr

    model, scenes = scenes_model
    model = copy.deepcopy(model)
    dead = (3, 9)
    with torch.no_grad():
        front = model.recut("relu22").front
        for c in dead:
            front.conv21.weight[c] = 0
            front.bn21.weight[c] = 0
            front.bn21.bias[c] = 0
            front.bn21.running_mean[c] = 0
    context = {seed: FitContext(model=model, train=scenes, device=torch.device("cpu"), seed=seed) for seed in (0, 1)}
    masks = {}
    for seed in (0, 1):
        defense = DEFENSES.create("pruning", split="relu22", edge_ratio=0, epochs=3, epochs_finetune=0)
        masks[seed] = defense.fit(context[seed])["masks"]
    every = {seed: torch.cat(list(masks[seed].values())) for seed in (0, 1)}
    # measured: 0.91 (train-mode BatchNorms, the masks moved by the penalties and noise: 0.60)
    assert spearmanr(every[0], every[1]).statistic > 0.75
    for seed in (0, 1):
        layer = masks[seed]["conv21"]
        assert all(layer[c] < layer.median() for c in dead), layer
    budgeted = DEFENSES.create("pruning", split="relu22", edge_params=3000, epochs=3, epochs_finetune=0)
    kept = budgeted.fit(context[0])["kept"]
    assert len(kept["conv21"]) < 16 and not set(dead) & set(kept["conv21"]), kept


def test_fista_restarts_its_momentum_when_the_step_turns_back():
    """Adaptive restart (O'Donoghue & Candès 2015): on an ill-conditioned quadratic plain FISTA's momentum makes the
    iterates oscillate around the minimum (its objective falls as 1/k²); resetting the momentum when a step points
    against it gives linear convergence (measured: 1e-5 vs 2e-16 after 200 steps)."""
    curvature = torch.tensor([1.0, 0.01])

    def run(restart: bool) -> tuple[float, int]:
        x = nn.Parameter(torch.tensor([5.0, -3.0]))
        optimizer = FISTA([x], lr=0.5, l1=0.0, l2=0.0, restart=restart)
        for _ in range(200):
            optimizer.zero_grad()
            (0.5 * (curvature * x.square()).sum()).backward()
            optimizer.step()
        optimizer.finish()
        return float(0.5 * (curvature * x.detach().square()).sum()), optimizer.restarts

    (plain, plain_restarts), (restarted, restarts) = run(False), run(True)
    assert plain_restarts == 0 and restarts > 0
    assert restarted < plain * 1e-6
