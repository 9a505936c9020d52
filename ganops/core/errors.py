"""The errors that are the user's to fix, and their one-line wording, for every front door."""

from __future__ import annotations


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message says what to do: shown as one line, never as a traceback."""
    from ganops.commands.sample import SampleError
    from ganops.commands.translate import TranslateError
    from ganops.core.artifacts import ArtifactError
    from ganops.core.locks import LockedError
    from ganops.core.params import ParamsError
    from ganops.data.sources import DataSourceError
    from ganops.embed import EncoderError
    from ganops.neighbors.search import NeighborsError
    from ganops.tracking.registry import RegistryError
    from ganops.train import TrainError

    return (ParamsError, ArtifactError, DataSourceError, EncoderError, NeighborsError, TrainError, SampleError,
            TranslateError, LockedError, RegistryError, OSError)


def describe(exc: BaseException) -> str:
    """One line: for an OS failure the path, what the OS said and what to do; otherwise the message."""
    from ganops.core.artifacts import describe_os_error

    return describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
