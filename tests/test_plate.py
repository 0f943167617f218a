"""plate / plate-char (paper 000 §V-B): CTC decoding, the built-in recognizer, LPRNet loading, adaptation."""

import pytest
import torch
from conftest import gaussian_blur  # noqa: I001
from torch import nn

from privbench.components import load_components
from privbench.errors import PrivbenchError
from privbench.metrics.base import PrivacyInputs
from privbench.recognizers.lpr import (
    LPRNET_CHARS,
    LPRNet,
    _ChannelStridePool,
    crop_plates,
    encode_texts,
    greedy_decode,
    load_lprnet,
    plate_scores,
)
from privbench.registry import DATASETS, METRICS

load_components()

BLUR_SIGMA = 1.5


@pytest.fixture(scope="module")
def plates(recognizer_context):
    """The default run's plate probes at 32 px: 60 plates of 5 characters."""
    return DATASETS.create("synth-plates", subset="test", n=60, length=5, size=32).load(recognizer_context.cache)


def score(name, plates, recon, context, **params):
    return METRICS.create(name, **params).score(PrivacyInputs(plates.floats(), recon, plates), context)


def test_greedy_decoding_collapses_repeats_and_drops_blanks():
    blank = 4
    path = torch.tensor([[1, 1, 4, 1, 2, 2, 4, 4, 3, 4]])  # "1 1 - 1 2 2 - - 3 -" -> 1 1 2 3
    logits = torch.nn.functional.one_hot(path, 5).permute(0, 2, 1).float()
    decoded = greedy_decode(logits, blank)
    assert decoded[0, :4].tolist() == [1, 1, 2, 3] and (decoded[0, 4:] == -1).all()
    exact, chars = plate_scores(decoded, torch.tensor([[1, 1, 2, 3], [1, 1, 2, 0]])[:1])
    assert exact.tolist() == [True] and chars.tolist() == [1.0]
    exact, chars = plate_scores(decoded, torch.tensor([[1, 1, 2, 0]]))
    assert exact.tolist() == [False] and chars.tolist() == [0.75]


def test_unknown_characters_never_match():
    assert encode_texts(["AB?"], "AB", 3).tolist() == [[0, 1, -2]]


def test_crops_are_lprnet_sized(plates):
    crops = crop_plates(plates.floats()[:5], plates.labels["bbox"][:5])
    assert crops.shape == (5, 3, 24, 94)


def test_builtin_recognizer_reads_clean_plates_not_noise_nor_blur(plates, recognizer_context):
    x = plates.floats()
    clean = score("plate", plates, x, recognizer_context)
    assert clean.value >= 0.9 and clean.n == 60 and clean.ci_method.startswith("wilson")
    assert score("plate-char", plates, x, recognizer_context).value >= 0.95
    noise = score("plate", plates, torch.rand(x.shape, generator=torch.Generator().manual_seed(0)),
                  recognizer_context)
    assert noise.value <= 0.02
    blurred = score("plate", plates, gaussian_blur(x, BLUR_SIGMA), recognizer_context)
    assert clean.value - blurred.value >= 0.30


def test_adapt_fine_tunes_on_one_half_and_scores_the_other(plates, recognizer_context):
    recon = gaussian_blur(plates.floats(), 0.75)
    before = score("plate-char", plates, recon, recognizer_context)
    adapted = score("plate-char", plates, recon, recognizer_context, adapt=20)
    assert adapted.n == 30 and before.n == 60
    assert adapted.value > before.value  # the stronger adversary of paper 000 §V-B reads more
    assert score("plate", plates, recon, recognizer_context, adapt=20).n == 30  # the adaptation is cached


def test_lprnet_port_matches_the_published_layer_layout(tmp_path):
    network = LPRNet()
    out = network.eval()(torch.rand(2, 3, 24, 94))
    assert out.shape == (2, len(LPRNET_CHARS), 18)
    keys = set(network.state_dict())
    for key in ("backbone.0.weight", "backbone.4.block.6.weight", "backbone.8.block.0.weight",
                "backbone.11.block.2.weight", "backbone.16.weight", "backbone.20.weight", "backbone.21.running_mean",
                "container.0.weight"):
        assert key in keys, key
    # the channel-strided pool equals the original MaxPool3d applied to one image
    x = torch.rand(1, 128, 20, 90)
    original = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(2, 1, 2))(x)
    assert torch.equal(_ChannelStridePool(2)(x), original)
    # a state dict saved to a file loads through privbench's path
    state = {f"module.{k}": v for k, v in network.state_dict().items()}  # DataParallel prefix is accepted
    torch.save(state, tmp_path / "lprnet.pth")
    loaded = load_lprnet(tmp_path / "lprnet.pth")
    assert torch.allclose(loaded(torch.ones(1, 3, 24, 94)), network(torch.ones(1, 3, 24, 94)))
    with pytest.raises(PrivbenchError, match="not an LPRNet state dict"):
        torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pth")
        load_lprnet(tmp_path / "bad.pth")
    with pytest.raises(PrivbenchError, match="LPRNet weights not found"):
        METRICS.create("plate", weights=str(tmp_path / "missing.pth"))


def test_pretrained_weights_score_through_the_metric(tmp_path, plates, recognizer_context):
    torch.save(LPRNet().state_dict(), tmp_path / "lprnet.pth")
    s = score("plate", plates, plates.floats(), recognizer_context, weights=str(tmp_path / "lprnet.pth"))
    assert s.n == 60 and s.value == 0.0  # random weights and a Chinese-plate alphabet read nothing
