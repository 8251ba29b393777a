"""No leakage: training queries must not appear in evaluation (by id or normalised text)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from maw_bench.data.bundle import DatasetBundle
from maw_bench.errors import UserError

_NON_WORD = re.compile(r"[^\w]+")


def normalise(text: str) -> str:
    return _NON_WORD.sub(" ", text.lower()).strip()


def collection_of(dataset_id: str) -> str:
    """``beir/scifact/test -> beir/scifact``: ids only collide meaningfully within a collection."""
    for prefix in ("msmarco-passage", "builtin"):
        if dataset_id.startswith(prefix):
            return prefix
    parts = dataset_id.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else dataset_id


@dataclass
class LeakageReport:
    eval_id: str
    id_overlap: list[str] = field(default_factory=list)
    text_overlap: list[str] = field(default_factory=list)
    train_ids: set[str] = field(default_factory=set)  # the training queries involved

    @property
    def count(self) -> int:
        return len(set(self.id_overlap) | set(self.text_overlap))


def check_leakage(train: DatasetBundle, evals: list[DatasetBundle], allow: bool = False) -> list[LeakageReport]:
    """Compare training queries with every evaluation set; raise unless ``allow``."""
    train_q = train.queries
    by_text: dict[str, set[str]] = {}
    for qid, text in train_q.items():
        by_text.setdefault(normalise(text), set()).add(qid)
    reports = []
    for ev in evals:
        rep = LeakageReport(ev.id)
        same_collection = collection_of(train.id) == collection_of(ev.id)
        for qid, text in ev.judged_queries().items():
            if same_collection and qid in train_q:
                rep.id_overlap.append(qid)
                rep.train_ids.add(qid)
            if normalise(text) in by_text:
                rep.text_overlap.append(qid)
                rep.train_ids |= by_text[normalise(text)]
        reports.append(rep)
        if rep.count and not allow:
            example = (rep.id_overlap or rep.text_overlap)[0]
            raise UserError(
                f"{rep.count} evaluation queries of {ev.id} also appear in training data {train.id} "
                f"(e.g. query {example}); set data.drop_leaked=true to train without them, "
                f"or data.allow_leakage=true to run anyway."
            )
    return reports


def drop_leaked(train: DatasetBundle, reports: list[LeakageReport]) -> int:
    """Remove the training queries that leak into evaluation; return how many were removed."""
    leaked = set().union(*(r.train_ids for r in reports)) if reports else set()
    if leaked:
        train.keep_queries = set(train.queries) - leaked
    return len(leaked)
