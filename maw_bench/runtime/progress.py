"""One rich progress bar style for every long step (encoding, training, BM25, hashing, search, sweeps).

Bars go to stderr, on rank 0 only, and only when both stdout and stderr are
terminals (a log file or a pipe gets none) and ``--quiet`` was not given. ``step``
is the one way long work reports: ``with step("BM25 index", total=n) as advance:``.
"""

from __future__ import annotations

import contextlib
import os
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


def _person_watching() -> bool:
    """Both streams are terminals (not a log file, not a pipe)."""
    return err_console.is_terminal and sys.stdout is not None and sys.stdout.isatty()


def bars_enabled() -> bool:
    """True where a bar is wanted: not quiet, rank 0, and a person watching both streams."""
    return not _settings["quiet"] and distributed.process_rank() == 0 and _person_watching()


def quiet_third_party_bars() -> None:
    """Keep other libraries' tqdm bars (ir_datasets' ``docs_iter``, transformers' ``Writing model shards``,
    huggingface_hub's downloads) out of a log file or a pipe, and out of ``--quiet``: a bar there is a line of
    carriage returns a person cannot read. Called by the CLI before any of them is imported; tqdm and
    huggingface_hub read these variables when imported, and child processes (``--jobs``, DDP ranks) inherit them.
    A variable the user set wins. Libraries already imported (the Python API) are told directly."""
    if not _settings["quiet"] and distributed.launch_rank() == 0 and _person_watching():
        return  # the launcher's rank: asking the process group would import torch, and torch imports tqdm
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


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
