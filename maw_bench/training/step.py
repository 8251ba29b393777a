"""One micro-batch's loss: plain contrastive, or contrastive + GRPO over a group of depth samples.

GRPO (DESIGN section 2, step 5): every sequence samples ``G`` depth choices at each
MAW layer (one forward per sample; layers below the lowest MAW layer run once).
Each sample's reward is task-based (``-InfoNCE`` of that query against the batch,
or ``1/rank`` of its positive) or ``focus``; a document shares the reward of the
query whose example it belongs to. The encoder's loss is the mean InfoNCE over the
samples; the router's is the clipped GRPO objective from ``maw_bench.maw``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from maw_bench.config import BenchmarkConfig
from maw_bench.maw import RouteRecord, grpo_objective
from maw_bench.modeling import Encoder
from maw_bench.training.loss import info_nce_per_query, reciprocal_rank


@dataclass
class StepOutput:
    loss: torch.Tensor
    contrastive: float
    grpo: dict[str, float] = field(default_factory=dict)
    choices: list[torch.Tensor] = field(default_factory=list)  # per MAW layer: chosen depths (flat)


EncodeFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def _choices(routes: list[RouteRecord]) -> list[torch.Tensor]:
    out = []
    for r in routes:
        c = r.choice if r.choice is not None else r.weights.argmax(-1)
        out.append(c.detach().flatten().cpu())
    return out


def contrastive_step(
    encoder: Encoder,
    forward: torch.nn.Module,
    q_feats: dict,
    d_feats: dict,
    cfg: BenchmarkConfig,
    exclude: torch.Tensor,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> StepOutput:
    """Standard arm, and MAW arms trained end to end (``gumbel``, ``soft``, ``uniform``, ``fixed``)."""
    q = forward(**q_feats)
    q_routes = encoder.routes()
    d = forward(**d_feats)
    d_routes = encoder.routes()
    if gather is not None:
        d = gather(d)
    loss = info_nce_per_query(q, d, cfg.train.temperature, exclude, cfg.train.symmetric).mean()
    choices = [torch.cat([a, b]) for a, b in zip(_choices(q_routes), _choices(d_routes))]
    return StepOutput(loss, float(loss.detach()), choices=choices)


def grpo_step(
    encoder: Encoder,
    forward: torch.nn.Module,
    q_feats: dict,
    d_feats: dict,
    cfg: BenchmarkConfig,
    exclude: torch.Tensor,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> StepOutput:
    """MAW with ``selection: grpo``: a group of ``G`` sampled depth choices per sequence."""
    g_size = cfg.maw.grpo.group_size
    q_samples = encoder.forward_samples(q_feats, g_size)
    d_samples = encoder.forward_samples(d_feats, g_size)
    b = q_feats["input_ids"].shape[0]
    n_docs = d_feats["input_ids"].shape[0]
    owner = _neg_owner(n_docs, b, exclude.device)  # the query each local document belongs to

    losses, rewards = [], []
    for (q, q_routes), (d, d_routes) in zip(q_samples, d_samples):
        d_all = gather(d) if gather is not None else d
        per_query = info_nce_per_query(q, d_all, cfg.train.temperature, exclude, cfg.train.symmetric)
        losses.append(per_query.mean())
        if cfg.maw.reward == "task":
            r_q = -per_query.detach()
        elif cfg.maw.reward == "rank":
            r_q = reciprocal_rank(q, d_all, exclude)
        else:
            r_q = None
        rewards.append((r_q, q_routes, d_routes))
    contrastive = torch.stack(losses).mean()

    policy_loss = torch.zeros((), device=contrastive.device)
    stats: dict[str, float] = {}
    n_layers = len(q_samples[0][1])
    for layer in range(n_layers):
        logp, kl, ent, rew = [], [], [], []
        for r_q, q_routes, d_routes in rewards:
            rq, rd = q_routes[layer], d_routes[layer]
            logp.append(torch.cat([rq.logp, rd.logp]))
            kl.append(torch.cat([rq.kl, rd.kl]))
            ent.append(torch.cat([rq.entropy, rd.entropy]))
            if r_q is None:  # focus: each sequence's own reward
                rew.append(torch.cat([rq.focus, rd.focus]))
            else:
                rew.append(torch.cat([r_q, r_q[owner]]))
        lp = torch.stack(logp)
        loss_l, st = grpo_objective(
            lp, lp.detach(), torch.stack(rew).float(), torch.stack(kl), torch.stack(ent),
            cfg.maw.grpo.clip, cfg.maw.grpo.kl, cfg.maw.grpo.entropy,
        )
        policy_loss = policy_loss + loss_l
        for k, v in vars(st).items():
            stats[k] = stats.get(k, 0.0) + v / n_layers
    choices = [torch.cat([a, b]) for a, b in zip(_choices(q_samples[0][1]), _choices(d_samples[0][1]))]
    return StepOutput(contrastive + policy_loss, float(contrastive.detach()), stats, choices)


def _neg_owner(n_docs: int, b: int, device) -> torch.Tensor:
    """Owner query of each document: positives ``0..B-1``, then ``negatives_per_query`` per query."""
    per = max(1, (n_docs - b) // b) if n_docs > b else 1
    idx = torch.arange(n_docs, device=device)
    return torch.where(idx < b, idx, ((idx - b) // per).clamp_max(b - 1))
