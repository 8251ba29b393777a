"""Malformed collections and concurrent first use: one line and exit 2, a warning with counts, or a store built once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IRDS_HOME, need, write_toy_beir


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(args: list[str], env: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maw_bench", *args], capture_output=True, text=True,
                          env={**os.environ, "MAW_BENCH_OFFLINE": "1", **(env or {})}, timeout=timeout)


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def _edit(folder: Path, how: str) -> None:
    corpus, queries, qrels = folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / "test.tsv"
    if how == "latin1 corpus":
        _append(corpus, json.dumps({"_id": "dx", "text": "caf"}).encode()[:-2] + b"\xe9\"}\n")
    elif how == "latin1 queries":
        _append(queries, b'{"_id": "qx", "text": "na\xefve"}\n')
    elif how == "duplicate doc id":
        _append(corpus, json.dumps({"_id": "d3", "title": "", "text": "another text"}).encode() + b"\n")
    elif how == "duplicate query id":
        _append(queries, json.dumps({"_id": "q31", "text": "again"}).encode() + b"\n")
    elif how == "float score":
        _append(qrels, b"q31\td31\t0.5\n")
    elif how == "conflicting judgements":
        _append(qrels, b"q31\td31\t1\nq31\td31\t2\n")  # the same grade again is fine, another one is not


@pytest.mark.parametrize("how, needle", [
    ("latin1 corpus", "corpus.jsonl line 121, byte"),
    ("latin1 queries", "queries.jsonl line 61, byte"),
    ("duplicate doc id", "id 'd3' already appears on line 4"),
    ("duplicate query id", "id 'q31' already appears on line 32"),
    ("float score", "with an integer score"),
    ("conflicting judgements", "test.tsv line 33: query 'q31' and document 'd31' are judged 2 here and 1 on line 3"),
])
def test_malformed_collection_files_give_one_line(tmp_path, how, needle):
    folder = write_toy_beir(tmp_path / "toy")
    _edit(folder, how)
    for args in (["datasets", "check", str(folder)], ["eval", "--dataset", str(folder)]):
        proc = _cli(args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("how, needle", [
    ("empty query", "1 queries have an empty text"),
    ("unknown judged query", "1 judged query ids are not in queries.jsonl"),
    ("unknown judged doc", "1 judged document ids are not in corpus.jsonl"),
])
def test_doubtful_collection_content_is_a_counted_warning(tmp_path, how, needle):
    folder = write_toy_beir(tmp_path / "toy")
    if how == "empty query":
        _append(folder / "queries.jsonl", b'{"_id": "q99", "text": "  "}\n')
    elif how == "unknown judged query":
        _append(folder / "qrels" / "test.tsv", b"q404\td1\t1\n")
    else:
        _append(folder / "qrels" / "test.tsv", b"q31\td404\t1\n")
    proc = _cli(["datasets", "check", str(folder), "--json"])
    assert proc.returncode == 0, proc.stderr
    assert needle in " ".join(proc.stderr.split())


def _store_entries(home: Path) -> list[int]:
    """Entries of every docstore under an IR_DATASETS_HOME (a store holds one entry per document)."""
    import numpy as np

    return [len(np.fromfile(p, dtype=np.uint64)) for p in sorted(home.rglob("docs.pklz4/bin.pos"))]


def _check_on_two_ranks(spec: str, home: Path) -> list[int]:
    """``datasets check`` on 2 torchrun ranks at once with a fresh ``IR_DATASETS_HOME``; the counts each saw."""
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m",
         "maw_bench", "datasets", "check", spec, "--json"],
        capture_output=True, text=True, env={**os.environ, "IR_DATASETS_HOME": str(home), "MAW_BENCH_OFFLINE": "1"},
        timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line)["docs"] for line in proc.stdout.splitlines() if line.startswith("{")]


def test_two_ranks_opening_a_new_local_collection_build_its_store_once(tmp_path, tiny_model):
    folder = write_toy_beir(tmp_path / "toy", n_docs=3000)
    home = tmp_path / "home"
    assert _check_on_two_ranks(str(folder), home) == [3000, 3000]
    assert _store_entries(home) == [3000]


def test_two_ranks_opening_an_ir_datasets_collection_build_its_store_once(tmp_path):
    need(IRDS_HOME.is_dir(), "the shared ir_datasets home (../shared/data)")
    home = tmp_path / "home"
    shutil.copytree(IRDS_HOME, home)
    for p in [home, *home.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    assert not list(home.rglob("docs.pklz4"))  # a fresh home: the store is built by this test
    assert _check_on_two_ranks("beir/scifact/test", home) == [5183, 5183]
    assert _store_entries(home) == [5183]


def test_a_store_holding_documents_twice_is_rebuilt_with_a_warning(tmp_path, caplog):
    from maw_bench.data import load_bundle

    folder = write_toy_beir(tmp_path / "toy", seed=5)
    bundle = load_bundle(str(folder), "test")
    assert bundle.docs_count() == 120  # the first read builds the store
    store = bundle.irds.docs_store()
    with store.lookup.transaction() as trans:  # what two concurrent builders left behind
        for doc in store.init_iter_fn():
            trans.add(doc)
    assert len(store.lookup) == 240
    with caplog.at_level("WARNING", logger="maw_bench"):
        again = load_bundle(str(folder), "test")
        assert again.docs_count() == 120
    assert "holds 240 entries for 120 documents" in caplog.text
    assert len(again.irds.docs_store().lookup) == 120
    assert sum(1 for _ in again.docs_iter()) == 120


def test_a_refused_eval_leaves_no_output_folder_behind(tmp_path):
    """An evaluation refused before any result (a malformed collection) removes the folder it created for itself,
    and leaves a folder that existed before, and anything a user put there, alone."""
    folder = write_toy_beir(tmp_path / "toy")
    _edit(folder, "float score")
    proc = subprocess.run([sys.executable, "-m", "maw_bench", "eval", "--dataset", str(folder)], capture_output=True,
                          text=True, cwd=tmp_path, env={**os.environ, "MAW_BENCH_OFFLINE": "1"}, timeout=240)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
    mine = tmp_path / "mine"
    mine.mkdir()
    for out in (mine, tmp_path / "new"):
        proc = _cli(["eval", "--dataset", str(folder), "--output", str(out)])
        assert proc.returncode == 2, proc.stderr[-2000:]
    assert mine.is_dir() and not (tmp_path / "new").exists()
