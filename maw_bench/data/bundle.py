"""``DatasetBundle``: one collection and split, read lazily through ir_datasets.

Documents are streamed and looked up through ir_datasets' docstore, never held in
a Python dict (MS MARCO has 8.8M passages). Queries and qrels are small and are
read once on first use.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maw_bench.data.offline import explain_missing

# BEIR/MTEB drop a hit whose id equals the query id on these collections (MTEB: ``ignore_identical_ids``):
# their queries are documents of the corpus, so every query would retrieve itself first.
SELF_HIT_COLLECTIONS = ("beir/arguana", "beir/quora", "beir/cqadupstack")
SELF_HIT_FOLDERS = ("arguana", "quora", "cqadupstack")
SELF_HIT_SETTINGS = ("auto", "drop", "keep")
# TREC DL's passage judgments grade 0-3 and count 2 and 3 as relevant for binary metrics (MAP, recall, RR), as its
# overviews and Pyserini (`trec_eval -l 2`) do; nDCG uses the grades as they are.
LEVEL_2_COLLECTIONS = ("msmarco-passage/trec-dl-", "msmarco-passage-v2/trec-dl-")


def is_self_hit_folder(folder: Path) -> bool:
    """A local BEIR folder of one of those collections (``.../quora``, ``.../cqadupstack/android``)."""
    folder = folder.resolve()
    return folder.name.lower() in SELF_HIT_FOLDERS or folder.parent.name.lower() == "cqadupstack"


def doc_text(doc: Any) -> str:
    """``title + ' ' + text`` as BEIR and MTEB build it; plain text where there is no title."""
    title = getattr(doc, "title", "") or ""
    text = getattr(doc, "text", None)
    if text is None:
        text = doc.default_text() if hasattr(doc, "default_text") else str(doc[1])
    return f"{title} {text}".strip() if title else text.strip()


def query_text(query: Any) -> str:
    text = getattr(query, "text", None)
    return (text if text is not None else query.default_text()).strip()


def source_signature(irds: Any) -> list | None:
    """``[[path, size, mtime_ns], ...]`` of the files an ir_datasets collection reads its documents from.

    Found through the docs handler's download objects (``_dlc``, ``_docs_dlc``, ...), only
    for files already on disk; None when there are none (then nothing is remembered).
    """
    try:
        handler = irds.docs_handler()
    except (AttributeError, NotImplementedError, TypeError):
        return None
    found = []
    for name, value in sorted(vars(handler).items()):
        if "dlc" not in name.lower() or not hasattr(value, "path"):
            continue
        try:
            path = str(value.path(force=False))  # force=False: never download or extract here
        except Exception:  # noqa: BLE001 - a download object that cannot name a local file: no memo
            return None
        if not os.path.isfile(path):
            return None
        st = os.stat(path)
        found.append([os.path.abspath(path), st.st_size, st.st_mtime_ns])
    return found or None


@dataclass
class DatasetBundle:
    """Corpus, queries and graded qrels of one collection and split.

    ``id`` is stable (an ir_datasets id, ``local/...`` or ``builtin/...``) and keys caches.
    ``keep_queries`` / ``keep_docs`` are set by sampling caps (``None`` = all).
    """

    id: str
    irds: Any
    keep_queries: set[str] | None = None
    keep_docs: set[str] | None = None
    _queries: dict[str, str] | None = field(default=None, repr=False)
    _qrels: dict[str, dict[str, int]] | None = field(default=None, repr=False)
    _hash: tuple | None = field(default=None, repr=False)
    source_docs: int | None = None  # documents the source holds, when known exactly (local folders)
    self_hit_folder: bool = False  # a local folder of a collection whose self-hits BEIR and MTEB drop
    sample: dict | None = None  # what the sampling caps kept of how much (data/sampling.py); None: everything
    _store_checked: bool = field(default=False, repr=False)

    def _ensure_store(self) -> None:
        """Build or verify the docstore once, behind a lock, before the first document is read."""
        if self._store_checked:
            return
        from maw_bench.data.docstore import ensure_docstore

        if self.irds.has_docs():
            ensure_docstore(self.irds, self.id, self.source_docs, guard=lambda: explain_missing(self.id))
        self._store_checked = True

    def drops_self_hits(self, setting: str = "auto") -> bool:
        """Whether a hit whose document id is the query id is left out (``eval.self_hits``): ``auto`` does
        what BEIR and MTEB do for this collection."""
        if setting != "auto":
            return setting == "drop"
        return self.self_hit_folder or self.id.startswith(SELF_HIT_COLLECTIONS)

    def relevance_level(self, setting: int = 0) -> int:
        """The lowest grade binary metrics count as relevant (``eval.relevance_level``; 0: this collection's
        convention, 2 for TREC DL passage judgments, else 1)."""
        if setting:
            return setting
        return 2 if self.id.startswith(LEVEL_2_COLLECTIONS) else 1

    # ------------------------------------------------------------------- docs
    def docs_iter(self, block: int = 2048) -> Iterator[tuple[str, str]]:
        """``(doc_id, text)`` in collection order, honouring ``keep_docs``.

        Documents are pulled in blocks inside :func:`explain_missing` and yielded outside
        it, so the consumer's own code (and its warnings) never runs inside that guard.
        """
        self._ensure_store()
        with explain_missing(self.id):
            it = iter(self.irds.docs_iter())
        while True:
            with explain_missing(self.id):
                docs = list(itertools.islice(it, block))
            for doc in docs:
                if self.keep_docs is None or doc.doc_id in self.keep_docs:
                    yield doc.doc_id, doc_text(doc)
            if len(docs) < block:
                return

    def doc_ids_iter(self) -> Iterator[str]:
        for doc_id, _ in self.docs_iter():
            yield doc_id

    def docs_count(self) -> int:
        if self.keep_docs is not None:
            return len(self.keep_docs)
        self._ensure_store()
        with explain_missing(self.id):
            n = self.irds.docs_count()
        return n if n is not None else sum(1 for _ in self.irds.docs_iter())

    @functools.cached_property
    def _store(self):
        self._ensure_store()
        with explain_missing(self.id):
            return self.irds.docs_store()

    def doc_texts(self, doc_ids: Iterable[str]) -> dict[str, str]:
        """Look documents up by id through the docstore (only the ones asked for)."""
        ids = list(doc_ids)
        with explain_missing(self.id):
            found = self._store.get_many(ids)
        return {i: doc_text(d) for i, d in found.items()}

    def content_hash(self) -> str:
        """A hash of every kept document id and text: changes when the corpus does.

        One pass over the corpus, done once per source: the result is remembered under
        maw-bench's cache keyed by the source files' paths, sizes and modification times
        (:func:`source_signature`), so a later run on an unchanged source (a cache hit)
        reads no document. A source whose files cannot be named is hashed every time.
        """
        key = frozenset(self.keep_docs) if self.keep_docs is not None else None
        if self._hash is not None and self._hash[0] == key:
            return self._hash[1]
        memo = self._hash_memo()
        value = memo.read_text().strip() if memo is not None and memo.is_file() else ""
        if not value:
            from maw_bench.runtime.progress import step

            h = hashlib.sha256()
            with step(f"hash corpus {self.id}", total=self.docs_count()) as advance:
                for doc_id, text in self.docs_iter():
                    h.update(doc_id.encode())
                    h.update(b"\0")
                    h.update(text.encode())
                    h.update(b"\1")
                    advance(1)
            value = h.hexdigest()[:16]
            if memo is not None:
                from maw_bench.runtime.atomic import write_text

                write_text(memo, value + "\n")
        self._hash = (key, value)
        return value

    def _hash_memo(self) -> Path | None:
        """Where this corpus's content hash is remembered, or None when its source files are unknown."""
        signature = source_signature(self.irds)
        if signature is None:
            return None
        from maw_bench.runtime.paths import cache_root

        kept = sorted(self.keep_docs) if self.keep_docs is not None else None
        digest = hashlib.sha256(json.dumps([self.id, signature, kept]).encode()).hexdigest()[:24]
        return cache_root() / "content-hashes" / f"{digest}.txt"

    # ---------------------------------------------------------------- queries
    @property
    def queries(self) -> dict[str, str]:
        if self._queries is None:
            with explain_missing(self.id):
                self._queries = {q.query_id: query_text(q) for q in self.irds.queries_iter()}
        if self.keep_queries is not None:
            return {q: t for q, t in self._queries.items() if q in self.keep_queries}
        return self._queries

    @property
    def qrels(self) -> dict[str, dict[str, int]]:
        if self._qrels is None:
            out: dict[str, dict[str, int]] = {}
            if self.irds.has_qrels():
                with explain_missing(self.id):
                    for r in self.irds.qrels_iter():
                        out.setdefault(r.query_id, {})[r.doc_id] = int(r.relevance)
            self._qrels = out
        if self.keep_queries is not None:
            return {q: d for q, d in self._qrels.items() if q in self.keep_queries}
        return self._qrels

    def judged_queries(self) -> dict[str, str]:
        """Queries with at least one judged document (any grade)."""
        qrels = self.qrels
        return {q: t for q, t in self.queries.items() if q in qrels}

    def scored_qrels(self) -> dict[str, dict[str, int]]:
        """The qrels of the queries a run can be scored on: judged and present in the queries file.

        trec_eval averages over the queries it can score; a judged query with no text
        cannot be retrieved for, so counting it as 0 would lower every mean.
        """
        judged = self.judged_queries()
        return {q: d for q, d in self.qrels.items() if q in judged}

    def judged_without_text(self) -> int:
        """Judged query ids that the queries file does not hold (left out of every mean)."""
        queries = self.queries
        return sum(1 for q in self.qrels if q not in queries)

    def positives(self, qid: str) -> set[str]:
        return {d for d, r in self.qrels.get(qid, {}).items() if r > 0}

    def has_qrels(self) -> bool:
        return self.irds.has_qrels()

    # -------------------------------------------------------------- docpairs
    def has_docpairs(self) -> bool:
        return self.irds.has_docpairs()

    def docpairs_iter(self, block: int = 4096) -> Iterator[tuple[str, str, str]]:
        """``(query_id, positive_id, negative_id)`` from the collection's own triples (pulled in guarded blocks)."""
        with explain_missing(self.id):
            it = iter(self.irds.docpairs_iter())
        while True:
            with explain_missing(self.id):
                pairs = list(itertools.islice(it, block))
            for p in pairs:
                if self.keep_queries is None or p.query_id in self.keep_queries:
                    yield p.query_id, p.doc_id_a, p.doc_id_b
            if len(pairs) < block:
                return

    def summary(self) -> dict[str, int]:
        """Counts for ``datasets check``: docs, queries, judged queries, qrels, missing judged docs."""
        qrels = self.qrels
        judged_ids = {d for docs in qrels.values() for d in docs}
        with explain_missing(self.id):
            present = set(self.doc_texts(judged_ids)) if judged_ids else set()
        if self.keep_docs is not None:
            present &= self.keep_docs
        return {
            "docs": self.docs_count(),
            "queries": len(self.queries),
            "judged_queries": len(self.judged_queries()),
            "qrels": sum(len(d) for d in qrels.values()),
            "missing_judged_docs": len(judged_ids - present),
        }
