"""The engine as a graph of artifacts (issue 28): every shared node is computed once, a warm run computes none,
each probe set is coded once per setting (its bpp measured on the transmission the attacks reconstruct from), an
attack is constructed once per point, and a fitted defense is loaded once per process."""

from __future__ import annotations

import collections

import pytest
from conftest import reduced

from privbench.attacks.base import Attack
from privbench.cache import Cache
from privbench.codecs import stage
from privbench.config import load_config
from privbench.engine import observation, setting_rows
from privbench.engine.graph import Node, graph_for
from privbench.engine.inputs import inputs_for
from privbench.sweep import run_benchmark

AE = {"epochs_ae": 1, "epochs_rec": 1, "epochs_adv": 1}


def grid() -> dict:
    data = reduced(defenses=[{"name": "noise", "params": {"placement": "features"}, "strengths": [0.0, 0.5]},
                             {"name": "autoencoder", "params": {"bottleneck": 2, **AE}, "strengths": [1.0]}],
                   attacks=[{"name": "inverse-net", "params": {"epochs": 1}},
                            {"name": "rmle", "params": {"iterations": 5}}],
                   metrics=["psnr", "accuracy"])
    data["codecs"] = [{"name": "none"}, {"name": "png", "qualities": [1, 9]}]
    return data


def within(inside: list[str], name: str, produce):
    def wrapped(graph, node):
        inside.append(name)
        try:
            return produce(graph, node)
        finally:
            inside.pop()

    return wrapped


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """A cold run of :func:`grid` with its node computations, coded frames, attacks constructed and cache loads
    counted; then a warm run on a fresh cache object (a new process's view of the folder)."""
    folder = tmp_path_factory.mktemp("graph")
    config = load_config(None, grid())
    frames: collections.Counter[str] = collections.Counter()  # frames coded, by the node kind coding them
    inside = ["other"]
    built: list[str] = []
    loads: collections.Counter[str] = collections.Counter()
    patch = pytest.MonkeyPatch()
    code = stage.code_frames
    patch.setattr(stage, "code_frames", lambda codec, f: frames.update({inside[-1]: len(f)}) or code(codec, f))
    for module, name in ((observation, "_observe"), (setting_rows, "_utility")):
        patch.setattr(module, name, within(inside, name, getattr(module, name)))
    init = Attack.__init__
    patch.setattr(Attack, "__init__", lambda self, **v: built.append(self.name) or init(self, **v))
    load = Cache.load
    patch.setattr(Cache, "load", lambda self, kind, spec: loads.update([kind]) or load(self, kind, spec))
    try:
        cold_cache = Cache(folder)
        cold = run_benchmark(config, cold_cache, progress=False)
        made = collections.Counter(graph_for(cold_cache).made)
        cold_frames, cold_built = dict(frames), list(built)
        warm_cache = Cache(folder)
        warm = run_benchmark(config, warm_cache, progress=False)
        warm_made = collections.Counter(graph_for(warm_cache).made)
        warm_misses = warm_cache.misses
        # a third process whose rows and reconstructions are gone but whose fits are kept
        for kind in ("point", "setting", "recon"):
            for entry in (folder / kind).glob("*.pt"):
                entry.unlink()
        loads.clear()
        refit_cache = Cache(folder)
        run_benchmark(config, refit_cache, progress=False)
        refit_made = collections.Counter(graph_for(refit_cache).made)
    finally:
        patch.undo()
    return dict(folder=folder, config=config, cold=cold, warm=warm, made=made, warm_made=warm_made, warm_misses=warm_misses,
                frames=cold_frames, built=cold_built, loads=loads, refit_made=refit_made)


def test_every_shared_node_is_computed_once(counted):
    made, config = counted["made"], counted["config"]
    # 3 defense settings x 3 codec entries (none, png 1, png 9) = 9 settings; noise=0 is the identity
    assert made["task-model"] == 1
    assert made["defense"] == 1  # the autoencoder, shared by its three codec settings and both attacks
    assert made["feature-stats"] == 3  # one clipping range per coded defended pipeline (identity, noise, AE)
    settings = 9
    assert made["setting"] == settings and made["point"] == settings * len(config.attacks)
    assert made["observation"] == settings  # one transmission per setting, shared by its rate rows and attacks
    assert made["attacker"] == settings * len(config.attacks)
    assert made["network"] == 1 and made["pipeline"] == 3


def test_each_probe_set_is_coded_once_per_setting(counted):
    config = counted["config"]
    test_images = config.task_test.params["n"]
    probe_images = sum(p.params["identities"] * p.params["per_identity"] for p in config.probes)
    coded_settings = 6  # 3 defenses x 2 png qualities
    # per coded setting, the test set once for utility and the probe set once, for its rate and every attack (the
    # attacks' own queries and rMLE's steps through the coded pipeline are coded too: "other")
    assert counted["frames"]["_observe"] == coded_settings * probe_images
    assert counted["frames"]["_utility"] == coded_settings * test_images
    rate = counted["cold"].frame.query("kind == 'rate' and dataset == 'synth-faces'")
    assert len(rate) == coded_settings and (rate["value"] > 0).all()


def test_an_attack_is_constructed_once_per_point(counted):
    config = counted["config"]
    assert collections.Counter(counted["built"]) == {a.name: 9 for a in config.attacks}


def test_a_warm_run_computes_no_node(counted):
    # the probe sets are read (from the cache) to check them before any compute; nothing is computed
    assert {k: v for k, v in counted["warm_made"].items() if k != "dataset"} == {}
    assert counted["warm_misses"] == 0
    cols = ["defense", "strength", "codec", "quality", "attack", "dataset", "metric", "value"]
    assert counted["warm"].frame[cols].equals(counted["cold"].frame[cols])


def test_a_fitted_defense_is_loaded_once_per_process(counted):
    refit = counted["refit_made"]
    assert refit["defense"] == 0 and refit["attacker"] == 0 and refit["task-model"] == 0
    assert refit["recon"] == 9 * 2 and refit["point"] == 9 * 2
    assert counted["loads"]["defense"] == 1


def test_a_node_key_changes_exactly_when_an_input_or_the_version_changes():
    def leaf(value: int, version: int = 1) -> Node:
        return Node("leaf", {"v": value}, lambda g, n: None, version=version, stored=False)

    def top(child: Node, version: int = 1) -> Node:
        return Node("top", {"p": 1}, lambda g, n: None, (("child", child),), version=version)

    assert top(leaf(1)).digest == top(leaf(1)).digest
    assert top(leaf(1)).digest != top(leaf(2)).digest
    assert top(leaf(1)).digest != top(leaf(1, version=2)).digest
    assert top(leaf(1)).digest != top(leaf(1), version=2).digest
    payload = Node("leaf", {"v": 1}, lambda g, n: None, stored=False, payload=object())
    assert top(payload).digest == top(leaf(1)).digest  # live objects never enter a key


def test_the_inputs_of_a_group_are_shared_by_its_points(tmp_path):
    config = load_config(None, grid())
    cache = Cache(tmp_path, enabled=False)
    assert inputs_for(config, cache) is inputs_for(config, cache)
    assert inputs_for(config, cache).graph is graph_for(cache)


def test_the_expensive_nodes_are_tasks_of_their_own_listed_before_what_needs_them(tmp_path, counted):
    """Executors schedule nodes: each task model, defense fit, attack fit and reconstruction a task, once, before
    the tasks that wait for it; independent fits (the attacks of different settings) wait for nothing of each other;
    a cached run is its points alone."""
    from privbench.grid import expand
    from privbench.schedule import tasks_for
    from privbench.sweep import as_grid

    config = counted["config"]
    cold = Cache(tmp_path / "empty")
    tasks = tasks_for(expand(as_grid(config), cold), cold)
    kinds = collections.Counter(t.kind for t in tasks)
    assert kinds == {"task-model": 1, "defense": 1, "attacker": 18, "recon": 18, "setting": 9, "point": 18}
    position = {t.id: i for i, t in enumerate(tasks)}
    assert len(position) == len(tasks)
    assert all(position[a] < position[t.id] for t in tasks for a in t.after)
    (model,) = [t for t in tasks if t.kind == "task-model"]
    fits = [t for t in tasks if t.kind == "attacker"]
    assert all(t.after == (model.id,) or set(t.after) <= {model.id, *[d.id for d in tasks if d.kind == "defense"]}
               for t in fits)
    warm = Cache(counted["folder"])
    cached = tasks_for(expand(as_grid(config), warm), warm)
    assert {t.kind for t in cached} == {"setting", "point"} and all(t.cost == 1 and not t.after for t in cached)


def test_a_point_names_the_same_node_after_its_pipeline_was_built(counted):
    """A worker builds a point's node after other tasks built (and fitted) the setting's pipeline: the node, and so
    its key, must not depend on that (a trained defense's state is loaded into a copy, not into the setting)."""
    from privbench.engine.pipelines import pipeline_node
    from privbench.grid import expand, point_node
    from privbench.sweep import as_grid

    config = counted["config"]
    cache = Cache(counted["folder"])
    points = expand(as_grid(config), cache)
    inputs = inputs_for(config, cache)
    for point in points:
        inputs.graph.get(pipeline_node(inputs, inputs.settings[point.choice]))
    inputs.points.clear()
    assert all(point_node(inputs, p.choice, p.attack).key() == p.key for p in points)


def test_a_warm_started_inverse_network_starts_from_the_undefended_fit(tmp_path):
    """inverse-net with ``warm_start_epochs``: a defended setting's fit waits for (and starts from) the undefended
    setting's fit of the same attack, which is fitted once; a decoder of another feature shape (the autoencoder's
    bottleneck) is not reused, so that setting trains cold for ``epochs``."""
    from privbench.attacks.inverse_net import fits
    from privbench.engine import attack_rows
    from privbench.registry import ATTACKS

    data = grid()
    data["codecs"] = [{"name": "none"}]
    data["attacks"] = [{"name": "inverse-net", "params": {"epochs": 2, "warm_start_epochs": 1}}]
    config = load_config(None, data)
    cache = Cache(tmp_path)
    started: list[tuple[bool, int]] = []
    fit = attack_rows._fit_attack

    def recording(graph, node):
        view = attack_rows._view(graph, node)
        started.append((view.warm_start is not None, len(node.inputs)))
        return fit(graph, node)

    patch = pytest.MonkeyPatch()
    patch.setattr(attack_rows, "_fit_attack", recording)
    try:
        run_benchmark(config, cache, progress=False)
    finally:
        patch.undo()
    assert graph_for(cache).made["attacker"] == 3  # undefended, noise 0.5, autoencoder: the warm start is shared
    assert sorted(started) == [(False, 2), (True, 3), (True, 3)]
    inputs = inputs_for(config, cache)
    undefended = ATTACKS.create("inverse-net", epochs=2, warm_start_epochs=1)
    ae_view = attack_rows.fitted_attack(inputs.graph, attack_rows.attacker_node(
        inputs, inputs.settings[next(c for c in inputs.settings if c.defense == "autoencoder")], undefended)).view
    assert ae_view.warm_start is not None and not fits(
        ATTACKS.create("inverse-net").build_decoder(ae_view), ae_view.warm_start["decoder"])


def test_the_engine_uses_the_components_the_config_built(tmp_path):
    """The config builds (and so validates) each defense and codec once; the grid's settings are those objects."""
    from privbench.grid import checked_settings

    config = load_config(None, grid())
    settings = [s for s, _ in checked_settings(inputs_for(config, Cache(tmp_path, enabled=False)))[0]]
    built = {id(d) for sweep in config.defenses for d in sweep.built}
    codecs = {id(c) for sweep in config.codecs for c in sweep.built}
    assert len(settings) == 9 and all(id(s.defense) in built for s in settings)
    assert all(id(s.codec) in codecs for s in settings if s.codec is not None)
