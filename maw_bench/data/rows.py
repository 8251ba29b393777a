"""Training rows through HF ``datasets``: (query, positive[, negative ...]), the format sentence-transformers users have.

``data.train`` may name ``hf:ORG/NAME[:config][@split]`` (a hub dataset, read with
``streaming=True``) or a local ``.jsonl`` / ``.json`` / ``.parquet`` / ``.csv`` file.
Columns are found by name (``data.columns`` maps them when the names differ):
the query from ``query``/``anchor``/``question``, the positive from
``positive``/``pos``/``passage``/``document``, negatives from every column whose name
starts with ``negative`` (or a list column ``negatives``). Rows become a
:class:`RowsBundle`: texts held once each (ids are content hashes), the query's
positive as its judgement, and each row's own negatives, so the rest of training
(batches, exclusion of positives, leakage check, GradCache, DDP) is unchanged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from maw_bench.data.bundle import DatasetBundle
from maw_bench.data.negatives import TrainingExample
from maw_bench.errors import UserError

log = logging.getLogger("maw_bench")
ROW_SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
QUERY_NAMES = ("query", "anchor", "question")
POSITIVE_NAMES = ("positive", "pos", "passage", "document")


def is_rows_spec(spec: str) -> bool:
    """``hf:...`` or a path to a row file (a folder is a BEIR collection, not rows)."""
    return spec.startswith("hf:") or Path(spec).suffix.lower() in ROW_SUFFIXES


def _id(prefix: str, text: str) -> str:
    return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class RowsBundle(DatasetBundle):
    """Rows held as a bundle: ``docs`` by content id, ``examples`` one per row (with the row's negatives)."""

    docs: dict[str, str] = field(default_factory=dict)
    examples: list[TrainingExample] = field(default_factory=list)

    def _ensure_store(self) -> None:
        return

    def docs_iter(self, block: int = 0) -> Iterator[tuple[str, str]]:
        for doc_id, text in self.docs.items():
            if self.keep_docs is None or doc_id in self.keep_docs:
                yield doc_id, text

    def docs_count(self) -> int:
        return len(self.keep_docs) if self.keep_docs is not None else len(self.docs)

    def doc_texts(self, doc_ids) -> dict[str, str]:
        return {d: self.docs[d] for d in doc_ids if d in self.docs}

    def has_docpairs(self) -> bool:
        return any(e.negative_ids for e in self.examples)

    def has_qrels(self) -> bool:
        return True

    def docpairs_iter(self, block: int = 0) -> Iterator[tuple[str, str, str]]:
        for e in self.examples:
            if self.keep_queries is None or e.query_id in self.keep_queries:
                for n in e.negative_ids:
                    yield e.query_id, e.positive_id, n


def _parse_hf(spec: str) -> tuple[str, str | None, str]:
    """``hf:org/name:config@split`` -> ``(org/name, config, split)``; split defaults to train."""
    body = spec[3:]
    body, _, split = body.partition("@")
    name, _, config = body.partition(":")
    if not name:
        raise UserError(f"{spec}: name a dataset, e.g. hf:sentence-transformers/msmarco-bm25@train.")
    return name, config or None, split or "train"


def open_rows(spec: str):
    """A streaming ``datasets`` iterable for ``spec``; one-line errors for what cannot be read."""
    from datasets import load_dataset

    try:
        if spec.startswith("hf:"):
            name, config, split = _parse_hf(spec)
            return load_dataset(name, config, split=split, streaming=True)
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UserError(f"training rows {path} do not exist; pass a .jsonl, .parquet or .csv file or hf:ORG/NAME.")
        return load_dataset(ROW_SUFFIXES[path.suffix.lower()], data_files=str(path), split="train", streaming=True)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds for a name it cannot fetch or parse
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot read training rows {spec}: {first}") from None


def resolve_columns(names: list[str], mapping: dict) -> tuple[str, str, list[str]]:
    """``(query, positive, negatives)`` column names; a missing one names the columns that exist."""
    def pick(role: str, candidates: tuple[str, ...]) -> str:
        wanted = mapping.get(role)
        if wanted is not None:
            if wanted not in names:
                raise UserError(f"data.columns.{role}={wanted!r} is not a column; the rows have {', '.join(names)}.")
            return wanted
        for c in candidates:
            if c in names:
                return c
        raise UserError(f"no {role} column among {', '.join(names)}; map one with data.columns.{role}=<name>.")

    query = pick("query", QUERY_NAMES)
    positive = pick("positive", POSITIVE_NAMES)
    wanted = mapping.get("negatives")
    if wanted is not None:
        negatives = [wanted] if isinstance(wanted, str) else list(wanted)
        missing = [n for n in negatives if n not in names]
        if missing:
            raise UserError(f"data.columns.negatives has {missing[0]!r}, not a column; the rows have {', '.join(names)}.")
    else:
        negatives = [n for n in names if n.startswith("negative")]
    return query, positive, negatives


def _guarded(stream, spec: str):
    """Rows of ``stream``; a file that stops parsing part-way (a line cut short) is one line naming it."""
    it = iter(stream)
    n = 0
    while True:
        try:
            row = next(it)
        except StopIteration:
            return
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - datasets/pyarrow raise many types for a damaged file
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{spec}: cannot read the rows after row {n} ({first}); a line may be cut short: "
                            "fix or remove it and rerun.") from None
        n += 1
        yield row


def load_rows(spec: str, mapping: dict, negatives: int, limit: int | None = None) -> RowsBundle:
    """Read rows (at most ``limit``) into a bundle; each row keeps up to ``negatives`` of its own negatives."""
    stream = open_rows(spec)
    bundle = RowsBundle(id=f"rows/{spec}", irds=None)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    columns = None
    for n, row in enumerate(_guarded(stream, spec)):
        if limit is not None and n >= limit:
            break
        if columns is None:
            columns = resolve_columns(list(row.keys()), mapping)
        q_col, p_col, n_cols = columns
        query, positive = str(row[q_col] or "").strip(), str(row[p_col] or "").strip()
        if not query or not positive:
            continue
        qid, pid = _id("q", query), _id("d", positive)
        queries[qid] = query
        bundle.docs[pid] = positive
        qrels.setdefault(qid, {})[pid] = 1
        negs: list[str] = []
        for col in n_cols:
            values = row[col] if isinstance(row[col], list) else [row[col]]
            for text in values:
                text = str(text or "").strip()
                if text and text != positive:
                    nid = _id("d", text)
                    bundle.docs.setdefault(nid, text)
                    negs.append(nid)
        bundle.examples.append(TrainingExample(qid, pid, tuple(negs[:negatives])))
    if not bundle.examples:
        raise UserError(f"{spec} holds no row with both a query and a positive.")
    bundle._queries, bundle._qrels = queries, qrels
    log.info("%s: %d rows, %d queries, %d distinct texts", spec, len(bundle.examples), len(queries), len(bundle.docs))
    return bundle
