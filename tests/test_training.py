"""Training: the loss falls, resume is exact, GRPO learns, the schedule, identical data for both arms."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_overrides
from safetensors.torch import load_file

from maw_bench.config import BenchmarkConfig
from maw_bench.errors import UserError
from maw_bench.maw import DepthRouter, MAWAttention, PolicySamples, SelectionParams, grpo_policy_loss, parse_selection
from maw_bench.training import batches as batches_mod
from maw_bench.training.run import train_arms


def _cfg(tiny_model, toy_beir, *extra):
    return BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, *extra))


def _log(folder):
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("arm, selection", [("standard", "grpo"), ("maw", "grpo"), ("maw", "gumbel")])
def test_loss_falls_for_each_arm(tiny_model, toy_beir, tmp_path, arm, selection):
    cfg = _cfg(tiny_model, toy_beir, "train.max_steps=30", f"maw.selection={selection}")
    train_arms(cfg, [arm], tmp_path / "run")
    losses = [r["loss"] for r in _log(tmp_path / "run" / arm)]
    assert len(losses) == 30
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)


def test_resumed_run_ends_with_the_same_weights(tiny_model, toy_beir, tmp_path):
    extra = ("train.max_steps=6", "train.save_every=1", "train.deterministic=true", "maw.selection=grpo")
    cfg = _cfg(tiny_model, toy_beir, *extra)
    train_arms(cfg, ["maw"], tmp_path / "full")
    train_arms(cfg, ["maw"], tmp_path / "part", stop_after=3)
    assert not (tmp_path / "part" / "maw" / "model").exists()
    first_leg = json.loads(next((tmp_path / "part" / "maw" / "checkpoints").glob("step-0000003/state.json")).read_text())
    train_arms(cfg, ["maw"], tmp_path / "part", resume=True)
    a = load_file(str(tmp_path / "full" / "maw" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "maw" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k
    assert [r["step"] for r in _log(tmp_path / "part" / "maw")] == list(range(1, 7))
    assert [r["loss"] for r in _log(tmp_path / "part" / "maw")] == [r["loss"] for r in _log(tmp_path / "full" / "maw")]
    # the manifest's wall time is the whole run's, both legs (each checkpoint keeps the time before it)
    manifest = json.loads((tmp_path / "part" / "maw" / "manifest.json").read_text())
    assert manifest["wall_s"] >= round(first_leg["train_s"], 6) >= 0 and "wall_s_partial" not in manifest


def test_lr_reaches_zero_at_the_last_optimizer_step_with_accumulation(tiny_model, toy_beir, tmp_path, monkeypatch):
    from maw_bench.training import trainer as trainer_mod

    seen = {}
    original = trainer_mod.Trainer.train

    def spy(self, resume=False):
        out = original(self, resume)
        seen["last_lr"] = self.scheduler.get_last_lr()
        seen["scheduler_steps"] = self.scheduler.last_epoch
        return out

    monkeypatch.setattr(trainer_mod.Trainer, "train", spy)
    cfg = _cfg(tiny_model, toy_beir, "train.max_steps=5", "train.grad_accum=3", "train.warmup_ratio=0.2")
    train_arms(cfg, ["standard"], tmp_path / "run")
    log = _log(tmp_path / "run" / "standard")
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]  # optimiser steps, not 15 micro-batches
    assert seen["scheduler_steps"] == 5 and set(seen["last_lr"]) == {0.0}
    lrs = [r["lr"] for r in log]
    assert lrs[0] < lrs[1] and lrs[1] > lrs[2] > lrs[3] > lrs[4] > 0  # warm-up, then linear decay


def test_both_arms_see_the_same_examples_in_the_same_order(tiny_model, toy_beir, tmp_path, monkeypatch):
    seen: list[list[str]] = []
    original = batches_mod.materialise

    def spy(examples, bundle):
        seen.append([e.query_id + ">" + e.positive_id + ">" + ",".join(e.negative_ids) for e in examples])
        return original(examples, bundle)

    from maw_bench.training import trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "materialise", spy)
    cfg = _cfg(tiny_model, toy_beir, "train.max_steps=5")
    train_arms(cfg, ["standard", "maw"], tmp_path / "run")
    assert len(seen) == 10
    assert seen[:5] == seen[5:]


def test_grpo_moves_probability_to_the_better_depth():
    """A toy task whose reward is highest for depth 2: the policy must learn to pick it."""
    torch.manual_seed(0)
    m = MAWAttention(32, 4, 4, selection="fixed:2").eval()
    x = torch.randn(16, 8, 32)
    with torch.no_grad():
        target = m(x)
    m.strategy = parse_selection("grpo", 4)
    m.router = DepthRouter(32, 4, 4)
    m.train()
    opt = torch.optim.Adam(m.router.parameters(), lr=0.05)
    params = SelectionParams(kl=0.0)

    def prob_of_2() -> float:
        return torch.softmax(m.router(m.router.state(x, None)), -1)[:, 2].mean().item()

    before = prob_of_2()
    for _ in range(60):
        outs, routes = zip(*(m.routed(x) for _ in range(4)))
        rewards = torch.stack([-((o.detach() - target) ** 2).mean((1, 2)) for o in outs])
        samples = PolicySamples(m.router, torch.stack([r.state for r in routes]), torch.stack([r.choice for r in routes]),
                                rewards)
        loss, _ = grpo_policy_loss([samples], params, first_iteration=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert before == 0.25 and prob_of_2() > 0.8, (before, prob_of_2())


def test_grpo_training_updates_the_router_and_fixed_has_none(tiny_model, toy_beir, tmp_path):
    from maw_bench.modeling import load_encoder

    cfg = _cfg(tiny_model, toy_beir, "train.max_steps=4", "maw.selection=grpo")
    train_arms(cfg, ["maw"], tmp_path / "grpo")
    log = _log(tmp_path / "grpo" / "maw")
    assert all("grpo" in r and sum(r["depth_histogram"][0]) > 0 for r in log)
    enc = load_encoder(tmp_path / "grpo" / "maw" / "model")
    router = enc.maw_modules()[0].router
    assert not torch.equal(router.policy.weight, router.ref_weight)  # moved away from the reference

    cfg = _cfg(tiny_model, toy_beir, "train.max_steps=4", "maw.selection=fixed:1")
    train_arms(cfg, ["maw"], tmp_path / "fixed")
    log = _log(tmp_path / "fixed" / "maw")
    assert all("grpo" not in r for r in log)
    assert all(r["depth_histogram"][0][1] == sum(r["depth_histogram"][0]) for r in log)
    enc = load_encoder(tmp_path / "fixed" / "maw" / "model")
    assert enc.maw_modules()[0].router is None


def test_existing_run_folder_is_not_overwritten(tiny_model, toy_beir, tmp_path):
    cfg = _cfg(tiny_model, toy_beir, "train.max_steps=1")
    train_arms(cfg, ["standard"], tmp_path / "run")
    with pytest.raises(UserError, match="--resume"):
        train_arms(cfg, ["standard"], tmp_path / "run")
    train_arms(cfg, ["standard"], tmp_path / "run", overwrite=True)


def test_nan_loss_stops_with_a_clear_message(tiny_model, toy_beir, tmp_path, monkeypatch):
    from maw_bench.training import trainer as trainer_mod

    original = trainer_mod.Trainer._micro_step
    calls = {"n": 0}

    def poisoned(self, index, sync=None):
        out = original(self, index, sync)
        calls["n"] += 1
        if calls["n"] == 3:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(trainer_mod.Trainer, "_micro_step", poisoned)
    cfg = _cfg(tiny_model, toy_beir, "train.max_steps=5", "train.save_every=1")
    with pytest.raises(trainer_mod.TrainingDiverged, match="loss became nan at step 3.*step-0000002"):
        train_arms(cfg, ["standard"], tmp_path / "run")
    assert (tmp_path / "run" / "standard" / "checkpoints" / "step-0000002").is_dir()


def test_lora_trains_adapters_and_the_router_and_leaves_other_weights_alone(tiny_model, toy_beir, tmp_path):
    from maw_bench.modeling import build_encoder, load_encoder

    cfg = _cfg(tiny_model, toy_beir, "train.max_steps=3", "train.lora.enabled=true", "maw.selection=gumbel")
    train_arms(cfg, ["maw"], tmp_path / "run")
    trained = load_encoder(tmp_path / "run" / "maw" / "model")  # LoRA merged back into a plain encoder
    start = build_encoder(cfg.arm("maw")).state_dict()
    after = trained.state_dict()
    router = trained.maw_modules()[0].router
    assert router.policy.weight.abs().sum() > 0  # it moved from its zero start: the router trained
    changed = {k for k in start if not torch.equal(start[k], after[k])}
    assert any(k.endswith("attention.self.maw.query.weight") for k in changed)  # a LoRA target: the adapter merged
    assert not any("word_embeddings" in k or "LayerNorm" in k for k in changed)  # not targets: untouched


def test_tensorboard_event_file_holds_the_logged_scalars(tiny_model, toy_beir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _cfg(tiny_model, toy_beir, "train.max_steps=3", "train.report_to=[tensorboard]")
    train_arms(cfg, ["maw"], tmp_path / "run")
    acc = EventAccumulator(str(tmp_path / "run" / "maw" / "tensorboard"), size_guidance={"histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    log = _log(tmp_path / "run" / "maw")
    losses = [e.value for e in acc.Scalars("train/loss")]
    assert losses == pytest.approx([r["loss"] for r in log], abs=1e-5)
    assert [e.step for e in acc.Scalars("router/kl")] == [1, 2, 3]
    assert "depth/layer0/d0" in tags["scalars"] and "depth/layer0" in tags["histograms"]


def test_report_to_an_unknown_service_is_refused():
    with pytest.raises(UserError, match="use tensorboard and/or wandb"):
        BenchmarkConfig.load(overrides=["train.report_to=[mlflow]"])


def test_the_allocator_keeps_freed_memory_unless_the_user_set_it(monkeypatch):
    import platform

    from maw_bench.runtime.hardware import keep_freed_memory

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert keep_freed_memory() is True
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert keep_freed_memory() is False  # the user's own allocator settings win


def _steering_weights(enc) -> list[torch.nn.Parameter]:
    """The test's own oracle of what an arm adds to steer attention, by module type: MAW's routers, the gates,
    differential attention's second query/key and lambdas."""
    from maw_bench.maw.attention import MAWAttention
    from maw_bench.mechanisms.diff import DiffSelfAttention
    from maw_bench.mechanisms.gated import GatedSelfAttention
    from maw_bench.mechanisms.kernels import DiffKernel, GatedKernel

    out: list[torch.nn.Parameter] = []
    for m in enc.modules():
        if isinstance(m, MAWAttention) and m.router is not None:
            out += list(m.router.parameters())
        elif isinstance(m, (GatedSelfAttention, GatedKernel)):
            out += list(m.gate.parameters())
        elif isinstance(m, (DiffSelfAttention, DiffKernel)):
            out += [*m.query2.parameters(), *m.key2.parameters(), m.lam]
    return out


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("placement", ["replace", "append"])
@pytest.mark.parametrize("arm", ["maw", "maw-nested", "maw-gumbel", "gated", "diff"])
def test_every_added_weight_learns_at_router_lr_and_every_pretrained_weight_at_lr(tiny_model, toy_beir, tmp_path,
                                                                                  arm, placement, lora):
    """Roles by object, not by name: each weight an arm adds to steer attention trains at train.router_lr without
    decay and receives a gradient, under plain training and under LoRA; every pretrained weight trains at train.lr
    (plain) or stays frozen (LoRA), and appended blocks train at train.lr in both."""
    from maw_bench import build_encoder
    from maw_bench.training.run import prepare_data
    from maw_bench.training.trainer import Trainer, apply_lora

    cfg = _cfg(tiny_model, toy_beir, f"maw.placement={placement}", "train.lr=1e-4", "train.router_lr=7e-3",
               "maw.depth=2", f"train.lora.enabled={str(lora).lower()}", "train.lora.target_modules=[query,value]")
    acfg = cfg.arm(arm)
    enc = build_encoder(acfg)
    pretrained = {id(p) for p in enc.backbone.parameters()}
    blocks = {id(p) for p in enc.blocks.parameters()}
    added = _steering_weights(enc)
    assert added, f"{arm} adds no weight to steer attention"
    if lora:
        apply_lora(enc, acfg.train.lora)
    bundle, examples, _ = prepare_data(acfg)
    trainer = Trainer(enc, bundle, examples, acfg, tmp_path / arm, torch.device("cpu"))
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in trainer.optimizer.param_groups for p in g["params"]}
    for p in added:
        assert p.requires_grad and lr_of[id(p)] == (7e-3, 0.0), (arm, tuple(p.shape))
    added_ids = {id(p) for p in added}
    for p in enc.parameters():
        if id(p) in added_ids:
            continue
        if lora and id(p) in pretrained - blocks:
            assert not p.requires_grad and id(p) not in lr_of  # LoRA freezes the pretrained weights
        else:
            assert p.requires_grad and lr_of[id(p)][0] == 1e-4, tuple(p.shape)  # pretrained, blocks, adapters
    trainer.model.train()
    trainer._accumulate(0)
    assert all(p.grad is not None for p in added), arm
