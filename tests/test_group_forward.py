"""GRPO samples that chose alike share one forward, and nothing else changes (issue: GRPO at the cost of its choices).

The law: with ``maw.grpo.share_choices`` on, a training step's loss, every parameter's gradient, the router's
objective and the choices equal those of re-running every sample, with dropout on (0.1), for split and nested
MAW, sequence and per-head routers, focus and task rewards, replace and append placements, and groups whose
samples all coincide, partly coincide or never do. Each case also checks the shared path ran the rows it should.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import texts

from maw_bench import BenchmarkConfig, build_encoder
from maw_bench.modeling import encoder as encoder_mod
from maw_bench.modeling import group_forward
from maw_bench.modeling.dropout_tape import DropoutTape
from maw_bench.training.step import LossSettings, train_step

GROUP = 4


def _encoder(model: str, *extra: str):
    torch.manual_seed(0)
    return build_encoder(BenchmarkConfig.load(overrides=[
        f"model.name={model}", "maw.enabled=true", "maw.depth=4", f"maw.grpo.group_size={GROUP}",
        "maw.router.init_last_prob=0", *extra])).train()


def _uniforms(kind: str):
    """Depth draws of every sample: all alike, random (some coincide), or one depth per sample (none coincide)."""
    def make(modules, group, batch, device, generator):
        out = []
        for g in range(group):
            per_layer = []
            for m in modules:
                heads = m.num_heads if (m.router is not None and m.router.granularity == "head") else 1
                if kind == "alike":
                    u = torch.full((batch, heads), 0.3)
                elif kind == "apart":  # with a uniform policy over 4 depths: depth g for sample g
                    u = torch.full((batch, heads), (g + 0.5) / group)
                else:
                    u = torch.rand(batch, heads, generator=torch.Generator().manual_seed(11 + g))
                per_layer.append(u)
            out.append(per_layer)
        return out
    return make


def _step(enc, share: bool, reward: str):
    enc.maw_cfg = dataclasses.replace(enc.maw_cfg, grpo=dataclasses.replace(enc.maw_cfg.grpo, share_choices=share))
    enc.zero_grad(set_to_none=True)
    q, d = enc.tokenize(texts()[:5], "query"), enc.tokenize(texts()[5:10], "doc")
    torch.manual_seed(123)
    out = train_step(enc, enc, q, d, LossSettings(reward=reward), torch.zeros(5, 5, dtype=torch.bool), routing_seed=9)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in enc.named_parameters() if p.grad is not None}
    after = torch.rand(3)  # the random stream after the step: both paths must leave it where they found it
    return out, grads, after


@pytest.mark.parametrize("case", [
    ("split", "sequence", "task", "replace", "random"), ("split", "sequence", "task", "replace", "apart"),
    ("split", "sequence", "task", "replace", "alike"), ("nested", "sequence", "task", "replace", "random"),
    ("split", "head", "task", "replace", "random"), ("nested", "head", "focus", "replace", "apart"),
    ("split", "sequence", "focus", "append", "random"),
])
def test_shared_group_forward_equals_rerunning_every_sample(tiny_model, monkeypatch, case):
    variant, granularity, reward, placement, draws = case
    enc = _encoder(tiny_model, f"maw.variant={variant}", f"maw.router.granularity={granularity}",
                   f"maw.placement={placement}")
    with torch.no_grad():  # a policy that is not uniform, so logits matter (the "apart" draws keep their spread)
        for m in enc.maw_modules():
            m.router.policy.weight.normal_(0, 0.05 if draws != "apart" else 0.0)
    monkeypatch.setattr(encoder_mod.Encoder, "_uniforms", staticmethod(_uniforms(draws)))
    rows = []
    real = group_forward.group_index
    monkeypatch.setattr(group_forward, "group_index", lambda ch: (lambda p: rows.append(p) or p)(real(ch)))
    shared, shared_grads, shared_after = _step(enc, True, reward)
    assert len(rows) == 2, "the shared path ran (queries and documents)"
    per_sequence = {"alike": 1.0, "apart": float(GROUP)}
    if draws in per_sequence:
        assert all(p.distinct_per_sequence == per_sequence[draws] for p in rows)
    assert shared.policy["distinct_choices"] == pytest.approx(
        sum(p.distinct_per_sequence * p.index[0].numel() for p in rows) / sum(p.index[0].numel() for p in rows))
    rerun, rerun_grads, rerun_after = _step(enc, False, reward)
    assert len(rows) == 2, "share_choices=false re-runs every sample"
    assert torch.equal(shared_after, rerun_after)
    assert float(shared.loss) == pytest.approx(float(rerun.loss), abs=1e-6)
    assert shared.contrastive == pytest.approx(rerun.contrastive, abs=1e-6)
    for key in rerun.policy:
        assert shared.policy[key] == pytest.approx(rerun.policy[key], abs=1e-6), key
    assert all(torch.equal(a, b) for a, b in zip(shared.choices, rerun.choices))
    assert shared_grads.keys() == rerun_grads.keys() and any(".router." in k for k in shared_grads)
    for name, g in rerun_grads.items():
        assert torch.allclose(shared_grads[name], g, atol=1e-6, rtol=1e-4), name


def test_several_maw_layers_keep_the_path_that_reruns_every_sample(tiny_model, monkeypatch):
    calls = []
    monkeypatch.setattr(group_forward, "shared_samples", lambda *a: calls.append(1))
    enc = _encoder(tiny_model, "maw.layers=all")
    out = enc(**enc.tokenize(texts()[:4], "doc"), samples=GROUP)
    assert calls == [] and out.embeddings.shape[0] == GROUP


def test_the_tape_draws_the_masks_the_native_calls_draw_and_replays_them_on_any_rows():
    """Recorded: the same values and random stream as plain dropout and attention; replayed on rows (repeats
    allowed): each row gets the mask it had, with nothing drawn."""
    import torch.nn.functional as F

    q, k, v = (torch.randn(3, 2, 5, 4) for _ in range(3))
    mask = torch.ones(3, 1, 1, 5, dtype=torch.bool)
    mask[0, ..., 3:] = False
    x = torch.randn(3, 2, 5, 4)

    def run():
        return F.dropout(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.2), 0.1, True) + x

    torch.manual_seed(4)
    native = run()
    native_after = torch.rand(2)
    tape = DropoutTape(batch=3)
    torch.manual_seed(4)
    tape.state = "record"
    with tape:
        recorded = run()
    assert tape.faithful and len(tape.masks) == 2
    assert torch.equal(torch.rand(2), native_after)
    assert torch.allclose(recorded, native, atol=1e-6)
    rows = torch.tensor([2, 0, 2])
    q, k, v, mask, x = q[rows], k[rows], v[rows], mask[rows], x[rows]
    state = torch.get_rng_state()
    tape.replay(rows)
    with tape:
        replayed = run()
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.allclose(replayed, recorded[rows], atol=1e-6)
