"""The MAW arm differs from the standard arm in the attention and nothing else (issue: a fair experiment).

The strongest law: with ``maw.depth=1`` and ``maw.selection=fixed:0`` the MAW arm *is* the standard
arm, so both trained side by side from one seed give the same embeddings and metrics. Dropout is on
(0.1) in every test here unless one says why not.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import texts, tiny_overrides

from maw_bench import BenchmarkConfig, build_encoder
from maw_bench.config import control_arms
from maw_bench.errors import UserError
from maw_bench.maw import DepthRouter
from maw_bench.modeling import load_encoder
from maw_bench.training.run import train_arms


def _cfg(model, data, *extra) -> BenchmarkConfig:
    return BenchmarkConfig.load(overrides=tiny_overrides(model, data, *extra))


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max())


def _train_twins(model: str, data, folder, placement: str, steps: int = 3, selection: str = "fixed:0", *extra: str):
    cfg = _cfg(model, data, f"maw.placement={placement}", "maw.depth=1", f"maw.selection={selection}",
               f"train.max_steps={steps}", "train.batch_size=6", *extra)
    train_arms(cfg, ["standard", "maw"], folder)
    return [load_encoder(folder / arm / "model") for arm in ("standard", "maw")]


@pytest.mark.parametrize("placement, selection", [("replace", "fixed:0"), ("append", "fixed:0"), ("replace", "grpo"),
                                                  ("append", "grpo"), ("replace", "gumbel")])
def test_depth_one_maw_arm_trains_to_the_standard_arm(tiny_model, toy_beir, tmp_path, placement, selection):
    """fixed:0 has no router; grpo and gumbel with one depth have one choice, and their routing noise comes from
    a generator of its own, so even they consume the dropout stream exactly as the standard arm does."""
    std, maw = _train_twins(tiny_model, toy_beir, tmp_path / "run", placement, 4, selection)
    assert maw.maw_modules(), "the MAW arm has MAW layers"
    sample = texts()
    assert _max_diff(std.encode(sample), maw.encode(sample)) <= 1e-5
    # and they moved: the law is not satisfied by two untrained encoders
    base = build_encoder(_cfg(tiny_model, toy_beir)).encode(sample)
    assert _max_diff(std.encode(sample), base) > 1e-3
    logs = [[json.loads(x)["loss"] for x in (tmp_path / "run" / a / "train_log.jsonl").read_text().splitlines()]
            for a in ("standard", "maw")]
    assert logs[0] == pytest.approx(logs[1], abs=1e-5)


@pytest.mark.slow
def test_depth_one_fixed_zero_on_minilm_gives_the_same_embeddings_and_metrics(minilm_path, toy_beir, tmp_path):
    from maw_bench.evaluation.pipeline import run_evaluation

    cfg = _cfg(minilm_path, toy_beir, "maw.depth=1", "maw.selection=fixed:0", "train.max_steps=3",
               "train.batch_size=6", "train.lr=5e-5", "eval.cache_dir=" + str(tmp_path / "cache"))
    train_arms(cfg, ["standard", "maw"], tmp_path / "run")
    std, maw = (load_encoder(tmp_path / "run" / a / "model") for a in ("standard", "maw"))
    sample = ["Aspirin lowers the risk of heart attack.", "cell gene virus", "protein " * 40]
    assert _max_diff(std.encode(sample), maw.encode(sample)) <= 1e-5
    out = run_evaluation(cfg, [str(tmp_path / "run")], [str(toy_beir)], tmp_path / "eval", print_table=False)
    res = next(iter(out.results.values()))
    for metric, value in res["standard"].items():
        assert res["maw"][metric] == pytest.approx(value, abs=1e-6), metric


def test_nested_last_depth_is_the_unmodified_minilm(minilm_path):
    sample = ["Vitamin D deficiency is associated with higher mortality.", "A short one.", "Protein folding " * 30]
    base = build_encoder(BenchmarkConfig.load(overrides=[f"model.name={minilm_path}"])).encode(sample)
    for layers in ("[-1]", "all"):
        cfg = BenchmarkConfig.load(overrides=[f"model.name={minilm_path}", "maw.enabled=true", "maw.variant=nested",
                                              "maw.depth=4", "maw.selection=fixed:3", f"maw.layers={layers}"])
        assert _max_diff(build_encoder(cfg).encode(sample), base) <= 1e-5
    other = BenchmarkConfig.load(overrides=[f"model.name={minilm_path}", "maw.enabled=true", "maw.variant=nested",
                                            "maw.depth=4", "maw.selection=fixed:1"])
    assert _max_diff(build_encoder(other).encode(sample), base) > 1e-3  # the other depths are other maps


@pytest.mark.parametrize("selection", ["grpo", "gumbel", "soft"])
def test_nested_arm_with_a_router_starts_as_the_pretrained_minilm(minilm_path, selection):
    """The router leans towards the last depth (the whole head) at init: argmax picks it, so the MAW arm starts at
    the pretrained optimum (soft: a mixture leaning the same way, close but not equal)."""
    sample = ["Vitamin D deficiency is associated with higher mortality.", "A short one.", "Protein folding " * 30]
    base = build_encoder(BenchmarkConfig.load(overrides=[f"model.name={minilm_path}"])).encode(sample)
    enc = build_encoder(BenchmarkConfig.load(overrides=[f"model.name={minilm_path}", "maw.enabled=true",
                                                        "maw.variant=nested", f"maw.selection={selection}"]))
    probs = torch.softmax(enc.maw_modules()[0].router.policy.bias.detach(), -1).tolist()
    assert probs[-1] == pytest.approx(0.7) and probs[0] == pytest.approx(0.1)
    diff = _max_diff(enc.encode(sample), base)
    assert diff <= 1e-5 if selection != "soft" else 1e-5 < diff < 0.1


def test_nested_widths_double_and_too_deep_is_a_clear_error(tiny_model):
    from maw_bench.maw.scores import nested_index

    index, widths = nested_index(32, 4)
    assert widths.tolist() == [4.0, 8.0, 16.0, 32.0]
    assert [int((row < 32).sum()) for row in index] == [4, 8, 16, 32]
    with pytest.raises(UserError, match="too deep for variant=nested"):  # head width 8: at most 4 depths
        build_encoder(BenchmarkConfig.load(overrides=[f"model.name={tiny_model}", "maw.enabled=true",
                                                      "maw.variant=nested", "maw.depth=5"]))


def test_append_arms_start_from_the_same_weights(tiny_model):
    def blocks(*extra):
        enc = build_encoder(BenchmarkConfig.load(overrides=[f"model.name={tiny_model}", "maw.placement=append",
                                                            "maw.num_blocks=2", *extra]))
        return {k: v for k, v in enc.state_dict().items() if k.startswith("blocks.")}

    std = blocks()
    maw = blocks("maw.enabled=true", "maw.depth=4")  # a router per block, built without touching the RNG stream
    shared = [k for k in std if k in maw]
    assert len(shared) == len(std) and all(torch.equal(std[k], maw[k]) for k in shared)
    assert {k for k in maw if k not in std} == {k for k in maw if ".router." in k}


def test_grpo_samples_differ_only_in_depth(tiny_model):
    """Dropout on, every sample forced to the same depth: the group's embeddings must be identical."""
    enc = build_encoder(BenchmarkConfig.load(overrides=[f"model.name={tiny_model}", "maw.enabled=true", "maw.depth=4",
                                                        "maw.layers=all"])).train()
    with torch.no_grad():
        for r in enc.modules():
            if isinstance(r, DepthRouter):
                r.policy.bias.copy_(torch.tensor([0.0, 30.0, 0.0, 0.0]))  # depth 1, almost surely
    feats = enc.tokenize(texts(), "doc")
    out = enc(**feats, samples=4)
    assert all((routes[layer].choice == 1).all() for routes in out.routes for layer in range(2))
    for g in range(1, 4):
        assert torch.equal(out.embeddings[g], out.embeddings[0])
    again = enc(**feats, samples=1).single  # and dropout is really on: another call draws other masks
    assert _max_diff(again, out.embeddings[0]) > 1e-4


def test_group_samples_share_the_first_maw_layers_projections_with_the_same_gradients(tiny_model, monkeypatch):
    """The replayed layer's Q/K/V are computed once per group (what keeps GRPO's step cheap); the gradients
    equal those of computing them per sample. Dropout on; both runs start from one random state."""
    from maw_bench.maw.attention import RouteRecorder

    def run(share: bool):
        enc = build_encoder(BenchmarkConfig.load(overrides=[f"model.name={tiny_model}", "maw.enabled=true",
                                                            "maw.depth=4", "maw.layers=all"])).train()
        first = enc.maw_modules()[0]
        calls = []
        first.value.register_forward_hook(lambda *a: calls.append(1))
        torch.manual_seed(5)
        out = enc(**enc.tokenize(texts(), "doc"), samples=4, generator=torch.Generator().manual_seed(1))
        (out.embeddings * torch.linspace(-1, 1, out.embeddings.shape[-1])).sum().backward()
        return len(calls), {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}

    shared_calls, shared = run(True)
    with monkeypatch.context() as m:
        m.setattr(RouteRecorder, "shared", lambda self, layer, x, compute: compute(x))
        own_calls, own = run(False)
    assert shared_calls == 1 and own_calls == 4
    assert shared.keys() == own.keys()
    for name in shared:
        assert torch.allclose(shared[name], own[name], atol=1e-6, rtol=1e-5), name


def test_router_losses_reach_the_router_only_unless_asked(tiny_model):
    from maw_bench.training.step import LossSettings, train_step

    grads = {}
    for detach in (True, False):
        enc = build_encoder(BenchmarkConfig.load(overrides=[
            f"model.name={tiny_model}", "maw.enabled=true", "maw.depth=4", f"maw.router.detach_input={detach}"])).train()
        with torch.no_grad():  # a zero (initial) policy passes no gradient to its input whatever the setting
            enc.maw_modules()[0].router.policy.weight.normal_()
        q = enc.tokenize(texts()[:4], "query")
        d = enc.tokenize(texts()[4:8], "doc")
        torch.manual_seed(0)
        out = train_step(enc, enc, q, d, LossSettings(), torch.zeros(4, 4, dtype=torch.bool))
        ploss, _ = enc.strategy.policy_loss(out.policy_samples, first_iteration=True)  # the router objective alone
        enc.zero_grad()
        ploss.backward()
        emb = enc.backbone.embeddings.word_embeddings.weight.grad
        router = enc.maw_modules()[0].router.policy.weight.grad
        grads[detach] = (0.0 if emb is None else float(emb.abs().sum()), float(router.abs().sum()))
    assert grads[True][0] == 0.0 and grads[True][1] > 0  # default: the encoder gets nothing from the router loss
    assert grads[False][0] > 0  # detach_input=false: the old behaviour, on request


def test_reference_policy_is_uniform_unless_refreshed(tiny_model, toy_beir, tmp_path):
    for every, expect_synced in ((0, False), (2, True)):
        cfg = _cfg(tiny_model, toy_beir, "maw.enabled=true", "train.max_steps=4", f"maw.grpo.ref_update_every={every}")
        train_arms(cfg, ["maw"], tmp_path / f"ref{every}")
        router = load_encoder(tmp_path / f"ref{every}" / "maw" / "model").maw_modules()[0].router
        assert not torch.equal(router.policy.weight, torch.zeros_like(router.policy.weight))  # it learned
        if expect_synced:  # refreshed at step 4, the last
            assert torch.equal(router.ref_weight, router.policy.weight)
        else:  # the initial policy: zero weights, i.e. uniform over depths
            assert torch.equal(router.ref_weight, torch.zeros_like(router.ref_weight))


def test_grpo_iterations_give_the_clip_an_effect(tiny_model, toy_beir, tmp_path):
    def router_after(iterations, clip):
        cfg = _cfg(tiny_model, toy_beir, "maw.enabled=true", "train.max_steps=3", f"maw.grpo.iterations={iterations}",
                   f"maw.grpo.clip={clip}", "train.router_lr=0.05")
        folder = tmp_path / f"it{iterations}-{clip}"
        train_arms(cfg, ["maw"], folder)
        return load_encoder(folder / "maw" / "model").maw_modules()[0].router.policy.weight

    assert torch.equal(router_after(1, 0.2), router_after(1, 1e-6))  # mu = 1: the ratio is 1, the clip is inert
    assert not torch.equal(router_after(3, 0.2), router_after(3, 1e-6))


def test_routers_have_no_value_head_and_every_router_weight_trains(tiny_model):
    enc = build_encoder(BenchmarkConfig.load(overrides=[f"model.name={tiny_model}", "maw.enabled=true"]))
    assert not [k for k in enc.state_dict() if ".router.value" in k]
    assert {n.rsplit(".", 1)[-1] for n, _ in enc.maw_modules()[0].router.named_parameters()} == {"weight", "bias"}


def test_full_variant_depth_maps_differ_measurably_at_init(minilm_path):
    """Measured on MiniLM's last layer: init_noise 1e-3 gave maps 0.001 apart (no signal for a router), 0.05 gives 0.057."""
    from maw_bench.modeling.layers import encoder_layers

    enc = build_encoder(BenchmarkConfig.load(overrides=[f"model.name={minilm_path}", "maw.enabled=true",
                                                        "maw.variant=full", "maw.depth=4", "maw.selection=fixed:0"]))
    captured = {}
    encoder_layers(enc.backbone)[-1].register_forward_pre_hook(
        lambda m, a, k: captured.__setitem__("x", a[0]), with_kwargs=True)
    feats = enc.tokenize(["Vitamin D deficiency is associated with higher mortality in older adults."])
    with torch.no_grad():
        enc.eval()(**feats)
        maps = enc.maw_modules()[0].depth_maps(captured["x"], feats["attention_mask"].bool()[:, None, None, :])
    assert float((maps[..., 0] - maps[..., 1]).abs().max()) > 1e-2


def test_lora_reaches_the_full_variants_depth_projections(tiny_model, toy_beir):
    cfg = _cfg(tiny_model, toy_beir, "maw.enabled=true", "maw.variant=full", "maw.depth=3", "train.max_steps=2",
               "train.lora.enabled=true", "maw.selection=gumbel")
    from maw_bench.training.trainer import apply_lora

    enc = build_encoder(cfg.arm("maw"))
    apply_lora(enc, cfg.train.lora)
    wrapped = {n for n, _ in enc.named_modules() if n.endswith(("query_depth.lora_A", "key_depth.lora_A"))}
    assert len(wrapped) == 2


@pytest.mark.parametrize("overrides, key", [
    (("maw.selection=gumbel", "maw.reward=rank"), "maw.reward"),
    (("maw.selection=soft", "maw.grpo.group_size=8"), "maw.grpo.group_size"),
    (("maw.grpo.clip=0.3",), "maw.grpo.clip"),
    (("maw.selection=grpo", "maw.gumbel.tau=0.5"), "maw.gumbel.tau"),
    (("maw.selection=uniform", "maw.router.granularity=head"), "maw.router.granularity"),
    (("maw.init_noise=0.1",), "maw.init_noise"),
    (("maw.num_blocks=2",), "maw.num_blocks"),
    (("data.negatives.source=triples", "train.negatives=3"), "train.negatives"),
    (("data.negatives.source=random", "data.negatives.bm25_window=[5,50]"), "data.negatives.bm25_window"),
])
def test_settings_that_cannot_act_are_named(overrides, key):
    cfg = BenchmarkConfig.load(overrides=["maw.enabled=true", *overrides])
    lines = cfg.ignored_settings()
    assert any(line.startswith(key) for line in lines), lines
    assert BenchmarkConfig.load(overrides=["maw.enabled=true"]).ignored_settings() == []


def test_cli_warns_about_a_setting_no_arm_uses(tiny_model, toy_beir, tmp_path, capsys):
    from maw_bench.cli import warn_ignored
    from maw_bench.runtime.console import setup_logging

    setup_logging()
    cfg = _cfg(tiny_model, toy_beir, "maw.grpo.clip=0.3")
    warn_ignored(cfg, ["standard", "maw"])
    assert "maw.grpo.clip has no effect" in capsys.readouterr().err
    warn_ignored(cfg, ["standard"])  # maw.* settings mean nothing to the standard arm alone: no noise
    assert "maw.grpo" not in capsys.readouterr().err


def test_focus_is_computed_only_for_grpo_with_the_focus_reward(tiny_model, monkeypatch):
    from maw_bench.maw import scores as S
    from maw_bench.training.step import LossSettings, train_step

    calls = {"n": 0}
    original = S.map_entropy
    monkeypatch.setattr(S, "map_entropy", lambda *a: (calls.__setitem__("n", calls["n"] + 1), original(*a))[1])
    # grpo + focus: the first sample of queries and of documents, then their distinct choices once more
    for selection, reward, expected in (("gumbel", "focus", 0), ("grpo", "task", 0), ("grpo", "focus", 4)):
        calls["n"] = 0
        enc = build_encoder(BenchmarkConfig.load(overrides=[f"model.name={tiny_model}", "maw.enabled=true",
                                                            f"maw.selection={selection}"])).train()
        q, d = enc.tokenize(texts()[:4], "query"), enc.tokenize(texts()[4:8], "doc")
        train_step(enc, enc, q, d, LossSettings(reward=reward), torch.zeros(4, 4, dtype=torch.bool))
        assert calls["n"] == expected, (selection, reward)


def test_named_arms_controls_and_arms_that_may_differ_only_in_attention():
    cfg = BenchmarkConfig.load(overrides=["maw.depth=3"])
    assert control_arms(cfg, "maw-nested") == ["maw-nested-uniform", "maw-nested-fixed0", "maw-nested-fixed1",
                                               "maw-nested-fixed2"]
    assert control_arms(cfg, "standard") == []
    c = cfg.arm("maw-nested-fixed2")
    assert (c.maw.enabled, c.maw.variant, c.maw.selection, c.seed) == (True, "nested", "fixed:2", cfg.seed)
    with pytest.raises(UserError, match="unknown arm"):
        cfg.arm("maw-nestd")
    with pytest.raises(UserError, match="not a maw.\\* or attention.\\* key"):
        BenchmarkConfig.from_dict({"arms": {"cheat": ["maw.enabled=true", "train.lr=1e-3"]}})
