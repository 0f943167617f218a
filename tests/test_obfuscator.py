"""The adversarial obfuscator of paper 004 (De Coninck et al.): parameters, the fit → state → load_state →
apply lifecycle, the defended pipeline's input stage, training without any sensitive label, and what the
adversarial term does."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from privbench.cache import Cache
from privbench.components import load_components
from privbench.data.base import ImageSet
from privbench.defenses.base import FitContext
from privbench.defenses.obfuscator import MobileNetAutoencoder, Obfuscator, ObfuscatorStage
from privbench.errors import PrivbenchError
from privbench.registry import DATASETS, DEFENSES, MODELS
from privbench.split import SplitModel
from privbench.training import fit_task

CPU = torch.device("cpu")
#: a fit of a few seconds on 200 images: one warm-start epoch, one adversarial epoch, narrow networks
TINY = {"epochs_warm": 1, "epochs": 1, "width": 8, "deobfuscator_width": 8, "blocks": 2}


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> tuple[SplitModel, ImageSet]:
    """A frozen vgg-small (width 8, 4 classes, 32×32) trained briefly on 200 synthetic scenes, and that set."""
    load_components()
    train = DATASETS.create("synth-scenes", subset="train", n=200, size=32, classes=4).load(
        Cache(tmp_path_factory.mktemp("cache")))
    spec = MODELS.create("vgg-small", width=8)
    torch.manual_seed(0)
    network = spec.build(4, (3, 32, 32))
    fit_task(network, train.images, train.labels["label"], epochs=20, lr=1e-3, batch_size=16, device=CPU,
                   seed=0)
    for p in network.parameters():
        p.requires_grad_(False)
    model = spec.split_model(network, "relu22", 4, (3, 32, 32))
    accuracy = (model.predict(train.floats()).argmax(1) == train.labels["label"]).float().mean().item()
    assert accuracy > 0.5, f"the tiny task model did not train (accuracy {accuracy:.2f} on its training set)"
    return model, train


def fitted(model: SplitModel, train: ImageSet, seed: int = 0, **params) -> Obfuscator:
    defense = Obfuscator(**{**TINY, **params})
    defense.load_state(defense.fit(FitContext(model=model, train=train, device=CPU, seed=seed)))
    return defense


# ---- parameters ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, bad", [({"width": 2}, "width"), ({"blocks": 0}, "blocks"),
                                         ({"deobfuscator_width": 0}, "deobfuscator_width"),
                                         ({"alpha_rec": -1}, "alpha_rec"), ({"alpha_task": -0.5}, "alpha_task"),
                                         ({"epochs": 0}, "epochs"), ({"epochs_warm": -1}, "epochs_warm"),
                                         ({"lr": 0}, "lr"), ({"weight_decay": 2}, "weight_decay"),
                                         ({"batch_size": "many"}, "batch_size"),
                                         ({"colour": 1}, "unknown parameter 'colour'")])
def test_obfuscator_parameters_are_validated(params, bad):
    load_components()
    with pytest.raises(PrivbenchError, match=bad):
        DEFENSES.create("obfuscator", **params)


def test_obfuscator_declares_its_strength_axis_and_is_never_the_identity():
    load_components()
    defense = DEFENSES.create("obfuscator")
    assert isinstance(defense, Obfuscator) and defense.trained
    assert defense.strength_param == "alpha_rec" and defense.strength == 1.0
    assert not defense.is_identity() and not Obfuscator(alpha_rec=0.0).is_identity()
    assert defense.transforms_input  # the engine scores x′ = O(x) itself


# ---- the networks and the defended pipeline ---------------------------------------------------------------
@pytest.mark.parametrize("size", [(32, 32), (31, 29)])
def test_mobilenet_autoencoder_maps_an_image_to_an_image_of_the_same_size_in_the_unit_range(size):
    torch.manual_seed(0)
    net = MobileNetAutoencoder(8, 3).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    depthwise = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 3 and all(m.groups == m.in_channels == m.out_channels for m in depthwise)


def test_obfuscator_is_the_input_stage_of_the_defended_pipeline(task):
    model, train = task
    defense = Obfuscator(**TINY)
    with pytest.raises(PrivbenchError, match="fit it"):
        defense.apply(model)
    defense = fitted(model, train)
    defended = defense.apply(model)
    assert isinstance(defended.input_stage, ObfuscatorStage) and defended.input_stage.label == "obfuscator"
    assert defended.front.defense is defended.input_stage and defended.front.front is model.front
    assert defended.back is model.back
    x = train.floats()[:8]
    obfuscated = defended.defended_input(x)
    assert obfuscated.shape == x.shape and float(obfuscated.min()) >= 0.0 and float(obfuscated.max()) <= 1.0
    assert not torch.equal(obfuscated, x)
    with torch.no_grad():  # the task network runs on O(x), unchanged
        assert torch.allclose(defended(x), model(obfuscated), atol=1e-5)
    assert not any(p.requires_grad for p in defended.parameters())


# ---- lifecycle -------------------------------------------------------------------------------------------
def test_fit_leaves_the_task_network_frozen_and_the_state_round_trips_through_a_file(task, tmp_path):
    model, train = task
    before = {k: v.clone() for k, v in model.state_dict().items()}
    defense = fitted(model, train)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    state = defense.state
    assert set(state) == {"obfuscator"}  # the deobfuscator is discarded after training (paper 004 §4)
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in state["obfuscator"].values())
    path = tmp_path / "obfuscator.pt"
    torch.save(state, path)
    fresh = Obfuscator(**TINY)
    fresh.load_state(torch.load(path, weights_only=True))
    x = train.floats()[:16]
    first, second = defense.apply(model), fresh.apply(model)
    assert torch.equal(first.defended_input(x), second.defended_input(x))
    assert torch.equal(first.predict(x), second.predict(x))


def test_a_state_that_does_not_fit_the_parameters_is_refused_clearly(task):
    model, train = task
    state = fitted(model, train).state
    for params, bad_state in [({"width": 16}, state), ({}, {"encoder": state["obfuscator"]}), ({}, {})]:
        other = Obfuscator(**{**TINY, **params})
        other.load_state(bad_state)
        with pytest.raises(PrivbenchError, match="the state does not fit"):
            other.apply(model)


def test_fit_is_deterministic_for_a_seed(task):
    model, train = task
    x = train.floats()[:8]
    outputs = [fitted(model, train, seed=3).apply(model).defended_input(x) for _ in range(2)]
    assert torch.equal(*outputs)


# ---- no sensitive label is used in training (the point of paper 004) ----------------------------------------
SENSITIVE = ("identity", "plate", "attributes")


class GuardedLabels(dict):
    """Label fields where reading a sensitive one — by key, by ``get``, or by any iteration over all fields —
    fails the test; records which fields were read."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def _guard(self, key) -> None:
        if key in SENSITIVE:
            raise AssertionError(f"the fit read the sensitive label field {key!r}")
        self.read.add(key)

    def __getitem__(self, key):
        self._guard(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._guard(key)
        return super().get(key, default)

    def __contains__(self, key) -> bool:
        self._guard(key)
        return super().__contains__(key)

    def _everything(self, *_args, **_kwargs):
        raise AssertionError("the fit iterated over every label field, sensitive ones included")

    __iter__ = keys = values = items = copy = pop = popitem = setdefault = __reduce__ = __reduce_ex__ = _everything

    def __repr__(self) -> str:
        return "GuardedLabels(...)"


def test_fit_reads_the_task_label_only_never_identity_plate_or_attributes(task):
    model, train = task
    n = len(train)
    guarded = ImageSet("guarded", train.images, {
        "label": train.labels["label"], "identity": torch.arange(n), "plate": [f"AB{i:04d}" for i in range(n)],
        "attributes": torch.randint(0, 2, (n, 5)),
    }, dict(train.meta))
    guarded.labels = GuardedLabels(guarded.labels)  # after __post_init__, which checks every field's length
    with pytest.raises(AssertionError, match="sensitive"):  # the guard does catch a read
        guarded.labels["identity"]
    with pytest.raises(AssertionError, match="every label field"):
        list(guarded.labels.items())
    guarded.labels.read.clear()
    defense = Obfuscator(**TINY)
    state = defense.fit(FitContext(model=model, train=guarded, device=CPU, seed=0))
    assert set(state) == {"obfuscator"}
    assert guarded.labels.read == {"label"}


# ---- behaviour ---------------------------------------------------------------------------------------------
def reconstruction_error(obfuscated: torch.Tensor, original: torch.Tensor, seed: int) -> float:
    """Held-out MSE of a fresh decoder (the deobfuscator's family) trained on (O(x), x) pairs."""
    torch.manual_seed(seed)
    decoder = MobileNetAutoencoder(16, 2)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    half = len(original) // 2
    generator = torch.Generator().manual_seed(seed)
    for _ in range(20):
        for idx in torch.randperm(half, generator=generator).split(16):
            loss = F.mse_loss(decoder(obfuscated[idx]), original[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    decoder.eval()
    with torch.no_grad():
        return F.mse_loss(decoder(obfuscated[half:]), original[half:]).item()


@pytest.mark.slow
def test_a_strong_adversarial_term_makes_the_obfuscated_images_harder_to_reconstruct(task, tmp_path):
    """α_rec = 100 vs 0, same seed and schedule (~390 steps): a fresh decoder's held-out MSE on O(x) of unseen
    images. Measured ratios over seeds 0–4: 1.84, 2.09, 1.68, 1.47, 1.28 (MSE 0.015–0.020 → 0.021–0.033).
    At α_rec = 1 there is no effect at this scale (ratios 0.97–1.04 after 15 epochs; see the module docstring
    of privbench.defenses.obfuscator), nor with α_rec = 100 after half the steps (ratios 1.08–2.01)."""
    model, train = task
    held = DATASETS.create("synth-scenes", subset="test", n=200, size=32, classes=4).load(Cache(tmp_path)).floats()
    schedule = {"epochs": 30, "batch_size": 8, "deobfuscator_width": 16}
    errors = {}
    for alpha_rec in (0.0, 100.0):
        obfuscated = fitted(model, train, alpha_rec=alpha_rec, **schedule).apply(model).defended_input(held)
        errors[alpha_rec] = reconstruction_error(obfuscated, held, seed=0)
    assert errors[100.0] > 1.1 * errors[0.0], errors
