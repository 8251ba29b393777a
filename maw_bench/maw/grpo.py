"""The GRPO objective (docs/design.md section 2, step 5) as a function of log-probabilities and rewards.

The training loop samples ``G`` depth choices per sequence (one forward each),
computes a reward per sample, and hands the stacked ``(G, N)`` tensors here. Nothing
in this file knows what the reward measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``(R - mean_G R) / (std_G R + eps)`` over the group axis 0 of ``(G, N)`` rewards."""
    mean = rewards.mean(0, keepdim=True)
    std = rewards.std(0, unbiased=False, keepdim=True)
    return (rewards - mean) / (std + eps)


def categorical_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact ``KL(pi || pi_ref)`` over the last (depth) axis."""
    logp = torch.log_softmax(logits, -1)
    logq = torch.log_softmax(ref_logits, -1)
    return (logp.exp() * (logp - logq)).sum(-1)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1)


@dataclass
class GRPOStats:
    loss: float
    reward_mean: float
    advantage_std: float
    kl: float
    entropy: float
    clip_fraction: float


def grpo_objective(
    logp: torch.Tensor,
    logp_old: torch.Tensor,
    rewards: torch.Tensor,
    kl: torch.Tensor,
    entropy: torch.Tensor,
    clip: float = 0.2,
    kl_coef: float = 0.02,
    entropy_coef: float = 0.01,
) -> tuple[torch.Tensor, GRPOStats]:
    """Clipped-ratio policy loss with a KL penalty and an entropy bonus.

    Args:
        logp: ``(G, N)`` log-probability of each sampled choice under the current policy
            (carries the gradient to the router).
        logp_old: ``(G, N)`` the same under the policy that sampled (detached).
        rewards: ``(G, N)`` task reward of each sample.
        kl: ``(G, N)`` KL of the current policy to the reference, per sequence.
        entropy: ``(G, N)`` policy entropy per sequence.

    Returns the loss to minimise and scalar statistics for the log.
    """
    adv = group_advantages(rewards.detach()).to(logp.dtype)
    ratio = torch.exp(logp - logp_old.detach())
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * adv
    policy_loss = -torch.minimum(unclipped, clipped).mean()
    loss = policy_loss + kl_coef * kl.mean() - entropy_coef * entropy.mean()
    with torch.no_grad():
        stats = GRPOStats(
            loss=float(loss),
            reward_mean=float(rewards.mean()),
            advantage_std=float(rewards.std(0, unbiased=False).mean()),
            kl=float(kl.mean()),
            entropy=float(entropy.mean()),
            clip_fraction=float(((ratio - 1).abs() > clip).float().mean()),
        )
    return loss, stats


@dataclass
class PolicySamples:
    """One MAW layer's group of ``G`` samples: what its router saw and chose, and what each got.

    ``states``: ``(G, N, d)`` router inputs (detached when ``maw.router.detach_input``);
    ``choices``: ``(G, N)`` or ``(G, N, H)`` sampled depths; ``rewards``: ``(G, N)``;
    ``logp_old``: ``(G, N)`` log-probability of the choices under the policy before the
    first update (set by that update, then frozen). ``router`` is the layer's ``DepthRouter``.
    """

    router: torch.nn.Module
    states: torch.Tensor
    choices: torch.Tensor
    rewards: torch.Tensor
    logp_old: torch.Tensor | None = None


def choice_log_prob(logits: torch.Tensor, choices: torch.Tensor, per_head: bool) -> torch.Tensor:
    """Log-probability of ``choices`` per sequence (summed over heads when routing per head)."""
    lp = torch.log_softmax(logits.float(), -1).gather(-1, choices.unsqueeze(-1)).squeeze(-1)
    return _per_sequence(lp, per_head)


def _per_sequence(x: torch.Tensor, per_head: bool) -> torch.Tensor:
    """Sum a per-head quantity over the head axis (the last); per-sequence values pass through."""
    return x.sum(-1) if per_head else x


def grpo_policy_loss(samples: list[PolicySamples], params, first_iteration: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO objective of every MAW layer, summed; statistics averaged over layers.

    The router's logits are recomputed from the stored states (in fp32, outside any
    autocast), so the same function serves the first update, which freezes
    ``logp_old`` (ratio 1: with ``iterations=1`` this is REINFORCE with the group mean
    as baseline, plus the KL and entropy terms), and each further update of
    ``maw.grpo.iterations`` on the same group (the ratio moves away from 1 and the
    clip acts). Later iterations use detached states: only the router learns.
    """
    total = None
    stats: dict[str, float] = {}
    for s in samples:
        states = (s.states if first_iteration else s.states.detach()).float()
        with torch.autocast(states.device.type, enabled=False):
            logits = s.router(states).float()  # (G, N, D) or (G, N, H, D)
            ref = s.router.reference_logits(states.detach()).float()
        per_head = s.choices.dim() == 3
        lp = choice_log_prob(logits, s.choices, per_head)
        if first_iteration or s.logp_old is None:
            s.logp_old = lp.detach()
        kl = _per_sequence(categorical_kl(logits, ref), per_head)
        ent = _per_sequence(categorical_entropy(logits), per_head)
        loss, st = grpo_objective(lp, s.logp_old, s.rewards.float(), kl, ent, params.clip, params.kl, params.entropy)
        total = loss if total is None else total + loss
        for k, v in vars(st).items():
            stats[k] = stats.get(k, 0.0) + v / len(samples)
    assert total is not None
    return total, stats
