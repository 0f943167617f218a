"""CLI misuse gives one clear line on stderr and a non-zero exit; list/help work."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from privbench.cli import cli, main


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run_cli(capsys):
    """Run the console entry point ``main`` in-process, as the user's shell would see it."""

    def invoke(*args):
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # --debug re-raises: that is the traceback the user asked for
            import traceback

            traceback.print_exc()
            code = 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def test_console_script_exit_code_in_a_real_process():
    result = subprocess.run([sys.executable, "-m", "privbench.cli", "list", "nothing"], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Invalid value" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["attack", "--defense", "nope", "--attack", "inverse-net"], "unknown defense 'nope'"),
        (["attack", "--defense", "dropout", "--strength", "1.5", "--attack", "inverse-net"], "must be <= 0.99"),
        (["attack", "--defense", "noise", "--strength", "-1", "--attack", "inverse-net"], "must be >= 0"),
        (["attack", "--defense", "noise", "--attack", "telepathy"], "unknown attack 'telepathy'"),
        (["attack", "--defense", "noise", "--param", "colour=red", "--attack", "inverse-net"],
         "unknown parameter 'colour'"),
        (["run", "/definitely/missing.yaml"], "config file not found: /definitely/missing.yaml"),
        (["report", "/definitely/missing-run"], "results file not found"),
        (["run", "--bogus-flag"], "No such option '--bogus-flag'"),
    ],
)
def test_misuse_is_one_clear_line(run_cli, args, needle):
    result = run_cli(*args)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_config_key_is_named(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: vgg-small, colour: blue}\n")
    result = run_cli("run", str(bad))
    assert result.returncode == 2
    assert "unknown key 'colour' in 'model'" in result.stderr


def test_debug_shows_traceback(run_cli):
    result = run_cli("--debug", "attack", "--defense", "nope", "--attack", "inverse-net")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_list_shows_declared_parameters():
    out = CliRunner().invoke(cli, ["list", "defenses"])
    assert out.exit_code == 0
    assert "noise [strength = scale]" in out.output
    assert "rate (float [0, 0.99], default 0.5)" in out.output


def test_every_command_has_help():
    runner = CliRunner()
    for command in ("run", "attack", "list", "report"):
        out = runner.invoke(cli, [command, "--help"])
        assert out.exit_code == 0 and "Usage" in out.output


def test_out_of_range_model_setting_is_one_line(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: vgg-small, augment_blur: 50}\n")
    result = run_cli("run", str(bad))
    assert result.returncode == 2
    assert "model.augment_blur" in result.stderr and "Traceback" not in result.stderr
