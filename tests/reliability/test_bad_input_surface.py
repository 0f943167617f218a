"""Issue 30: bad input on the surface added since issue 11 (`defend`, `eval --labels`, `cache prune`, executors,
config files, model weights, a full disk), through the real command line: one ``privbench: error:`` line with
exit status 2 and the exact message, nothing silently wrong, no traceback."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

import pytest
import torch

from .helpers import invoke, tiny, write_yaml


def _one_error(result, message: str) -> None:
    lines = result.err.strip().splitlines()
    assert result.code == 2, result.err
    assert lines == [f"privbench: error: {message}"], result.err
    assert "Traceback" not in result.err + result.out


def test_a_config_key_written_twice_is_refused(tmp_path, capsys):
    config = tmp_path / "dup.yaml"
    config.write_text("name: dup\nseed: 0\nseed: 3\n")
    _one_error(invoke(capsys, "run", config, "--dry-run", "--cache-dir", tmp_path / "cache"),
               f"config {config}: the key 'seed' is written twice (line 2 and line 3); write each key once")


def test_a_nested_key_written_twice_is_refused(tmp_path, capsys):
    config = tmp_path / "dup.yaml"
    config.write_text("name: dup\nmodel:\n  name: vgg-small\n  epochs: 1\n  epochs: 5\n")
    _one_error(invoke(capsys, "run", config, "--dry-run", "--cache-dir", tmp_path / "cache"),
               f"config {config}: the key 'epochs' is written twice (line 4 and line 5); write each key once")


@pytest.mark.parametrize("executor", ["serial", "ray"])
def test_contradictory_executor_options_are_refused(tmp_path, capsys, executor):
    config = write_yaml(tmp_path / "c.yaml", tiny())
    what = "runs one task at a time" if executor == "serial" else "takes its workers from the Ray cluster"
    _one_error(invoke(capsys, "run", config, "--executor", executor, "--jobs", 2, "--out", tmp_path / "out",
                      "--cache-dir", tmp_path / "cache"),
               f"--executor {executor} {what}: --jobs 2 applies to --executor processes (or drop --executor)")
    assert not (tmp_path / "out").exists()


def test_defend_checks_its_destination_before_fitting(tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("a regular file")

    def no_fit(*args, **kwargs):
        raise AssertionError("the defense was fitted before its destination was checked")

    monkeypatch.setattr("privbench.engine.pipelines.fit_node", no_fit)
    _one_error(invoke(capsys, "defend", "--defense", "autoencoder", "--save", afile / "ae.pt"),
               f"--save {afile / 'ae.pt'}: its folder {afile} is not a folder")
    _one_error(invoke(capsys, "defend", "--defense", "autoencoder", "--save", afile / "sub" / "ae.pt"),
               f"--save {afile / 'sub' / 'ae.pt'}: its folder {afile / 'sub'} is not a folder ({afile} is a file)")


def test_a_full_disk_is_named_with_the_path(tmp_path):
    """torch.save on a full disk raises a RuntimeError ("enforce fail … unexpected pos"); privbench serializes in
    memory and writes the bytes itself, so a full disk is an OSError that names the file."""
    from privbench.cache import atomic_torch_save, disk_problem

    target = tmp_path / "samples.pt"
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("privbench.cache.os.fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
        with pytest.raises(OSError) as caught:
            atomic_torch_save({"x": torch.zeros(3)}, target)
    assert disk_problem(caught.value) == f"the disk is full: cannot write {target}"
    assert list(tmp_path.iterdir()) == []  # no temporary file left


def test_a_full_disk_while_a_command_writes_is_one_line(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "cache" / "x.pt"))

    monkeypatch.setattr("privbench.cache.Cache.prune", full)
    _one_error(invoke(capsys, "cache", "prune", "--all", "--cache-dir", tmp_path / "cache"),
               f"the disk is full: cannot write {tmp_path / 'cache' / 'x.pt'}")


def _cache_with(tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    (root / "task-model").mkdir(parents=True)
    (root / "task-model" / "a.pt").write_bytes(b"x" * 10)
    (root / ".locks").mkdir()
    return root


def test_cache_prune_refuses_a_non_finite_age(tmp_path, capsys):
    root = _cache_with(tmp_path)
    for age in ("nan", "inf"):
        _one_error(invoke(capsys, "cache", "prune", "--older-than", age, "--cache-dir", root),
                   f"cache prune: --older-than must be a finite number of days >= 0, got {float(age) * 86400}")
    assert (root / "task-model" / "a.pt").is_file()


def test_cache_prune_refuses_an_unknown_kind(tmp_path, capsys):
    root = _cache_with(tmp_path)
    _one_error(invoke(capsys, "cache", "prune", "--kind", "models", "--cache-dir", root),
               f"cache prune: no entries of kind 'models' in {root} (its kinds: task-model; see "
               "`privbench cache show`)")
    assert (root / "task-model" / "a.pt").is_file()


def test_cache_prune_skips_what_a_running_privbench_holds(tmp_path, capsys):
    root = _cache_with(tmp_path)
    held, free = root / ".locks" / "point-held.lock", root / ".locks" / "point-free.lock"
    free.write_bytes(b"")
    fresh_tmp = root / "task-model" / ".b.pt.abc.tmp"
    fresh_tmp.write_bytes(b"being written")
    old_tmp = root / "task-model" / ".c.pt.abc.tmp"
    old_tmp.write_bytes(b"left over")
    os.utime(old_tmp, (time.time() - 7200, time.time() - 7200))
    with open(held, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # as Cache.locked holds it while an entry is computed
        result = invoke(capsys, "cache", "prune", "--all", "--cache-dir", root)
        assert held.exists() and fresh_tmp.exists()
    assert result.code == 0 and result.err == ""
    assert result.out.strip() == (f"deleted 3 files (0.0 MB) from {root}; skipped 2 in use by a running privbench "
                                  "(held locks, writes in progress)")
    assert not free.exists() and not old_tmp.exists() and not (root / "task-model" / "a.pt").exists()


def test_eval_reads_a_labels_file_with_a_byte_order_mark_and_refuses_latin1(tmp_path, capsys):
    from PIL import Image

    for folder in ("orig", "recon"):
        (tmp_path / folder).mkdir()
        for i in range(4):
            Image.new("RGB", (32, 32), (40 * i, 10, 10)).save(tmp_path / folder / f"p{i}.png")
    bom = tmp_path / "bom.csv"
    bom.write_bytes("file,identity\n".encode("utf-8-sig") +
                    "".join(f"p{i}.png,{i // 2}\n" for i in range(4)).encode())
    result = invoke(capsys, "eval", "--metric", "psnr", "--recon", tmp_path / "recon", "--orig", tmp_path / "orig",
                    "--labels", bom)
    assert result.code == 0, result.err
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"file,identity\n" + "p0.png,Jos\xe9\n".encode("latin-1"))
    _one_error(invoke(capsys, "eval", "--metric", "psnr", "--recon", tmp_path / "recon", "--orig",
                      tmp_path / "orig", "--labels", latin),
               f"{latin} is not UTF-8 text (byte 24: b'\\xe9'); save it as UTF-8")


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_model_weights_that_are_missing_or_a_folder_stop_before_any_compute(tmp_path, capsys, kind):
    weights = tmp_path / ("nothing.pt" if kind == "missing" else "weights")
    if kind == "folder":
        weights.mkdir()
    model = {"name": "resnet18", "params": {"weights": str(weights)}, "split": "layer1"}
    config = write_yaml(tmp_path / "c.yaml", tiny(model=model))
    expected = (f"weights file not found: {weights}" if kind == "missing" else
                f"weights {weights} is a folder, not a weights file")
    _one_error(invoke(capsys, "run", config, "--dry-run", "--cache-dir", tmp_path / "cache"), expected)


def test_weights_that_do_not_load_stop_before_any_grid_point(tmp_path, capsys):
    """Known before compute: the network is built once from the given weights while the grid is checked, so no
    grid point starts (and the message does not claim that finished points are kept)."""
    weights = tmp_path / "wrong.pt"
    torch.save({"conv.weight": torch.zeros(2, 2)}, weights)
    model = {"name": "resnet18", "params": {"weights": str(weights)}, "split": "layer1"}
    config = write_yaml(tmp_path / "c.yaml", tiny(model=model))
    result = invoke(capsys, "run", config, "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache", "--quiet")
    lines = result.err.strip().splitlines()
    assert result.code == 2 and len(lines) == 1 and lines[0].startswith("privbench: error: "), result.err
    assert "grid point" not in lines[0] and "finished points are kept" not in lines[0]
    assert "wrong.pt" in lines[0] and "Traceback" not in result.err
    assert not (tmp_path / "out").exists()


def test_torch_user_warnings_do_not_precede_the_error_line(tmp_path, capsys, monkeypatch):
    import warnings

    def warn_then_fail(*args, **kwargs):
        warnings.warn_explicit("TypedStorage is deprecated", UserWarning, "torch/storage.py", 1,
                               module="torch.storage")
        raise PrivbenchError("the config is wrong")

    from privbench.errors import PrivbenchError

    monkeypatch.setattr("privbench.config.load_grid", warn_then_fail)
    monkeypatch.delenv("PRIVBENCH_HIDE_LIBRARY_WARNINGS", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        result = invoke(capsys, "run", tmp_path / "c.yaml", "--cache-dir", tmp_path / "cache")
    _one_error(result, "the config is wrong")


def test_a_full_disk_while_publishing_samples_names_the_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("privbench.run_record.run_key", lambda request: None)  # the normal path, not a record
    real_fdopen = os.fdopen
    written = []

    def fdopen(fd, mode):
        handle = real_fdopen(fd, mode)
        name = os.readlink(f"/proc/self/fd/{fd}") if Path("/proc/self/fd").is_dir() else ""
        written.append(name)
        if ".samples.pt." in name:
            handle.close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return handle

    monkeypatch.setattr("privbench.cache.os.fdopen", fdopen)
    config = write_yaml(tmp_path / "c.yaml", tiny())
    result = invoke(capsys, "run", config, "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache", "--quiet")
    if not any(".samples.pt." in w for w in written):
        pytest.skip("no /proc/self/fd here to tell which file a descriptor writes")
    lines = result.err.strip().splitlines()
    assert result.code == 2 and len(lines) == 1 and "Traceback" not in result.err, result.err
    assert lines[0].startswith(f"privbench: error: cannot write the run's outputs under {tmp_path / 'out'} (the disk "
                               "is full: cannot write ")
    assert lines[0].endswith(f"samples.pt); {tmp_path / 'out' / 'tiny'} is unchanged")
    assert not (tmp_path / "out" / "tiny").exists()
