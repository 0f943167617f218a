"""The benchmark engine: one grid point = (model, split, defense setting, attack) → rows of the table.

Data flow (DESIGN §1): dataset → front → defense → z → back → utility; z → attack → x̂ → privacy metrics.
Everything expensive is cached by the hash of everything upstream of it (``privbench.cache``):

- ``data``: generated/loaded datasets;   ``task-model``: the trained task network;
- ``defense``: the state of a trained defense (autoencoder, ...), fitted once per (task model, defense
  parameters, training data, seed);
- ``cost``: the edge cost of a defended pipeline (parameters, MACs, latency of front + edge stages);
- ``input``: privacy metrics of the defended image x′ itself, for defenses that transform the image;
- ``attacker``: a fitted attacker, keyed by the *effective* defense (all zero-strength settings share one);
- ``recon``: reconstructions of every probe set (8-bit, as if saved as images);
- ``point``: the finished rows of a grid point, so a rerun recomputes nothing it has.

Randomness (defense noise, initialisations, batch order) is seeded from the run seed and the name of the
step (``derive_seed``), so results do not depend on which entries happened to be cached. Within a run the
defended pipeline of a setting is built (and a trained defense fitted) once, however many steps use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from typing import Any

import torch

from privbench import __version__
from privbench.attacks.base import Attack
from privbench.cache import Cache, canonical_json, spec_hash
from privbench.codecs.stage import CodecStage, CodingTally, codec_stages, with_codec
from privbench.codecs.tiling import ClipRange, FeatureStats
from privbench.config import NO_CODEC, ComponentConfig, DefenseSweep, RunConfig
from privbench.data.base import ImageSet, concat
from privbench.data.crops import CropView, crop_views
from privbench.defenses.base import Defense, FitContext, TrainedDefense
from privbench.defenses.saved import SavedDefense, read_defense
from privbench.device import derive_seed, resolve_device, seed_everything
from privbench.errors import MetricUnavailable, PrivbenchError
from privbench.metrics.base import Metric, MetricContext, PrivacyInputs, Score, UtilityInputs
from privbench.models.base import ModelSpec
from privbench.progress import step
from privbench.registry import ATTACKS, CODECS, DATASETS, DEFENSES, METRICS, MODELS
from privbench.results import base_row
from privbench.setting import Setting
from privbench.split import SplitModel, batches
from privbench.tasks import Sanity, Task, get_task
from privbench.threat import attacker_view

#: how many images of each probe set are kept for the reconstruction grid
SAMPLES_PER_PROBE = 3
#: probe images observed and reconstructed together: each probe set streams through the defended pipeline in batches
#: of this many, and the observations of all probe sets reach the attack this many at a time, so a run's peak memory
#: does not grow with its probe sets (issue 16; an rMLE over a whole set at once held every image's autograd graph).
#: A set of this size or smaller is observed in one batch; later batches draw their defense randomness from seeds
#: of their own.
EVAL_BATCH = 256
#: bump when the engine changes in a way that invalidates cached grid points
ENGINE_VERSION = 5  # 2: a pruned pipeline had shared (and overwritten) layers of the task model's back; 3: probe rows
#   named #probe when the task test set has the same name (their cached rows carry the dataset label); 4: the
#   query-free attacks changed (shadow's parameters; fora's sign search), their cached fits predate it; 5: the probe
#   sets are reconstructed together, 256 observations at a time (reconstruct_together)
#: the attack column of the privacy rows of an image that crosses the network as it is (input coding)
INTERCEPTED = "intercepted"
#: cost rows: metric name -> (field of :class:`~privbench.edge_cost.EdgeCost`, unit)
COST_METRICS = {"edge-params": "params", "edge-macs": "macs", "edge-latency-ms": "latency_ms",
                "edge-images-per-s": "images_per_s"}


def as_setting(item: Setting | Defense) -> Setting:
    """A grid setting; a bare defense is the uncoded setting of that defense."""
    return item if isinstance(item, Setting) else Setting(item)


@dataclasses.dataclass
class PointOutput:
    rows: list[dict[str, Any]]
    samples: dict[str, torch.Tensor]  # probe name -> uint8 reconstructions of the first images
    notes: list[str]


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """8-bit images, as if saved; a reconstruction with NaN or ±inf (a diverged attack) is refused, since
    casting it would give arbitrary pixels that score like a real reconstruction."""
    if not bool(torch.isfinite(x).all()):
        raise PrivbenchError("the attack's reconstructions contain NaN or infinite values (it diverged)")
    return x.clamp(0, 1).mul(255.0).round().to(torch.uint8)


def dataset_spec(item: ComponentConfig) -> dict[str, Any]:
    return DATASETS.create(item.name, **item.params).spec()


def reconstruct_together(attack: Attack, observed: list[tuple[str, torch.Tensor]], batch: int,
                         device: torch.device) -> dict[str, torch.Tensor]:
    """uint8 reconstructions of every probe set from its observed features (``observed``: (set name, features)
    parts in order). The observations of all sets are reconstructed together, ``batch`` at a time per feature shape:
    an optimizing attack (rMLE) then takes its steps once for all probe sets instead of once per set (its per-image
    losses are summed, so each image still gets its own gradient; on a deterministic pipeline the images are the
    ones each set gets alone). The default run's rMLE stage: 236 → 210 s on a 2-core CPU (issue 28)."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, (_, features) in enumerate(observed):
        by_shape.setdefault(tuple(features.shape[1:]), []).append(index)
    pieces: list[torch.Tensor | None] = [None] * len(observed)
    for indices in by_shape.values():
        features = torch.cat([observed[i][1] for i in indices])
        x_hat = torch.cat([to_uint8_images(attack.reconstruct(features[part].to(device))).cpu()
                           for part in batches(len(features), batch)])
        for i, piece in zip(indices, x_hat.split([len(observed[i][1]) for i in indices]), strict=True):
            pieces[i] = piece
    out: dict[str, list[torch.Tensor]] = {}
    for (name, _), piece in zip(observed, pieces, strict=True):
        out.setdefault(name, []).append(piece)
    return {name: torch.cat(parts) for name, parts in out.items()}


class Benchmark:
    """Runs the grid of a :class:`RunConfig`; datasets and the model load lazily (a warm run needs neither)."""

    def __init__(self, config: RunConfig, cache: Cache) -> None:
        self.config = config
        self.cache = cache
        self.device = resolve_device(config.device)
        self.seed = config.seed
        self.metrics: list[Metric] = [METRICS.create(m.name, **m.params) for m in config.metrics]
        self.context = MetricContext(cache=cache, device=self.device, seed=self.seed, ci_level=config.ci_level)
        self._defended: dict[str, SplitModel] = {}
        self._coded: dict[str, SplitModel] = {}
        self._checked: list[Setting] | None = None
        #: why a codec of the grid cannot run here (its library or binary is missing), found by :meth:`check_inputs`;
        #: listing or dry-running the grid only reports them, running it refuses them (:meth:`require_codecs`)
        self.codec_problems: list[str] = []
        #: how many trained defenses this engine fitted (not loaded from the cache or a file)
        self.fits = 0

    # ---- lazily loaded inputs -------------------------------------------------------------------------
    def load_set(self, item: ComponentConfig) -> ImageSet:
        return DATASETS.create(item.name, **item.params).load(self.cache)

    @functools.cached_property
    def task_train(self) -> ImageSet:
        return self.load_set(self.config.task_train)

    @functools.cached_property
    def task_test(self) -> ImageSet:
        return self.load_set(self.config.task_test)

    @functools.cached_property
    def model(self) -> SplitModel:
        from privbench.task_model import task_model

        model = task_model(self.config.model, self.task_train, self.train_key, self.seed, self.device, self.cache)
        self._model_snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return model

    @functools.cached_property
    def attacker_images(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(all attacker images, attacker's labelled task images, their labels), floats on CPU."""
        parts = [self.load_set(d) for d in self.config.attacker_data]
        everything = concat(parts, "attacker").floats()
        task_parts = [p for p, d in zip(parts, self.config.attacker_data, strict=True)
                      if d.name == self.config.task_train.name and all(f in p.labels for f in self.task.requires)]
        if not task_parts:
            return everything, None, None
        task = concat(task_parts, "attacker-task")
        return everything, task.floats(), self.task.targets(task)

    @functools.cached_property
    def probes(self) -> list[ImageSet]:
        return [self.load_set(p) for p in self.config.probes]

    @functools.cached_property
    def probe_views(self) -> list[list[CropView]]:
        """The crop views of every probe set (the faces and plates inside detection scenes; none for other sets)."""
        return [crop_views(probe) for probe in self.probes]

    @functools.cached_property
    def test_views(self) -> list[CropView]:
        """The crop views of the task's test set (built once per run, not once per setting)."""
        return crop_views(self.task_test)

    def privacy_sets(self, index: int, name: str, images: ImageSet) -> list[tuple[str, ImageSet, Any]]:
        """(dataset label, image set, crop) of everything privacy metrics score on probe set ``index`` (``name``,
        ``images``): the set itself (``crop`` None) and each of its crop views, ``<name>:<view>`` (``crop`` cuts the
        view's boxes out of any images of the set)."""
        out: list[tuple[str, ImageSet, Any]] = [(name, images, None)]
        for view in self.probe_views[index] if index >= 0 else self.test_views:
            out.append((f"{name}:{view.name}", view.template, view.crop))
        return out

    def score_privacy(self, metrics: list[Metric], index: int, name: str, images: ImageSet, x: torch.Tensor,
                      x_hat: torch.Tensor) -> list[tuple[str, Metric, Score | MetricUnavailable]]:
        """Score ``metrics`` on originals ``x`` and what the observer holds, ``x_hat``, of probe set ``index``
        (-1: the task's test set): pixel metrics on the whole images, label-reading metrics (face-id, plate, ...) on
        every set or crop view that carries their labels. An unavailable metric is returned as its exception."""
        out: list[tuple[str, Metric, Score | MetricUnavailable]] = []
        for label, target, crop in self.privacy_sets(index, name, images):
            inputs = None
            for metric in metrics:
                if not metric.applies_to(target) or (crop is not None and not metric.requires):
                    continue
                if inputs is None:
                    inputs = PrivacyInputs(x if crop is None else crop(x), x_hat if crop is None else crop(x_hat),
                                           target)
                try:
                    out.append((label, metric, metric.score(inputs, self.context)))
                except MetricUnavailable as exc:
                    out.append((label, metric, exc))
        return out

    # ---- specs (cache keys) ---------------------------------------------------------------------------
    @functools.cached_property
    def model_spec(self) -> ModelSpec:
        return MODELS.create(self.config.model.name, **self.config.model.params)

    @functools.cached_property
    def task(self) -> Task:
        """The task of the model (classification, detection): its targets, loss and predictions."""
        return get_task(self.model_spec.task)

    @functools.cached_property
    def model_key(self) -> dict[str, Any]:
        """Everything the task model depends on — the network's source and weights by content, the training
        settings when privbench trains it, the task data, seed and device kind — and so every result."""
        from privbench.task_model import training_key

        return {**training_key(self.config.model, self.model_spec), "split": self.config.model.split,
                "train": self.train_key, "seed": self.seed, "device": self.device.type}

    @functools.cached_property
    def model_key_hash(self) -> str:
        """The task model's identity, written into saved defense files and checked when they are loaded."""
        return spec_hash(self.model_key)

    @property
    def model_summary(self) -> dict[str, Any]:
        return {"model": self.model_spec.label, "split": self.config.model.split, "seed": self.seed}

    def model_check(self) -> str | None:
        """A warning when the undefended task model does not do its task on the test set (classification: its
        Wilson interval reaches chance 1/K; detection: mAP@0.5 at or below 0.05): every utility figure of the run is
        then meaningless. Cached with the model."""
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "test": self.test_key, "task": self.task.name}

        def compute() -> dict[str, Any]:
            predictions = self.model.predict(self.task_test.floats())
            found = self.task.sanity(predictions, self.task.targets(self.task_test), self.config.ci_level,
                                     self.model.num_classes)
            return dataclasses.asdict(found)

        found = Sanity(**self.cache.get_or_create("model-check", key, compute))
        if not found.useless:
            return None
        return (f"WARNING: the task model is at chance: {found.metric} {found.value:.3f} on {found.n} test "
                f"images, chance {found.floor:.3f}; train it longer (model.epochs) or check its weights and data — "
                f"its privacy–utility figures mean nothing")

    # Dataset specs are computed once per run: a real dataset's spec hashes the content of its files.
    @functools.cached_property
    def train_key(self) -> dict[str, Any]:
        return dataset_spec(self.config.task_train)

    @functools.cached_property
    def test_key(self) -> dict[str, Any]:
        return dataset_spec(self.config.task_test)

    @functools.cached_property
    def probes_key(self) -> list[dict[str, Any]]:
        """The probe sets by content; with a set larger than :data:`EVAL_BATCH` also the batch size, since its
        defense randomness is drawn batch by batch (a smaller set's key, and so its cache entries, predate
        batching and are unchanged by it)."""
        key = [dataset_spec(p) for p in self.config.probes]
        if any(len(p) > EVAL_BATCH for p in self.probes):
            key.append({"eval_batch": EVAL_BATCH})
        return key

    @functools.cached_property
    def attacker_key(self) -> list[dict[str, Any]]:
        return [dataset_spec(d) for d in self.config.attacker_data]

    def probe_name(self, index: int) -> str:
        """The ``dataset`` label of probe set ``index``: its name, ``name#index`` when two probe sets share it, and
        ``name#probe`` when the task's test set has that name too (a detection task whose scenes are also the
        private images): every row then says which set it was scored on."""
        names = [p.name for p in self.config.probes]
        name = names[index]
        if names.count(name) > 1:
            return f"{name}#{index}"
        return f"{name}#probe" if name == self.config.task_test.name else name

    # ---- defenses -------------------------------------------------------------------------------------
    def saved_defense(self, sweep: DefenseSweep) -> SavedDefense:
        """A ``privbench defend`` file of the config, checked against this run's task model."""
        assert sweep.file is not None
        saved = read_defense(sweep.file)
        saved.check_model(self.model_key_hash, self.model_summary)
        return saved

    def defense_settings(self) -> list[Defense]:
        """Every defense setting of the grid; saved defense files are read and checked here, before compute."""
        settings: list[Defense] = []
        for sweep in self.config.defenses:
            if sweep.file is not None:
                settings.append(self.saved_defense(sweep).defense())
                continue
            cls = DEFENSES.get(sweep.name)
            for strength in sweep.strengths:
                settings.append(cls(**{**sweep.params, cls.strength_param: strength}) if cls.strength_param
                                else cls(**sweep.params))
        return settings

    def settings(self, defenses: list[Defense] | None = None) -> list[Setting]:
        """Every (defense setting, codec setting) of the grid: each defense crossed with each codec entry that
        applies to it, at each of the entry's qualities (``none`` = uncoded)."""
        out: list[Setting] = []
        for defense in self.defense_settings() if defenses is None else defenses:
            for sweep in self.config.codecs:
                if not sweep.applies_to(defense.name):
                    continue
                if sweep.name == NO_CODEC:
                    out.append(Setting(defense))
                    continue
                cls = CODECS.get(sweep.name)
                out += [Setting(defense, cls(**{**sweep.params, cls.quality_param: q})) for q in sweep.qualities]
        seen: set[str] = set()
        for setting in out:
            key = canonical_json(setting.columns())
            if key in seen:
                raise PrivbenchError(f"config: the setting {setting.label} is listed twice (two codec entries "
                                     f"apply to it)")
            seen.add(key)
        return out

    def fit_context(self) -> FitContext:
        return FitContext(model=self.model, train=self.task_train, device=self.device,
                          seed=derive_seed(self.seed, "defense"), cache=self.cache)

    def defense_key(self, defense: Defense) -> dict[str, Any]:
        return {"engine": ENGINE_VERSION, "model": self.model_key, "defense": defense.spec(),
                "train": self.train_key}

    def fit_defense(self, defense: TrainedDefense) -> dict[str, Any]:
        """The state of a trained defense: from the cache, or fitted now (once per task model and spec)."""

        def fit() -> dict[str, Any]:
            self.fits += 1
            strength = f" ({defense.strength_param}={defense.strength:g})" if defense.strength_param else ""
            with step(f"fitting the {defense.name} defense{strength}"):
                return defense.fit(self.fit_context())

        return self.cache.get_or_create("defense", self.defense_key(defense), fit)

    def defended(self, item: Setting | Defense) -> SplitModel:
        """The pipeline of a setting — defended, then coded when the setting has a codec — built once per run (a
        trained defense is fitted or loaded first)."""
        setting = as_setting(item)
        defense = setting.defense
        key = canonical_json(defense.spec())
        if key not in self._defended:
            if isinstance(defense, TrainedDefense) and defense.state is None and not defense.is_identity():
                defense.load_state(self.fit_defense(defense))
            self._defended[key] = defense.apply(self.model)
            self.check_model_unchanged(f"fitting and applying defense '{defense.name}'")
        if setting.codec is None:
            return self._defended[key]
        coded_key = canonical_json(setting.spec())
        if coded_key not in self._coded:
            defended = self._defended[key]
            clip = None if setting.coded_input else self.clip_range(setting, defended)
            self._coded[coded_key] = with_codec(defended, self.model, CodecStage(setting.codec, clip))
        return self._coded[coded_key]

    def clip_range(self, setting: Setting, defended: SplitModel) -> ClipRange:
        """The clipping range of the coded features: explicit in the codec's parameters, or mean ± kσ of the
        defended features on the task's training set (paper 000: k = 6), cached per defense."""
        params = setting.codec.params
        if params["clip_min"] is not None:
            return ClipRange(params["clip_min"], params["clip_max"])
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": setting.defense.spec(),
               "train": self.train_key}

        def compute() -> dict[str, float]:
            seed_everything(derive_seed(self.seed, "codec-range", setting.defense.spec()))
            stats = FeatureStats.of(defended.features(self.task_train.floats()))
            return dataclasses.asdict(stats)

        stats = FeatureStats(**self.cache.get_or_create("feature-stats", key, compute))
        return stats.sigma_range(params["clip_sigma"])

    def check_model_unchanged(self, after: str) -> None:
        """Every setting is measured against the same task model: a defense (or attack) that wrote into it would
        silently change every later row, so this is checked after each defended pipeline is built."""
        current = self.model.state_dict()
        changed = [k for k, v in self._model_snapshot.items() if not torch.equal(v, current[k])]
        if changed:
            raise PrivbenchError(f"internal error: {after} changed the task model's '{changed[0]}' (every later "
                                 f"result would be wrong); please report it")

    # ---- rows -----------------------------------------------------------------------------------------
    def row(self, setting: Setting, attack: str, dataset: str, metric: str, kind: str, score: Score,
            seconds: float) -> dict:
        return base_row(
            seed=self.seed, dataset=dataset, model=self.model_spec.label,
            split=setting.deployed_split(self.config.model.split), **setting.columns(),
            attack=attack, metric=metric, kind=kind, value=score.value,
            ci_low=score.ci_low, ci_high=score.ci_high, ci_method=score.ci_method, n=score.n,
            seconds=round(seconds, 3))

    def labels(self, setting: Setting) -> list[Any]:
        """What the rows of a setting are labelled with (beyond its effective spec), for cache keys."""
        labels: list[Any] = [setting.defense.name, setting.defense.params]
        if setting.codec is not None:
            labels.append([setting.codec.name, setting.codec.params])
        return labels

    def utility_rows(self, item: Setting | Defense) -> list[dict[str, Any]]:
        """The utility metrics of the setting's pipeline on the task's test set; for a coded setting also its rate
        there (the test set is coded once, for both: :meth:`coded_rows`)."""
        setting = as_setting(item)
        metrics = [m for m in self.metrics if m.side == "utility"]
        if not metrics and setting.codec is None:
            return []
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": setting.spec(),
               "test": self.test_key, "metrics": [[m.name, m.params, m.version] for m in metrics],
               "ci": self.config.ci_level, "labels": self.labels(setting)}

        def compute() -> list[dict[str, Any]]:
            start = time.perf_counter()
            defended = self.defended(setting)
            seed_everything(derive_seed(self.seed, "utility", setting.spec()))
            x = self.task_test.floats()
            stages = codec_stages(defended)
            with stages[0].counting() if stages else contextlib.nullcontext() as tally:
                outputs = defended.predict(x)
            inputs = UtilityInputs(outputs, self.task.targets(self.task_test), self.task_test.meta.get("classes", ()))
            rows = []
            for metric in metrics:
                score = metric.score(inputs, self.context)
                rows.append(self.row(setting, "none", self.config.task_test.name, metric.label, metric.side, score,
                                     time.perf_counter() - start))
            if tally is not None:
                rows += self.coded_rows(setting, self.config.task_test.name, x, tally, time.perf_counter() - start,
                                        timing=True)
            return rows

        return self.cache.get_or_create("utility", key, compute)

    def cost_rows(self, item: Setting | Defense) -> list[dict[str, Any]]:
        """``kind=cost`` rows: parameters, MACs (torch's FlopCounterMode), batch-1 latency and batched
        throughput of the edge side's networks (front + edge stages; a codec's own time is in its ``codec-*-ms`` rows) on
        this run's device. Timings vary from machine to machine; cached with the device type (per defense: every
        quality of a codec shares them), so a warm rerun reports the same figures."""
        setting = as_setting(item)
        defense = setting.defense
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": defense.spec(),
               "device": self.device.type, "labels": [defense.name, defense.params],
               "edge": "input" if setting.coded_input else "split"}

        def compute() -> list[list[Any]]:
            from privbench.edge_cost import edge_cost

            defended = self.defended(defense)
            if setting.coded_input:  # the image is sent: the edge runs only an image-space defense, if any
                fronts = {"edge": defended.input_stage if defended.input_stage is not None else torch.nn.Identity()}
            else:
                fronts = {"edge": defended.front}
                fronts.update({f"edge-{label}": front for label, front in defense.reference_fronts(self.model).items()})
            numbers = []
            for dataset, front in fronts.items():
                start = time.perf_counter()
                cost = edge_cost(front, self.model.input_shape, self.device)
                seconds = time.perf_counter() - start
                numbers += [[dataset, metric, float(getattr(cost, field)), seconds]
                            for metric, field in COST_METRICS.items()]
            return numbers

        numbers = self.cache.get_or_create("edge-cost", key, compute)
        return [self.row(setting, "none", dataset, metric, "cost", Score(value, float("nan"), float("nan"), 1, ""), seconds)
                for dataset, metric, value, seconds in numbers]

    def coded_rows(self, setting: Setting, dataset: str, images: torch.Tensor, tally: CodingTally, seconds: float,
                   timing: bool = False) -> list[dict[str, Any]]:
        """The ``kind=rate`` row of ``images`` coded into ``tally``: bpp = total bits of the real bitstreams / total
        input-image pixels (paper 000); with ``timing``, ``kind=cost`` rows of the codec's mean encode and decode
        time per frame (``codec-encode-ms``, ``codec-decode-ms``)."""
        pixels = images.shape[0] * images.shape[2] * images.shape[3]
        nan = float("nan")
        rows = [self.row(setting, "none", dataset, "bpp", "rate", Score(tally.bits / pixels, nan, nan, len(images), ""),
                         seconds)]
        if timing:
            for metric, total in (("codec-encode-ms", tally.encode_seconds), ("codec-decode-ms", tally.decode_seconds)):
                rows.append(self.row(setting, "none", dataset, metric, "cost",
                                     Score(1000.0 * total / tally.frames, nan, nan, tally.frames, ""), seconds))
        return rows

    def rate_rows(self, item: Setting | Defense) -> list[dict[str, Any]]:
        """``kind=rate`` rows of a coded setting on every probe set (the task's test set's come with its utility):
        what the private images cost to send, next to what their reconstructions reveal."""
        setting = as_setting(item)
        if setting.codec is None:
            return []
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": setting.spec(),
               "probes": self.probes_key, "labels": self.labels(setting), "version": __version__}

        def compute() -> list[dict[str, Any]]:
            coded = self.defended(setting)
            (stage,) = codec_stages(coded)
            rows = []
            for i, probe in enumerate(self.probes):
                name = self.probe_name(i)
                start = time.perf_counter()
                seed_everything(derive_seed(self.seed, "rate", setting.spec(), name))
                x = probe.floats()
                with stage.counting() as tally:
                    coded.features(x)
                rows += self.coded_rows(setting, name, x, tally, time.perf_counter() - start)
            return rows

        return self.cache.get_or_create("rate", key, compute)

    def input_rows(self, item: Setting | Defense) -> list[dict[str, Any]]:
        """``kind=input`` rows of a setting that changes the image (blur, perturbation, obfuscator, input coding,
        ...): the privacy metrics of the image x′ that enters the network (or, coded, crosses it) against x — what
        an observer of x′ learns, the quantity papers 003 and 004 score (there, x′ is what crosses the network) —
        on the task's test set and every probe set, plus the defense's own diagnostics (e.g. its auxiliary
        classifier's accuracy on x′). ``attack`` is ``none``: no inversion is involved, so these rows never enter
        the worst case."""
        setting = as_setting(item)
        defense = setting.defense
        metrics = [m for m in self.metrics if m.side == "privacy"]
        if not setting.transforms_input:
            return []
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": setting.spec(), "test": self.test_key,
               "probes": self.probes_key, "metrics": [[m.name, m.params, m.version] for m in metrics],
               "ci": self.config.ci_level, "labels": self.labels(setting), "version": __version__}

        def compute() -> list[dict[str, Any]]:
            start = time.perf_counter()
            defended = self.defended(setting)
            rows = []
            sets = [(-1, self.config.task_test.name, self.task_test)]
            sets += [(i, self.probe_name(i), probe) for i, probe in enumerate(self.probes)]
            for index, name, images in sets:
                seed_everything(derive_seed(self.seed, "input", setting.spec(), name))
                x = images.floats()
                x_prime = to_uint8_images(defended.defended_input(x)).float().div(255.0)
                if index < 0 and not defense.is_identity() and defense.transforms_input:
                    for metric, (hits, n) in defense.diagnostics(x_prime, self.task.targets(images)).items():
                        rows.append(self.row(setting, "none", name, metric, "input",
                                             Score.from_proportion(hits, n, self.config.ci_level), 0.0))
                for label, metric, score in self.score_privacy(metrics, index, name, images, x, x_prime):
                    if isinstance(score, MetricUnavailable):
                        raise score
                    rows.append(self.row(setting, "none", label, metric.name, "input", score, 0.0))
            seconds = round(time.perf_counter() - start, 3)
            for row in rows:
                row["seconds"] = seconds
            return rows

        return self.cache.get_or_create("input", key, compute)

    def intercepted_rows(self, item: Setting | Defense, input_rows: list[dict[str, Any]] | None = None
                         ) -> list[dict[str, Any]]:
        """With input coding the decoded image itself crosses the network: an observer needs no inversion. Its
        privacy metrics on every probe set (the ``kind=input`` rows) are then also the rows of an attack named
        ``intercepted`` (``kind=privacy``), so the worst case of the setting includes them — as paper 000 scores its
        "Benchmark-input" pipeline on the decoded image. ``input_rows``: the setting's :meth:`input_rows`, when the
        caller already has them."""
        setting = as_setting(item)
        if not setting.coded_input:
            return []
        probes = {label for i, probe in enumerate(self.probes)
                  for label, _, _ in self.privacy_sets(i, self.probe_name(i), probe)}
        privacy = {m.name for m in self.metrics if m.side == "privacy"}
        rows = self.input_rows(setting) if input_rows is None else input_rows
        return [{**row, "kind": "privacy", "attack": INTERCEPTED} for row in rows
                if row["dataset"] in probes and row["metric"] in privacy]

    def setting_rows(self, setting: Setting) -> list[dict[str, Any]]:
        """The rows of a setting that need no attack: utility, rate, edge cost, the image x′ itself and, for input
        coding, that image as the intercepted observation."""
        seen = self.input_rows(setting)
        return (self.utility_rows(setting) + self.rate_rows(setting) + self.cost_rows(setting) + seen
                + self.intercepted_rows(setting, seen))

    def fitted_attack(self, item: Setting | Defense, attack: Attack, defended: SplitModel) -> Attack:
        setting = as_setting(item)
        data, task_data, task_labels = self.attacker_images
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": setting.spec(),
               "attack": attack.spec(), "attacker_data": self.attacker_key}
        intercepted = None
        if attack.uses_intercepted:
            # The victims' inference traffic the cloud receives: the task's test images through the deployed
            # (defended) pipeline, fresh defense randomness as in deployment.
            seed_everything(derive_seed(self.seed, "intercepted", setting.spec()))
            intercepted = defended.features(self.task_test.floats(self.device)).cpu()
            key["intercepted"] = self.test_key
        view = attacker_view(attack.access, defended, data, self.device,
                             derive_seed(self.seed, "attack", attack.name, setting.spec()),
                             task_data=task_data, task_labels=task_labels, intercepted=intercepted,
                             approximations=attack.approximations)
        state = self.cache.load("attacker", key)
        if state is not None:
            attack.load_state(view, state["value"])
            return attack
        seed_everything(view.seed)
        with step(f"fitting the {attack.name} attack against {setting.label}"):
            attack.fit(view)
        learned = attack.state()
        if learned is not None:
            self.cache.save("attacker", key, learned)
        return attack

    def reconstructions(self, item: Setting | Defense, attack: Attack) -> dict[str, torch.Tensor]:
        """uint8 reconstructions of every probe set (cached by the effective setting)."""
        setting = as_setting(item)
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": setting.spec(),
               "attack": attack.spec(), "attacker_data": self.attacker_key, "probes": self.probes_key}

        def compute() -> dict[str, torch.Tensor]:
            defended = self.defended(setting)
            fitted = self.fitted_attack(setting, attack, defended)
            with step(f"reconstructing the probe images with {attack.name} against {setting.label}"):
                observed: list[tuple[str, torch.Tensor]] = []
                for i, probe in enumerate(self.probes):  # each set observed with defense randomness of its own
                    name = self.probe_name(i)
                    images = probe.floats()
                    for b, part in enumerate(batches(len(images), EVAL_BATCH)):
                        seed_everything(derive_seed(self.seed, "observe", setting.spec(), name, *([b] if b else [])))
                        observed.append((name, defended.features(images[part].to(self.device)).cpu()))
                return reconstruct_together(fitted, observed, EVAL_BATCH, self.device)

        return self.cache.get_or_create("recon", key, compute)

    def point_key(self, item: Setting | Defense, attack_cfg: ComponentConfig) -> dict[str, Any]:
        """The cache identity of the rows of one attack against one setting: everything upstream of them (the
        task model by content, the setting, the attack, its data, the probes, the metrics, the CI level)."""
        setting = as_setting(item)
        metrics = [m for m in self.metrics if m.side == "privacy"]
        attack: Attack = ATTACKS.create(attack_cfg.name, **attack_cfg.params)
        return {"engine": ENGINE_VERSION, "model": self.model_key, "defense": self.labels(setting),
                "effective": setting.spec(), "attack": attack.spec(), "attacker_data": self.attacker_key,
                "probes": self.probes_key, "metrics": [[m.name, m.params, m.version] for m in metrics],
                "ci": self.config.ci_level, "version": __version__, **self._label_key(attack_cfg)}

    @staticmethod
    def _label_key(attack_cfg: ComponentConfig) -> dict[str, str]:
        """A labelled attack's rows carry its label, so the label is part of their key (absent when unlabelled,
        which keeps the keys of existing caches)."""
        return {} if attack_cfg.label is None else {"label": attack_cfg.label}

    def setting_key(self, item: Setting | Defense) -> dict[str, Any]:
        """The cache identity of a setting's own rows (:meth:`setting_rows`: utility, rate, edge cost, x′)."""
        setting = as_setting(item)
        return {"engine": ENGINE_VERSION, "model": self.model_key, "defense": self.labels(setting),
                "effective": setting.spec(), "test": self.test_key, "probes": self.probes_key,
                "metrics": [[m.name, m.params, m.version] for m in self.metrics], "ci": self.config.ci_level,
                "device": self.device.type, "version": __version__}

    def point(self, item: Setting | Defense, attack_cfg: ComponentConfig) -> PointOutput:
        """Rows of one grid point (privacy metrics of one attack against one setting), cached under
        :meth:`point_key`."""
        setting = as_setting(item)
        metrics = [m for m in self.metrics if m.side == "privacy"]
        attack: Attack = ATTACKS.create(attack_cfg.name, **attack_cfg.params)
        key = self.point_key(setting, attack_cfg)

        def compute() -> dict[str, Any]:
            start = time.perf_counter()
            recon = self.reconstructions(setting, attack)
            rows, notes, samples = [], [], {}
            for i, probe in enumerate(self.probes):
                name = self.probe_name(i)
                x_hat = recon[name].float().div(255.0)
                samples[name] = recon[name][:SAMPLES_PER_PROBE].clone()
                for label, metric, score in self.score_privacy(metrics, i, name, probe, probe.floats(), x_hat):
                    if isinstance(score, MetricUnavailable):
                        notes.append(f"{metric.name} on {label}: unavailable ({score})")
                        continue
                    rows.append(self.row(setting, attack_cfg.column, label, metric.name, metric.side, score, 0.0))
            seconds = round(time.perf_counter() - start, 3)
            for row in rows:
                row["seconds"] = seconds
            return {"rows": rows, "samples": samples, "notes": notes}

        value = self.cache.get_or_create("point", key, compute)
        return PointOutput(value["rows"], value["samples"], value["notes"])

    def originals(self) -> dict[str, torch.Tensor]:
        names = [self.probe_name(i) for i in range(len(self.config.probes))]
        key = {"probes": self.probes_key, "k": SAMPLES_PER_PROBE, "names": names}  # the names are the dict's keys
        return self.cache.get_or_create(
            "originals", key, lambda: {self.probe_name(i): p.images[:SAMPLES_PER_PROBE].clone()
                                       for i, p in enumerate(self.probes)})

    def require_codecs(self) -> None:
        """Refuse a grid whose codecs cannot run on this machine (before any compute)."""
        self.grid_settings()
        if self.codec_problems:
            raise PrivbenchError(self.codec_problems[0])

    def grid_settings(self) -> list[Setting]:
        """The grid's settings, checked once (:meth:`check_inputs`) and kept: every grid point of this engine
        names its setting by its index here."""
        if self._checked is None:
            self._checked = self.check_inputs()
        return self._checked

    def check_inputs(self) -> list[Setting]:
        """Refuse, before any training, a grid that could only crash or mislead: image sizes and recognizers
        (from the config alone, :mod:`privbench.preflight`), then every dataset's files (their content keys,
        computed once per run anyway: a missing file stops here), then the probe sets themselves (unreadable
        images, and the metrics' protocol preconditions, e.g. face-id's two images per identity). Returns the
        grid's settings (saved defense files read and checked, each defense checked against the model, each codec's
        library or binary found, input coding only after image-space defenses)."""
        from privbench.preflight import check_grid

        check_grid(self.config, self.metrics)
        task = self.model_spec.task
        for metric in self.metrics:
            if task not in metric.tasks:
                raise PrivbenchError(f"metric '{metric.name}' scores {' or '.join(metric.tasks)} models; model "
                                     f"'{self.model_spec.label}' is a {task} model")
        defenses = self.defense_settings()
        for defense in defenses:
            if task not in defense.tasks:
                raise PrivbenchError(f"defense '{defense.name}' protects {' or '.join(defense.tasks)} models; model "
                                     f"'{self.model_spec.label}' is a {task} model")
            defense.check_model(self.model_spec, self.config.model.split)
        settings = self.settings(defenses)
        self.codec_problems = []
        checked_codecs: set[str] = set()
        for setting in settings:
            setting.check()
            codec = setting.codec
            which = codec and canonical_json([codec.name, {k: v for k, v in codec.params.items()
                                                           if k != codec.quality_param}])
            if codec is not None and which not in checked_codecs:
                try:
                    codec.check_available()
                except PrivbenchError as exc:  # refused when the grid runs (require_codecs), not when it is listed
                    if str(exc) not in self.codec_problems:
                        self.codec_problems.append(str(exc))
                checked_codecs.add(which)
        self.train_key, self.test_key, self.attacker_key  # noqa: B018 - computed for their checks
        for metric in self.metrics:
            if (check_probes := getattr(metric, "check_probes", None)) is not None:
                for i, probe in enumerate(self.probes):
                    for _, images, _ in self.privacy_sets(i, self.probe_name(i), probe):
                        if metric.applies_to(images):
                            check_probes(images)
        self.probes  # noqa: B018 - loaded now, so that an unreadable probe image fails before training
        return settings


class PointFailed(PrivbenchError):
    """A grid step raised: the message names the step and the cause; the cause is chained (``--debug``)."""
