"""Deterministic batches of training examples, addressable by a global micro-batch index.

The order of epoch ``e`` is a permutation seeded by ``(seed, e)``, so the micro-batch
at index ``k`` is a pure function of ``(seed, k)``: both arms see the same examples
in the same order, and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from maw_bench.data.bundle import DatasetBundle
from maw_bench.data.negatives import TrainingExample


@dataclass
class Batch:
    query_ids: list[str]
    queries: list[str]
    doc_ids: list[str]  # positives (one per query, in order), then negatives
    docs: list[str]
    examples: list[TrainingExample]


class BatchPlan:
    """Micro-batches over ``examples`` for ``total_steps`` optimiser steps."""

    def __init__(self, examples: list[TrainingExample], batch_size: int, seed: int, drop_last: bool = False) -> None:
        if not examples:
            raise ValueError("no training examples")
        self.examples = examples
        self.batch_size = min(batch_size, len(examples))
        self.seed = seed
        # several ranks need full global batches (equal slices); one process keeps the remainder
        self.per_epoch = len(examples) // self.batch_size if drop_last else math.ceil(len(examples) / self.batch_size)
        self._order_cache: dict[int, list[int]] = {}

    def order(self, epoch: int) -> list[int]:
        if epoch not in self._order_cache:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._order_cache = {epoch: torch.randperm(len(self.examples), generator=g).tolist()}
        return self._order_cache[epoch]

    def examples_at(self, micro_index: int) -> list[TrainingExample]:
        epoch, within = divmod(micro_index, self.per_epoch)
        idx = self.order(epoch)[within * self.batch_size : (within + 1) * self.batch_size]
        return [self.examples[i] for i in idx]


def total_optimizer_steps(num_examples: int, batch_size: int, grad_accum: int, epochs: float, max_steps: int) -> int:
    if max_steps > 0:
        return max_steps
    per_epoch = math.ceil(num_examples / min(batch_size, num_examples))
    return max(1, math.ceil(epochs * per_epoch / grad_accum))


def materialise(examples: list[TrainingExample], bundle: DatasetBundle) -> Batch:
    """Look the texts up (queries from memory, documents through the docstore)."""
    queries = bundle.queries
    doc_ids = [e.positive_id for e in examples] + [n for e in examples for n in e.negative_ids]
    texts = bundle.doc_texts(set(doc_ids))
    return Batch(
        query_ids=[e.query_id for e in examples],
        queries=[queries[e.query_id] for e in examples],
        doc_ids=doc_ids,
        docs=[texts.get(d, "") for d in doc_ids],
        examples=examples,
    )
