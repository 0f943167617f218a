"""``face-id``: can the adversary identify the person in a reconstruction? (paper 000 §V-A)

Protocol of paper 000 §V-A: keep the identities with at least two images; the first image of each goes to the
gallery, all others are probes. Every image is embedded (L2-normalised), each probe is matched to its nearest
gallery embedding by cosine similarity, and the score is the rank-k identification rate (rank-1 by default)
with a Wilson interval. By default the gallery holds the *clean* originals (the adversary owns a photo of
everyone, e.g. a social network) and the probes are the reconstructions; ``gallery=reconstructed`` matches
reconstructions against reconstructions. Chance level is k / #identities. The built-in embedder trains in
``precision`` (``auto``: bf16 where the CPU has native bf16, unless ``$PRIVBENCH_PRECISION`` says otherwise).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from privbench.data.base import ImageSet
from privbench.errors import PrivbenchError
from privbench.metrics.base import Metric, MetricContext, PrivacyInputs, RecognizerMissing, Remedy, Score
from privbench.progress import step
from privbench.registry import METRICS, Param

#: bump when the built-in embedder's training changes (part of its cache key)
FACE_RECOGNIZER_VERSION = 3  # 3: trained at RECOGNIZER_SEED, not the run seed (shipped weights)


def gallery_probe_split(identities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the gallery (first image of every identity with ≥ 2 images) and of the probes (the rest)."""
    ids = torch.as_tensor(identities)
    n = len(ids)
    unique, inverse, counts = torch.unique(ids, return_inverse=True, return_counts=True)
    first = torch.full((len(unique),), n, dtype=torch.long).scatter_reduce(
        0, inverse, torch.arange(n), reduce="amin", include_self=True)
    eligible = counts >= 2
    gallery = first[eligible].sort().values
    is_gallery = torch.zeros(n, dtype=torch.bool)
    is_gallery[gallery] = True
    probes = torch.nonzero(eligible[inverse] & ~is_gallery).squeeze(1)
    return gallery, probes


def rank_k_hits(probe_emb: torch.Tensor, gallery_emb: torch.Tensor, probe_ids: torch.Tensor,
                gallery_ids: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean per probe: is its identity among the k gallery entries of highest cosine similarity?"""
    sim = probe_emb @ gallery_emb.T
    top = sim.topk(min(k, sim.shape[1]), dim=1).indices
    return (gallery_ids[top] == probe_ids[:, None]).any(dim=1)


def builtin_embedder(probes: ImageSet, context: MetricContext,
                     precision: str = "auto") -> Callable[[torch.Tensor], torch.Tensor]:
    """The built-in embedder for ``probes``' family and size, trained on disjoint identities (cached).

    ``precision`` (auto / fp32 / bf16) is the training precision; it is part of the cache key.
    """
    from privbench.recognizers import face
    from privbench.recognizers.base import RECOGNIZER_SEED, cached_training, predict, training_data, training_precision

    dataset = training_data(probes, identities=face.TRAIN_IDENTITIES, per_identity=face.TRAIN_PER_IDENTITY)
    size = probes.size[0]
    spec = {"version": FACE_RECOGNIZER_VERSION, "data": dataset.spec(), "seed": RECOGNIZER_SEED,
            "hyper": [face.EPOCHS, face.IDENTITIES_PER_BATCH, face.LR, face.SCALE, face.WIDTH, face.DIM,
                      face.EMA_DECAY, face.CROP_EIGHTHS]}
    resolved = training_precision(precision)

    def train() -> torch.nn.Module:
        data = dataset.load(context.cache)
        with step(f"training the face recognizer of face-id ({size} px faces; once, then cached)"):
            return face.train_face_embedder(data.images, data.labels["label"], RECOGNIZER_SEED, precision=resolved,
                                            device=context.device)

    network = face.FaceEmbedder(size)
    network.load_state_dict(cached_training(context.cache, "face", spec, train, device=context.device,
                                            precision=precision))
    network.to(context.device).eval()
    return lambda images: predict(network, images, context.device)


@METRICS.register("face-id")
class FaceIdentification(Metric):
    """Rank-k face identification rate of reconstructions against a gallery (paper 000 §V-A)."""

    version = FACE_RECOGNIZER_VERSION

    summary = "face identification (paper 000 §V-A): rank-k nearest gallery neighbour by cosine (Wilson CI)"
    side = "privacy"
    requires = ("identity",)
    synthetic_family = "synth-faces"
    params = (
        Param("gallery", str, "clean", "what the gallery holds: clean originals or reconstructions",
              choices=("clean", "reconstructed")),
        Param("rank", int, 1, "k of rank-k identification (chance is k / #identities)", low=1),
        Param("embedder", str, "builtin", "builtin: small CNN trained on disjoint synthetic identities; "
              "facenet: InceptionResnetV1 with VGGFace2 weights", choices=("builtin", "facenet")),
        Param("weights", str, "", "facenet state dict file (default $TORCH_HOME/checkpoints/"
              "20180402-114759-vggface2.pt)"),
        Param("align", bool, False, "facenet only: align faces with MTCNN first"),
        Param("precision", str, "auto", "builtin only: training precision (auto: bf16 where the CPU has "
              "native bf16, else fp32, unless $PRIVBENCH_PRECISION is set)", choices=("auto", "fp32", "bf16")),
    )

    def _check_params(self) -> None:
        if self.params["embedder"] == "builtin" and (self.params["weights"] or self.params["align"]):
            raise PrivbenchError("metric 'face-id': 'weights' and 'align' apply to embedder=facenet only")
        if self.params["embedder"] == "facenet" and self.params["precision"] != "auto":
            raise PrivbenchError("metric 'face-id': 'precision' applies to embedder=builtin only")
        if self.params["weights"]:
            from privbench.recognizers.face import facenet_weights_path

            facenet_weights_path(self.params["weights"])  # a named file must exist: fail now, not mid-run

    def builtin_recognizer(self) -> bool:
        return self.params["embedder"] == "builtin"

    def real_data_remedies(self) -> list[Remedy]:
        from privbench.recognizers.face import FACENET_CHECKPOINT, torch_home

        return [Remedy({"embedder": "facenet", "weights": "PATH"}, "PATH: a facenet-pytorch VGGFace2 state dict"),
                Remedy({"embedder": "facenet"}, f"with {FACENET_CHECKPOINT} in {torch_home() / 'checkpoints'}")]

    def check(self, probes: str, synthetic: bool) -> None:
        """Real images need facenet; facenet needs its VGGFace2 checkpoint on disk (nothing is downloaded)."""
        super().check(probes, synthetic)
        if self.params["embedder"] == "facenet" and not self.params["weights"]:
            from privbench.recognizers.face import FACENET_CHECKPOINT, torch_home

            path = torch_home() / "checkpoints" / FACENET_CHECKPOINT
            if not path.is_file():
                raise RecognizerMissing(self.name, f"facenet's VGGFace2 weights are not on disk ({path})",
                                        [Remedy({}, f"put {FACENET_CHECKPOINT} in {path.parent}"),
                                         Remedy({"weights": "PATH"}, "a facenet-pytorch VGGFace2 state dict")])

    def embedder(self, probes: ImageSet, context: MetricContext) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.params["embedder"] == "facenet":
            from privbench.recognizers.face import facenet_embedder

            return facenet_embedder(self.params["weights"], self.params["align"], context.device)
        return builtin_embedder(probes, context, self.params["precision"])

    def check_probes(self, probes: ImageSet) -> None:
        """Refuse a probe set the protocol cannot score meaningfully (called before any compute, and again when
        scoring): it needs an identity with a gallery image and a probe image, and more gallery identities than
        ``rank`` — with k ≥ #identities every probe is a hit, chance level is 1 and the score says nothing."""
        if "identity" not in probes.labels:
            return
        gallery, probe = gallery_probe_split(torch.as_tensor(probes.labels["identity"]))
        if len(probe) == 0:
            raise PrivbenchError(f"face-id on {probes.name}: no identity has two or more images (the protocol "
                                 "needs one gallery and at least one probe image per identity)")
        if len(gallery) <= self.params["rank"]:
            raise PrivbenchError(f"face-id on {probes.name}: {len(gallery)} identities with two or more images "
                                 f"and rank {self.params['rank']}: chance level is 1, so the score means nothing "
                                 f"(give more than {self.params['rank']} identities)")

    def hits(self, inputs: PrivacyInputs, context: MetricContext) -> torch.Tensor:
        ids = torch.as_tensor(inputs.probes.labels["identity"])
        self.check_probes(inputs.probes)
        gallery, probe = gallery_probe_split(ids)
        embed = self.embedder(inputs.probes, context)
        source = inputs.originals if self.params["gallery"] == "clean" else inputs.reconstructions
        gallery_emb = embed(source[gallery].float())
        probe_emb = embed(inputs.reconstructions[probe].float())
        return rank_k_hits(probe_emb, gallery_emb, ids[probe], ids[gallery], self.params["rank"])

    def score(self, inputs: PrivacyInputs, context: MetricContext) -> Score:
        hits = self.hits(inputs, context)
        return Score.from_proportion(int(hits.sum()), len(hits), context.ci_level)
