"""The one exception type for user errors.

A :class:`PrivbenchError` is something the user can fix (a bad name, an out-of-range value, a missing
file). The CLI prints its message as one line on stderr and exits non-zero; anything else is a bug and
keeps its traceback.
"""


class PrivbenchError(Exception):
    """A user-facing error: its message is printed as one line, without a traceback."""


class MetricUnavailable(Exception):
    """A metric cannot be scored honestly here (e.g. pretrained weights are not on disk). Not an error of the
    run: the engine records a note for that metric and goes on."""


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message, or its type name when the message is empty: many
    loaders raise with no text (``str(exc).splitlines()[0]`` would itself fail with an IndexError)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def described(exc: BaseException) -> str:
    """``Type: first line`` of an exception (just ``Type`` when it has no message), for one-line errors."""
    line = first_line(exc)
    return line if line == type(exc).__name__ else f"{type(exc).__name__}: {line}"
