"""The errors that are the user's to fix, and their one-line wording, for every front door.

Each room's error type (ParamsError, ArtifactError, TrainError, …) is a ``UserError``: its message names
the key, file or value at fault and what is allowed, so a front door shows it as one line, never as a
traceback. This module imports nothing of the package: every room may depend on it.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a state the user can fix: the message says what and how."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with where the work stopped and what a rerun does (the trainer names the step)."""
    exit_code = 130         # the shell's code for SIGINT


class Terminated(Interrupted):
    """SIGTERM honoured at a step boundary (the trainer checkpointed that step)."""
    exit_code = 143         # the shell's code for SIGTERM


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message says what to do: shown as one line, never as a traceback (an OS failure too:
    a read-only tree, a full disk)."""
    return (UserError, OSError)


def describe(exc: BaseException) -> str:
    """One line: for an OS failure the path, what the OS said and what to do; otherwise the message."""
    from ganops.core.artifacts import describe_os_error

    return describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
