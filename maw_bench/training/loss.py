"""Contrastive losses: InfoNCE over in-batch positives plus hard negatives.

Inputs: query embeddings ``q (B, d)`` and document embeddings ``docs (M, d)`` whose
first ``B`` rows are the queries' positives (row ``i`` for query ``i``) followed by
the hard negatives. ``exclude (B, M)`` marks columns that must not count as
negatives for a query (another copy of its positive, or a document judged relevant
to it), as Tevatron and sentence-transformers do for duplicate in-batch positives.

Reference: van den Oord et al., Representation Learning with Contrastive Predictive
Coding (2018); Karpukhin et al., Dense Passage Retrieval (2020).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def similarity(q: torch.Tensor, docs: torch.Tensor, temperature: float, exclude: torch.Tensor | None) -> torch.Tensor:
    scores = (q.float() @ docs.float().T) / temperature
    if exclude is not None:
        scores = scores.masked_fill(exclude, float("-inf"))
    return scores


def info_nce_per_query(
    q: torch.Tensor,
    docs: torch.Tensor,
    temperature: float,
    exclude: torch.Tensor | None = None,
    symmetric: bool = False,
) -> torch.Tensor:
    """Per-query InfoNCE ``(B,)`` (plus the passage-to-query term when ``symmetric``)."""
    b = q.shape[0]
    scores = similarity(q, docs, temperature, exclude)
    target = torch.arange(b, device=q.device)
    loss = F.cross_entropy(scores, target, reduction="none")
    if symmetric:
        back = scores[:, :b].T  # positives against all queries
        loss = 0.5 * (loss + F.cross_entropy(back, target, reduction="none"))
    return loss


def reciprocal_rank(q: torch.Tensor, docs: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``1 / rank`` of each query's positive among the batch's documents, ``(B,)``."""
    with torch.no_grad():
        scores = similarity(q, docs, 1.0, exclude)
        pos = scores.diagonal()[:, None]
        rank = 1 + (scores > pos).sum(1)
        return 1.0 / rank.float()
