"""Local BEIR folders (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) through ir_datasets.

The folder is read with ir_datasets' own BEIR classes and registered under a stable
id derived from its absolute path and the corpus file's size and time, so the
docstore ir_datasets builds (under ``IR_DATASETS_HOME/beir/local/...``) is rebuilt
when the corpus changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from maw_bench.errors import UserError

log = logging.getLogger("maw_bench")


@dataclass
class JsonlReport:
    """What a pass over a BEIR ``.jsonl`` file found: record ids and the doubtful content it read through."""

    ids: set[str] = field(default_factory=set)
    empty_texts: int = 0
    null_texts: int = 0  # "text": null, read as ""
    has_title: bool = False  # some record has a title (records without one get "")


def read_beir_jsonl(path: Path, required: tuple[str, ...] = ("_id", "text")) -> Iterator[tuple[int, dict]]:
    """``(line number, record)`` of a BEIR ``.jsonl`` file, as real exports write them.

    The one reader of these files, for ``datasets check`` and for loading alike: blank
    lines and CRLF line ends are skipped, ids are strings (pandas writes integers), a
    ``null`` or missing title or a ``null`` text reads as ``""``. What cannot be read is a
    :class:`UserError` naming the line.
    """
    offset = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            start, offset = offset, offset + len(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(f"{path} line {n}, byte {start + exc.start}: not UTF-8 ({exc.reason}); "
                                "re-encode the file as UTF-8.") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path} line {n}: not valid JSON ({exc.msg}); fix or remove that line.") from None
            if not isinstance(rec, dict) or any(k not in rec for k in required):
                raise UserError(f"{path} line {n}: a record needs the fields {', '.join(required)}.")
            if rec["_id"] is None or isinstance(rec["_id"], (dict, list, bool)) or not str(rec["_id"]).strip():
                raise UserError(f"{path} line {n}: _id must be a non-empty string or number.")
            rec["_id"] = str(rec["_id"])
            for key in ("text", "title"):
                if key in rec and rec[key] is not None and not isinstance(rec[key], str):
                    rec[key] = str(rec[key])
            yield n, rec


def _check_jsonl(path: Path, required: tuple[str, ...]) -> JsonlReport:
    """Every record: UTF-8, JSON, the required fields, a unique ``_id``. Errors name the file, line and byte."""
    if not path.is_file():
        raise UserError(f"{path} is missing; a BEIR folder needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv.")
    report = JsonlReport()
    first_line: dict[str, int] = {}
    for n, rec in read_beir_jsonl(path, required):
        rid = rec["_id"]
        if rid in first_line:
            raise UserError(f"{path} line {n}: id {rid!r} already appears on line {first_line[rid]}; "
                            "ids must be unique (which copy to keep is yours to decide): remove one.")
        first_line[rid] = n
        report.null_texts += rec["text"] is None
        report.has_title = report.has_title or "title" in rec
        if not (rec["text"] or "").strip() and not (rec.get("title") or "").strip():
            report.empty_texts += 1
    if not first_line:
        raise UserError(f"{path} holds no record; it must hold one JSON record a line.")
    report.ids = set(first_line)
    return report


def read_beir_qrels(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """``(line number, query id, doc id, score)`` of a BEIR qrels ``.tsv`` (header first; blank lines and CRLF
    skipped; a file with only its header has no pairs). The one reader, for the check and for loading."""
    with path.open(encoding="utf-8", errors="strict", newline="") as f:
        try:
            header = f.readline().strip().split("\t")
            if header != ["query-id", "corpus-id", "score"]:
                raise UserError(f"{path} line 1 must be the header 'query-id<TAB>corpus-id<TAB>score'; add it.")
            for n, line in enumerate(f, 2):
                cols = line.split()
                if not cols:
                    continue
                if len(cols) != 3 or not cols[2].lstrip("-").isdigit():
                    raise UserError(f"{path} line {n}: expected 'query-id corpus-id score' with an integer score.")
                yield n, cols[0], cols[1], int(cols[2])
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 ({exc.reason}); re-encode the file as UTF-8.") from None


def _check_qrels(path: Path, split: str) -> list[tuple[str, str]]:
    """The ``(query-id, corpus-id)`` pairs of a qrels file; scores must be integers."""
    if not path.is_file():
        have = sorted(p.stem for p in path.parent.glob("*.tsv")) if path.parent.is_dir() else []
        raise UserError(f"{path} is missing; choose --split from {have or 'the qrels/ files'} or add qrels/{split}.tsv.")
    seen: dict[tuple[str, str], tuple[int, int]] = {}
    for n, q, d, score in read_beir_qrels(path):
        first = seen.setdefault((q, d), (n, score))
        if first[1] != score:  # which grade a metric used would depend on the reader's order
            raise UserError(f"{path} line {n}: query {q!r} and document {d!r} are judged {score} here and "
                            f"{first[1]} on line {first[0]}; keep one judgement per pair.")
    return list(seen)


@dataclass
class LocalBeirReport:
    """Counts of a checked folder, for the docstore check and the warnings."""

    docs: int
    queries: int
    empty_queries: int
    qrels_unknown_queries: int
    qrels_unknown_docs: int
    empty_docs: int = 0
    null_texts: int = 0  # records of either file whose text was null (read as "")
    has_title: bool = False


def check_local_beir(folder: Path, split: str) -> LocalBeirReport:
    """Validate a BEIR folder (errors for what cannot be used; counts for what only deserves a warning)."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; pass an ir_datasets id or a BEIR folder.")
    corpus = _check_jsonl(folder / "corpus.jsonl", ("_id", "text"))
    queries = _check_jsonl(folder / "queries.jsonl", ("_id", "text"))
    pairs = _check_qrels(folder / "qrels" / f"{split}.tsv", split)
    judged = {q for q, _ in pairs}
    if corpus.empty_texts == len(corpus.ids):
        raise UserError(f"{folder / 'corpus.jsonl'}: every one of its {len(corpus.ids)} documents is empty (no text, "
                        "no title), so nothing can be retrieved; check the field names (_id, title, text).")
    return LocalBeirReport(
        empty_docs=corpus.empty_texts,
        null_texts=corpus.null_texts + queries.null_texts,
        has_title=corpus.has_title,
        docs=len(corpus.ids),
        queries=len(queries.ids),
        empty_queries=queries.empty_texts,
        qrels_unknown_queries=len(judged - queries.ids),
        qrels_unknown_docs=len({d for _, d in pairs} - corpus.ids),
    )


def warn_about(report: LocalBeirReport, folder: Path, split: str) -> None:
    """One warning per kind of doubtful content (each is counted, none is fatal)."""
    if report.empty_docs:
        log.warning("%s: %d documents are empty (no text, no title); they are kept and encoded as empty strings",
                    folder / "corpus.jsonl", report.empty_docs)
    if report.null_texts:
        log.warning("%s: %d records have \"text\": null; they are read as empty texts", folder, report.null_texts)
    if report.empty_queries:
        log.warning("%s: %d queries have an empty text (they are kept and encoded as empty strings)",
                    folder / "queries.jsonl", report.empty_queries)
    if report.qrels_unknown_queries:
        log.warning("%s: %d judged query ids are not in queries.jsonl "
                    "(they are left out of every mean)",
                    folder / "qrels" / f"{split}.tsv", report.qrels_unknown_queries)
    if report.qrels_unknown_docs:
        log.warning("%s: %d judged document ids are not in corpus.jsonl (they count as never retrieved)",
                    folder / "qrels" / f"{split}.tsv", report.qrels_unknown_docs)


def local_id(folder: Path, split: str) -> str:
    """A stable id for a folder and split; changes when the corpus file changes."""
    corpus = folder / "corpus.jsonl"
    st = corpus.stat()
    key = f"{folder.resolve()}|{st.st_size}|{st.st_mtime_ns}|reader-2"  # reader-2: read_beir_jsonl's normal form
    return f"local/{folder.name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}/{split}"


def register_local_beir(folder: str | Path, split: str, id_prefix: str | None = None) -> tuple[str, LocalBeirReport]:
    """Validate a BEIR folder, register it with ir_datasets and return its id and counts."""
    import ir_datasets
    from ir_datasets.datasets.base import Dataset, FilteredQueries
    from ir_datasets.datasets.beir import BeirTitleDoc, qid_filter
    from ir_datasets.formats import GenericDoc, GenericQuery
    from ir_datasets.util.download import LocalDownload

    folder = Path(folder)
    report = check_local_beir(folder, split)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    dataset_id = local_id(folder, split) if id_prefix is None else f"{id_prefix}/{split}"
    if dataset_id in ir_datasets.registry:
        return dataset_id, report
    name = local_id(folder, split).rsplit("/", 1)[0]  # docstore folder: follows the corpus file
    docs_cls, queries_cls, qrels_cls = _reader_classes()
    docs = docs_cls(name, LocalDownload(folder / "corpus.jsonl", mkdir=False),
                    BeirTitleDoc if report.has_title else GenericDoc)
    queries = queries_cls(name, LocalDownload(folder / "queries.jsonl", mkdir=False), GenericQuery)
    qrels = qrels_cls(LocalDownload(qrels_path, mkdir=False), qrels_defs={})
    ds = Dataset(docs, FilteredQueries(queries, qid_filter(qrels), mode="include"), qrels)
    ir_datasets.registry.register(dataset_id, ds)
    return dataset_id, report



def _record_fields(record_type, rec: dict) -> tuple:
    """A BEIR record as ir_datasets' NamedTuple wants it (``_id`` -> doc_id/query_id; null -> "")."""
    return tuple(rec["_id"] if f in ("doc_id", "query_id") else (rec.get(f) or "") for f in record_type._fields)


def _reader_classes():
    """ir_datasets' BEIR classes, reading through :func:`read_beir_jsonl` / :func:`read_beir_qrels`.

    Their own readers refuse blank lines, integer ids and null texts that real exports hold; these
    read the files exactly as ``datasets check`` does, so whatever the check passes loads.
    """
    from ir_datasets.datasets.beir import BeirDocs, BeirQrels, BeirQueries
    from ir_datasets.formats import TrecQrel

    class LocalBeirDocs(BeirDocs):
        def _docs_iter(self):
            for _, rec in read_beir_jsonl(Path(self._dlc.path())):
                yield self._doc_type(*_record_fields(self._doc_type, rec))

    class LocalBeirQueries(BeirQueries):
        def queries_iter(self):
            for _, rec in read_beir_jsonl(Path(self._dlc.path())):
                yield self._query_type(*_record_fields(self._query_type, rec))

    class LocalBeirQrels(BeirQrels):
        def qrels_iter(self):
            for _, qid, did, score in read_beir_qrels(Path(self._qrels_dlc.path())):
                yield TrecQrel(qid, did, score, "0")

    return LocalBeirDocs, LocalBeirQueries, LocalBeirQrels
