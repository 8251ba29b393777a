"""Every long step shows one bar, on rank 0, for a person at a terminal, and none under --quiet or in a log file."""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console

from maw_bench.data.bm25 import bm25_top_k
from maw_bench.runtime import progress


@pytest.fixture
def terminal(monkeypatch):
    """stderr as a terminal the test can read; stdout a TTY."""
    out = io.StringIO()
    monkeypatch.setattr(progress, "err_console", Console(file=out, force_terminal=True, width=120))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    yield out
    progress.set_quiet(False)


def test_bm25_index_and_search_show_bars_at_a_terminal(terminal):
    docs = [f"document number {i} about topic {i % 7}" for i in range(50)]
    pos, _ = bm25_top_k(docs, ["topic 3", "number 12"], k=5, label="toy")
    assert pos.shape == (2, 5)
    shown = terminal.getvalue()
    assert "BM25 index toy (50 docs)" in shown and "BM25 search toy" in shown


def test_quiet_rank_and_pipes_turn_bars_off(terminal, monkeypatch):
    assert progress.bars_enabled()
    progress.set_quiet(True)
    assert not progress.bars_enabled()
    bm25_top_k(["apple banana", "cherry date"], ["cherry"], k=1)
    assert terminal.getvalue() == ""
    progress.set_quiet(False)
    monkeypatch.setattr(progress, "_rank", lambda: 1)
    assert not progress.bars_enabled()  # DDP: rank 0 draws the only bar
    monkeypatch.setattr(progress, "_rank", lambda: 0)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert not progress.bars_enabled()  # `maw-bench eval ... > log`: no bars in the log


def test_the_cli_takes_quiet(monkeypatch):
    from typer.testing import CliRunner

    from maw_bench.cli import app

    res = CliRunner().invoke(app, ["--quiet", "eval", "--help"])
    assert res.exit_code == 0
    assert not progress.bars_enabled()
    progress.set_quiet(False)
