"""GRPO's group at the cost of the choices it makes: samples that chose the same depth share one forward.

The ``G`` samples of a sequence share every dropout mask and the layers below the MAW
layer, so two samples that chose the same depth for a sequence compute the same output
from the MAW layer up. The first sample runs on the whole batch under a
:class:`~maw_bench.modeling.dropout_tape.DropoutTape` that keeps each mask drawn from the
MAW layer up; every later sample's depths follow from the first sample's router logits
(the router sees the same input in every sample) and its pre-drawn uniforms; one forward
then runs on the (sequence, choice) pairs no earlier sample made, with the kept masks of
those rows, and each sample's embeddings are gathered from the table by index. The
function and the masks are the same, so the loss, every gradient and the router's update
equal those of re-running every sample (tests/test_group_forward.py); the cost follows the
distinct choices per sequence, not ``G``.

Kept on the path that re-runs every sample (``Encoder._embed_samples``): several MAW layers
(a sample's input to a higher one depends on its choices below), a strategy whose choices
are not fixed by the logits and uniforms, ``maw.grpo.share_choices: false``, and a tape
that could not keep a mask (an accelerator's fused attention with dropout).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from maw_bench.maw import MAWAttention, RouteRecord, RouteRecorder
from maw_bench.modeling.dropout_tape import DropoutTape
from maw_bench.runtime import rng


@dataclass
class FirstSample:
    """The first sample's embeddings ``(B, dim)`` and how to run its upper part again.

    ``upper(rows)``: the MAW layer and everything above it on ``rows`` of the batch (None:
    all of them), from the inputs the first sample had there; ``start``: the random state
    at that point (re-running every sample restores it, so each draws the same masks).
    """

    embeddings: torch.Tensor
    upper: Callable[[torch.Tensor | None], torch.Tensor]
    start: rng.RNGSnapshot


def take_rows(value, rows: torch.Tensor, batch: int):
    """``value`` restricted to ``rows`` where it is a batch-first tensor (ndim >= 2), inside tuples, lists and
    dicts too; anything else (None, flags, per-position tensors) passes as it is."""
    if isinstance(value, torch.Tensor):
        return value[rows] if value.dim() >= 2 and value.shape[0] == batch else value
    if isinstance(value, (tuple, list)):
        return type(value)(take_rows(v, rows, batch) for v in value)
    if isinstance(value, dict):
        return {k: take_rows(v, rows, batch) for k, v in value.items()}
    return value


@dataclass
class GroupIndex:
    """Where each sample's rows come from: ``index[g]`` ``(B,)`` positions in the table (first sample's rows,
    then the new rows), ``rows``/``choices`` the new (sequence, choice) pairs to compute, in table order."""

    index: list[torch.Tensor]
    rows: torch.Tensor
    choices: torch.Tensor

    @property
    def distinct_per_sequence(self) -> float:
        batch = self.index[0].numel()
        return (batch + self.rows.numel()) / max(batch, 1)


def group_index(choices: list[torch.Tensor]) -> GroupIndex:
    """Deduplicate a group's choices ``[(B,) or (B, H)] * G`` per sequence (a per-head choice as a whole vector)."""
    batch = choices[0].shape[0]
    keys = [c.reshape(batch, -1) for c in choices]
    device = choices[0].device
    index = [torch.arange(batch, device=device)]
    rows, picked = [], []
    offset = batch
    for g in range(1, len(choices)):
        idx = torch.full((batch,), -1, dtype=torch.long, device=device)
        for h in range(g):  # the earliest sample that chose alike
            same = (keys[g] == keys[h]).all(1) & (idx < 0)
            idx[same] = index[h][same]
        fresh = (idx < 0).nonzero().squeeze(1)
        idx[fresh] = offset + torch.arange(fresh.numel(), device=device)
        offset += fresh.numel()
        index.append(idx)
        rows.append(fresh)
        picked.append(choices[g][fresh])
    empty = torch.empty(0, dtype=torch.long, device=device)
    return GroupIndex(index, torch.cat(rows) if rows else empty, torch.cat(picked) if picked else empty)


def shared_samples(first: FirstSample, n: int, recorder: RouteRecorder, tape: DropoutTape,
                   module: MAWAttention) -> torch.Tensor:
    """``(n, B, dim)``: the group, computing each distinct (sequence, choice) pair once.

    Appends the route records of samples ``1..n-1`` to ``recorder`` (the first sample's are there).
    """
    rec0 = recorder.records[0][0]
    assert rec0.logits is not None and rec0.choice is not None and recorder.uniforms is not None
    batch = first.embeddings.shape[0]
    choices = [rec0.choice] + [
        module.strategy.pick(rec0.logits, batch, True, rec0.logits.device, recorder.uniforms[g][module.layer_index],
                             recorder.generator).choice
        for g in range(1, n)]
    plan = group_index(choices)
    table, focus = first.embeddings, rec0.focus
    if plan.rows.numel():
        tape.replay(plan.rows)
        with tape:
            new, aside = recorder.aside(plan.choices, lambda: first.upper(plan.rows))
        if tape.cursor != len(tape.masks):
            raise RuntimeError("dropout tape: the replayed forward used fewer masks than the recorded one")
        table = torch.cat([table, new])
        if focus is not None:
            focus = torch.cat([focus, aside[0].focus])
    for g in range(1, n):
        recorder.next_sample()
        recorder.add(RouteRecord(rec0.layer, rec0.logits, rec0.state, choices[g],
                                 F.one_hot(choices[g], module.depth).float(),
                                 None if focus is None else focus[plan.index[g]]))
    return torch.stack([table[i] for i in plan.index])
