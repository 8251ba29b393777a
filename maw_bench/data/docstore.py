"""Build a collection's ir_datasets docstore once, by one process, and check it before it is trusted.

ir_datasets builds a docstore (``docs.pklz4``) on first use and counts any non-empty
store as built. Several processes opening a new collection at once (the ranks of a
``torchrun`` job, two evaluations) each start a build: the store then holds every
document twice, or a half-written store that the lz4 reader rejects. Here the build
happens behind an exclusive ``flock`` (the others wait, then find it built), and a
store whose size does not match the collection's document count is rebuilt with a
warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from maw_bench.errors import UserError

log = logging.getLogger("maw_bench")


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """A blocking exclusive ``flock`` on ``path`` (released when the process dies, even on SIGKILL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _expected(store, count: int | None) -> int | None:
    if count is not None:
        return count
    hint = getattr(store, "count_hint", None)
    return hint() if callable(hint) else hint


def ensure_docstore(irds, dataset_id: str, count: int | None = None) -> None:
    """Build or verify the docstore of ``irds`` under a lock; ``count``: the documents the source holds, if known."""
    try:
        store = irds.docs_store()
    except (AttributeError, NotImplementedError, TypeError):
        return
    lookup = getattr(store, "lookup", None)
    if lookup is None or not hasattr(store, "build") or not hasattr(store, "path"):
        return  # not a store ir_datasets builds locally
    lock = Path(str(store.path) + ".maw-bench.lock")
    with exclusive(lock):
        expected = _expected(store, count)
        if store.built():
            have = len(lookup)
            if expected is None or have == expected:
                return
            log.warning("%s: its document store holds %d entries for %d documents (an interrupted or concurrent "
                        "build?); rebuilding it", dataset_id, have, expected)
            lookup.clear()
        store.build()
        have = len(lookup)
        if expected is not None and have != expected:
            lookup.clear()
            raise UserError(f"{dataset_id}: building its document store gave {have} entries for {expected} documents; "
                            f"check the corpus file (duplicate ids?) and rerun.")
