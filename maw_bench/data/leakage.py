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

    @property
    def count(self) -> int:
        return len(set(self.id_overlap) | set(self.text_overlap))


def check_leakage(train: DatasetBundle, evals: list[DatasetBundle], allow: bool = False) -> list[LeakageReport]:
    """Compare training queries with every evaluation set; raise unless ``allow``."""
    train_q = train.queries
    train_texts = {normalise(t) for t in train_q.values()}
    reports = []
    for ev in evals:
        rep = LeakageReport(ev.id)
        same_collection = collection_of(train.id) == collection_of(ev.id)
        for qid, text in ev.judged_queries().items():
            if same_collection and qid in train_q:
                rep.id_overlap.append(qid)
            if normalise(text) in train_texts:
                rep.text_overlap.append(qid)
        reports.append(rep)
        if rep.count and not allow:
            example = (rep.id_overlap or rep.text_overlap)[0]
            raise UserError(
                f"{rep.count} evaluation queries of {ev.id} also appear in training data {train.id} "
                f"(e.g. query {example}); use another split, or set data.allow_leakage=true to run anyway."
            )
    return reports
