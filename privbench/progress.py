"""What a long step is doing: one line under the run's bar, on stderr, while the task model, a recognizer, a
trained defense or an attack trains (DESIGN §9: "each node reports its progress").

    with step("training the face recognizer", total=epochs, unit="epoch") as s:
        for epoch in range(epochs):
            ...
            s.update()

    for epoch in track(range(epochs), unit="epoch"):   # the same, as a loop
        ...

Steps nest: the line reads ``outer › inner: 3/10 epochs [00:06<00:14]`` — the names of the open steps, a
step's :func:`note` (its current phase) after its name, and the count, elapsed time and ETA of the innermost
step that counts. A nameless step (the training loop's epochs, :func:`privbench.training.train`) only counts, for
the named step around it. :func:`advance` counts for the innermost open step, for a loop that cannot be wrapped.

Quiet by default: nothing is shown unless progress is enabled — the CLI does (:func:`configure`), ``--quiet`` or
``PRIVBENCH_QUIET=1`` turns it off, in this process and in every process it starts (the variable is inherited;
the ``--jobs`` workers get it through :mod:`privbench.executors`). A step is shown only once the outermost open
step has run :data:`DELAY` seconds, so short steps stay silent. Nothing is ever written to stdout (results).

On a terminal each process's line is a tqdm bar under the run's bar (``leave=False``: it disappears when the step
ends); elsewhere (a log file, CI) a step is written as whole lines (``tqdm.write``, which keeps the run's bar
intact): when the step or its phase changes, and every :data:`LOG_EVERY` seconds. A ``--jobs`` worker sends its
line to the parent process (:func:`report_to`, :class:`Relay`), which shows one line per busy worker, so workers
never write to the terminal themselves.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

#: ``PRIVBENCH_QUIET=1``: no step lines in this process or the processes it starts (set by ``--quiet``)
QUIET_ENV = "PRIVBENCH_QUIET"
#: seconds the outermost open step runs before its line is shown (shorter steps stay silent)
DELAY = 2.0
#: seconds between two refreshes of a shown line (elapsed time, ETA)
TICK = 0.25
#: not on a terminal: seconds between two lines of an unchanged step
LOG_EVERY = 10.0

T = TypeVar("T")
#: where a process's line goes: ``sink(text, topic)``, ``text`` None to hide it; ``topic`` names what the line is
#: about (the named steps and their phases), so a log gets a new line when it changes
Sink = Callable[[str | None, str], None]


class Step:
    """One open step: its name (``None``: counts for the named step around it), count and current phase."""

    def __init__(self, name: str | None, total: int | None, unit: str) -> None:
        self.name = name
        self.total = total
        self.unit = unit
        self.n = 0
        self.phase = ""
        self.start = time.monotonic()

    def update(self, n: int = 1) -> None:
        """``n`` more units of the step done."""
        with _TRACKER.lock:
            self.n += n
            _TRACKER.changed()

    def note(self, text: str) -> None:
        """What the step does now (a phase of it), shown after its name."""
        with _TRACKER.lock:
            self.phase = text
            _TRACKER.changed(structure=True)


class _Tracker:
    """This process's open steps and where their line goes."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.on = False
        self.delay = DELAY
        self.stack: list[Step] = []
        self.sink: Sink | None = None  # None: this process's own display
        self.shown = False
        self.last = 0.0
        self.ticker: threading.Thread | None = None

    def active(self) -> bool:
        return self.on and os.environ.get(QUIET_ENV, "").strip() in ("", "0")

    def push(self, item: Step) -> None:
        with self.lock:
            self.stack.append(item)
            self.changed(structure=True)

    def pop(self, item: Step) -> None:
        with self.lock:
            if item in self.stack:
                del self.stack[self.stack.index(item):]
            self.changed(structure=True)

    def changed(self, structure: bool = False) -> None:
        """Re-render after a change (a shown line at most once per :data:`TICK`, unless steps opened or closed)."""
        if not self.on:
            return
        now = time.monotonic()
        if structure or not self.shown or now - self.last >= TICK:
            self.render(now)

    def render(self, now: float) -> None:
        if not self.stack or not self.active():
            if self.shown:
                self.send(None, "")
                self.shown = False
            return
        if self.ticker is None:  # refreshes the line while nothing else happens (and shows a silent step)
            self.ticker = threading.Thread(target=self._tick, name="privbench-progress", daemon=True)
            self.ticker.start()
        if now - self.stack[0].start < self.delay:
            return
        self.last = now
        text, topic = _line(self.stack, now, _width())
        self.send(text, topic)
        self.shown = True

    def send(self, text: str | None, topic: str) -> None:
        # a broken terminal or a closed queue must not stop a run
        with contextlib.suppress(Exception):
            (self.sink or _local_display().sink("this process"))(text, topic)

    def _tick(self) -> None:
        while True:
            time.sleep(TICK)
            with self.lock:
                if self.stack:
                    self.render(time.monotonic())


_TRACKER = _Tracker()


def _width() -> int | None:
    """The terminal's width for a bar, or None when stderr is not a terminal (whole lines, no bar)."""
    if not _is_terminal():
        return None
    return shutil.get_terminal_size((100, 24)).columns - 1  # tqdm trims a full-width line by one


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _line(stack: list[Step], now: float, width: int | None) -> tuple[str, str]:
    """(the line, its topic): the named steps with their phases (the topic) and the meter of the innermost
    counting step."""
    from tqdm import tqdm

    counting = next((s for s in reversed(stack) if s.total or s.n), None)
    parts = []
    for s in stack:
        if s.name is None:
            continue
        text = f"{s.name} — {s.phase}" if s.phase else s.name
        if s is not counting and s.total:
            text += f" ({s.n}/{s.total} {s.unit}s)"
        parts.append(text)
    crumb = " › ".join(parts) or "working"
    if counting is None:
        return f"{crumb} [{tqdm.format_interval(now - stack[0].start)}]", crumb
    if counting.total:
        bar = "{percentage:3.0f}%|{bar}| " if width else ""
        form = "{desc}: " + bar + "{n_fmt}/{total_fmt} " + counting.unit + "s [{elapsed}<{remaining}]"
    else:
        form = "{desc}: {n_fmt} " + counting.unit + "s [{elapsed}]"
    text = tqdm.format_meter(counting.n, counting.total, now - counting.start, ncols=width, prefix=crumb,
                             bar_format=form)
    return text, crumb


class _Display:
    """The step lines on this process's stderr, one per source (this process, each ``--jobs`` worker)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.bars: dict[Any, Any] = {}
        self.logged: dict[Any, tuple[str, float]] = {}

    def sink(self, source: Any) -> Sink:
        return lambda text, topic: self.show(source, text, topic)

    def show(self, source: Any, text: str | None, topic: str) -> None:
        from tqdm import tqdm

        with self.lock:
            if text is None:
                self.logged.pop(source, None)
                bar = self.bars.pop(source, None)
                if bar is not None:
                    bar.close()
                return
            if not _is_terminal():  # whole lines, when the topic changes and now and then
                last = self.logged.get(source)
                now = time.monotonic()
                if last is None or last[0] != topic or now - last[1] >= LOG_EVERY:
                    tqdm.write(text, file=sys.stderr)
                    self.logged[source] = (topic, now)
                return
            bar = self.bars.get(source)
            if bar is None:  # placed under the bars already shown (the run's): position chosen by tqdm
                bar = self.bars[source] = tqdm(file=sys.stderr, bar_format="{desc}", leave=False,
                                               dynamic_ncols=True)
            bar.set_description_str(text, refresh=True)

    def close(self) -> None:
        for source in list(self.bars) + list(self.logged):
            self.show(source, None, "")


_DISPLAY: _Display | None = None


def _local_display() -> _Display:
    global _DISPLAY
    if _DISPLAY is None:
        _DISPLAY = _Display()
    return _DISPLAY


# ---- the API --------------------------------------------------------------------------------------------------

def enabled() -> bool:
    """Whether steps are shown in this process (enabled and not ``PRIVBENCH_QUIET=1``)."""
    return _TRACKER.active()


def enable(on: bool = True, *, delay: float | None = None) -> Callable[[], None]:
    """Show (or not) the steps of this process; ``delay``: seconds before a step is shown (default
    :data:`DELAY`). Returns a function that restores the previous setting."""
    with _TRACKER.lock:
        before = (_TRACKER.on, _TRACKER.delay)
        _TRACKER.on = on
        if delay is not None:
            _TRACKER.delay = delay
        _TRACKER.render(time.monotonic())

    def restore() -> None:
        with _TRACKER.lock:
            _TRACKER.on, _TRACKER.delay = before
            _TRACKER.render(time.monotonic())
    return restore


def configure(quiet: bool) -> Callable[[], None]:
    """The command line's setting: steps shown unless ``quiet``; ``quiet`` also sets ``PRIVBENCH_QUIET=1`` so the
    processes this one starts (``--jobs`` workers) stay quiet. Returns a function that restores both."""
    previous = os.environ.get(QUIET_ENV)
    if quiet:
        os.environ[QUIET_ENV] = "1"
    restore = enable(not quiet)

    def undo() -> None:
        if previous is None:
            os.environ.pop(QUIET_ENV, None)
        else:
            os.environ[QUIET_ENV] = previous
        restore()
    return undo


@contextlib.contextmanager
def step(name: str | None, total: int | None = None, unit: str = "step") -> Iterator[Step]:
    """A long step, named for a user ("training the face recognizer"): ``total`` units (``None``: unknown);
    call :meth:`Step.update` as units finish. Silent unless enabled and until it has run :data:`DELAY` s."""
    item = Step(name, total, unit)
    _TRACKER.push(item)
    try:
        yield item
    finally:
        _TRACKER.pop(item)


def track(iterable: Iterable[T], name: str | None = None, *, total: int | None = None,
          unit: str = "step") -> Iterator[T]:
    """The items of ``iterable``, each counted as one unit of a :func:`step` when the next one starts (or the loop
    ends); a nameless step (``name`` None) counts for the named step around it."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with step(name, total, unit) as item:
        for k, value in enumerate(iterable):
            if k:
                item.update()
            yield value
        if item.n < (total or 0):
            item.update()


def note(text: str) -> None:
    """Say what the innermost named open step does now ("stage 2: training RecNet"); nothing without one."""
    with _TRACKER.lock:
        named = next((s for s in reversed(_TRACKER.stack) if s.name is not None), None)
        if named is not None:
            named.note(text)


def advance(n: int = 1) -> None:
    """Count ``n`` units for the innermost open step (a hook for a loop that cannot be wrapped)."""
    if _TRACKER.stack:
        _TRACKER.stack[-1].update(n)


# ---- --jobs workers ---------------------------------------------------------------------------------------------

def report_to(queue: Any) -> None:
    """In a worker process: send this process's line to the parent's :class:`Relay` on ``queue`` (enabled unless
    ``PRIVBENCH_QUIET=1``, which the worker inherits)."""
    source = os.getpid()
    with contextlib.suppress(Exception):  # a worker's exit never waits for the parent to read its last line
        queue.cancel_join_thread()
    with _TRACKER.lock:
        _TRACKER.sink = lambda text, topic: queue.put((source, text, topic))
    enable(True)


class Relay:
    """In the parent process: shows the lines the workers send on ``queue`` (:func:`report_to`), one per worker."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.display = _local_display()
        self.sources: set[Any] = set()

    def pump(self) -> None:
        """Show every line received so far (call it often: the executor's wait loop)."""
        import queue as queues

        while True:
            try:
                source, text, topic = self.queue.get_nowait()
            except (queues.Empty, OSError, ValueError, EOFError):
                return
            self.sources.add(source)
            self.display.show(("worker", source), text, topic)

    def close(self) -> None:
        """Hide every worker's line (the pool has stopped)."""
        for source in self.sources:
            self.display.show(("worker", source), None, "")
        self.sources.clear()


#: set (to "1") by the command line without --debug: torch's and torchvision's UserWarnings stay off the console, in
#: the worker processes too (they inherit the environment); a user error is then the one line it should be
LIBRARY_WARNINGS_ENV = "PRIVBENCH_HIDE_LIBRARY_WARNINGS"


def hide_library_warnings() -> None:
    """Silence torch's and torchvision's UserWarnings in this process when :data:`LIBRARY_WARNINGS_ENV` says so."""
    import warnings

    if os.environ.get(LIBRARY_WARNINGS_ENV) == "1":
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch(vision)?(\.|$)")
