"""One micro-batch's loss: contrastive, contrastive + GRPO over a group of depth samples, or GradCache.

Distributed (``DistContext``): query and document embeddings are gathered from every
rank (each rank keeps the gradient of its own slice), the loss is computed over the
global batch on every rank and multiplied by the world size, so that DDP's gradient
averaging gives exactly the single-process gradient of the global batch.

GRPO (DESIGN section 2, step 5): every sequence samples ``G`` depth choices at each
MAW layer (one pass each; layers below the lowest MAW layer run once). A sample's
reward is task-based (``-InfoNCE`` of its query against the batch, or ``1/rank`` of
its positive) or ``focus``; a document shares the reward of its query. The encoder's
loss is the mean InfoNCE over the samples; the router's is the clipped GRPO objective
from ``maw_bench.maw``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from maw_bench.config import BenchmarkConfig
from maw_bench.maw import RouteRecord, grpo_objective
from maw_bench.modeling import Encoder
from maw_bench.training.loss import info_nce_per_query, reciprocal_rank


@dataclass
class DistContext:
    """Rank and world size, and an all-gather that keeps the gradient of this rank's slice."""

    rank: int
    world_size: int

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(parts, t.detach().contiguous())
        parts[self.rank] = t
        return torch.cat(parts)

    def local(self, t: torch.Tensor, b: int) -> torch.Tensor:
        return t[self.rank * b : (self.rank + 1) * b]


@dataclass
class StepOutput:
    loss: torch.Tensor  # what to backpropagate
    contrastive: float  # the global InfoNCE, for the log
    grpo: dict[str, float] = field(default_factory=dict)
    choices: list[torch.Tensor] = field(default_factory=list)  # per MAW layer: chosen depths (flat)
    backward_done: bool = False  # GradCache runs its own backward passes


def batch_loss(
    q: torch.Tensor, d: torch.Tensor, cfg: BenchmarkConfig, exclude: torch.Tensor, dist: DistContext | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss to backpropagate, global mean, per-query loss of this rank's queries)``.

    ``d`` holds this rank's positives (one per query, in order) then its negatives.
    """
    b = q.shape[0]
    if dist is None:
        per_q = info_nce_per_query(q, d, cfg.train.temperature, exclude, cfg.train.symmetric)
        return per_q.mean(), per_q.mean(), per_q
    q_all = dist.gather(q)
    d_all = torch.cat([dist.gather(d[:b]), dist.gather(d[b:])])
    per_q = info_nce_per_query(q_all, d_all, cfg.train.temperature, exclude, cfg.train.symmetric)
    return per_q.mean() * dist.world_size, per_q.mean(), dist.local(per_q, b)


def _choices(routes: list[RouteRecord]) -> list[torch.Tensor]:
    out = []
    for r in routes:
        c = r.choice if r.choice is not None else r.weights.argmax(-1)
        out.append(c.detach().flatten().cpu())
    return out


def contrastive_step(
    encoder: Encoder, forward: torch.nn.Module, q_feats: dict, d_feats: dict, cfg: BenchmarkConfig,
    exclude: torch.Tensor, dist: DistContext | None = None,
) -> StepOutput:
    """Standard arm, and MAW arms trained end to end (``gumbel``, ``soft``, ``uniform``, ``fixed``)."""
    q = forward(**q_feats)
    q_routes = encoder.routes()
    d = forward(**d_feats)
    d_routes = encoder.routes()
    loss, mean, _ = batch_loss(q, d, cfg, exclude, dist)
    choices = [torch.cat([a, b]) for a, b in zip(_choices(q_routes), _choices(d_routes))]
    return StepOutput(loss, float(mean.detach()), choices=choices)


def _doc_owner(n_docs: int, b: int, device) -> torch.Tensor:
    """The local query each local document belongs to: positives ``0..B-1``, then negatives by example."""
    per = max(1, (n_docs - b) // b) if n_docs > b else 1
    idx = torch.arange(n_docs, device=device)
    return torch.where(idx < b, idx, ((idx - b) // per).clamp_max(b - 1))


def grpo_step(
    encoder: Encoder, forward: torch.nn.Module, q_feats: dict, d_feats: dict, cfg: BenchmarkConfig,
    exclude: torch.Tensor, dist: DistContext | None = None,
) -> StepOutput:
    """MAW with ``selection: grpo``: a group of ``G`` sampled depth choices per sequence."""
    g_size = cfg.maw.grpo.group_size
    q_all = forward(**q_feats, samples=g_size)
    q_routes = encoder.sample_routes
    d_all = forward(**d_feats, samples=g_size)
    d_routes = encoder.sample_routes
    b, n_docs = q_all.shape[1], d_all.shape[1]
    owner = _doc_owner(n_docs, b, q_all.device)

    losses, means, rewards = [], [], []
    for g in range(g_size):
        loss_g, mean_g, per_q = batch_loss(q_all[g], d_all[g], cfg, exclude, dist)
        losses.append(loss_g)
        means.append(mean_g)
        if cfg.maw.reward == "task":
            rewards.append(-per_q.detach())
        elif cfg.maw.reward == "rank":
            rr = reciprocal_rank(q_all[g], d_all[g], exclude if dist is None else None)
            rewards.append(rr)
        else:
            rewards.append(None)
    contrastive = torch.stack(losses).mean()

    policy_loss = torch.zeros((), device=contrastive.device)
    stats: dict[str, float] = {}
    n_layers = len(q_routes[0])
    for layer in range(n_layers):
        logp, kl, ent, rew = [], [], [], []
        for g in range(g_size):
            rq, rd = q_routes[g][layer], d_routes[g][layer]
            logp.append(torch.cat([rq.logp, rd.logp]))
            kl.append(torch.cat([rq.kl, rd.kl]))
            ent.append(torch.cat([rq.entropy, rd.entropy]))
            r_q = rewards[g]
            rew.append(torch.cat([rq.focus, rd.focus]) if r_q is None else torch.cat([r_q, r_q[owner]]))
        lp = torch.stack(logp)
        loss_l, st = grpo_objective(
            lp, lp.detach(), torch.stack(rew).float(), torch.stack(kl), torch.stack(ent),
            cfg.maw.grpo.clip, cfg.maw.grpo.kl, cfg.maw.grpo.entropy,
        )
        policy_loss = policy_loss + loss_l
        for k, v in vars(st).items():
            stats[k] = stats.get(k, 0.0) + v / n_layers
    choices = [torch.cat([a, b]) for a, b in zip(_choices(q_routes[0]), _choices(d_routes[0]))]
    return StepOutput(contrastive + policy_loss, float(torch.stack(means).mean().detach()), stats, choices)


# --------------------------------------------------------------------------- GradCache
def _chunks(feats: dict, size: int) -> list[dict]:
    n = feats["input_ids"].shape[0]
    return [{k: v[i : i + size] for k, v in feats.items()} for i in range(0, n, size)]


def grad_cache_step(
    encoder: Encoder, forward: torch.nn.Module, q_feats: dict, d_feats: dict, cfg: BenchmarkConfig,
    exclude: torch.Tensor, dist: DistContext | None = None, no_sync=None,
) -> StepOutput:
    """GradCache (Gao et al., 2021): the full-batch loss with memory of one chunk.

    1. embed every chunk without a graph; 2. compute the loss and its gradient with
    respect to the embeddings; 3. re-embed each chunk with a graph (same RNG state,
    so dropout matches) and backpropagate that cached gradient. The parameter
    gradients equal those of the plain loss.
    """
    size = cfg.train.grad_cache.chunk_size
    parts: dict[str, list] = {"q": [], "d": []}
    states: dict[str, list] = {"q": [], "d": []}
    with torch.no_grad():
        for key, feats in (("q", q_feats), ("d", d_feats)):
            for chunk in _chunks(feats, size):
                states[key].append(torch.get_rng_state())
                parts[key].append(forward(**chunk))
    q = torch.cat(parts["q"]).detach().requires_grad_()
    d = torch.cat(parts["d"]).detach().requires_grad_()
    loss, mean, _ = batch_loss(q, d, cfg, exclude, dist)
    loss.backward()
    chunk_list = [("q", c) for c in _chunks(q_feats, size)] + [("d", c) for c in _chunks(d_feats, size)]
    grads = {"q": q.grad.split(size), "d": d.grad.split(size)}
    counters = {"q": 0, "d": 0}
    for i, (key, chunk) in enumerate(chunk_list):
        j = counters[key]
        counters[key] += 1
        last = i == len(chunk_list) - 1
        with contextlib.nullcontext() if (last or no_sync is None) else no_sync():
            rng = torch.get_rng_state()
            torch.set_rng_state(states[key][j])
            emb = forward(**chunk)
            torch.set_rng_state(rng)
            torch.autograd.backward(emb, grads[key][j])
    return StepOutput(loss.detach(), float(mean.detach()), backward_done=True)
