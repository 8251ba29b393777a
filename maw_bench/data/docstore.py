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


def ensure_docstore(irds, dataset_id: str, count: int | None = None, guard=contextlib.nullcontext) -> None:
    """Build or verify the docstore of ``irds`` under a lock.

    ``count``: the documents the source holds, when known exactly (a local folder);
    otherwise ir_datasets' published count is expected, and a source that holds another
    number (a trimmed copy) is accepted once built, with a warning. ``guard``: a context
    around ir_datasets' own calls (for one-line download errors); our warnings stay outside it.
    """
    try:
        with guard():
            store = irds.docs_store()
    except (AttributeError, NotImplementedError, TypeError):
        return
    lookup = getattr(store, "lookup", None)
    if lookup is None or not hasattr(store, "build") or not hasattr(store, "path"):
        return  # not a store ir_datasets builds locally
    lock = Path(str(store.path) + ".maw-bench.lock")
    built_marker = Path(str(store.path) + ".maw-bench-count")  # what our own locked build found in the source
    with exclusive(lock):
        expected = _expected(store, count)
        marked = _read_int(built_marker)
        if store.built():
            have = len(lookup)
            if expected is None or have == expected or (count is None and have == marked):
                return
            log.warning("%s: its document store holds %d entries for %d documents (an interrupted or concurrent "
                        "build?); rebuilding it", dataset_id, have, expected)
            lookup.clear()
        with guard():
            store.build()
        have = len(lookup)
        if count is not None and have != count:
            lookup.clear()
            raise UserError(f"{dataset_id}: building its document store gave {have} entries for {count} documents; "
                            f"check the corpus file and rerun.")
        if expected is not None and have != expected:
            log.warning("%s: its source holds %d documents where %d are published; using what it holds",
                        dataset_id, have, expected)
        built_marker.write_text(f"{have}\n")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
