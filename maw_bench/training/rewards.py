"""GRPO's rewards as a registry, as selection strategies are: each one class under its name (``maw.reward``).

A reward scores each sampled depth choice. It gives either one value per query of a
sample (``of_sample``; a document shares the reward of its query) or, for rewards that
read the MAW layer itself, one value per text of that layer (``of_layer``). What the
rewards measure is theirs; ``training/step.py`` only collects them into
:class:`~maw_bench.maw.PolicySamples` for the strategy's ``policy_loss``.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from maw_bench.maw import PolicySamples, RouteRecord
from maw_bench.training.loss import reciprocal_rank


class Reward:
    """Base class: a reward per query of a sample, shared by that query's documents."""

    name: ClassVar[str] = ""
    needs_focus: ClassVar[bool] = False  # MAW layers must compute the focus of their maps

    def of_sample(self, q: torch.Tensor, d: torch.Tensor, per_query_loss: torch.Tensor, exclude: torch.Tensor,
                  distributed: bool) -> torch.Tensor | None:
        """``(B,)`` rewards of this rank's queries for one sample (None: the reward is per layer)."""
        raise NotImplementedError

    def of_layer(self, rq: RouteRecord, rd: RouteRecord, sample: torch.Tensor | None,
                 owner: torch.Tensor) -> torch.Tensor:
        """``(B + N,)`` rewards of one sample at one MAW layer: queries, then documents (their query's)."""
        assert sample is not None
        return torch.cat([sample, sample[owner]])


REWARDS: dict[str, type[Reward]] = {}


def register(cls: type[Reward]) -> type[Reward]:
    if not cls.name or cls.name in REWARDS:
        raise ValueError(f"reward {cls.name!r} needs a new, non-empty name")
    REWARDS[cls.name] = cls
    return cls


@register
class TaskReward(Reward):
    """``-InfoNCE`` of the sample's query against the batch: the retrieval loss itself."""

    name = "task"

    def of_sample(self, q, d, per_query_loss, exclude, distributed):
        return -per_query_loss.detach()


@register
class RankReward(Reward):
    """``1 / rank`` of the query's positive among the batch's documents."""

    name = "rank"

    def of_sample(self, q, d, per_query_loss, exclude, distributed):
        return reciprocal_rank(q, d, None if distributed else exclude)


@register
class FocusReward(Reward):
    """Focused attention: the negative entropy of the map each text's chosen depth gave (the seed's reward)."""

    name = "focus"
    needs_focus = True

    def of_sample(self, q, d, per_query_loss, exclude, distributed):
        return None

    def of_layer(self, rq, rd, sample, owner):
        return torch.cat([rq.focus, rd.focus])


def reward_names() -> list[str]:
    return list(REWARDS)


def policy_samples(routers: list, q_routes: list[list[RouteRecord]], d_routes: list[list[RouteRecord]],
                   sample_rewards: list[torch.Tensor | None], reward: Reward, owner: torch.Tensor) -> list[PolicySamples]:
    """Per MAW layer: the router, its states, the group's choices and their rewards (queries, then documents)."""
    samples = []
    for layer, router in enumerate(routers):
        rq = [routes[layer] for routes in q_routes]
        rd = [routes[layer] for routes in d_routes]
        samples.append(PolicySamples(
            router=router,
            states=torch.stack([torch.cat([a.state, c.state]) for a, c in zip(rq, rd)]),
            choices=torch.stack([torch.cat([a.choice, c.choice]) for a, c in zip(rq, rd)]),
            rewards=torch.stack([reward.of_layer(a, c, r, owner) for a, c, r in zip(rq, rd, sample_rewards)]).float(),
        ))
    return samples
