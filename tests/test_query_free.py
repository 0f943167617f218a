"""Query-free attacks (issue 15): FORA's distribution-matched substitute front against He et al.'s shadow.

Small but real: a vgg-small (width 8) task network trained on 2000 synth-scenes (10 epochs, blur-augmented, as
the attack table's), cut after its first convolution; the attacker holds 500 scenes of its own (unlabelled for
FORA) and the features the cloud intercepts from 500 victims' scenes; the probes are faces."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_vgg

from privbench.components import load_components
from privbench.distribution_matching import FeatureDiscriminator, mk_mmd, relative_feature_error
from privbench.errors import PrivbenchError
from privbench.registry import ATTACKS, DATASETS, METRICS
from privbench.threat import Access, attacker_view
from privbench.training import fit_task

load_components()
CPU = torch.device("cpu")


def build_setup(split: str, seed: int = 0):
    train = DATASETS.create("synth-scenes", subset="train", n=2000, size=32).build()
    model = tiny_vgg(seed, split, classes=10)
    for p in model.parameters():
        p.requires_grad_(True)
    fit_task(model, train.images, train.labels["label"], epochs=10, lr=3e-3, batch_size=32, device=CPU, seed=seed,
             augment_blur=2.0)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    own = DATASETS.create("synth-scenes", subset="attacker", n=500, size=32).build()
    victims = DATASETS.create("synth-scenes", subset="test", n=500, size=32).build().floats()
    faces = DATASETS.create("synth-faces", subset="attacker", identities=40, per_identity=2, size=32).build().floats()
    probes = DATASETS.create("synth-faces", subset="test", identities=8, per_identity=3, size=32).build().floats()
    data = torch.cat([own.floats(), faces])
    return model, own, victims, data, probes


@pytest.fixture(scope="module")
def setup():
    # relu11: the first convolution's output after its activation. At conv11 itself (before BatchNorm and ReLU)
    # the substitute reaches 0.79 relative error, and its reconstructions only tie the mean-image guess here
    # (14.85 vs 14.57 dB): see attacks/fora.py
    return build_setup("relu11")


def fitted(name, setup, seed=0, **params):
    model, own, victims, data, _ = setup
    attack = ATTACKS.create(name, **params)
    view = attacker_view(Access.QUERY_FREE, model, data, CPU, seed, task_data=own.floats(),
                         task_labels=own.labels["label"], intercepted=model.features(victims))
    torch.manual_seed(seed)
    attack.fit(view)
    return attack


def test_mk_mmd_is_zero_on_equal_samples_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 8, generator=g)
    b = torch.randn(64, 8, generator=g)
    assert mk_mmd(a, a).abs().item() < 1e-5
    same, shifted = mk_mmd(a, b).item(), mk_mmd(a, b + 1.0).item()
    assert shifted > 5 * same > 0, (same, shifted)
    with pytest.raises(ValueError, match="samples of shape"):
        mk_mmd(a, torch.randn(64, 9))


def test_feature_discriminator_scores_maps_and_vectors():
    assert FeatureDiscriminator((8, 32, 32))(torch.randn(5, 8, 32, 32)).shape == (5,)
    assert FeatureDiscriminator((16,))(torch.randn(5, 16)).shape == (5,)


#: FORA at its default budget, MK-MMD alone (no discriminator: 4× cheaper)
FORA = dict(alignment=1.0)


@pytest.fixture(scope="module")
def fora(setup):
    return fitted("fora", setup, 0, **FORA)


@pytest.fixture(scope="module")
def shadow(setup):
    """He et al.'s shadow (task loss through the back) at FORA's 200 epochs (its decoder stage is not scored)."""
    return fitted("shadow", setup, 0, epochs=200, lr=3e-3, then="inverse-net", decoder_epochs=1)


def test_distribution_matching_pins_the_substitute_closer_than_the_task_loss(setup, fora, shadow):
    """The substitute matched to the intercepted features' distribution (label-free) is closer to the real front
    than He et al.'s shadow trained on the task loss through the back (measured here: 0.37 vs 0.70 relative
    error at relu11; 0.79 vs 1.99 at conv11)."""
    model, _, _, _, probes = setup
    real = model.features(probes)
    matched_error = relative_feature_error(fora.shadow_query(probes), real)
    task_error = relative_feature_error(shadow.shadow_query(probes), real)
    assert matched_error < 0.75 * task_error, (matched_error, task_error)


def test_fora_is_no_worse_than_the_mean_image_and_reloads(setup, fora):
    """What the reconstructions show on this small network is weaker than the feature error: FORA beats the
    mean-image guess by +1.1 dB with the task model of seed 0 but only +0.2 dB with seed 1, and He et al.'s shadow
    lands 1.0 dB below the guess at seed 0 and 1.0 dB above it at seed 1 (measured on this machine). So only
    "no worse than the guess" is asserted, within 0.3 dB; README "Attacks × split depth" has the larger table."""
    model, _, _, data, probes = setup
    psnr = METRICS.create("psnr")
    features = model.features(probes)
    matched = psnr.per_image(probes, fora.reconstruct(features)).mean().item()
    guess = psnr.per_image(probes, data.mean(dim=0, keepdim=True).expand_as(probes)).mean().item()
    assert matched > guess - 0.3, (matched, guess)
    # the fitted substitute and decoder are cached through state() and reproduce the reconstruction
    reloaded = ATTACKS.create("fora", **FORA)
    reloaded.load_state(fora.view, fora.state())
    assert torch.equal(reloaded.reconstruct(features[:4]), fora.reconstruct(features[:4]))


def test_fora_needs_intercepted_features(setup):
    model, own, _, data, _ = setup
    view = attacker_view(Access.QUERY_FREE, model, data, CPU, 0, task_data=own.floats(), task_labels=None)
    with pytest.raises(PrivbenchError, match="intercepted features"):
        ATTACKS.create("fora", epochs=1).fit(view)


def test_fora_runs_in_the_engine_on_the_intercepted_traffic(tmp_path):
    """Through a benchmark run the query-free view carries the defended features of the task's test images
    (the victims' traffic); the fitted substitute is cached with them in its key."""
    from conftest import reduced

    from privbench.cache import Cache
    from privbench.config import load_config
    from privbench.engine.attack_rows import attacker_node, fitted_attack
    from privbench.engine.inputs import inputs_for
    from privbench.engine.pipelines import pipeline_node
    from privbench.grid import checked_settings
    from privbench.sweep import run_benchmark

    data = reduced(attacks=[{"name": "fora", "params": {"epochs": 2, "warmup_epochs": 1, "decoder_epochs": 1}}],
                   defenses=[{"name": "noise", "params": {"placement": "features"}, "strengths": [0.5]}],
                   metrics=["psnr"])
    data["attacker_data"] = data["attacker_data"] + [
        {"name": "synth-scenes", "params": {"subset": "attacker", "n": 64, "size": 32, "classes": 4}}]
    config = load_config(None, data)
    cache = Cache(tmp_path)
    frame = run_benchmark(config, cache, progress=False).frame
    rows = frame[(frame.attack == "fora") & (frame.metric == "psnr")]
    assert len(rows) == 1 and rows.value.notna().all()
    bench = inputs_for(config, Cache(tmp_path))  # a fresh process's view of the cache
    ((setting, _),) = checked_settings(bench)[0]
    defended = bench.graph.get(pipeline_node(bench, setting))
    # the run cached the fitted substitute: this loads it, with the same view
    attack = ATTACKS.create("fora", epochs=2, warmup_epochs=1, decoder_epochs=1)
    fitted = fitted_attack(bench.graph, attacker_node(bench, setting, attack))
    assert bench.graph.made["attacker"] == 0
    assert fitted.shadow is not None
    assert fitted.view.intercepted.shape == (len(bench.task_test.images), *defended.feature_shape())
    # the attacker never receives the victims' images, only their (noisy) features
    assert not torch.equal(fitted.view.intercepted, bench.model.features(bench.task_test.floats()))


def test_the_held_out_matching_loss_tells_the_image_polarity_apart():
    """FORA's choice among candidates uses only what the attacker holds: its own images, the traffic and the back.
    With the real front as a candidate, the held-out matching loss prefers it to the same front fed 1 − x (the
    inverted-image solution a substitute can settle in), and the chosen candidate survives the state round trip."""
    from privbench.attacks.fora import BackActivations, InvertedInput, matching_loss

    model = tiny_vgg(0, "relu12", classes=10)
    own = DATASETS.create("synth-scenes", subset="attacker", n=300, size=32).build().floats()
    victims = DATASETS.create("synth-scenes", subset="test", n=300, size=32).build().floats()
    with torch.no_grad():
        traffic = model.features(victims)
        probe = BackActivations(model.back, 2)
        right = matching_loss(model.front, probe, own, traffic)
        inverted = matching_loss(InvertedInput(model.front), probe, own, traffic)
    assert right < 0.8 * inverted, (right, inverted)


def test_a_fora_fit_that_keeps_the_inverted_candidate_reloads_it(setup):
    from privbench.attacks.fora import InvertedInput

    attack = fitted("fora", setup, epochs=1, warmup_epochs=1, decoder_epochs=1)
    assert len(attack.choice["scores"]) == 2  # g1(x) and g1(1 − x)
    if not isinstance(attack.shadow, InvertedInput):  # make it the inverted candidate, whichever the fit kept
        attack.shadow = InvertedInput(attack.shadow)
    state = attack.state()
    assert state["inverted_input"] and not any(k.startswith("inner.") for k in state["shadow"])
    model, own, victims, data, probes = setup
    fresh = ATTACKS.create("fora", epochs=1, warmup_epochs=1, decoder_epochs=1)
    view = attacker_view(Access.QUERY_FREE, model, data, CPU, 0, task_data=own.floats(),
                         task_labels=own.labels["label"], intercepted=model.features(victims))
    fresh.load_state(view, state)
    assert torch.equal(fresh.shadow_query(probes[:4]), attack.shadow_query(probes[:4]))
