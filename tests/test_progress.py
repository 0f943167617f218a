"""Long steps say what they do, on stderr only, and not at all under --quiet (privbench.progress)."""

import queue
import time

import click
import pytest
import torch
from click.testing import CliRunner

from privbench import cli as cli_module
from privbench import progress
from privbench.executors import _worker_start
from privbench.training import Update, train

#: the threshold the tests use instead of progress.DELAY (2 s)
FAST = 0.05


@pytest.fixture(autouse=True)
def fresh_progress(monkeypatch):
    """Each test starts with progress off, no PRIVBENCH_QUIET, no open step and a fresh display."""
    monkeypatch.delenv(progress.QUIET_ENV, raising=False)
    monkeypatch.setattr(progress, "_DISPLAY", None)
    tracker = progress._TRACKER
    monkeypatch.setattr(tracker, "on", False)
    monkeypatch.setattr(tracker, "delay", progress.DELAY)
    monkeypatch.setattr(tracker, "sink", None)
    monkeypatch.setattr(tracker, "shown", False)
    yield
    tracker.stack.clear()


def slow_step(name: str, epochs: int = 4, seconds: float = 0.03) -> None:
    with progress.step(name, total=epochs, unit="epoch") as s:
        for _ in range(epochs):
            time.sleep(seconds)
            s.update()


def test_a_step_longer_than_the_threshold_prints_its_name_count_and_eta_on_stderr_only(capsys):
    progress.enable(delay=FAST)
    slow_step("training the face recognizer")
    out, err = capsys.readouterr()
    assert "training the face recognizer" in err
    assert "/4 epochs [" in err and "<" in err  # k/n and elapsed<remaining
    assert out == ""  # results on stdout stay clean


def test_a_step_shorter_than_the_threshold_is_silent(capsys):
    progress.enable()  # the default threshold, 2 s
    slow_step("a quick step", epochs=2, seconds=0.01)
    assert capsys.readouterr().err == ""


def test_a_silent_step_is_shown_once_it_has_run_the_threshold(capsys):
    """No update for a while (a step around a long call): the ticker shows it anyway, with its elapsed time."""
    progress.enable(delay=FAST)
    with progress.step("fitting the autoencoder defense (w_rec=0.5)"):
        time.sleep(FAST + 3 * progress.TICK)
    assert "fitting the autoencoder defense (w_rec=0.5) [00:00]" in capsys.readouterr().err


class NoStep:
    """A stand-in optimizer (a torch optimizer's first step costs ~3 s of imports): this test is about counting."""

    def __init__(self, parameters, lr) -> None:
        self.parameters = parameters

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters:
            p.grad = None

    def step(self) -> None:
        pass


def test_nested_steps_read_as_one_line_with_the_phase_and_the_training_loops_epochs(capsys, monkeypatch):
    progress.enable(delay=0.0)
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)  # not a terminal: a line at every refresh, not every 10 s
    weight = torch.nn.Parameter(torch.zeros(3))
    update = Update([weight], lambda idx: weight.square().sum(), 0.1, schedule="constant", optimizer=NoStep)
    with progress.step("fitting the pruning defense (budget=0.5)"):
        progress.note("learning the channel masks")
        train(8, [update], epochs=3, batch_size=4, on_epoch=lambda _: time.sleep(0.01))
    err = capsys.readouterr().err
    assert "fitting the pruning defense (budget=0.5) — learning the channel masks: " in err
    assert "/3 epochs" in err


def test_a_trained_defense_says_its_phase_on_the_line_of_its_fit(capsys):
    from privbench.defenses.base import FitContext

    progress.enable(delay=0.0)
    context = FitContext(model=None, train=None, device=torch.device("cpu"), seed=0)  # only say() is used
    with progress.step("fitting the autoencoder defense (w_rec=0.5)"):
        context.say("stage 2: training the reconstruction adversary (RecNet)")
    assert "fitting the autoencoder defense (w_rec=0.5) — stage 2: training the reconstruction adversary (RecNet)" \
        in capsys.readouterr().err


def test_off_in_library_use_unless_enabled(capsys):
    slow_step("training the task model", seconds=FAST)
    assert capsys.readouterr().err == ""


def test_privbench_quiet_silences_an_enabled_process(capsys, monkeypatch):
    progress.enable(delay=FAST)
    monkeypatch.setenv(progress.QUIET_ENV, "1")
    slow_step("training the task model")
    assert capsys.readouterr().err == ""


def test_a_jobs_worker_sends_its_line_to_the_parent_and_nothing_under_privbench_quiet(capsys, monkeypatch):
    """A --jobs worker (its start, executors._worker_start) sends its lines to the parent's Relay, which shows
    them on the parent's stderr; a worker that inherited PRIVBENCH_QUIET=1 (the CLI's --quiet) sends nothing."""
    lines: queue.Queue = queue.Queue()
    monkeypatch.setenv(progress.QUIET_ENV, "1")
    _worker_start(torch.get_num_threads(), lines)
    monkeypatch.setattr(progress._TRACKER, "delay", FAST)
    slow_step("fitting the inverse-net attack against noise=1")
    assert lines.empty()
    assert capsys.readouterr().err == ""

    monkeypatch.delenv(progress.QUIET_ENV)
    slow_step("fitting the inverse-net attack against noise=1")
    assert capsys.readouterr().err == ""  # a worker never writes to the terminal itself
    relay = progress.Relay(lines)
    relay.pump()
    relay.close()
    out, err = capsys.readouterr()
    assert "fitting the inverse-net attack against noise=1" in err
    assert out == ""


def quiet_cli() -> click.Group:
    """The CLI's group callback (progress on) and its --quiet option around a command with a slow step."""

    @click.command()
    @click.option("--quiet", is_flag=True, callback=cli_module._quiet)
    def slow(quiet: bool) -> None:
        assert progress.enabled() is not quiet
        slow_step("training the task model")
        click.echo("results")

    return click.Group("privbench", callback=cli_module.cli.callback, params=cli_module.cli.params,
                       commands={"slow": slow})


@pytest.mark.parametrize("quiet", [False, True])
def test_the_command_line_shows_steps_unless_quiet_and_restores_the_setting_after(quiet, monkeypatch):
    monkeypatch.setattr(progress._TRACKER, "delay", FAST)
    result = CliRunner().invoke(quiet_cli(), ["slow", *(["--quiet"] if quiet else [])], env={progress.QUIET_ENV: None})
    assert result.exit_code == 0, result.output
    assert result.stdout == "results\n"
    assert ("training the task model" in result.stderr) is not quiet
    assert not progress.enabled()
    assert progress.QUIET_ENV not in __import__("os").environ


def test_the_commands_that_run_a_benchmark_take_quiet_through_the_progress_callback():
    for name in ("run", "attack", "baseline"):
        (option,) = [p for p in cli_module.cli.commands[name].params if p.name == "quiet"]
        assert option.callback is cli_module._quiet, name
