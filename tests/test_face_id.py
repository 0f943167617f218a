"""face-id (paper 000 §V-A): protocol, built-in embedder on clean / noise / blurred probes, facenet loading."""

import pytest
import torch
from conftest import gaussian_blur

from privbench.components import load_components
from privbench.errors import PrivbenchError
from privbench.metrics.base import MetricUnavailable, PrivacyInputs
from privbench.metrics.identity import gallery_probe_split, rank_k_hits
from privbench.registry import DATASETS, METRICS

load_components()

#: blur of the "identity is detail-borne" check, in pixels of the 32-px probe images
BLUR_SIGMA = 1.5


@pytest.fixture(scope="module")
def faces(recognizer_context):
    """The default run's face probes at 32 px: 20 test identities × 3 images (chance = 1/20)."""
    return DATASETS.create("synth-faces", subset="test", identities=20, per_identity=3, size=32).load(
        recognizer_context.cache)


def score(metric, faces, recon, context):
    return metric.score(PrivacyInputs(faces.floats(), recon, faces), context)


def test_gallery_split_follows_the_protocol():
    ids = torch.tensor([7, 7, 3, 9, 3, 3, 5])  # 9 and 5 have one image: not used
    gallery, probes = gallery_probe_split(ids)
    assert gallery.tolist() == [0, 2]
    assert probes.tolist() == [1, 4, 5]


def test_rank_k_counts_a_hit_within_the_k_nearest():
    gallery = torch.eye(3)
    probes = torch.tensor([[0.9, 0.5, 0.0], [0.0, 0.2, 0.9]])
    ids = torch.tensor([10, 11, 12])
    assert rank_k_hits(probes, gallery, torch.tensor([11, 12]), ids, 1).tolist() == [False, True]
    assert rank_k_hits(probes, gallery, torch.tensor([11, 12]), ids, 2).tolist() == [True, True]


def test_builtin_embedder_identifies_clean_faces_and_is_at_chance_on_noise(faces, recognizer_context):
    metric = METRICS.create("face-id")
    clean = score(metric, faces, faces.floats(), recognizer_context)
    assert clean.n == 40 and clean.ci_method.startswith("wilson")
    assert clean.value >= 0.9
    noise = score(metric, faces, torch.rand(faces.images.shape, generator=torch.Generator().manual_seed(0)),
                  recognizer_context)
    assert noise.value <= 0.15  # chance is 1/20
    rank5 = score(METRICS.create("face-id", rank=5), faces, faces.floats(), recognizer_context)
    assert rank5.value >= clean.value


def test_blur_destroys_identity(faces, recognizer_context):
    metric = METRICS.create("face-id")
    clean = score(metric, faces, faces.floats(), recognizer_context).value
    blurred = score(metric, faces, gaussian_blur(faces.floats(), BLUR_SIGMA), recognizer_context).value
    assert clean - blurred >= 0.30
    both = score(METRICS.create("face-id", gallery="reconstructed"), faces, gaussian_blur(faces.floats(), 1.5),
                 recognizer_context)
    assert 0.0 <= both.value <= 1.0


def test_facenet_weights_load_through_privbench(tmp_path, monkeypatch, faces):
    from facenet_pytorch import InceptionResnetV1

    from privbench.recognizers.face import FACENET_CHECKPOINT, facenet_embedder, load_facenet

    torch.manual_seed(0)
    reference = InceptionResnetV1(pretrained=None, classify=False).eval()
    state = reference.state_dict()
    state["logits.weight"] = torch.zeros(8631, 512)  # the VGGFace2 file also holds its classifier
    state["logits.bias"] = torch.zeros(8631)
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / FACENET_CHECKPOINT)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    loaded = load_facenet()  # found in $TORCH_HOME/checkpoints
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    embed = facenet_embedder(str(tmp_path / "checkpoints" / FACENET_CHECKPOINT))
    out = embed(faces.floats()[:4])
    assert out.shape == (4, 512)
    assert torch.allclose(out.norm(dim=1), torch.ones(4), atol=1e-4)
    aligned = facenet_embedder(str(tmp_path / "checkpoints" / FACENET_CHECKPOINT), align=True)  # MTCNN
    assert aligned(faces.floats()[:4]).shape == (4, 512)


def test_facenet_without_weights_is_unavailable_and_a_bad_path_is_an_error(tmp_path, monkeypatch, faces,
                                                                           recognizer_context):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    metric = METRICS.create("face-id", embedder="facenet")
    with pytest.raises(MetricUnavailable, match="VGGFace2 weights not on disk"):
        score(metric, faces, faces.floats(), recognizer_context)
    with pytest.raises(PrivbenchError, match="facenet weights not found"):
        METRICS.create("face-id", embedder="facenet", weights=str(tmp_path / "missing.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(PrivbenchError, match="not an InceptionResnetV1 state dict"):
        score(METRICS.create("face-id", embedder="facenet", weights=str(bad)), faces, faces.floats(),
              recognizer_context)
