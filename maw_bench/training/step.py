"""One micro-batch: the forwards a step needs, then the objective (``training/objective.py``), or GradCache.

``train_step`` and ``grad_cache_step`` only orchestrate: which forwards run, with which
routing noise and random state, and when backward runs; what is minimised is the arm's
:class:`~maw_bench.training.objective.Objective`.
"""

from __future__ import annotations

import contextlib

import torch

from maw_bench.modeling import Encoder
from maw_bench.runtime import rng
from maw_bench.runtime.distributed import DistContext
from maw_bench.training.objective import LossSettings, Objective, StepOutput, batch_loss, choices_of

__all__ = ["LossSettings", "StepOutput", "batch_loss", "grad_cache_step", "routing_generator", "train_step"]


def routing_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """The source of one micro-batch's routing noise, a pure function of ``seed`` (nothing to checkpoint)."""
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(seed)


def train_step(
    encoder: Encoder, forward: torch.nn.Module, q_feats: dict, d_feats: dict, loss: LossSettings,
    exclude: torch.Tensor, dist: DistContext | None = None, routing_seed: int | None = None,
) -> StepOutput:
    """Both arms: the group's forwards, then the arm's :class:`Objective` (InfoNCE averaged over the group,
    plus the strategy's policy loss).

    ``routing_seed`` seeds the routing noise (depth draws, Gumbel noise) apart from the
    global stream, so the MAW arm draws every dropout mask the standard arm draws.
    """
    objective = Objective.of(encoder, loss)
    gen = routing_generator(routing_seed, q_feats["input_ids"].device) if objective.strategy is not None else None
    q_out = forward(**q_feats, samples=objective.group_size, focus=objective.needs_focus, generator=gen)
    d_out = forward(**d_feats, samples=objective.group_size, focus=objective.needs_focus, generator=gen)
    return objective(q_out, d_out, exclude, dist)


# --------------------------------------------------------------------------- GradCache
def _chunks(feats: dict, size: int) -> list[dict]:
    n = feats["input_ids"].shape[0]
    return [{k: v[i : i + size] for k, v in feats.items()} for i in range(0, n, size)]


def grad_cache_step(
    encoder: Encoder, forward: torch.nn.Module, q_feats: dict, d_feats: dict, loss: LossSettings, chunk_size: int,
    exclude: torch.Tensor, dist: DistContext | None = None, no_sync=None, routing_seed: int | None = None,
) -> StepOutput:
    """GradCache (Gao et al., 2021): the full-batch loss with memory of one chunk.

    1. embed every chunk without a graph, keeping the random state (CPU and the
    accelerator's) each chunk started from; 2. compute the loss and its gradient with
    respect to the embeddings; 3. re-embed each chunk with a graph from the same
    random state (the same dropout masks and Gumbel noise) and backpropagate that
    cached gradient. The parameter gradients equal those of the plain loss.
    """
    device = q_feats["input_ids"].device
    with_routes = encoder.strategy is not None

    def gen(key: str, j: int) -> torch.Generator | None:  # the same routing noise in both passes of a chunk
        if not with_routes or routing_seed is None:
            return None
        return routing_generator(routing_seed * 1009 + j * 2 + (key == "d"), device)

    parts: dict[str, list] = {"q": [], "d": []}
    states: dict[str, list] = {"q": [], "d": []}
    choices: dict[str, list] = {"q": [], "d": []}
    with torch.no_grad():
        for key, feats in (("q", q_feats), ("d", d_feats)):
            for j, chunk in enumerate(_chunks(feats, chunk_size)):
                states[key].append(rng.snapshot(device))
                out = forward(**chunk, generator=gen(key, j))
                parts[key].append(out.single)
                choices[key].append(choices_of(out.routes[0]))
    q = torch.cat(parts["q"]).detach().requires_grad_()
    d = torch.cat(parts["d"]).detach().requires_grad_()
    total, mean, _ = batch_loss(q, d, loss, exclude, dist)
    total.backward()
    chunk_list = [("q", c) for c in _chunks(q_feats, chunk_size)] + [("d", c) for c in _chunks(d_feats, chunk_size)]
    grads = {"q": q.grad.split(chunk_size), "d": d.grad.split(chunk_size)}
    counters = {"q": 0, "d": 0}
    for i, (key, chunk) in enumerate(chunk_list):
        j = counters[key]
        counters[key] += 1
        last = i == len(chunk_list) - 1
        with contextlib.nullcontext() if (last or no_sync is None) else no_sync():
            after = rng.snapshot(device)
            rng.restore(states[key][j])
            emb = forward(**chunk, generator=gen(key, j)).single
            rng.restore(after)
            torch.autograd.backward(emb, grads[key][j])
    per_layer = [torch.cat(layer) for layer in zip(*(choices["q"] + choices["d"]))]
    return StepOutput(total.detach(), float(mean.detach()), choices=per_layer, backward_done=True)
