"""One rich console for human output (stdout) and logging set-up (stderr)."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

console = Console()
err_console = Console(stderr=True)


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """maw_bench logs at INFO (DEBUG with ``verbose``, WARNING with ``quiet``; WARNING for third parties) through rich on stderr."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )
    logging.getLogger("maw_bench").setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    for noisy in ("ir_datasets", "bm25s", "numba", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def import_bm25s():
    """``import bm25s``, which sets its own logger to DEBUG on import; put it back to WARNING."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s
