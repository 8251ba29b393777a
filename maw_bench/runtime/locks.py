"""A lock file per output folder, so two commands never write into the same one at once."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from maw_bench.errors import UserError

LOCK_NAME = ".maw-bench.lock"


@contextlib.contextmanager
def folder_lock(folder: Path, enabled: bool = True) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder/.maw-bench.lock``; a second holder fails at once.

    The kernel drops the lock when the process dies (even on SIGKILL), so a stale
    lock file never blocks a rerun.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if not enabled:  # the other ranks of a distributed job: rank 0 holds the lock
        yield
        return
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "another process"
            raise UserError(f"{folder} is in use by {holder}; wait for it to finish or choose another --output.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        yield
    finally:
        os.close(fd)
