"""Every long step shows one bar, on rank 0, for a person at a terminal, and none under --quiet or in a log file."""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console

from maw_bench.data.bm25 import bm25_top_k
from maw_bench.runtime import distributed, progress


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
    monkeypatch.setattr(distributed, "process_rank", lambda: 1)
    assert not progress.bars_enabled()  # DDP: rank 0 draws the only bar
    monkeypatch.setattr(distributed, "process_rank", lambda: 0)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert not progress.bars_enabled()  # `maw-bench eval ... > log`: no bars in the log


def _at_a_terminal(args: list[str], env: dict) -> str:
    """Run maw-bench with stdout and stderr on a pseudo-terminal (what a person sees) and return what it drew."""
    import os
    import pty
    import select
    import subprocess

    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "maw_bench", *args], stdin=secondary, stdout=secondary,
                            stderr=secondary, env=env, close_fds=True)
    os.close(secondary)
    out = b""
    while select.select([primary], [], [], 120)[0]:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=120) == 0, out.decode(errors="replace")[-2000:]
    return out.decode(errors="replace")


@pytest.mark.slow
def test_a_person_at_a_terminal_sees_bars_and_quiet_turns_them_off(tiny_model, tmp_path):
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IR_DATASETS_HOME": str(tmp_path / "irds"), "COLUMNS": "120"}
    args = ["eval", "--dataset", "builtin", "--bm25", "--set", f"model.name={tiny_model}", "--set",
            "data.max_queries=10", "--set", "data.max_docs=60", "--set", f"eval.cache_dir={tmp_path / 'cache'}"]
    shown = _at_a_terminal([*args, "--output", str(tmp_path / "a")], env)
    assert "BM25 search" in shown and "encode queries" in shown
    quiet = _at_a_terminal(["--quiet", *args, "--output", str(tmp_path / "b")], env)
    assert "BM25 search" not in quiet and "encode queries" not in quiet
    assert "ndcg@10" in quiet  # the table still prints
