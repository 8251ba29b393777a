"""The GRPO objective (DESIGN section 2, step 5) as a function of log-probabilities and rewards.

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
