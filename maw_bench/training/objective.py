"""What a training step minimises, on the model side: the contrastive loss, the reward of each sampled choice,
and the selection strategy's policy loss, composed by one :class:`Objective` (as Tevatron's models own
``compute_loss`` and sentence-transformers' losses are classes).

Distributed (``DistContext``): query and document embeddings are gathered from every
rank (each rank keeps the gradient of its own slice), the loss is computed over the
global batch on every rank and multiplied by the world size, so that DDP's gradient
averaging gives exactly the single-process gradient of the global batch.

A strategy with a group (GRPO, docs/design.md section 2, step 5) samples ``G`` depth choices
per sequence at each MAW layer; the samples share every dropout mask, so they differ
only in depth. A sample's reward is task-based (``-InfoNCE`` of its query against the
batch, or ``1/rank`` of its positive) or ``focus`` (the registry of
``training/rewards.py``); a document shares the reward of its query. The encoder's loss
is the mean InfoNCE over the samples; the router's is the strategy's ``policy_loss``
(GRPO's clipped objective).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from maw_bench.maw import PolicySamples, RouteRecord, SelectionStrategy
from maw_bench.runtime.distributed import DistContext
from maw_bench.training.loss import info_nce_per_query
from maw_bench.training.rewards import REWARDS, Reward, policy_samples


@dataclass(frozen=True)
class LossSettings:
    """What the contrastive loss and the router's reward need from the config."""

    temperature: float = 0.05
    symmetric: bool = False
    reward: str = "task"  # a name in maw_bench.training.rewards.REWARDS


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


def choices_of(routes: list[RouteRecord]) -> list[torch.Tensor]:
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


@dataclass
class Objective:
    """An arm's training objective: ``objective(q_out, d_out, exclude, dist) -> StepOutput``.

    ``strategy`` None is the standard arm (InfoNCE alone); a strategy that trains a policy adds its
    reward (``settings.reward``) and policy loss over the ``routers``.
    """

    settings: LossSettings
    strategy: SelectionStrategy | None = None
    routers: list[torch.nn.Module] = field(default_factory=list)
    reward: Reward | None = None

    @classmethod
    def of(cls, encoder, settings: LossSettings) -> Objective:
        strategy = encoder.strategy
        trains = strategy is not None and strategy.trains_policy
        return cls(settings, strategy, [m.router for m in encoder.maw_modules()],
                   REWARDS[settings.reward]() if trains else None)

    @property
    def group_size(self) -> int:
        """Forward samples per sequence the objective needs (GRPO's group; 1 otherwise)."""
        return self.strategy.group_size if self.strategy is not None else 1

    @property
    def needs_focus(self) -> bool:
        return self.reward is not None and self.reward.needs_focus

    def __call__(self, q_out, d_out, exclude: torch.Tensor, dist: DistContext | None = None) -> StepOutput:
        q_all, d_all = q_out.embeddings, d_out.embeddings
        b, n_docs = q_all.shape[1], d_all.shape[1]
        losses, means, rewards = [], [], []
        for g in range(q_all.shape[0]):
            loss_g, mean_g, per_q = batch_loss(q_all[g], d_all[g], self.settings, exclude, dist)
            losses.append(loss_g)
            means.append(mean_g)
            if self.reward is not None:
                rewards.append(self.reward.of_sample(q_all[g], d_all[g], per_q, exclude, dist is not None))
        contrastive = torch.stack(losses).mean()
        choices = [torch.cat([a, c]) for a, c in zip(choices_of(q_out.routes[0]), choices_of(d_out.routes[0]))]
        mean = float(torch.stack(means).mean().detach())
        if self.reward is None or self.strategy is None:
            return StepOutput(contrastive, mean, choices=choices)
        owner = _doc_owner(n_docs, b, q_all.device)
        samples = policy_samples(self.routers, q_out.routes, d_out.routes, rewards, self.reward, owner)
        policy_loss, stats = self.strategy.policy_loss(samples, first_iteration=True)
        distinct = distinct_choices(q_out.routes, d_out.routes)
        if distinct is not None:
            stats["distinct_choices"] = distinct
        return StepOutput(contrastive + policy_loss, mean, stats, choices, policy_samples=samples)
