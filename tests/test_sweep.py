"""Sweeps: a grid over splits and seeds, resumed after SIGKILL without recomputing a finished point, and the
same table from the serial executor, ``--jobs 2`` and Ray (all at one thread per point: a point's numbers
depend on its thread count at the level of float rounding)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import reduced, write_config

from privbench.results import TIMING_METRICS

PRIVBENCH = str(Path(sys.executable).with_name("privbench"))


def grid(rmle_iterations: int = 30) -> dict:
    data = reduced(name="grid", metrics=["psnr", "ssim", "accuracy"],
                   defenses=[{"name": "noise", "params": {"placement": "features"}, "strengths": [0.0, 1.0]}],
                   attacks=[{"name": "inverse-net", "params": {"epochs": 1}},
                            {"name": "rmle", "params": {"iterations": rmle_iterations}}])
    data["model"] = {**data["model"], "split": ["relu12", "relu22"]}
    data["seed"] = [0, 1]
    return data  # 2 splits × 2 seeds × 2 settings × (1 + 2 attacks) = 24 points


def run(config: Path, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([PRIVBENCH, "run", str(config), "--out", str(out), "--cache-dir", str(cache), "--quiet",
                           "--threads", "1", *extra], capture_output=True, text=True, timeout=900)


def comparable(path: Path) -> pd.DataFrame:
    """A results table without what measures the machine (wall seconds, timings)."""
    frame = pd.read_csv(path, keep_default_na=False)
    frame = frame[~frame["metric"].isin(TIMING_METRICS)]
    return frame.drop(columns=["seconds"]).reset_index(drop=True)


def test_a_grid_lists_splits_and_seeds_and_dry_run_shows_what_is_cached(tmp_path):
    config = write_config(tmp_path / "grid.yaml", grid(rmle_iterations=5))
    dry = subprocess.run([PRIVBENCH, "run", str(config), "--out", str(tmp_path / "out"), "--cache-dir",
                          str(tmp_path / "cache"), "--dry-run"], capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert "24 points (4 model × split × seed): 0 finished, 0 cached, 24 to run" in dry.stdout
    done = run(config, tmp_path / "out", tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(tmp_path / "out" / "grid" / "results.csv")
    assert set(frame["split"]) == {"relu12", "relu22"} and set(frame["seed"]) == {0, 1}
    worst = frame[frame["attack"] == "worst"]
    assert len(worst) == len(frame[(frame["attack"] == "rmle")])  # one worst row per point and metric, per seed
    again = subprocess.run([PRIVBENCH, "run", str(config), "--out", str(tmp_path / "out"), "--cache-dir",
                            str(tmp_path / "cache"), "--dry-run"], capture_output=True, text=True, timeout=300)
    assert "0 finished, 24 cached, 0 to run" in again.stdout


def test_sigkill_mid_grid_then_resume_equals_an_uninterrupted_run_and_recomputes_no_finished_point(tmp_path):
    config = write_config(tmp_path / "grid.yaml", grid(rmle_iterations=300))
    out, cache = tmp_path / "out", tmp_path / "cache"
    journal = out / "grid.partial" / "points.jsonl"
    process = subprocess.Popen([PRIVBENCH, "run", str(config), "--out", str(out), "--cache-dir", str(cache),
                                "--quiet", "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if journal.is_file() and journal.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    kept = [json.loads(line)["point"] for line in journal.read_text().splitlines() if line.endswith("}")]
    assert 5 <= len(kept) < 24 and not (out / "grid").exists()

    resumed = run(config, out, cache)
    assert resumed.returncode == 0, resumed.stderr
    manifest = json.loads((out / "grid" / "manifest.json").read_text())
    status = {p["id"]: p["status"] for p in manifest["points"]}
    assert manifest["grid"]["resumed"] == len(set(kept))
    assert {i for i, s in status.items() if s == "resumed"} == set(kept)
    evaluated = [i for i, s in status.items() if s in {"computed", "cached"}]
    assert len(evaluated) == 24 - len(set(kept)) and not set(evaluated) & set(kept)
    assert not (out / "grid.partial").exists()

    whole = run(config, tmp_path / "whole", tmp_path / "whole-cache")
    assert whole.returncode == 0, whole.stderr
    pd.testing.assert_frame_equal(comparable(out / "grid" / "results.csv"),
                                  comparable(tmp_path / "whole" / "grid" / "results.csv"))
    table = comparable(out / "grid" / "results.csv")
    assert not table.duplicated(["seed", "split", "defense", "strength", "attack", "dataset", "metric"]).any()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def local_ray():
    """A local Ray instance started for the test (`ray start --head`), stopped after it."""
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'privbench[ray]'")
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray_cli is None:
        pytest.skip("the ray command is not installed beside this Python")
    port = _free_port()
    started = subprocess.run([ray_cli, "start", "--head", "--num-cpus", "2", "--port", str(port),
                              "--include-dashboard=false", "--disable-usage-stats"], capture_output=True, text=True,
                             timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)


def test_jobs_2_and_ray_give_the_serial_table(tmp_path, local_ray):
    config = write_config(tmp_path / "grid.yaml", grid(rmle_iterations=5))
    serial = run(config, tmp_path / "serial", tmp_path / "serial-cache")
    assert serial.returncode == 0, serial.stderr
    jobs = run(config, tmp_path / "jobs", tmp_path / "jobs-cache", "--jobs", "2")
    assert jobs.returncode == 0, jobs.stderr
    ray = run(config, tmp_path / "ray", tmp_path / "ray-cache", "--executor", "ray", "--address", local_ray)
    assert ray.returncode == 0, ray.stderr
    expected = comparable(tmp_path / "serial" / "grid" / "results.csv")
    for name in ("jobs", "ray"):
        pd.testing.assert_frame_equal(comparable(tmp_path / name / "grid" / "results.csv"), expected)
        manifest = json.loads((tmp_path / name / "grid" / "manifest.json").read_text())
        assert manifest["executor"] == {"jobs": "processes", "ray": "ray"}[name]
    # shared artifacts are trained once: one task model per seed in the cache that two workers wrote
    assert len(list((tmp_path / "jobs-cache" / "task-model").glob("*.pt"))) == 2


def test_cache_show_and_prune(tmp_path, capsys):
    from privbench.cache import Cache
    from privbench.cli import main

    cache = Cache(tmp_path / "cache")
    cache.save("point", {"a": 1}, {"rows": []})
    cache.get_or_create("data", {"b": 2}, lambda: [1, 2, 3])
    main(["cache", "show", "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert "point" in out and "data" in out and "2 entries" in out
    with pytest.raises(SystemExit) as refused:
        main(["cache", "prune", "--cache-dir", str(tmp_path / "cache")])
    assert refused.value.code == 2 and "say what to delete" in capsys.readouterr().err
    main(["cache", "prune", "--kind", "point", "--cache-dir", str(tmp_path / "cache")])
    assert "deleted 1 files" in capsys.readouterr().out
    assert not cache.has("point", {"a": 1}) and cache.has("data", {"b": 2})


def _descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (from /proc: each process's parent is the 4th field of its stat line)."""
    parent_of = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while the table was read
            continue
        parent_of[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parent_of.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has stopped; only its exit status waits to be read


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process table from /proc (Linux)")
def test_sigterm_to_a_jobs_run_stops_its_workers_and_keeps_the_finished_points(tmp_path):
    # rMLE points that would run for minutes: a worker left to finish its point would outlive the wait below
    config = write_config(tmp_path / "grid.yaml", grid(rmle_iterations=100_000))
    out, cache = tmp_path / "out", tmp_path / "cache"
    journal = out / "grid.partial" / "points.jsonl"
    process = subprocess.Popen([PRIVBENCH, "run", str(config), "--out", str(out), "--cache-dir", str(cache),
                                "--quiet", "--jobs", "2", "--threads", "1"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None and not journal.is_file():
            time.sleep(0.05)
        assert process.poll() is None, "the run finished before it could be stopped"
        workers = _descendants(process.pid)
        assert len(workers) >= 2  # the two workers (and the pool's helpers)
        process.send_signal(signal.SIGTERM)  # to the parent alone, as a scheduler stops a job
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130 and "interrupted" in stderr
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "a worker outlived the stopped run"
        assert journal.is_file() and not (out / "grid").exists()  # what finished is kept for the resume
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
