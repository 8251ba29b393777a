"""One rich progress bar style for long work (encoding, training, sweeps)."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from maw_bench.console import err_console


def progress_bar(*extra_columns) -> Progress:
    """A bar on stderr with count, elapsed and remaining time (plus any extra columns)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        console=err_console,
        transient=False,
    )
