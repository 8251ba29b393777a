"""One micro-batch's loss: contrastive, plus the selection strategy's own router objective, or GradCache.

Distributed (``DistContext``): query and document embeddings are gathered from every
rank (each rank keeps the gradient of its own slice), the loss is computed over the
global batch on every rank and multiplied by the world size, so that DDP's gradient
averaging gives exactly the single-process gradient of the global batch.

A strategy with a group (GRPO, docs/design.md section 2, step 5) samples ``G`` depth choices
per sequence at each MAW layer; the samples share every dropout mask, so they differ
only in depth. A sample's reward is task-based (``-InfoNCE`` of its query against the
batch, or ``1/rank`` of its positive) or ``focus``; a document shares the reward of
its query. The encoder's loss is the mean InfoNCE over the samples; the router's is
the strategy's ``policy_loss`` (GRPO's clipped objective).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from maw_bench.maw import PolicySamples, RouteRecord, SelectionStrategy
from maw_bench.modeling import Encoder
from maw_bench.runtime import rng
from maw_bench.training.loss import info_nce_per_query
from maw_bench.training.rewards import REWARDS, policy_samples


@dataclass(frozen=True)
class LossSettings:
    """What the contrastive loss and the router's reward need from the config."""

    temperature: float = 0.05
    symmetric: bool = False
    reward: str = "task"  # a name in maw_bench.training.rewards.REWARDS


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
    policy: dict[str, float] = field(default_factory=dict)  # the router objective's statistics
    choices: list[torch.Tensor] = field(default_factory=list)  # per MAW layer: chosen depths (flat)
    policy_samples: list[PolicySamples] | None = None  # for further policy updates on the same group
    backward_done: bool = False  # GradCache runs its own backward passes


def batch_loss(
    q: torch.Tensor, d: torch.Tensor, loss: LossSettings, exclude: torch.Tensor, dist: DistContext | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss to backpropagate, global mean, per-query loss of this rank's queries)``.

    ``d`` holds this rank's positives (one per query, in order) then its negatives.
    """
    b = q.shape[0]
    if dist is None:
        per_q = info_nce_per_query(q, d, loss.temperature, exclude, loss.symmetric)
        return per_q.mean(), per_q.mean(), per_q
    q_all = dist.gather(q)
    d_all = torch.cat([dist.gather(d[:b]), dist.gather(d[b:])])
    per_q = info_nce_per_query(q_all, d_all, loss.temperature, exclude, loss.symmetric)
    return per_q.mean() * dist.world_size, per_q.mean(), dist.local(per_q, b)


def _choices(routes: list[RouteRecord]) -> list[torch.Tensor]:
    """Each MAW layer's chosen depths; none at all for an even mixture (the whole arm mixes, no layer chooses)."""
    chosen = [r.chosen() for r in routes]
    if any(c is None for c in chosen):
        return []
    return [c.detach().flatten().cpu() for c in chosen]


def distinct_choices(*route_sets: list[list[RouteRecord]]) -> float | None:
    """Mean number of distinct choices per sequence over a group's samples (every MAW layer's choice together,
    a per-head choice as a whole), queries and documents alike: what a GRPO step costs, and a sign of collapse
    (1 = every sample of every sequence chose alike). None without a group of hard choices."""
    counts = []
    for routes in route_sets:
        if len(routes) < 2 or any(r.choice is None for sample in routes for r in sample) or not routes[0]:
            return None
        keys = torch.stack([torch.cat([r.choice.reshape(r.choice.shape[0], -1) for r in sample], 1)
                            for sample in routes])  # (G, N, K)
        same = (keys[:, None] == keys[None, :]).all(-1)  # (G, G, N)
        earlier = torch.ones(len(routes), len(routes), dtype=torch.bool, device=keys.device).tril(-1)
        counts.append((~(same & earlier[..., None]).any(1)).sum(0).float())
    return float(torch.cat(counts).mean())


def _doc_owner(n_docs: int, b: int, device) -> torch.Tensor:
    """The local query each local document belongs to: positives ``0..B-1``, then negatives by example."""
    per = max(1, (n_docs - b) // b) if n_docs > b else 1
    idx = torch.arange(n_docs, device=device)
    return torch.where(idx < b, idx, ((idx - b) // per).clamp_max(b - 1))


def routing_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """The source of one micro-batch's routing noise, a pure function of ``seed`` (nothing to checkpoint)."""
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(seed)


def train_step(
    encoder: Encoder, forward: torch.nn.Module, q_feats: dict, d_feats: dict, loss: LossSettings,
    exclude: torch.Tensor, dist: DistContext | None = None, routing_seed: int | None = None,
) -> StepOutput:
    """Both arms: InfoNCE over the batch, averaged over the strategy's group, plus its policy loss.

    ``routing_seed`` seeds the routing noise (depth draws, Gumbel noise) apart from the
    global stream, so the MAW arm draws every dropout mask the standard arm draws.
    """
    strategy: SelectionStrategy | None = encoder.strategy
    trains_policy = strategy is not None and strategy.trains_policy
    g_size = strategy.group_size if strategy is not None else 1
    reward = REWARDS[loss.reward]() if trains_policy else None
    focus = reward is not None and reward.needs_focus
    gen = routing_generator(routing_seed, q_feats["input_ids"].device) if strategy is not None else None
    q_out = forward(**q_feats, samples=g_size, focus=focus, generator=gen)
    d_out = forward(**d_feats, samples=g_size, focus=focus, generator=gen)
    q_all, d_all = q_out.embeddings, d_out.embeddings
    b, n_docs = q_all.shape[1], d_all.shape[1]

    losses, means, rewards = [], [], []
    for g in range(g_size):
        loss_g, mean_g, per_q = batch_loss(q_all[g], d_all[g], loss, exclude, dist)
        losses.append(loss_g)
        means.append(mean_g)
        if reward is not None:
            rewards.append(reward.of_sample(q_all[g], d_all[g], per_q, exclude, dist is not None))
    contrastive = torch.stack(losses).mean()
    choices = [torch.cat([a, c]) for a, c in zip(_choices(q_out.routes[0]), _choices(d_out.routes[0]))]
    mean = float(torch.stack(means).mean().detach())
    if not trains_policy:
        return StepOutput(contrastive, mean, choices=choices)

    owner = _doc_owner(n_docs, b, q_all.device)
    routers = [m.router for m in encoder.maw_modules()]
    assert strategy is not None and reward is not None
    samples = policy_samples(routers, q_out.routes, d_out.routes, rewards, reward, owner)
    policy_loss, stats = strategy.policy_loss(samples, first_iteration=True)
    distinct = distinct_choices(q_out.routes, d_out.routes)
    if distinct is not None:
        stats["distinct_choices"] = distinct
    return StepOutput(contrastive + policy_loss, mean, stats, choices, policy_samples=samples)


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
                choices[key].append(_choices(out.routes[0]))
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
