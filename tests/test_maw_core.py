"""MAW arithmetic: shapes, masks, slices, selection paths, gradients, GRPO objective."""

from __future__ import annotations

import pytest
import torch

from maw_bench.maw import (
    DepthRouter,
    MAWAttention,
    PolicySamples,
    SelectionParams,
    group_advantages,
    grpo_objective,
    grpo_policy_loss,
)
from maw_bench.maw import scores as S
from maw_bench.maw.grpo import categorical_entropy, categorical_kl


def _mask(b: int, l: int, lengths: list[int]) -> torch.Tensor:
    m = torch.zeros(b, 1, 1, l, dtype=torch.bool)
    for i, n in enumerate(lengths):
        m[i, ..., :n] = True
    return m


def _randomise_routers(m: torch.nn.Module) -> None:
    """Routers start at zero (the uniform policy); tests of routing need a policy that prefers something."""
    with torch.no_grad():
        for r in m.modules():
            if isinstance(r, DepthRouter):
                r.policy.weight.normal_(std=0.5)


def test_split_index_uneven_chunks_cover_head():
    index, widths = S.split_index(10, 4)
    assert widths.tolist() == [3.0, 3.0, 2.0, 2.0]
    cols = sorted(int(c) for c in index.flatten() if c < 10)
    assert cols == list(range(10))


def test_scores_are_5d_and_match_a_loop():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 5, 7), torch.randn(2, 3, 6, 7)
    index, widths = S.split_index(7, 3)
    s = S.depth_scores(S.split_depths(q, index), S.split_depths(k, index), widths, None)
    assert s.shape == (2, 3, 5, 6, 3)
    for t, chunk in enumerate(torch.arange(7).tensor_split(3)):
        ref = q[..., chunk] @ k[..., chunk].transpose(-1, -2) / len(chunk) ** 0.5
        torch.testing.assert_close(s[..., t], ref)


def test_every_depth_map_is_row_stochastic_and_padded_keys_get_zero():
    torch.manual_seed(0)
    q, k = torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    mask = _mask(2, 6, [4, 6])
    index, widths = S.split_index(8, 4)
    maps = S.depth_maps(S.depth_scores(S.split_depths(q, index), S.split_depths(k, index), widths, mask), mask)
    torch.testing.assert_close(maps.sum(3), torch.ones(2, 2, 6, 4))
    assert (maps[0, :, :, 4:, :] == 0).all()
    combined = S.combine(maps, torch.softmax(torch.randn(2, 4), -1))
    assert (combined[0, :, :, 4:] == 0).all()
    torch.testing.assert_close(combined.sum(-1), torch.ones(2, 2, 6))
    # the depth slices are different maps
    assert (maps[..., 0] - maps[..., 1]).abs().max() > 1e-3


def test_fully_padded_row_gives_no_nan():
    m = MAWAttention(16, 2, 2, selection="soft").eval()
    x = torch.randn(2, 5, 16)
    mask = _mask(2, 5, [0, 5])
    out, _ = m.routed(x, mask)
    assert torch.isfinite(out).all()
    m2 = MAWAttention(16, 2, 2, selection="grpo").eval()
    assert torch.isfinite(m2(x, mask)).all()


@pytest.mark.parametrize("variant", ["split", "full"])
@pytest.mark.parametrize("router", ["sequence", "head"])
@pytest.mark.parametrize("selection", ["grpo", "gumbel", "fixed:1"])
def test_hard_path_equals_full_5d_path_then_selection(variant, router, selection):
    torch.manual_seed(1)
    m = MAWAttention(32, 4, 3, variant=variant, selection=selection, router=router).eval()
    _randomise_routers(m)
    x = torch.randn(3, 9, 32)
    mask = _mask(3, 9, [9, 5, 2])
    hard, route = m.routed(x, mask)
    m.force_full = True
    full, route_full = m.routed(x, mask)
    assert torch.equal(route_full.choice, route.choice)
    assert (hard - full).abs().max() <= 1e-5


def test_hard_path_never_builds_the_5d_tensor(monkeypatch):
    m = MAWAttention(32, 4, 4, selection="grpo").eval()

    def boom(*a, **k):
        raise AssertionError("5D scores computed at inference")

    x, mask = torch.randn(2, 6, 32), _mask(2, 6, [6, 3])
    monkeypatch.setattr(S, "depth_scores", boom)
    hard = m(x, mask)
    monkeypatch.undo()
    m.force_full = True  # the same choice through the 5D tensor
    assert hard.shape == (2, 6, 32) and (hard - m(x, mask)).abs().max() <= 1e-5


def test_router_starts_uniform_then_depends_on_the_sequence():
    torch.manual_seed(0)
    m = MAWAttention(32, 4, 4, selection="soft").eval()
    x = torch.randn(2, 6, 32)
    _, route = m.routed(x, None)
    torch.testing.assert_close(route.weights, torch.full((2, 4), 0.25))  # zero-initialised: the uniform policy
    _randomise_routers(m)
    _, route = m.routed(x, None)
    assert (route.weights[0] - route.weights[1]).abs().max() > 1e-4


def test_gumbel_gradient_reaches_router():
    torch.manual_seed(0)
    m = MAWAttention(32, 4, 4, selection="gumbel").train()
    out = m(torch.randn(2, 6, 32), _mask(2, 6, [6, 4]))
    out.pow(2).sum().backward()
    assert m.router.policy.weight.grad is not None and m.router.policy.weight.grad.abs().sum() > 0


def _group(m: MAWAttention, x: torch.Tensor, g: int, reward) -> PolicySamples:
    routes = [m.routed(x, None)[1] for _ in range(g)]
    choices = torch.stack([r.choice for r in routes])
    return PolicySamples(m.router, torch.stack([r.state for r in routes]), choices, reward(choices).float())


def test_grpo_update_moves_the_policy_towards_positive_advantages_only():
    """Entropy and KL off: the update's sign follows the advantages (a bonus alone cannot pass this)."""
    torch.manual_seed(0)
    m = MAWAttention(32, 4, 4, selection="grpo").train()
    _randomise_routers(m)
    x = torch.randn(64, 6, 32)
    params = SelectionParams(kl=0.0, entropy=0.0)
    samples = _group(m, x, 4, lambda c: (c == 2).float())  # depth 2 earns 1, the others 0
    loss, stats = grpo_policy_loss([samples], params, first_iteration=True)
    loss.backward()
    with torch.no_grad():
        before = torch.softmax(m.router(samples.states[0]), -1)[:, 2].mean()
        for p in m.router.parameters():
            p -= 0.5 * p.grad
        after = torch.softmax(m.router(samples.states[0]), -1)[:, 2].mean()
    assert after > before + 0.01, (before, after)
    assert stats["entropy"] > 0 and stats["clip_fraction"] == 0.0  # first iteration: ratio exactly 1


def test_grpo_iterations_make_the_ratio_and_the_clip_real():
    torch.manual_seed(0)
    m = MAWAttention(32, 4, 4, selection="grpo").train()
    x = torch.randn(32, 6, 32)
    samples = _group(m, x, 4, lambda c: c.float())
    moved = torch.randn_like(m.router.policy.weight)
    grads = {}
    for clip in (0.2, 1e-6):
        s = PolicySamples(m.router, samples.states, samples.choices, samples.rewards)
        params = SelectionParams(clip=clip, kl=0.0, entropy=0.0)
        m.router.zero_grad()
        grpo_policy_loss([s], params, first_iteration=True)[0].backward()
        first = m.router.policy.weight.grad.clone()
        with torch.no_grad():
            m.router.policy.weight.add_(moved)  # the policy moved
        m.router.zero_grad()
        _, st = grpo_policy_loss([s], params, first_iteration=False)
        grpo_policy_loss([s], params, first_iteration=False)[0].backward()
        grads[clip] = (first, m.router.policy.weight.grad.clone(), st["clip_fraction"])
        with torch.no_grad():
            m.router.policy.weight.zero_()
    assert torch.allclose(grads[0.2][0], grads[1e-6][0])  # iteration 1: the clip cannot act (ratio 1)
    assert not torch.allclose(grads[0.2][1], grads[1e-6][1])  # later iterations: it does
    assert grads[1e-6][2] > 0.5


def test_group_advantages_are_normalised_per_group():
    r = torch.tensor([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]])
    a = group_advantages(r)
    torch.testing.assert_close(a.mean(0), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(a[:, 0], torch.tensor([-1.2247, 1.2247, 0.0]), atol=1e-4, rtol=0)
    assert (a[:, 1] == 0).all()  # identical rewards: no signal


def test_grpo_clip_stops_gradient_beyond_ratio_bound():
    logp = torch.tensor([[0.5], [-0.5]], requires_grad=True)
    old = torch.zeros(2, 1)
    rewards = torch.tensor([[1.0], [0.0]])  # sample 0 advantaged, ratio e^0.5 > 1.2
    z = torch.zeros(2, 1)
    loss, _ = grpo_objective(logp, old, rewards, z, z, clip=0.2, kl_coef=0, entropy_coef=0)
    loss.backward()
    assert logp.grad[0, 0] == 0  # clipped: positive advantage already above 1 + eps


def test_kl_and_entropy():
    logits = torch.tensor([[0.0, 0.0]])
    assert torch.allclose(categorical_entropy(logits), torch.tensor([0.6931]), atol=1e-4)
    assert categorical_kl(logits, logits).item() == 0
    assert categorical_kl(torch.tensor([[2.0, 0.0]]), logits).item() > 0


@pytest.mark.parametrize("router", ["sequence", "head"])
def test_cheap_straight_through_equals_the_full_path(router):
    """Gumbel training computes one map with a graph; values and gradients equal the 5D path."""
    results = []
    for force_full in (False, True):
        torch.manual_seed(3)
        m = MAWAttention(32, 4, 4, selection="gumbel", router=router).train()
        m.force_full = force_full
        x = torch.randn(3, 7, 32, requires_grad=True)
        torch.manual_seed(5)  # the same Gumbel noise
        out = m(x, _mask(3, 7, [7, 5, 3]))
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), x.grad.clone(), m.router.policy.weight.grad.clone(), m.query.weight.grad.clone()))
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
