"""Every bad input, through the real command line: exit status 2, one ``privbench: error:`` line, no traceback,
and nothing written under ``--out`` (no run folder, no temporary folder, no partial file).

Each case builds its inputs in a fresh folder and returns the command's arguments; ``needle`` is a piece of
the expected message. Nearly all cases fail before any compute, so the table runs in seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from .helpers import invoke, tiny, write_yaml

NET = '''
from torch import nn

def make(num_classes=4):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))
'''


def _run(tmp: Path, **changes) -> list:
    """``privbench run`` of the tiny config with ``changes``, writing under tmp/out."""
    return ["run", write_yaml(tmp / "config.yaml", tiny(**changes)), "--out", tmp / "out", "--cache-dir",
            tmp / "cache", "--quiet"]


def _attack(tmp: Path, *extra) -> list:
    return ["attack", "--config", write_yaml(tmp / "config.yaml", tiny()), *extra, "--out", tmp / "out",
            "--cache-dir", tmp / "cache", "--quiet"]


def _defenses(strengths) -> dict:
    return {"defenses": [{"name": "noise", "params": {"placement": "features"}, "strengths": strengths}]}


def _custom_model(tmp: Path, weights: Path) -> list:
    (tmp / "net.py").write_text(NET)
    model = {"name": "custom", "params": {"factory": f"{tmp / 'net.py'}:make", "weights": str(weights)},
             "split": "1", "epochs": 1, "lr": 0.003, "batch_size": 32}
    return _run(tmp, model=model)


def _empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _attribute_probe(tmp: Path, csv_text: bytes, images: dict[str, bytes | None] | None = None) -> list:
    folder = tmp / "attrs"
    folder.mkdir()
    for name, content in (images or {}).items():
        if content is None:
            Image.new("RGB", (32, 32), (9, 99, 199)).save(folder / name)
        else:
            (folder / name).write_bytes(content)
    (folder / "table.csv").write_bytes(csv_text)
    probe = {"name": "attribute-csv", "params": {"csv": str(folder / "table.csv"), "size": 32}}
    return _run(tmp, probes=[probe])


def _finished_run(tmp: Path) -> Path:
    """A run folder as `privbench run` leaves it, without running anything: results.csv and samples.pt."""
    from privbench.report import save_samples
    from privbench.results import COLUMNS, base_row, to_frame, write_csv

    rows = [base_row(run_id="r", config_hash="h", seed=0, dataset="synth-faces", model="m", split="s",
                     defense="noise", defense_params="{}", strength=s, attack="rmle", metric=m, kind=k, value=v)
            for s in (0.0, 1.0) for m, k, v in (("psnr", "privacy", 20.0 - s), ("accuracy", "utility", 0.9 - s / 4))]
    run = tmp / "run"
    run.mkdir()
    write_csv(to_frame(rows)[COLUMNS], run / "results.csv")
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    save_samples({"synth-faces": images}, {("noise=0", "rmle"): {"synth-faces": images}}, run)
    return run


def _report(tmp: Path, change: Callable[[Path], None]) -> list:
    run = _finished_run(tmp)
    change(run)
    return ["report", run]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7])


def _folders(tmp: Path, image: Callable[[Path], None], labels: str | None = None) -> list:
    for side in ("orig", "recon"):
        (tmp / side).mkdir()
        image(tmp / side / "a.png")
    args = ["eval", "--metric", "psnr", "--recon", tmp / "recon", "--orig", tmp / "orig"]
    return args


def _unwritable(tmp: Path) -> Path:
    """A folder this process cannot create files in: /sys as root (permission bits do not stop root), else a
    folder without write permission."""
    if os.geteuid() == 0:
        if not Path("/sys").is_dir():
            pytest.skip("no unwritable folder for root on this system")
        return Path("/sys/privbench-reliability")
    folder = tmp / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    return folder / "inside"


def _float_image(path: Path) -> None:
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)).save(path.with_suffix(".tif"))


def _face_probe(identities: int, per_identity: int) -> dict:
    return {"probes": [{"name": "synth-faces", "params": {"subset": "test", "identities": identities,
                                                          "per_identity": per_identity, "size": 32}}],
            "metrics": ["psnr", "accuracy", "face-id"]}


CASES: dict[str, tuple[Callable[[Path], list], str]] = {
    # ---- parameter values (CLI) ------------------------------------------------------------------------
    "strength-nan": (lambda t: _attack(t, "--defense", "noise", "--strength", "nan", "--attack", "rmle"), "finite"),
    "strength-inf": (lambda t: _attack(t, "--defense", "noise", "--strength", "inf", "--attack", "rmle"), "finite"),
    "strength-minus-inf": (lambda t: _attack(t, "--defense", "noise", "--strength", "-inf", "--attack", "rmle"),
                           "finite"),
    "attack-param-nan": (lambda t: _attack(t, "--defense", "noise", "--attack", "inverse-net", "--attack-param",
                                           "lr=nan"), "finite"),
    "attack-param-int-fraction": (lambda t: _attack(t, "--defense", "noise", "--attack", "inverse-net",
                                                    "--attack-param", "epochs=1.5"), "expects int"),
    "param-bool-word": (lambda t: _attack(t, "--defense", "dropout", "--param", "rescale=maybe", "--attack", "rmle"),
                        "expects bool"),
    "param-choice": (lambda t: _attack(t, "--defense", "noise", "--param", "distribution=cauchy", "--attack", "rmle"),
                     "must be one of"),
    "param-empty-float": (lambda t: _attack(t, "--defense", "noise", "--param", "scale=", "--attack", "rmle"),
                          "parameter"),
    # ---- config values ---------------------------------------------------------------------------------
    "strengths-duplicate": (lambda t: _run(t, **_defenses([0.5, 0.5])), "twice"),
    "strengths-nan": (lambda t: _run(t, **_defenses([float("nan")])), "finite"),
    "strengths-inf": (lambda t: _run(t, **_defenses([float("inf")])), "finite"),
    "strengths-list-in-list": (lambda t: _run(t, **_defenses([[0.5]])), "one float"),
    "model-lr-nan": (lambda t: _run(t, model={**tiny()["model"], "lr": float("nan")}), "finite"),
    "model-epochs-fraction": (lambda t: _run(t, model={**tiny()["model"], "epochs": 2.5}), "must be a int"),
    "ci-level-nan": (lambda t: _run(t, ci_level=float("nan")), "finite"),
    "seed-huge": (lambda t: _run(t, seed=10**30), "seed"),
    "param-list-for-choice": (lambda t: _run(t, defenses=[{"name": "noise", "params": {"distribution": ["gaussian"]},
                                                           "strengths": [0.0]}]), "one str"),
    "param-null": (lambda t: _run(t, defenses=[{"name": "noise", "params": {"placement": None}, "strengths": [0.0]}]),
                   "one str"),
    "metric-twice": (lambda t: _run(t, metrics=["psnr", "psnr", "accuracy"]), "listed twice"),
    "attack-twice": (lambda t: _run(t, attacks=[{"name": "inverse-net", "params": {"epochs": 1}},
                                                {"name": "inverse-net", "params": {"epochs": 2}}]), "listed twice"),
    "defense-setting-twice": (lambda t: _run(t, defenses=[{"name": "noise", "strengths": [0.0]},
                                                          {"name": "noise", "strengths": [0.0, 1.0]}]), "listed twice"),
    "config-not-utf8": (lambda t: ["run", (lambda p: (p.write_bytes(b"name: \xff\xfe\n"), p)[1])(t / "c.yaml"),
                                   "--out", t / "out"], "UTF-8"),
    "config-not-yaml": (lambda t: ["run", (lambda p: (p.write_text("name: [unclosed\n"), p)[1])(t / "c.yaml"),
                                   "--out", t / "out"], "not valid YAML"),
    "config-params-not-mapping": (lambda t: _run(t, defenses=[{"name": "noise", "params": True, "strengths": [0.0]}]),
                                  "must be a mapping"),
    "config-param-called-name": (lambda t: _run(t, metrics=[{"name": "psnr", "params": {"name": "x"}}, "accuracy"]),
                                 "unknown parameter 'name'"),
    "config-numeric-key": (lambda t: _run(t, model={**tiny()["model"], 3: 4}), "unknown key '3'"),
    # ---- run names -------------------------------------------------------------------------------------
    "name-dotdot": (lambda t: _run(t)[:2] + ["--name", "../..", *_run(t)[2:]], "plain name"),
    "name-absolute": (lambda t: _run(t)[:2] + ["--name", str(t / "elsewhere"), *_run(t)[2:]], "plain name"),
    "name-empty": (lambda t: _run(t)[:2] + ["--name", "", *_run(t)[2:]], "plain name"),
    "name-dot": (lambda t: _run(t)[:2] + ["--name", ".", *_run(t)[2:]], "plain name"),
    "name-slash": (lambda t: _run(t)[:2] + ["--name", "a/b", *_run(t)[2:]], "plain name"),
    "name-in-config": (lambda t: _run(t, name="../escape"), "plain name"),
    "name-null-in-config": (lambda t: _run(t, name=None), "plain name"),
    # ---- output and cache folders ----------------------------------------------------------------------
    "out-under-a-file": (lambda t: [*_run(t), "--out", _empty_file(t / "file") / "out"], "is not a folder"),
    "out-unwritable": (lambda t: [*_run(t), "--out", _unwritable(t)], "not writable"),
    "cache-under-a-file": (lambda t: [*_run(t), "--cache-dir", _empty_file(t / "file") / "cache"], "is not a folder"),
    "cache-unwritable": (lambda t: [*_run(t), "--cache-dir", _unwritable(t)], "not writable"),
    "run-folder-is-a-file": (lambda t: (_run(t), (t / "out").mkdir(), _empty_file(t / "out" / "tiny"))[0],
                             "is not a folder"),
    # ---- weights and saved defenses ---------------------------------------------------------------------
    "weights-empty": (lambda t: _custom_model(t, _empty_file(t / "w.pt")), "empty"),
    "weights-text": (lambda t: (lambda p: (p.write_text("not weights"), _custom_model(t, p))[1])(t / "w.pt"),
                     "cannot read weights"),
    "weights-wrong-model": (lambda t: (lambda p: (torch.save({"0.weight": torch.zeros(2, 2)}, p),
                                                  _custom_model(t, p))[1])(t / "w.pt"), "do not fit"),
    "weights-not-a-state-dict": (lambda t: (lambda p: (torch.save([1, 2], p), _custom_model(t, p))[1])(t / "w.pt"),
                                 "does not hold a state dict"),
    "defense-file-empty": (lambda t: _attack(t, "--defense-file", _empty_file(t / "d.pt"), "--attack", "rmle"),
                           "not a privbench defense file"),
    "defense-file-bad-params": (lambda t: (lambda p: (torch.save(
        {"format": "privbench-defense/1", "defense": "autoencoder", "params": [1], "model_key": "k", "model": {},
         "state": {}}, p), _attack(t, "--defense-file", p, "--attack", "rmle"))[1])(t / "d.pt"), "not a mapping"),
    # ---- attribute tables -------------------------------------------------------------------------------
    "attribute-csv-missing-image": (lambda t: _attribute_probe(t, b"image,hat\na.png,1\nmissing.png,0\n",
                                                               {"a.png": None}), "missing image"),
    "attribute-csv-not-utf8": (lambda t: _attribute_probe(t, b"image,hat\n\xff\xfe.png,1\n"), "UTF-8"),
    "attribute-csv-corrupt-image": (lambda t: _attribute_probe(t, b"image,hat\na.png,1\n", {"a.png": b"\x89PNG junk"}),
                                    "cannot read image"),
    # ---- report inputs ----------------------------------------------------------------------------------
    "report-samples-corrupt": (lambda t: _report(t, lambda r: (r / "samples.pt").write_bytes(b"PK\x03\x04junk")),
                               "not a privbench samples file"),
    "report-samples-wrong-shape": (lambda t: _report(t, lambda r: torch.save(
        {"originals": {"x": torch.zeros(1, 3, 4, 4)}, "samples": {'["noise", 0, "rmle"]': {"x": torch.zeros(2)}}},
        r / "samples.pt")), "do not match"),
    "report-results-truncated": (lambda t: _report(t, lambda r: _truncate(r / "results.csv")), "truncated"),
    "report-results-empty": (lambda t: _report(t, lambda r: _empty_file(r / "results.csv")), "empty"),
    "report-results-binary": (lambda t: _report(t, lambda r: (r / "results.csv").write_bytes(b"\xff\xd8\xff\n")),
                              "not a privbench results table"),
    "report-results-header-only": (lambda t: _report(t, lambda r: (r / "results.csv").write_text(
        (r / "results.csv").read_text().splitlines()[0] + "\n")), "no rows"),
    "report-results-bad-number": (lambda t: _report(t, lambda r: (r / "results.csv").write_text(
        (r / "results.csv").read_text().replace(",20,", ",twenty,", 1))), "not a privbench results table"),
    # ---- images -----------------------------------------------------------------------------------------
    "eval-float-image": (lambda t: _folders(t, _float_image), "floating-point"),
    "eval-corrupt-image": (lambda t: _folders(t, lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n broken")),
                           "cannot read image"),
    # ---- protocol preconditions -------------------------------------------------------------------------
    "face-id-one-image-each": (lambda t: _run(t, **_face_probe(4, 1)), "no identity has two or more images"),
    "face-id-one-identity": (lambda t: _run(t, **_face_probe(1, 3)), "chance level is 1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_leaves_nothing(case, tmp_path, capsys):
    build, needle = CASES[case]
    args = build(tmp_path)
    before = _snapshot(tmp_path)
    result = invoke(capsys, *args)
    lines = result.err.splitlines()
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert len(lines) == 1 and lines[0].startswith("privbench: error: "), result.err
    assert needle in lines[0], lines[0]
    out = tmp_path / "out"
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if not p.is_relative_to(out / "tiny")) \
        if out.is_dir() else []
    assert not (out / "tiny").is_dir() and left == [], left
    assert _snapshot(tmp_path) - before <= {"cache"}, _snapshot(tmp_path) - before


def _snapshot(tmp: Path) -> set[str]:
    """Top-level entries of the case's folder (a new one would be an output written somewhere unexpected)."""
    return {p.name for p in tmp.iterdir()}
