"""Trained defenses: the fit → state → load_state → apply lifecycle, the autoencoder of paper 000, saved
defense files, the shared training loop and losses, and the layering rules the engine relies on."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from conftest import reduced, tiny_vgg, write_config
from torch import nn

from privbench.cache import Cache
from privbench.cli import main
from privbench.components import load_components
from privbench.config import load_config
from privbench.defenses.autoencoder import Autoencoder, BottleneckDecoder, BottleneckEncoder
from privbench.defenses.saved import read_defense
from privbench.engine.inputs import inputs_for
from privbench.engine.pipelines import defended_node, fit_node
from privbench.engine.settings import defense_settings
from privbench.errors import PrivbenchError
from privbench.losses import compressibility_loss, dct2, prediction_residual
from privbench.registry import DEFENSES
from privbench.split import SplitModel
from privbench.sweep import run_benchmark
from privbench.training import Update, train

ROOT = Path(__file__).resolve().parents[1]
QUICK_AE = {"epochs_ae": 1, "epochs_rec": 1, "epochs_adv": 1}


def tiny_config(**defense_params):
    data = reduced()
    data["defenses"] = [{"name": "autoencoder", "params": {**QUICK_AE, **defense_params}, "strengths": [0.0, 1.0]}]
    data["attacks"] = [{"name": "inverse-net", "params": {"epochs": 1}}]
    data["metrics"] = ["psnr", "accuracy"]
    return data


def split_model(split="relu12") -> SplitModel:
    return tiny_vgg(0, split)


# ---- parameters ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, bad", [({"bottleneck": 0}, "bottleneck"), ({"w_rec": -1}, "w_rec"),
                                         ({"recnet": "unet"}, "recnet"), ({"epochs_ae": 0}, "epochs_ae"),
                                         ({"colour": 1}, "unknown parameter 'colour'")])
def test_autoencoder_parameters_are_validated(params, bad):
    load_components()
    with pytest.raises(PrivbenchError, match=bad):
        DEFENSES.create("autoencoder", **params)


def test_autoencoder_refuses_a_flat_split_and_an_unfitted_apply():
    defense = Autoencoder()
    with pytest.raises(PrivbenchError, match="convolutional split"):
        defense.networks(split_model("fc1"))
    with pytest.raises(PrivbenchError, match="fit it"):
        defense.apply(split_model())


# ---- the defended pipeline -------------------------------------------------------------------------------
def test_bottleneck_replaces_front_and_back_and_crosses_with_fewer_channels():
    model = split_model()
    defense = Autoencoder(bottleneck=3)
    encoder, decoder = defense.networks(model)
    defense.load_state({"encoder": encoder.state_dict(), "decoder": decoder.state_dict()})
    defended = defense.apply(model)
    assert isinstance(defended.front.encoder, BottleneckEncoder)
    assert isinstance(defended.back.decoder, BottleneckDecoder)
    assert defended.front.front is model.front and defended.back.back is model.back
    assert defended.feature_shape() == (3, 32, 32) and model.feature_shape() == (8, 32, 32)
    x = torch.rand(2, 3, 32, 32)
    assert defended(x).shape == (2, 4)
    assert not any(p.requires_grad for p in defended.parameters())
    other = Autoencoder(bottleneck=5)  # a state fitted with 3 bottleneck channels does not fit 5
    other.load_state({"encoder": encoder.state_dict(), "decoder": decoder.state_dict()})
    with pytest.raises(PrivbenchError, match="does not fit"):
        other.apply(model)


def test_fit_trains_the_autoencoder_with_the_task_loss_and_leaves_the_task_network_frozen(tmp_path, monkeypatch):
    config = load_config(None, tiny_config())
    engine = inputs_for(config, Cache(tmp_path))
    model = engine.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []
    original = SplitModel.task_loss

    def counting(self, outputs, targets):
        calls.append(len(targets))
        return original(self, outputs, targets)

    monkeypatch.setattr(SplitModel, "task_loss", counting)
    defense = Autoencoder(**QUICK_AE)
    state = engine.graph.get(fit_node(engine, defense))
    assert calls, "the autoencoder's task term must come from SplitModel.task_loss"
    assert set(state) == {"encoder", "decoder"}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_non_adversarial_bottleneck_builds_no_recnet(tmp_path, monkeypatch):
    config = load_config(None, tiny_config())
    engine = inputs_for(config, Cache(tmp_path))
    built = []
    monkeypatch.setattr(Autoencoder, "recnet", lambda self, model: built.append(1) or nn.Identity())
    engine.graph.get(fit_node(engine, Autoencoder(w_rec=0.0, **QUICK_AE)))
    assert built == []


# ---- lifecycle: fitted once, cached, saved -----------------------------------------------------------------
def test_a_trained_defense_is_fitted_once_per_run_and_never_again_from_the_cache(tmp_path):
    config = load_config(None, tiny_config())
    cache = Cache(tmp_path)
    out = run_benchmark(config, cache, progress=False)
    # two settings (w_rec 0 and 1), each fitted once for utility, cost and the attack
    assert inputs_for(config, cache).graph.made["defense"] == 2
    warm = Cache(tmp_path)
    again = run_benchmark(config, warm, progress=False)
    assert inputs_for(config, warm).graph.made["defense"] == 0
    cols = ["defense", "strength", "attack", "metric", "value"]
    assert again.frame[cols].equals(out.frame[cols])
    cost = out.frame[out.frame["kind"] == "cost"]
    assert set(cost["metric"]) == {"edge-params", "edge-macs", "edge-latency-ms", "edge-images-per-s"}
    assert (cost["value"] > 0).all()


def test_saved_defense_round_trips_and_is_refused_for_another_task_model(tmp_path, capsys):
    cfg = write_config(tmp_path / "tiny.yaml", tiny_config())
    cache = tmp_path / "cache"
    saved = tmp_path / "ae.pt"
    args = ["defend", "--defense", "autoencoder", "--config", str(cfg), "--cache-dir", str(cache), "--save",
            str(saved)] + [f"--param={k}={v}" for k, v in QUICK_AE.items()]
    main(args)
    record = read_defense(saved)
    assert record.name == "autoencoder" and record.params["w_rec"] == 1.0

    config = load_config(cfg)
    engine = inputs_for(config, Cache(cache))
    fitted = Autoencoder(**QUICK_AE)
    expected = engine.graph.get(defended_node(engine, fitted))
    rebuilt = record.defense().apply(engine.model)
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(rebuilt.transmit(x), expected.transmit(x))
    assert torch.equal(rebuilt(x), expected(x))

    # the file is a config entry of its own, and the engine never refits it
    data = tiny_config()
    data["defenses"] = [{"file": str(saved)}]
    other = Cache(tmp_path / "other-cache")
    frame = run_benchmark(load_config(None, data), other, progress=False).frame
    assert inputs_for(load_config(None, data), other).graph.made["defense"] == 0 and set(frame["defense"]) == {"autoencoder"}

    data["seed"] = 1  # another task model
    with pytest.raises(PrivbenchError, match="fitted for another task model"):
        defense_settings(inputs_for(load_config(None, data), Cache(tmp_path / "other-cache")))
    (tmp_path / "broken.pt").write_bytes(b"not a torch file")
    data["defenses"] = [{"file": str(tmp_path / "broken.pt")}]
    with pytest.raises(PrivbenchError, match="not a privbench defense file"):
        load_config(None, data)


def test_defend_refuses_an_untrained_defense(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["defend", "--defense", "noise", "--save", "/tmp/never-written.pt"])
    assert exit_info.value.code == 2
    assert "nothing to fit" in capsys.readouterr().err
    assert not Path("/tmp/never-written.pt").exists()


# ---- training loop and losses ------------------------------------------------------------------------------
def test_train_writes_gradients_only_into_its_updates_parameters():
    torch.manual_seed(0)
    frozen_by_flag = nn.Linear(4, 4)
    untouched = nn.Linear(4, 1)  # requires grad, but not in the update
    learner = nn.Linear(4, 4)
    for p in frozen_by_flag.parameters():
        p.requires_grad_(False)
    data = torch.randn(40, 4)
    before = [p.clone() for p in untouched.parameters()]
    train(len(data), [Update(list(learner.parameters()), lambda idx: untouched(learner(frozen_by_flag(data[idx])))
                             .square().mean(), 1e-2)], epochs=2, batch_size=8, seed=0)
    assert all(p.grad is None for p in untouched.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, untouched.parameters(), strict=True))
    assert all(p.grad is not None for p in learner.parameters())


def test_dct_is_orthonormal_and_the_compressibility_loss_rewards_smooth_features():
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64).float()
    coefficients = dct2(x)
    assert torch.allclose(coefficients.square().sum(), x.square().sum(), rtol=1e-4)  # Parseval
    flat = torch.ones(1, 2, 8, 8) * 3.0
    assert compressibility_loss(flat).item() == 0.0  # a constant channel is predicted exactly
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8)
    assert torch.allclose(prediction_residual(ramp), torch.full((1, 1, 7, 7), 0.5))
    smooth = torch.nn.functional.avg_pool2d(torch.randn(1, 4, 18, 18), 3, stride=1)
    noisy = torch.randn(1, 4, 16, 16) * smooth.std()
    assert compressibility_loss(smooth) < 0.5 * compressibility_loss(noisy)
    with pytest.raises(PrivbenchError, match="N×C×H×W"):
        compressibility_loss(torch.randn(4, 10))
    assert math.isfinite(compressibility_loss(torch.randn(1, 1, 2, 2)).item())


# ---- layering (DESIGN §8): attacks and defenses never import each other; the registry imports neither -------
def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("folder, forbidden", [("attacks", "privbench.defenses"), ("defenses", "privbench.attacks")])
def test_attacks_and_defenses_never_import_each_other(folder, forbidden):
    for path in sorted((ROOT / folder).glob("*.py")):
        bad = [m for m in imported_modules(path) if m == forbidden or m.startswith(forbidden + ".")]
        assert not bad, f"{path.name} imports {bad}"


def test_the_registry_imports_no_component_package():
    components = ("privbench.attacks", "privbench.defenses", "privbench.metrics", "privbench.models",
                  "privbench.data")
    imported = imported_modules(ROOT / "privbench" / "registry.py")
    assert not [m for m in imported if m.startswith(components)]
