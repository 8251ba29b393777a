"""Sweeps: placeholder until the sweep runner lands."""

from __future__ import annotations

from pathlib import Path

from maw_bench.errors import UserError


def run_sweep(file: Path, output: Path | None, dry_run: bool) -> None:
    raise UserError("`maw-bench sweep` is not implemented yet in this version.")


def summarise_sweep(folder: Path) -> None:
    raise UserError("`maw-bench sweep` is not implemented yet in this version.")
