"""The failures ``sspa`` reports as one line instead of a traceback.

Two kinds, by exit code: bad input (a file, value or setting the user gave; exit code 2, like a
mistyped flag) and a run that cannot go on (exit code 1). Every message names the file or
key at fault and how to fix it. :func:`sspa_core.cli.main` also reports a few standard exceptions
this way (see ``sspa_core.cli.exit_code``); ``sspa --debug COMMAND`` shows the traceback instead.
"""

from __future__ import annotations


class SSPAError(Exception):
    """A failure with a message meant for the user; ``exit_code`` is the command's exit status."""

    exit_code = 1


class InputError(SSPAError, ValueError):
    """A file, value or setting the user gave cannot be used (exit code 2)."""

    exit_code = 2


class CheckpointError(InputError):
    """A checkpoint that is truncated, not a checkpoint, unsafe, or made for another model."""


class OutputError(SSPAError, OSError):
    """An output that could not be written (a full disk or quota, a lost mount); exit code 1."""


class WeightsUnavailable(SSPAError, RuntimeError):
    """Pretrained weights that could not be fetched (no connection, no such file on the hub)."""
