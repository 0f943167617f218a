"""Shared pieces of the reliability suite: the in-process CLI runner and a tiny benchmark config."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml
from conftest import reduced

from privbench.cli import main


@dataclasses.dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def invoke(capsys, *args: Any) -> Outcome:
    """Run the console entry point in-process as a shell would see it: exit status, stdout, stderr.

    Any exception other than ``SystemExit`` escaping ``main`` is what a user would see as a traceback, so it is
    reported as exit status 1 with the traceback on stderr (and fails the suite's checks)."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the traceback the user would see
        import traceback

        traceback.print_exc()
        code = 1
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def tiny(**changes: Any) -> dict[str, Any]:
    """The smallest real benchmark: one epoch, one defense setting, one 1-epoch attack, two cheap metrics."""
    data = reduced(defenses=[{"name": "noise", "params": {"placement": "features"}, "strengths": [0.0]}],
                   attacks=[{"name": "inverse-net", "params": {"epochs": 1}}], metrics=["psnr", "accuracy"],
                   name="tiny")
    data.update(changes)
    return data


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
