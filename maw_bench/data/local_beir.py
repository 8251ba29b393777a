"""Local BEIR folders (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) through ir_datasets.

The folder is read with ir_datasets' own BEIR classes and registered under a stable
id derived from its absolute path and the corpus file's size and time, so the
docstore ir_datasets builds (under ``IR_DATASETS_HOME/beir/local/...``) is rebuilt
when the corpus changes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from maw_bench.errors import UserError


def _check_jsonl(path: Path, required: tuple[str, ...]) -> None:
    if not path.is_file():
        raise UserError(f"{path} is missing; a BEIR folder needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv.")
    with path.open(encoding="utf-8") as f:
        n = 0
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path} line {n}: not valid JSON ({exc.msg}); fix or remove that line.") from None
            if not isinstance(rec, dict) or any(k not in rec for k in required):
                raise UserError(f"{path} line {n}: a record needs the fields {', '.join(required)}.")
        if n == 0:
            raise UserError(f"{path} is empty; it must hold one JSON record a line.")


def _check_qrels(path: Path, split: str) -> None:
    if not path.is_file():
        have = sorted(p.stem for p in path.parent.glob("*.tsv")) if path.parent.is_dir() else []
        raise UserError(f"{path} is missing; choose --split from {have or 'the qrels/ files'} or add qrels/{split}.tsv.")
    with path.open(encoding="utf-8") as f:
        header = f.readline().strip().split("\t")
        if header != ["query-id", "corpus-id", "score"]:
            raise UserError(f"{path} line 1 must be the header 'query-id<TAB>corpus-id<TAB>score'; add it.")
        for n, line in enumerate(f, 2):
            cols = line.split()
            if cols and (len(cols) != 3 or not cols[2].lstrip("-").isdigit()):
                raise UserError(f"{path} line {n}: expected 'query-id corpus-id score' with an integer score.")


def local_id(folder: Path, split: str) -> str:
    """A stable id for a folder and split; changes when the corpus file changes."""
    corpus = folder / "corpus.jsonl"
    st = corpus.stat()
    key = f"{folder.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return f"local/{folder.name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}/{split}"


def register_local_beir(folder: str | Path, split: str, id_prefix: str | None = None) -> str:
    """Validate a BEIR folder, register it with ir_datasets and return its id."""
    import ir_datasets
    from ir_datasets.datasets.base import Dataset, FilteredQueries
    from ir_datasets.datasets.beir import BeirDocs, BeirQrels, BeirQueries, BeirTitleDoc, qid_filter
    from ir_datasets.formats import GenericDoc, GenericQuery
    from ir_datasets.util.download import LocalDownload

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; pass an ir_datasets id or a BEIR folder.")
    _check_jsonl(folder / "corpus.jsonl", ("_id", "text"))
    _check_jsonl(folder / "queries.jsonl", ("_id", "text"))
    qrels_path = folder / "qrels" / f"{split}.tsv"
    _check_qrels(qrels_path, split)
    dataset_id = local_id(folder, split) if id_prefix is None else f"{id_prefix}/{split}"
    if dataset_id in ir_datasets.registry:
        return dataset_id
    name = local_id(folder, split).rsplit("/", 1)[0]  # docstore folder: follows the corpus file
    with (folder / "corpus.jsonl").open(encoding="utf-8") as f:
        has_title = "title" in json.loads(f.readline())
    docs = BeirDocs(name, LocalDownload(folder / "corpus.jsonl", mkdir=False), BeirTitleDoc if has_title else GenericDoc)
    queries = BeirQueries(name, LocalDownload(folder / "queries.jsonl", mkdir=False), GenericQuery)
    qrels = BeirQrels(LocalDownload(qrels_path, mkdir=False), qrels_defs={})
    ds = Dataset(docs, FilteredQueries(queries, qid_filter(qrels), mode="include"), qrels)
    ir_datasets.registry.register(dataset_id, ds)
    return dataset_id

