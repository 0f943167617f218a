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

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from privbench import __version__
from privbench.attacks.base import Attack
from privbench.cache import Cache, canonical_json, spec_hash
from privbench.config import ComponentConfig, DefenseSweep, RunConfig
from privbench.data.base import ImageSet, concat
from privbench.defenses.base import Defense, FitContext, TrainedDefense
from privbench.defenses.saved import SavedDefense, read_defense
from privbench.device import derive_seed, resolve_device, seed_everything
from privbench.errors import MetricUnavailable, PrivbenchError, described
from privbench.metrics.base import Metric, MetricContext, PrivacyInputs, Score, UtilityInputs
from privbench.models.base import ModelSpec
from privbench.registry import ATTACKS, DATASETS, DEFENSES, METRICS, MODELS
from privbench.results import base_row, git_sha, params_json, to_frame
from privbench.split import SplitModel
from privbench.threat import attacker_view
from privbench.worst_case import add_worst_case

#: how many images of each probe set are kept for the reconstruction grid
SAMPLES_PER_PROBE = 3
#: bump when the engine changes in a way that invalidates cached grid points
ENGINE_VERSION = 2  # 2: a pruned pipeline had shared (and overwritten) layers of the task model's back
#: cost rows: metric name -> (field of :class:`~privbench.edge_cost.EdgeCost`, unit)
COST_METRICS = {"edge-params": "params", "edge-macs": "macs", "edge-latency-ms": "latency_ms",
                "edge-images-per-s": "images_per_s"}


@dataclasses.dataclass
class PointOutput:
    rows: list[dict[str, Any]]
    samples: dict[str, torch.Tensor]  # probe name -> uint8 reconstructions of the first images
    notes: list[str]


@dataclasses.dataclass
class RunOutput:
    frame: Any  # pandas.DataFrame
    samples: dict[tuple[str, float, str], dict[str, torch.Tensor]]  # (defense, strength, attack) -> probe -> x̂
    originals: dict[str, torch.Tensor]  # probe name -> uint8 originals of the first images
    notes: list[str]
    #: (step, reason) of the grid steps that failed under ``keep_going`` (their rows are missing)
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """8-bit images, as if saved; a reconstruction with NaN or ±inf (a diverged attack) is refused, since
    casting it would give arbitrary pixels that score like a real reconstruction."""
    if not bool(torch.isfinite(x).all()):
        raise PrivbenchError("the attack's reconstructions contain NaN or infinite values (it diverged)")
    return x.clamp(0, 1).mul(255.0).round().to(torch.uint8)


def dataset_spec(item: ComponentConfig) -> dict[str, Any]:
    return DATASETS.create(item.name, **item.params).spec()


class Benchmark:
    """Runs the grid of a :class:`RunConfig`; datasets and the model load lazily (a warm run needs neither)."""

    def __init__(self, config: RunConfig, cache: Cache, progress: bool = True, keep_going: bool = False) -> None:
        self.config = config
        self.cache = cache
        #: record a failed grid point and go on (``--keep-going``) instead of stopping the run
        self.keep_going = keep_going
        self.device = resolve_device(config.device)
        self.seed = config.seed
        self.show_progress = progress
        self.metrics: list[Metric] = [METRICS.create(m.name, **m.params) for m in config.metrics]
        self.context = MetricContext(cache=cache, device=self.device, seed=self.seed, ci_level=config.ci_level)
        self._defended: dict[str, SplitModel] = {}
        self._status: Callable[[str], None] | None = None
        #: how many trained defenses this engine fitted (not loaded from the cache or a file)
        self.fits = 0
        #: (step, reason) of every grid step that failed under ``keep_going``
        self.failures: list[tuple[str, str]] = []

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
                      if d.name == self.config.task_train.name and "label" in p.labels]
        if not task_parts:
            return everything, None, None
        task = concat(task_parts, "attacker-task")
        return everything, task.floats(), task.labels["label"]

    @functools.cached_property
    def probes(self) -> list[ImageSet]:
        return [self.load_set(p) for p in self.config.probes]

    # ---- specs (cache keys) ---------------------------------------------------------------------------
    @functools.cached_property
    def model_spec(self) -> ModelSpec:
        return MODELS.create(self.config.model.name, **self.config.model.params)

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
        """A warning when the undefended task model is at chance on the task's test set (its Wilson interval
        reaches 1/K): every utility figure of the run is then meaningless. Cached with the model."""
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "test": self.test_key}

        def compute() -> dict[str, float]:
            from privbench.metrics.statistics import wilson_ci

            labels = self.task_test.labels["label"]
            correct = (self.model.predict(self.task_test.floats()).argmax(1).cpu() == labels).sum().item()
            _, low, _, _ = wilson_ci(int(correct), len(labels), self.config.ci_level)
            return {"accuracy": correct / len(labels), "low": low, "chance": 1.0 / self.model.num_classes,
                    "n": float(len(labels))}

        found = self.cache.get_or_create("model-check", key, compute)
        if found["low"] > found["chance"]:
            return None
        return (f"WARNING: the task model is at chance: accuracy {found['accuracy']:.3f} on {int(found['n'])} "
                f"test images, chance {found['chance']:.3f}; train it longer (model.epochs) or check its weights "
                f"and data — its privacy–utility figures mean nothing")

    # Dataset specs are computed once per run: a real dataset's spec hashes the content of its files.
    @functools.cached_property
    def train_key(self) -> dict[str, Any]:
        return dataset_spec(self.config.task_train)

    @functools.cached_property
    def test_key(self) -> dict[str, Any]:
        return dataset_spec(self.config.task_test)

    @functools.cached_property
    def probes_key(self) -> list[dict[str, Any]]:
        return [dataset_spec(p) for p in self.config.probes]

    @functools.cached_property
    def attacker_key(self) -> list[dict[str, Any]]:
        return [dataset_spec(d) for d in self.config.attacker_data]

    def probe_name(self, index: int) -> str:
        names = [p.name for p in self.config.probes]
        name = names[index]
        return name if names.count(name) == 1 else f"{name}#{index}"

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
                settings.append(cls(**{**sweep.params, cls.strength_param: strength}))
        return settings

    def fit_context(self) -> FitContext:
        return FitContext(model=self.model, train=self.task_train, device=self.device,
                          seed=derive_seed(self.seed, "defense"), cache=self.cache, progress=self._status)

    def defense_key(self, defense: Defense) -> dict[str, Any]:
        return {"engine": ENGINE_VERSION, "model": self.model_key, "defense": defense.spec(),
                "train": self.train_key}

    def fit_defense(self, defense: TrainedDefense) -> dict[str, Any]:
        """The state of a trained defense: from the cache, or fitted now (once per task model and spec)."""

        def fit() -> dict[str, Any]:
            self.fits += 1
            return defense.fit(self.fit_context())

        return self.cache.get_or_create("defense", self.defense_key(defense), fit)

    def defended(self, defense: Defense) -> SplitModel:
        """The defended pipeline of a setting, built once per run (a trained defense is fitted or loaded first)."""
        key = canonical_json(defense.spec())
        if key not in self._defended:
            if isinstance(defense, TrainedDefense) and defense.state is None and not defense.is_identity():
                defense.load_state(self.fit_defense(defense))
            self._defended[key] = defense.apply(self.model)
            self.check_model_unchanged(f"fitting and applying defense '{defense.name}'")
        return self._defended[key]

    def check_model_unchanged(self, after: str) -> None:
        """Every setting is measured against the same task model: a defense (or attack) that wrote into it would
        silently change every later row, so this is checked after each defended pipeline is built."""
        current = self.model.state_dict()
        changed = [k for k, v in self._model_snapshot.items() if not torch.equal(v, current[k])]
        if changed:
            raise PrivbenchError(f"internal error: {after} changed the task model's '{changed[0]}' (every later "
                                 f"result would be wrong); please report it")

    # ---- rows -----------------------------------------------------------------------------------------
    def row(self, defense: Defense, attack: str, dataset: str, metric: str, kind: str, score: Score,
            seconds: float) -> dict:
        return base_row(
            seed=self.seed, dataset=dataset, model=self.model_spec.label,
            split=defense.deployed_split(self.config.model.split),
            defense=defense.name, defense_params=params_json(defense.params), strength=defense.strength,
            codec="none", quality="", attack=attack, metric=metric, kind=kind, value=score.value,
            ci_low=score.ci_low, ci_high=score.ci_high, ci_method=score.ci_method, n=score.n,
            seconds=round(seconds, 3))

    def utility_rows(self, defense: Defense) -> list[dict[str, Any]]:
        metrics = [m for m in self.metrics if m.side == "utility"]
        if not metrics:
            return []
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": defense.spec(),
               "test": self.test_key, "metrics": [[m.name, m.params] for m in metrics],
               "ci": self.config.ci_level, "labels": [defense.name, defense.params]}

        def compute() -> list[dict[str, Any]]:
            start = time.perf_counter()
            defended = self.defended(defense)
            seed_everything(derive_seed(self.seed, "utility", defense.spec()))
            outputs = defended.predict(self.task_test.floats())
            inputs = UtilityInputs(outputs, self.task_test.labels["label"])
            rows = []
            for metric in metrics:
                score = metric.score(inputs, self.context)
                rows.append(self.row(defense, "none", self.config.task_test.name, metric.name, metric.side, score,
                                     time.perf_counter() - start))
            return rows

        return self.cache.get_or_create("utility", key, compute)

    def cost_rows(self, defense: Defense) -> list[dict[str, Any]]:
        """``kind=cost`` rows: parameters, MACs (torch's FlopCounterMode), batch-1 latency and batched
        throughput of the edge side (front + edge stages) on this run's device. Timings vary from machine to
        machine; cached with the device type, so a warm rerun reports the same figures."""
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": defense.spec(),
               "device": self.device.type, "labels": [defense.name, defense.params]}

        def compute() -> list[dict[str, Any]]:
            from privbench.edge_cost import edge_cost

            fronts = {"edge": self.defended(defense).front}
            fronts.update({f"edge-{label}": front for label, front in defense.reference_fronts(self.model).items()})
            rows = []
            for dataset, front in fronts.items():
                start = time.perf_counter()
                cost = edge_cost(front, self.model.input_shape, self.device)
                seconds = time.perf_counter() - start
                rows += [self.row(defense, "none", dataset, metric, "cost",
                                  Score(float(getattr(cost, field)), float("nan"), float("nan"), 1, ""), seconds)
                         for metric, field in COST_METRICS.items()]
            return rows

        return self.cache.get_or_create("cost", key, compute)

    def input_rows(self, defense: Defense) -> list[dict[str, Any]]:
        """``kind=input`` rows of a defense that transforms the image (blur, perturbation, obfuscator, ...): the
        privacy metrics of the defended image x′ itself against x — what an observer of x′ learns, the quantity
        papers 003 and 004 score (there, x′ is what crosses the network) — on the task's test set and every
        probe set, plus the defense's own diagnostics (e.g. its auxiliary classifier's accuracy on x′).
        ``attack`` is ``none``: no inversion is involved, so these rows never enter the worst case."""
        metrics = [m for m in self.metrics if m.side == "privacy"]
        if defense.is_identity() or not defense.transforms_input:
            return []
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": defense.spec(), "test": self.test_key,
               "probes": self.probes_key, "metrics": [[m.name, m.params, m.version] for m in metrics],
               "ci": self.config.ci_level, "labels": [defense.name, defense.params], "version": __version__}

        def compute() -> list[dict[str, Any]]:
            start = time.perf_counter()
            defended = self.defended(defense)
            rows = []
            sets = [(self.config.task_test.name, self.task_test)]
            sets += [(self.probe_name(i), probe) for i, probe in enumerate(self.probes)]
            for name, images in sets:
                seed_everything(derive_seed(self.seed, "input", defense.spec(), name))
                x = images.floats()
                x_prime = to_uint8_images(defended.defended_input(x)).float().div(255.0)
                if name == self.config.task_test.name:
                    for metric, (hits, n) in defense.diagnostics(x_prime, images.labels["label"]).items():
                        rows.append(self.row(defense, "none", name, metric, "input",
                                             Score.from_proportion(hits, n, self.config.ci_level), 0.0))
                inputs = PrivacyInputs(x, x_prime, images)
                for metric in metrics:
                    if metric.applies_to(images):
                        rows.append(self.row(defense, "none", name, metric.name, "input",
                                             metric.score(inputs, self.context), 0.0))
            seconds = round(time.perf_counter() - start, 3)
            for row in rows:
                row["seconds"] = seconds
            return rows

        return self.cache.get_or_create("input", key, compute)

    def fitted_attack(self, defense: Defense, attack: Attack, defended: SplitModel) -> Attack:
        data, task_data, task_labels = self.attacker_images
        view = attacker_view(attack.access, defended, data, self.device,
                             derive_seed(self.seed, "attack", attack.name, defense.spec()),
                             task_data=task_data, task_labels=task_labels, approximations=attack.approximations)
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": defense.spec(),
               "attack": attack.spec(), "attacker_data": self.attacker_key}
        state = self.cache.load("attacker", key)
        if state is not None:
            attack.load_state(view, state["value"])
            return attack
        seed_everything(view.seed)
        attack.fit(view)
        learned = attack.state()
        if learned is not None:
            self.cache.save("attacker", key, learned)
        return attack

    def reconstructions(self, defense: Defense, attack: Attack) -> dict[str, torch.Tensor]:
        """uint8 reconstructions of every probe set (cached by the effective defense)."""
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": defense.spec(),
               "attack": attack.spec(), "attacker_data": self.attacker_key, "probes": self.probes_key}

        def compute() -> dict[str, torch.Tensor]:
            defended = self.defended(defense)
            fitted = self.fitted_attack(defense, attack, defended)
            out = {}
            for i, probe in enumerate(self.probes):
                name = self.probe_name(i)
                seed_everything(derive_seed(self.seed, "observe", defense.spec(), name))
                features = defended.features(probe.floats(self.device))
                out[name] = to_uint8_images(fitted.reconstruct(features))
            return out

        return self.cache.get_or_create("recon", key, compute)

    def point(self, defense: Defense, attack_cfg: ComponentConfig) -> PointOutput:
        """Rows of one grid point (privacy metrics of one attack against one defense setting)."""
        metrics = [m for m in self.metrics if m.side == "privacy"]
        attack: Attack = ATTACKS.create(attack_cfg.name, **attack_cfg.params)
        key = {"engine": ENGINE_VERSION, "model": self.model_key, "defense": [defense.name, defense.params],
               "effective": defense.spec(), "attack": attack.spec(), "attacker_data": self.attacker_key,
               "probes": self.probes_key, "metrics": [[m.name, m.params, m.version] for m in metrics],
               "ci": self.config.ci_level, "version": __version__}

        def compute() -> dict[str, Any]:
            start = time.perf_counter()
            recon = self.reconstructions(defense, attack)
            rows, notes, samples = [], [], {}
            for i, probe in enumerate(self.probes):
                name = self.probe_name(i)
                x_hat = recon[name].float().div(255.0)
                samples[name] = recon[name][:SAMPLES_PER_PROBE].clone()
                inputs = PrivacyInputs(probe.floats(), x_hat, probe)
                for metric in metrics:
                    if not metric.applies_to(probe):
                        continue
                    try:
                        score = metric.score(inputs, self.context)
                    except MetricUnavailable as exc:
                        notes.append(f"{metric.name} on {name}: unavailable ({exc})")
                        continue
                    rows.append(self.row(defense, attack.name, name, metric.name, metric.side, score, 0.0))
            seconds = round(time.perf_counter() - start, 3)
            for row in rows:
                row["seconds"] = seconds
            return {"rows": rows, "samples": samples, "notes": notes}

        value = self.cache.get_or_create("point", key, compute)
        return PointOutput(value["rows"], value["samples"], value["notes"])

    def originals(self) -> dict[str, torch.Tensor]:
        key = {"probes": self.probes_key, "k": SAMPLES_PER_PROBE}
        return self.cache.get_or_create(
            "originals", key, lambda: {self.probe_name(i): p.images[:SAMPLES_PER_PROBE].clone()
                                       for i, p in enumerate(self.probes)})

    def guarded(self, step: str, compute: Callable[[], Any], skipped: Any) -> Any:
        """``compute()`` of one grid step. A failure names the step: by default the run stops with it (finished
        points stay cached, so a rerun resumes); with ``keep_going`` it is recorded in :attr:`failures` (and
        the report) and ``skipped`` stands in for the step's output. Interrupts always stop the run."""
        try:
            return compute()
        except Exception as exc:
            why = described(exc)
            if not self.keep_going:
                raise PointFailed(f"grid point {step} failed: {why} (finished points are cached: fix it and run "
                                  f"again to resume, or --keep-going to record it and go on; --debug shows the "
                                  f"traceback)") from exc
            self.failures.append((step, why))
            return skipped

    def check_inputs(self) -> list[Defense]:
        """Refuse, before any training, a grid that could only crash or mislead: image sizes and recognizers
        (from the config alone, :mod:`privbench.preflight`), then every dataset's files (their content keys,
        computed once per run anyway: a missing file stops here), then the probe sets themselves (unreadable
        images, and the metrics' protocol preconditions, e.g. face-id's two images per identity). Returns the
        grid's defense settings (saved defense files read and checked, each setting checked against the model)."""
        from privbench.preflight import check_grid

        check_grid(self.config, self.metrics)
        settings = self.defense_settings()
        for defense in settings:
            defense.check_model(self.model_spec, self.config.model.split)
        self.train_key, self.test_key, self.attacker_key  # noqa: B018 - computed for their checks
        for metric in self.metrics:
            if (check_probes := getattr(metric, "check_probes", None)) is not None:
                for probe in self.probes:
                    if metric.applies_to(probe):
                        check_probes(probe)
        self.probes  # noqa: B018 - loaded now, so that an unreadable probe image fails before training
        return settings

    def run(self) -> RunOutput:
        settings = self.check_inputs()
        total = len(settings) * (1 + len(self.config.attacks))
        rows: list[dict[str, Any]] = []
        samples: dict[tuple[str, float, str], dict[str, torch.Tensor]] = {}
        notes: list[str] = [warning] if (warning := self.model_check()) else []
        with tqdm(total=total, desc=f"privbench {self.config.name}", unit="step",
                  disable=not self.show_progress, leave=False) as bar:
            self._status = bar.set_postfix_str
            for defense in settings:
                bar.set_postfix_str(f"{defense.name}={defense.strength:g} utility")
                step = f"{defense.name}={defense.strength:g} utility and edge cost"
                rows += self.guarded(step, lambda d=defense: self.utility_rows(d) + self.cost_rows(d)
                                     + self.input_rows(d), [])
                bar.update()
                for attack_cfg in self.config.attacks:
                    bar.set_postfix_str(f"{defense.name}={defense.strength:g} {attack_cfg.name}")
                    step = f"{defense.name}={defense.strength:g} / {attack_cfg.name}"
                    out = self.guarded(step, lambda d=defense, a=attack_cfg: self.point(d, a), None)
                    bar.update()
                    if out is None:
                        continue
                    rows += out.rows
                    samples[(defense.name, defense.strength, attack_cfg.name)] = out.samples
                    notes += [n for n in out.notes if n not in notes]
            self._status = None
        notes += [f"FAILED: grid point {step}: {why}" for step, why in self.failures]
        run_id = f"{self.config.name}-{self.config.config_hash[:8]}"
        for row in rows:
            row.update(run_id=run_id, config_hash=self.config.config_hash, git_sha=git_sha(),
                       privbench_version=__version__)
        frame = to_frame(rows)
        if len(self.config.attacks) > 1:
            frame = add_worst_case(frame, METRICS)
        return RunOutput(frame, samples, self.originals(), notes, list(self.failures))


class PointFailed(PrivbenchError):
    """A grid step raised: the message names the step and the cause; the cause is chained (``--debug``)."""


def run_benchmark(config: RunConfig, cache: Cache, progress: bool = True, keep_going: bool = False) -> RunOutput:
    if not config.defenses:
        raise PrivbenchError("config has no defenses to evaluate")
    return Benchmark(config, cache, progress, keep_going).run()
