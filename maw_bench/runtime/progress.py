"""One rich progress bar style for every long step (encoding, training, BM25, hashing, search, sweeps).

Bars go to stderr, on rank 0 only, and only when both stdout and stderr are
terminals (a log file or a pipe gets none) and ``--quiet`` was not given. ``step``
is the one way long work reports: ``with step("BM25 index", total=n) as advance:``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from maw_bench.runtime import distributed
from maw_bench.runtime.console import err_console

_settings = {"quiet": False}  # set once by the CLI (--quiet), like the logging level


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress bars at all."""
    _settings["quiet"] = quiet


def bars_enabled() -> bool:
    """True where a bar is wanted: not quiet, rank 0, and a person watching both streams."""
    return (not _settings["quiet"] and distributed.process_rank() == 0 and err_console.is_terminal
            and sys.stdout is not None and sys.stdout.isatty())


def progress_bar(*extra_columns) -> Progress:
    """A bar on stderr with count, elapsed and remaining time (plus any extra columns); a no-op where disabled."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        console=err_console,
        transient=False,
        disable=not bars_enabled(),
    )


@contextlib.contextmanager
def step(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """One bar for one long step; yields ``advance(n)``. ``total=None`` shows a spinner with the elapsed time."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
        if total is None:
            bar.update(task, total=1, completed=1)
