"""A run's outputs appear together or not at all: a failure while writing them leaves the previous run folder
as it was and no temporary folder; a rerun leaves no file of the earlier run; files are as readable as any
tool's (mode from the umask)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from .helpers import invoke, tiny, write_yaml


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One cache for the module: the first run computes (seconds), the reruns only write outputs."""
    return tmp_path_factory.mktemp("cache")


def _run(capsys, tmp: Path, cache: Path, **changes):
    config = write_yaml(tmp / "config.yaml", tiny(**changes))
    return invoke(capsys, "run", config, "--out", tmp / "out", "--cache-dir", cache, "--quiet")


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _mark(run: Path) -> None:
    """Make the earlier run's files recognisable: a rerun of the same config would write the same bytes, so an
    in-place rewrite would otherwise go unnoticed."""
    for path in run.iterdir():
        if path.suffix in {".csv", ".md", ".yaml"}:
            path.write_text(path.read_text() + "\n# earlier run\n")


@pytest.fixture
def normal_path(monkeypatch):
    """The rerun goes the normal way, through the engine and the publishing these tests break: the run record
    (:mod:`privbench.run_record`) would otherwise answer it from the cache, re-publishing the folder it recorded."""
    monkeypatch.setattr("privbench.run_record.run_key", lambda request: None)


def _debris(out: Path) -> list[str]:
    """Anything but finished run folders: temporary or set-aside folders of an interrupted publish."""
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def test_full_disk_while_writing_keeps_the_previous_run(tmp_path, cache_dir, capsys, monkeypatch, normal_path):
    assert _run(capsys, tmp_path, cache_dir).code == 0
    run = tmp_path / "out" / "tiny"
    _mark(run)
    before = _contents(run)
    assert {"results.csv", "config.yaml", "samples.pt", "report.md"} <= set(before)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("privbench.report.write_report", full_disk)
    result = _run(capsys, tmp_path, cache_dir)
    lines = result.err.splitlines()
    assert result.code == 2 and len(lines) == 1 and "Traceback" not in result.err
    assert lines[0].startswith("privbench: error: cannot write the run's outputs") and "the disk is full" in lines[0]
    assert _contents(run) == before
    assert _debris(tmp_path / "out") == []


def test_crash_while_writing_keeps_the_previous_run(tmp_path, cache_dir, capsys, monkeypatch, normal_path):
    """A bug (not an OSError) keeps its traceback, but still publishes nothing and cleans up."""
    assert _run(capsys, tmp_path, cache_dir).code == 0
    run = tmp_path / "out" / "tiny"
    _mark(run)
    before = _contents(run)

    def bug(*args, **kwargs):
        raise RuntimeError("simulated bug in the report")

    monkeypatch.setattr("privbench.report.reconstruction_grid", bug)
    assert _run(capsys, tmp_path, cache_dir).code != 0
    assert _contents(run) == before
    assert _debris(tmp_path / "out") == []


def test_rerun_with_fewer_metrics_leaves_no_stale_plot(tmp_path, cache_dir, capsys):
    assert _run(capsys, tmp_path, cache_dir, metrics=["psnr", "ssim", "accuracy"]).code == 0
    run = tmp_path / "out" / "tiny"
    assert (run / "privacy_utility_ssim.png").is_file()
    (run / "notes.txt").write_text("a file of the earlier run")
    assert _run(capsys, tmp_path, cache_dir, metrics=["psnr", "accuracy"]).code == 0
    names = set(_contents(run))
    assert "privacy_utility_ssim.png" not in names and "notes.txt" not in names
    assert "privacy_utility_psnr.png" in names
    assert "ssim" not in (run / "results.csv").read_text()
    assert _debris(tmp_path / "out") == []


def test_outputs_have_the_umask_modes(tmp_path, cache_dir, capsys):
    old = os.umask(0o022)
    try:
        assert _run(capsys, tmp_path, cache_dir).code == 0
    finally:
        os.umask(old)
    run = tmp_path / "out" / "tiny"
    assert run.stat().st_mode & 0o777 == 0o755
    assert {p.name: p.stat().st_mode & 0o777 for p in run.iterdir()} == {p.name: 0o644 for p in run.iterdir()}


def test_report_full_disk_leaves_every_file_whole(tmp_path, cache_dir, capsys, monkeypatch):
    """``privbench report`` rewrites in place, one atomic file at a time: a failure leaves each file old or new."""
    assert _run(capsys, tmp_path, cache_dir).code == 0
    run = tmp_path / "out" / "tiny"
    before = _contents(run)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("privbench.report.write_report", full_disk)
    result = invoke(capsys, "report", run)
    assert result.code == 2 and result.err.startswith("privbench: error: cannot write the report")
    after = _contents(run)
    assert set(after) == set(before)  # no temporary file left beside them
    assert after["report.md"] == before["report.md"] and after["results.csv"] == before["results.csv"]
    assert all(after[n].startswith(b"\x89PNG") for n in after if n.endswith(".png"))


def test_report_of_a_good_run_redraws(tmp_path, cache_dir, capsys):
    assert _run(capsys, tmp_path, cache_dir).code == 0
    run = tmp_path / "out" / "tiny"
    result = invoke(capsys, "report", run)
    assert result.code == 0, result.err
    assert (run / "report.md").read_text().startswith("# privbench report")
