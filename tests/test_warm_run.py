"""A finished run's record (issue 28, item 6; :mod:`privbench.run_record`): rerunning it answers without importing
torch, leaves the run folder byte for byte as published (or re-publishes it from the record when it is missing or
changed), and any change to the config, the command line or privbench's code misses the record and runs the normal
way — which then records its own run."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import cli, reduced, write_config

from privbench import run_record
from privbench.run_record import Request, run_key

#: modules the answer from a record may not import
HEAVY = ("torch", "torchvision", "numpy", "pandas", "matplotlib", "PIL")

#: ``privbench ARGS`` in a fresh interpreter, then its exit code and the heavy modules it imported on stderr's last
#: line; $WARM_TEST_EXTRA_SOURCES names a folder that counts as privbench's code (a source file a test may change)
PROBE = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path

    from privbench import run_record

    extra = os.environ.get("WARM_TEST_EXTRA_SOURCES")
    if extra:
        shipped = run_record.source_folders
        run_record.source_folders = lambda: [*shipped(), ("extra", Path(extra))]
    from privbench.cli import main

    code = 0
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code or 0
    sys.stdout.flush()
    print(json.dumps({{"code": code, "heavy": [m for m in {heavy!r} if m in sys.modules]}}), file=sys.stderr)
""").format(heavy=HEAVY)


def tiny(**changes) -> dict:
    """Four grid points on synthetic data: a task model of one epoch, noise at two strengths, one attack."""
    data = reduced(name="tiny", metrics=["psnr", "ssim", "accuracy"],
                   defenses=[{"name": "noise", "params": {"placement": "features"}, "strengths": [0.0, 1.0]}],
                   attacks=[{"name": "inverse-net", "params": {"epochs": 1}}])
    data.update(changes)
    return data


class Setup(SimpleNamespace):
    """The cold run every test starts from: its config, cache, --out, extra source folder and published files."""

    def probe(self, *args: str, config: Path | None = None, out: Path | None = None) -> tuple[int, str, list[str]]:
        """(exit code, stdout, heavy modules imported) of ``privbench run CONFIG ARGS`` against the cold run's cache."""
        command = ["run", str(config or self.config), "--out", str(out or self.out), "--cache-dir", str(self.cache),
                   "--quiet", "--threads", "1", *args]
        env = {**os.environ, "WARM_TEST_EXTRA_SOURCES": str(self.extra)}
        result = subprocess.run([sys.executable, "-c", PROBE, *command], capture_output=True, text=True, env=env,
                                timeout=900, check=False)
        status = json.loads(result.stderr.strip().splitlines()[-1])
        assert status["code"] == 0, result.stderr
        self.stderr = result.stderr
        return status["code"], result.stdout, status["heavy"]


def contents(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cold(tmp_path_factory) -> Setup:
    root = tmp_path_factory.mktemp("warm-run")
    extra = root / "extra-sources"
    extra.mkdir()
    (extra / "module.py").write_text("VALUE = 1\n")
    os.utime(extra / "module.py", ns=(1_600_000_000_000_000_000,) * 2)
    setup = Setup(config=write_config(root / "tiny.yaml", tiny()), cache=root / "cache", out=root / "out",
                  extra=extra, root=root)
    _, stdout, heavy = setup.probe()
    assert "torch" in heavy and "4 points: 4 computed, 0 cached" in stdout, stdout
    records = list((setup.cache / "runs").glob("[0-9a-f]*.json"))
    assert len(records) == 1, f"the finished run was not recorded (was privbench's code edited meanwhile?)\n{stdout}"
    setup.key = records[0].stem
    setup.published = contents(setup.out / "tiny")
    setup.rows = stdout.split(" rows ->")[0].strip()
    return setup


def test_a_rerun_answers_from_the_record_without_importing_torch(cold):
    before = {p: p.stat().st_mtime_ns for p in (cold.out / "tiny").iterdir()}
    _, stdout, heavy = cold.probe()
    assert heavy == []
    assert stdout.startswith(f"{cold.rows} rows -> {cold.out / 'tiny' / 'results.csv'} (")
    assert "4 points: 0 computed, 4 cached; from the run record, run folder unchanged" in stdout
    assert contents(cold.out / "tiny") == cold.published
    assert {p: p.stat().st_mtime_ns for p in (cold.out / "tiny").iterdir()} == before  # nothing rewritten


def test_a_changed_or_missing_run_folder_is_republished_from_the_record(cold, tmp_path):
    folder = cold.out / "tiny"
    with open(folder / "results.csv", "a") as handle:
        handle.write("a,changed,row\n")
    next(folder.glob("*.png")).unlink()
    (folder / "stray.txt").write_text("not published by the run\n")
    _, stdout, heavy = cold.probe()
    assert heavy == [] and "from the run record, run folder re-published" in stdout
    assert contents(folder) == cold.published

    shutil.rmtree(folder)
    _, stdout, heavy = cold.probe()
    assert heavy == [] and "re-published" in stdout and contents(folder) == cold.published

    _, stdout, heavy = cold.probe(out=tmp_path / "elsewhere")  # --out is not part of the key
    assert heavy == [] and contents(tmp_path / "elsewhere" / "tiny") == cold.published
    _, stdout, heavy = cold.probe()
    assert heavy == [] and "run folder unchanged" in stdout


def test_a_journal_of_an_interrupted_run_goes_the_normal_way(cold):
    """OUT/NAME.partial/ is resumed (and removed) by the normal path only; here the key's inputs are those of the
    cold run, so the check is on the replay itself (in this process: no second benchmark run)."""
    key = run_record.RunKey(cold.key, "tiny", cold.cache, {})
    journal = cold.out / "tiny.partial"
    journal.mkdir()
    try:
        assert run_record.replay(key, cold.out) is None
    finally:
        journal.rmdir()
    assert "run folder unchanged" in run_record.replay(key, cold.out).summary


def test_another_strength_misses_the_record_runs_the_normal_way_and_is_recorded(cold, tmp_path):
    config = write_config(tmp_path / "tiny.yaml", tiny(defenses=[{"name": "noise", "params": {"placement": "features"},
                                                                  "strengths": [0.0, 2.0]}]))
    _, stdout, heavy = cold.probe(config=config, out=tmp_path / "out")
    assert "torch" in heavy and "4 points: 2 computed, 2 cached" in stdout, stdout
    _, stdout, heavy = cold.probe(config=config, out=tmp_path / "out")
    assert heavy == [] and "from the run record, run folder unchanged" in stdout
    assert contents(cold.out / "tiny") == cold.published  # the cold run's folder is another --out


def test_a_changed_source_file_misses_the_record(cold, tmp_path):
    """Same size, same mtime, other content: the record is keyed by the code's content, not its stamp."""
    source = cold.extra / "module.py"
    stamp = source.stat()
    try:
        source.write_text("VALUE = 2\n")
        os.utime(source, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        assert source.stat().st_size == stamp.st_size and source.stat().st_mtime_ns == stamp.st_mtime_ns
        _, stdout, heavy = cold.probe(out=tmp_path / "out")
        assert "torch" in heavy and "4 points: 0 computed, 4 cached; cache" in stdout, stdout
    finally:
        source.write_text("VALUE = 1\n")
        os.utime(source, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def _request(config: Path, cache: Path, **changes) -> Request:
    return Request(**{"config_file": str(config), "cache_dir": cache, "threads": 1, **changes})


def test_the_key_covers_the_config_and_the_command_line(tmp_path):
    config = write_config(tmp_path / "tiny.yaml", tiny())
    base = run_key(_request(config, tmp_path / "cache"))
    assert base is not None and base == run_key(_request(config, tmp_path / "cache"))
    stronger = write_config(tmp_path / "stronger.yaml", tiny(defenses=[{"name": "noise", "params": {
        "placement": "features"}, "strengths": [0.0, 1.5]}]))
    # the same mapping spelt otherwise (flow style, other key order) is the same config
    respelt = tmp_path / "respelt.yaml"
    respelt.write_text(yaml.safe_dump(dict(reversed(list(tiny().items()))), default_flow_style=True))
    assert run_key(_request(respelt, tmp_path / "cache")) == base
    others = [run_key(_request(stronger, tmp_path / "cache"))] + [
        run_key(_request(config, tmp_path / "cache", **change))
        for change in ({"seed": 7}, {"name": "other"}, {"device": "auto"}, {"model": "vgg-small"},
                       {"split": "relu22"}, {"threads": 2}, {"jobs": 2, "executor": "processes"})]
    others.append(run_key(_request(config, tmp_path / "other-cache")))
    keys = [k.key for k in others]
    assert base.key not in keys and len(set(keys)) == len(keys)
    assert others[2].name == "other"


@pytest.mark.parametrize("change", [
    {"no_cache": True}, {"dry_run": True}, {"defense_files": ("noise.pt",)}, {"executor": "ray"}])
def test_options_that_go_the_normal_way(tmp_path, change):
    assert run_key(_request(write_config(tmp_path / "tiny.yaml", tiny()), tmp_path / "cache", **change)) is None


@pytest.mark.parametrize("changes", [
    {"probes": [{"name": "lfw", "params": {"root": "/data/lfw"}}]},
    {"probes": [{"name": "folder-images", "params": {"csv": "faces.csv"}}]},
    {"model": {"name": "custom", "params": {"factory": "mine.py:build"}}},
    {"model": {"name": "resnet18", "params": {"weights": "resnet.pt"}}},
    {"defenses": [{"file": "saved-defense.pt"}]},
    {"codecs": [{"name": "jpeg", "qualities": [50]}]},
    {"metrics": ["psnr", "lpips"]},
    {"metrics": [{"name": "face-id", "params": {"embedder": "facenet"}}]},
    {"attacker_data": [{"name": "synth-faces", "params": {"subset": "attacker", "note": "../elsewhere"}}]},
    {"seed": datetime.date(2024, 1, 1)},  # not JSON: never stringified into another config's key
])
def test_configs_that_may_read_user_files_go_the_normal_way(tmp_path, changes):
    assert run_key(_request(write_config(tmp_path / "user.yaml", tiny(**changes)), tmp_path / "cache")) is None


def test_a_config_without_codecs_or_with_the_none_codec_takes_the_fast_path(tmp_path):
    config = write_config(tmp_path / "none.yaml", tiny(codecs=[{"name": "none"}], device="cuda:0"))
    assert run_key(_request(config, tmp_path / "cache")) is not None


def test_the_code_digest_reads_a_file_again_only_when_its_stamp_changed(tmp_path, monkeypatch):
    folder = tmp_path / "pkg"
    (folder / "sub").mkdir(parents=True)
    for name, text in (("a.py", "A = 1\n"), ("sub/b.yaml", "b: 1\n")):
        (folder / name).write_text(text)
        os.utime(folder / name, ns=(1_600_000_000_000_000_000,) * 2)
    monkeypatch.setattr(run_record, "RACY_SECONDS", 0.05)  # a file changed this recently is not remembered
    time.sleep(0.1)
    reads = []
    real = run_record.file_digest
    monkeypatch.setattr(run_record, "file_digest", lambda path: reads.append(Path(path).name) or real(path))
    folders = [("pkg", folder)]
    first = run_record.source_digest(tmp_path / "cache", folders)
    assert sorted(reads) == ["a.py", "b.yaml"]
    reads.clear()
    assert run_record.source_digest(tmp_path / "cache", folders) == first and reads == []

    (folder / "a.py").write_text("A = 2\n")  # same size; its mtime set back
    os.utime(folder / "a.py", ns=(1_600_000_000_000_000_000,) * 2)
    changed = run_record.source_digest(tmp_path / "cache", folders)
    assert changed != first and reads == ["a.py"]
    (folder / "c.py").write_text("")
    assert run_record.source_digest(tmp_path / "cache", folders) not in {first, changed}


def test_a_run_with_failed_points_is_never_recorded(tmp_path, monkeypatch, capsys):
    """The normal path records after publishing, and only when no grid point failed (``_execute`` faked: no
    benchmark runs); the recorded run is then answered from its record, in this process too."""
    from privbench import cli as cli_module

    config = write_config(tmp_path / "tiny.yaml", tiny())
    out, cache = tmp_path / "out", tmp_path / "cache"
    failures: list[tuple[str, str]] = [("noise s=1 / inverse-net", "boom")]

    def execute(config, out_root, *args, **kwargs):
        run_dir = out_root / config.name
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "results.csv").write_text("run_id\nx\n")
        output = SimpleNamespace(frame=[{}] * 3, failures=list(failures), notes=["WARNING: a warning", "a note"],
                                 manifest={"grid": {"points": 4, "computed": 3, "cached": 0, "resumed": 0}})
        return output, run_dir, 0.1, SimpleNamespace(hits=0, misses=4)

    monkeypatch.setattr(cli_module, "_execute", execute)
    args = ["run", str(config), "--out", str(out), "--cache-dir", str(cache), "--quiet", "--threads", "1"]
    code, stdout, _ = cli(capsys, *args, "--keep-going")
    assert code == cli_module.EXIT_POINTS_FAILED
    assert not list((cache / "runs").glob("[0-9a-f]*.json"))

    failures.clear()
    code, stdout, _ = cli(capsys, *args)
    assert code == 0 and "4 points: 3 computed, 0 cached" in stdout
    assert len(list((cache / "runs").glob("[0-9a-f]*.json"))) == 1
    monkeypatch.setattr(cli_module, "_execute", lambda *a, **k: pytest.fail("the record was not used"))
    code, stdout, stderr = cli(capsys, *args, "--keep-going")
    assert code == 0 and "3 rows -> " in stdout and "from the run record, run folder unchanged" in stdout
    assert stderr.splitlines() == ["privbench: warning: a warning", "note: a note"]
