"""The coding stage: clip / quantize / tile round trips, bits, the straight-through gradient, and coded pipelines
in the engine (rate rows, the codec columns, input coding)."""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pytest
import torch
from conftest import SMALL, cli, tiny_vgg
from PIL import Image

from privbench.cache import Cache
from privbench.codecs.stage import CodecStage, codec_stages, with_codec
from privbench.codecs.tiling import ClipRange, FeatureStats, dequantize, grid_shape, quantize, tile, untile
from privbench.components import load_components
from privbench.config import load_config
from privbench.engine.inputs import inputs_for
from privbench.engine.settings import check_inputs, crossed_with_codecs, defense_settings
from privbench.errors import PrivbenchError
from privbench.registry import CODECS, DEFENSES
from privbench.setting import Setting
from privbench.sweep import run_benchmark

load_components()


@pytest.mark.parametrize(("channels", "shape"), [(64, (8, 8)), (192, (12, 16)), (8, (2, 4)), (2, (1, 2)),
                                                 (1, (1, 1)), (7, (3, 3)), (5, (2, 3)), (12, (3, 4))])
def test_grid_is_near_square(channels, shape):
    assert grid_shape(channels) == shape


@pytest.mark.parametrize("channels", [1, 2, 5, 7, 8, 12])
def test_tile_then_untile_is_the_identity(channels):
    levels = torch.randint(0, 256, (3, channels, 5, 6), dtype=torch.uint8)
    frames = tile(levels)
    rows, cols = grid_shape(channels)
    assert frames.shape == (3, rows * 5, cols * 6)
    # row-major: channel k sits at tile (k // cols, k % cols)
    k = channels - 1
    r, c = divmod(k, cols)
    assert torch.equal(frames[1, r * 5:(r + 1) * 5, c * 6:(c + 1) * 6], levels[1, k])
    assert torch.equal(untile(frames, channels), levels)


def test_quantization_error_is_at_most_half_a_step():
    clip = ClipRange(-0.5, 3.0)
    x = torch.linspace(-2, 5, 10_000).view(1, 1, 100, 100)
    back = dequantize(quantize(x, clip), clip)
    clipped = x.clamp(clip.low, clip.high)
    assert float((back - clipped).abs().max()) <= clip.step / 2 + 1e-6
    assert float(back.min()) == pytest.approx(-0.5) and float(back.max()) == pytest.approx(3.0)


def test_sigma_range_is_intersected_with_the_observed_range():
    relu = torch.relu(torch.randn(10_000, generator=torch.Generator().manual_seed(0)))
    stats = FeatureStats.of(relu)
    clip = stats.sigma_range(6.0)
    assert clip.low == pytest.approx(0.0)  # not mean − 6σ < 0: a ReLU never goes there
    assert clip.high == pytest.approx(stats.mean + 6 * stats.std) and clip.high < float(relu.max())  # far tail cut
    uniform = FeatureStats.of(torch.rand(10_000, generator=torch.Generator().manual_seed(1)))
    assert uniform.sigma_range(6.0) == ClipRange(uniform.min, uniform.max, uniform.sigma_range(6.0).how)
    with pytest.raises(PrivbenchError, match="NaN"):
        FeatureStats.of(torch.tensor([0.0, float("nan")]))
    with pytest.raises(PrivbenchError, match="empty"):
        FeatureStats.of(torch.zeros(10)).sigma_range(6.0)


def test_lossless_feature_coding_round_trip_is_bounded_by_the_quantization_step():
    clip = ClipRange(0.0, 2.0)
    stage = CodecStage(CODECS.create("png"), clip)
    z = torch.rand(4, 8, 9, 7) * 2.5  # some values above the range: they are clipped
    with stage.counting() as tally:
        decoded = stage(z)
    assert decoded.shape == z.shape
    assert float((decoded - z.clamp(0, 2)).abs().max()) <= clip.step / 2 + 1e-6
    # bits are the real PNG files' lengths
    frames = tile(quantize(z, clip)).numpy()
    expected = 0
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG", compress_level=6)
        expected += 8 * len(buffer.getvalue())
    assert tally.bits == expected and tally.frames == 4
    assert tally.encode_seconds > 0 and tally.decode_seconds > 0
    assert stage.tally is None  # closed


def test_lossless_input_coding_is_exact_on_8_bit_images():
    stage = CodecStage(CODECS.create("png", placement="input"), None)
    images = torch.randint(0, 256, (3, 3, 16, 12), dtype=torch.uint8).float() / 255
    assert torch.equal(stage(images), images)
    with pytest.raises(PrivbenchError, match="RGB"):
        stage(torch.rand(2, 8, 4, 4))


def test_straight_through_gradient_is_that_of_the_clipping():
    stage = CodecStage(CODECS.create("png"), ClipRange(0.0, 1.0))
    z = torch.tensor([[[[-0.5, 0.25], [0.5, 1.5]]]], requires_grad=True)
    out = stage(z)
    assert torch.allclose(out.detach(), dequantize(quantize(z.detach(), ClipRange(0.0, 1.0)), ClipRange(0.0, 1.0)))
    out.sum().backward()
    assert z.grad.flatten().tolist() == [0.0, 1.0, 1.0, 0.0]
    assert not stage.differentiable and stage.approximation == "straight-through"


def test_coded_pipeline_places_the_stage_and_refuses_input_coding_after_a_feature_defense():
    model = tiny_vgg().eval()
    coded = with_codec(model, model, CodecStage(CODECS.create("png"), ClipRange(0.0, 4.0)))
    assert len(codec_stages(coded)) == 1 and coded.split == model.split
    assert coded.feature_shape() == model.feature_shape()
    coded_input = with_codec(model, model, CodecStage(CODECS.create("png", placement="input"), None))
    assert coded_input.split == "input" and coded_input.feature_shape() == model.input_shape
    x = torch.rand(2, *model.input_shape)
    x8 = (x * 255).round() / 255
    assert torch.allclose(coded_input(x8), model(x8), atol=1e-5)  # lossless: the cloud sees the same image
    noisy = DEFENSES.create("noise", scale=1.0, placement="features").apply(model)
    with pytest.raises(PrivbenchError, match="input coding"):
        with_codec(noisy, model, CodecStage(CODECS.create("png", placement="input"), None))
    setting = Setting(DEFENSES.create("noise", scale=1.0), CODECS.create("png", placement="input"))
    with pytest.raises(PrivbenchError, match="cannot run before it"):
        setting.check()
    Setting(DEFENSES.create("blur", sigma=1.0), CODECS.create("png", placement="input")).check()


def codec_config(codecs, defenses=None) -> dict:
    data = copy.deepcopy(SMALL)
    data.update(name="coded", model={**SMALL["model"], "epochs": 1},
                task={"train": {"name": "synth-scenes", "params": {"subset": "train", "n": 96, "size": 32}},
                      "test": {"name": "synth-scenes", "params": {"subset": "test", "n": 24, "size": 32}}},
                attacker_data=[{"name": "synth-faces", "params": {"subset": "attacker", "identities": 16,
                                                                  "per_identity": 2, "size": 32}}],
                probes=[{"name": "synth-faces", "params": {"subset": "test", "identities": 4, "per_identity": 2,
                                                           "size": 32}}],
                defenses=defenses or [{"name": "noise", "params": {"placement": "features"}, "strengths": [0.0]}],
                attacks=[{"name": "inverse-net", "params": {"epochs": 1}}],
                metrics=["psnr", "accuracy"], codecs=codecs)
    return data


@pytest.mark.parametrize(("codecs", "message"), [
    ([{"name": "nope"}], "unknown codec 'nope'"),
    ([{"name": "png", "qualities": [11]}], "parameter 'quality' must be <= 9"),
    ([{"name": "png", "qualities": [1, 1]}], "lists 1 twice"),
    ([{"name": "png", "defenses": ["dropout"]}], "not among the config's defenses"),
    ([{"name": "png", "params": {"clip_min": 1.0}}], "give both clip_min and clip_max"),
    ([{"name": "png", "params": {"clip_min": 1.0, "clip_max": 0.0}}], "must be below"),
    ([{"name": "none", "qualities": [1]}], "takes no params"),
    ([], "'codecs' must be a non-empty list"),
])
def test_bad_codec_entries_are_one_clear_line(codecs, message):
    with pytest.raises(PrivbenchError, match=message):
        load_config(None, codec_config(codecs))


def test_settings_cross_defenses_with_the_codec_entries_that_apply(tmp_path):
    data = codec_config([{"name": "none"}, {"name": "png", "qualities": [1, 9], "defenses": ["dropout"]},
                         {"name": "png", "params": {"placement": "input"}, "qualities": [6]}],
                        defenses=[{"name": "noise", "strengths": [0.0]}, {"name": "dropout", "strengths": [0.5]}])
    inputs = inputs_for(load_config(None, data), Cache(tmp_path))
    labels = [s.label for s, _ in crossed_with_codecs(inputs, defense_settings(inputs))]
    assert labels == ["noise=0", "noise=0 png@input quality=6", "dropout=0.5", "dropout=0.5 png@features quality=1",
                      "dropout=0.5 png@features quality=9", "dropout=0.5 png@input quality=6"]
    with pytest.raises(PrivbenchError, match="cannot run before it"):
        check_inputs(inputs)  # dropout at the features cannot run before input coding


def test_a_coded_run_writes_rate_rows_and_codec_columns(tmp_path):
    data = codec_config([{"name": "none"}, {"name": "png", "qualities": [1, 9]},
                         {"name": "png", "params": {"placement": "input"}, "qualities": [6]},
                         {"name": "jpeg", "qualities": [90, 50, 10]}])
    config = load_config(None, data)
    frame = run_benchmark(config, Cache(tmp_path / "cache"), progress=False).frame
    jpeg = frame[(frame["codec"] == "jpeg") & (frame["metric"] == "bpp")]
    for dataset, part in jpeg.groupby("dataset"):  # bpp falls as the quality falls, on every dataset coded
        assert part.sort_values("quality")["value"].is_monotonic_increasing and len(part) == 3, dataset
    full, frame = frame, frame[frame["codec"] != "jpeg"]
    coded = frame[frame["codec"] == "png"]
    assert set(frame["codec"]) == {"none", "png"}
    rate = coded[coded["kind"] == "rate"]
    assert set(rate["metric"]) == {"bpp"} and set(rate["dataset"]) == {"synth-scenes", "synth-faces"}
    features = rate[rate["codec_params"].map(lambda p: json.loads(p)["placement"]) == "features"]
    by_level = features[features["dataset"] == "synth-scenes"].set_index("quality")["value"]
    assert by_level[9.0] < by_level[1.0]  # zlib level 9 codes the same frames in fewer bits
    assert (rate["value"] > 0).all()
    # lossless coding: the utility of a png-coded pipeline equals the uncoded one up to 8-bit quantization
    util = frame[frame["metric"] == "accuracy"]
    uncoded = float(util[util["codec"] == "none"]["value"].iloc[0])
    assert util[util["codec"] == "png"]["value"].sub(uncoded).abs().max() <= 0.1
    input_coded = frame[(frame["split"] == "input")]
    assert not input_coded.empty and set(input_coded["codec"]) == {"png"}
    # the decoded image itself is scored (kind=input): lossless 8-bit coding gives infinite PSNR → capped/large
    seen = input_coded[(input_coded["kind"] == "input") & (input_coded["metric"] == "psnr")]
    assert not seen.empty and (seen["value"] > 60).all()
    # ... and, since it crosses the network, it is also the "intercepted" attack, which enters the worst case
    intercepted = input_coded[(input_coded["attack"] == "intercepted") & (input_coded["metric"] == "psnr")]
    worst = input_coded[(input_coded["attack"] == "worst") & (input_coded["metric"] == "psnr")]
    assert len(intercepted) == 1 and intercepted["kind"].iloc[0] == "privacy"
    assert float(worst["value"].iloc[0]) == float(intercepted["value"].iloc[0])
    assert (frame[frame["attack"] == "intercepted"]["split"] == "input").all()
    cost = coded[coded["metric"].isin(["codec-encode-ms", "codec-decode-ms"])]
    assert len(cost) == 6 and (cost["value"] > 0).all()
    # a warm rerun recomputes nothing and gives the same table
    again = run_benchmark(config, Cache(tmp_path / "cache"), progress=False).frame
    assert again.drop(columns=["seconds"]).equals(full.drop(columns=["seconds"]))
    assert np.isfinite(frame[frame["kind"].isin(["rate", "utility"])]["value"]).all()


@pytest.mark.parametrize(("args", "message"), [
    (["--codec", "nope"], "unknown codec 'nope'"),
    (["--codec", "jpeg", "--quality", "300"], "parameter 'quality' must be <= 95"),
    (["--codec", "vvc", "--codec-param", "encoder=/nonexistent/vvencFFapp"], "/nonexistent/vvencFFapp"),
    (["--codec", "vvc"], "needs encoder=PATH"),
    (["--quality", "3"], "need --codec NAME"),
])
def test_codec_errors_on_the_command_line_are_one_line(capsys, tmp_path, args, message):
    code, out, err = cli(capsys, "attack", "--defense", "none", "--attack", "inverse-net", *args,
                         "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "cache" / "task-model").exists()  # refused before any training


def test_the_codec_build_is_part_of_the_cache_identity(monkeypatch):
    codec = CODECS.create("jpeg", quality=50)
    setting = Setting(DEFENSES.create("none"), codec)
    assert "Pillow" in setting.spec()["codec"]["version"]
    before = setting.spec()
    monkeypatch.setattr(type(codec), "version", lambda self: "another libjpeg")
    assert setting.spec() != before  # results coded by another build are recomputed, never reused


def test_the_gate_knows_which_way_rate_and_diagnostics_get_worse():
    from privbench.regress import worse_direction

    assert worse_direction("bpp", "rate") == 1  # more bits for the same pipeline is a regression
    assert worse_direction("aux-acc", "input") == 1  # a defense's diagnostic of x′: higher reveals more
    with pytest.raises(PrivbenchError, match="not registered"):
        worse_direction("aux-acc", "privacy")
