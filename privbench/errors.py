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
