"""Faults during a run: a failing grid point is named (the run stops, or with --keep-going is recorded and
skipped), SIGTERM stops with a message, and a rerun resumes from the finished points in the cache."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from privbench.engine import attack_rows
from privbench.results import read_csv

from .helpers import invoke, tiny, write_yaml

GRID = {"defenses": [{"name": "noise", "params": {"placement": "features"}, "strengths": [0.0, 1.0, 2.0]}]}


def fail_at(monkeypatch, strength: float) -> None:
    """Make the grid point at noise=``strength`` raise, as a bug inside an attack would."""
    original = attack_rows._point_rows

    def point(graph, node):
        if node.payload[1].defense.strength == strength:
            raise RuntimeError("boom inside the attack")
        return original(graph, node)

    monkeypatch.setattr(attack_rows, "_point_rows", point)


def test_a_failing_point_stops_the_run_naming_it_and_a_rerun_resumes(tmp_path, capsys, monkeypatch):
    config = write_yaml(tmp_path / "grid.yaml", tiny(**GRID))
    args = ["run", config, "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache", "--quiet"]
    fail_at(monkeypatch, 1.0)
    failed = invoke(capsys, *args)
    assert failed.code == 2 and len(failed.err.strip().splitlines()) == 1, failed.err
    assert "grid point noise=1 / inverse-net failed: RuntimeError: boom inside the attack" in failed.err
    assert not (tmp_path / "out" / "tiny").exists()  # nothing partial
    finished = len(list((tmp_path / "cache" / "point").glob("*.pt")))
    assert finished == 1  # noise=0 finished before the failure and is kept

    monkeypatch.undo()
    resumed = invoke(capsys, *args)
    assert resumed.code == 0, resumed.err
    hits = int(resumed.out.split("cache ")[1].split(" hits")[0])
    assert hits >= finished and len(list((tmp_path / "cache" / "point").glob("*.pt"))) == 3


def test_keep_going_records_the_failed_point_and_exits_3(tmp_path, capsys, monkeypatch):
    config = write_yaml(tmp_path / "grid.yaml", tiny(**GRID))
    fail_at(monkeypatch, 1.0)
    outcome = invoke(capsys, "run", config, "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache", "--quiet",
                     "--keep-going")
    assert outcome.code == 3
    assert "1 grid step(s) failed" in outcome.err and "noise=1 / inverse-net" in outcome.err
    results = read_csv(tmp_path / "out" / "tiny" / "results.csv")
    attacked = results[results.attack == "inverse-net"]
    assert set(attacked.strength) == {0.0, 2.0}  # the failed point's rows are missing, the others are there
    assert "FAILED: grid point noise=1 / inverse-net: RuntimeError: boom" in \
        (tmp_path / "out" / "tiny" / "report.md").read_text()


def test_sigterm_stops_with_a_message_and_keeps_finished_points(tmp_path):
    grid = {"defenses": [{"name": "noise", "params": {"placement": "features"},
                          "strengths": [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0]}],
            "attacks": [{"name": "inverse-net", "params": {"epochs": 3}}]}
    config = write_yaml(tmp_path / "grid.yaml", tiny(**grid))
    command = Path(sys.executable).with_name("privbench")
    process = subprocess.Popen([str(command), "run", str(config), "--out", str(tmp_path / "out"), "--cache-dir",
                                str(tmp_path / "cache"), "--quiet"], stderr=subprocess.PIPE, text=True)
    points = tmp_path / "cache" / "point"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not list(points.glob("*.pt")):
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted; finished grid points are in the cache" in err and "Traceback" not in err
    assert list(points.glob("*.pt")) and not (tmp_path / "out" / "tiny").exists()


def test_concurrent_writers_of_one_entry_leave_a_whole_entry_and_a_corrupt_entry_is_a_miss(tmp_path):
    import threading

    import torch

    from privbench.cache import Cache

    cache = Cache(tmp_path)
    spec = {"what": "shared"}

    def write(k: int) -> None:
        for _ in range(10):
            cache.save("point", spec, {"k": torch.full((20_000,), float(k))})

    threads = [threading.Thread(target=write, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    value = cache.load("point", spec)["value"]["k"]
    assert value.shape == (20_000,) and bool((value == value[0]).all())  # one writer's whole entry
    assert [p.name for p in (tmp_path / "point").iterdir()] == [cache.path("point", spec).name]  # no temp files
    cache.path("point", spec).write_bytes(b"truncated: not a torch file")
    assert cache.load("point", spec) is None
