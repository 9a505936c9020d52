"""Advisory file locks: one run of the same thing at a time, whichever door started it.

`fcntl.flock` locks die with their process (even on SIGKILL), so a killed run never leaves a lock
that blocks the next one. The holder writes its pid into the file so a refused run can say who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from ganops.core.errors import UserError


class LockedError(UserError, RuntimeError):
    """The same run is already going on in another process; the message names its pid."""


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text().strip()
        if text:
            return text
    return "pid unknown"


@contextlib.contextmanager
def exclusive(path: Path, what: str, wait: bool = False) -> Iterator[None]:
    """Hold ``path`` exclusively while the block runs; refuse (or with ``wait``, block) if another process does."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockedError(f"{what} is already running ({_holder(path)}; lock {path}). Wait for it to finish, "
                              "or stop that process; a killed run releases the lock and resumes where it stopped."
                              ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}".encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Block until this process holds ``directory`` (flock on the directory itself: no file to leave behind)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
