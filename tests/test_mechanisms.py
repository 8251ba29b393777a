"""Gated and differential attention as arms, under the same laws as MAW (issue 24).

Each starts exactly at the pretrained encoder; with its added weights frozen at init it trains exactly as
the standard arm (the depth-1 law's analogue); untrained arms can be scored. Dropout is on (0.1).
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import texts, tiny_overrides

from maw_bench import BenchmarkConfig, build_encoder
from maw_bench.errors import UserError
from maw_bench.modeling import load_encoder
from maw_bench.modeling.saving import save_encoder
from maw_bench.training.run import train_arms

MECHANISMS = ["gated", "diff"]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("layers", ["[-1]", "all"])
@pytest.mark.parametrize("arm", MECHANISMS)
def test_each_mechanism_at_init_is_the_pretrained_minilm(minilm_path, arm, layers):
    sample = ["Aspirin lowers the risk of heart attack.", "A short one.", "Protein folding " * 30]
    cfg = BenchmarkConfig.load(overrides=[f"model.name={minilm_path}", f"maw.layers={layers}"])
    base = build_encoder(cfg).encode(sample)
    enc = build_encoder(cfg.arm(arm))
    assert enc.mechanism_layers and enc.params_added > 0
    assert _max_diff(enc.encode(sample), base) <= 1e-5


@pytest.mark.parametrize("arm", MECHANISMS)
def test_in_appended_blocks_each_mechanism_starts_at_the_standard_arms_blocks(tiny_model, arm):
    """placement=append: the mechanism wraps each block the standard arm has (same weights, same random stream),
    so with its added weights at init the arm is the standard append arm, with the blocks made to act."""
    cfg = BenchmarkConfig.load(overrides=[f"model.name={tiny_model}", "maw.placement=append", "maw.num_blocks=2"])
    torch.manual_seed(3)
    std = build_encoder(cfg)
    torch.manual_seed(3)
    enc = build_encoder(cfg.arm(arm))
    with torch.no_grad():  # blocks that act (their output projection starts at 0, the identity)
        for a, b in zip(std.blocks, enc.blocks):
            a.out.weight.normal_(0, 0.5)
            b.out.weight.copy_(a.out.weight)
    assert enc.mechanism == arm and not enc.mechanism_layers and enc.params_added > std.params_added
    shared = {k: v for k, v in std.state_dict().items() if k.startswith("blocks.")}
    assert sum(1 for _ in shared) >= 8
    assert _max_diff(std.encode(texts()), enc.encode(texts())) <= 1e-5
    assert _max_diff(std.encode(texts()), build_encoder(BenchmarkConfig.load(
        overrides=[f"model.name={tiny_model}"])).encode(texts())) > 1e-3  # the blocks act


@pytest.mark.parametrize("placement", ["replace", "append"])
@pytest.mark.parametrize("arm", MECHANISMS)
def test_with_its_added_weights_frozen_a_mechanism_trains_exactly_as_standard(tiny_model, toy_beir, tmp_path, arm,
                                                                             placement):
    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "maw.layers=all", "train.max_steps=4",
                                                        "train.batch_size=6", "attention.freeze_added=true",
                                                        f"maw.placement={placement}", "maw.num_blocks=2"))
    train_arms(cfg, ["standard", arm], tmp_path / "run")
    std, other = (load_encoder(tmp_path / "run" / a / "model") for a in ("standard", arm))
    assert other.mechanism_layers == ([0, 1] if placement == "replace" else []) and other.mechanism == arm
    sample = texts()
    assert _max_diff(std.encode(sample), other.encode(sample)) <= 1e-5
    assert _max_diff(std.encode(sample), build_encoder(cfg).encode(sample)) > 1e-3  # they did train
    logs = [[json.loads(x)["loss"] for x in (tmp_path / "run" / a / "train_log.jsonl").read_text().splitlines()]
            for a in ("standard", arm)]
    assert logs[0] == pytest.approx(logs[1], abs=1e-5)


@pytest.mark.parametrize("arm", MECHANISMS)
def test_unfrozen_the_added_weights_learn_and_the_arm_departs_from_standard(tiny_model, toy_beir, tmp_path, arm):
    from maw_bench.mechanisms import added_modules

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "train.max_steps=4",
                                                        "train.batch_size=6"))
    train_arms(cfg, ["standard", arm], tmp_path / "run")
    std, other = (load_encoder(tmp_path / "run" / a / "model") for a in ("standard", arm))
    moved = [float(p.detach().abs().max()) for m in added_modules(other) for p in m.added_parameters()
             if p.ndim <= 1 or arm == "gated"]  # the gate's weights and the lambdas start at exactly 0
    assert max(moved) > 0
    assert _max_diff(std.encode(texts()), other.encode(texts())) > 1e-6
    manifest = json.loads((tmp_path / "run" / arm / "manifest.json").read_text())
    assert manifest["params_added"] == other.params_added > 0 and manifest["attention"] == arm
    assert json.loads((tmp_path / "run" / "standard" / "manifest.json").read_text())["params_added"] == 0


def test_untrained_arms_are_scored_as_built_and_the_init_laws_show(tiny_model, toy_beir, tmp_path):
    from maw_bench.evaluation.pipeline import run_evaluation

    cfg = BenchmarkConfig.load(overrides=[*tiny_overrides(tiny_model, toy_beir), "maw.variant=nested", "maw.depth=2",
                                          f"eval.cache_dir={tmp_path / 'c'}", "eval.metrics=[ndcg@10,recall@100]"])
    out = run_evaluation(cfg, [], [str(toy_beir)], tmp_path / "eval", print_table=False,
                         arms=["standard", "gated", "diff", "maw-nested-fixed1", "maw-fixed0"])
    scores = next(iter(out.results.values()))
    for arm in ("gated", "diff", "maw-nested-fixed1"):  # each starts at the pretrained encoder
        assert scores[arm] == pytest.approx(scores["standard"], abs=1e-6), arm
    assert set(scores) == {"standard", "gated", "diff", "maw-nested-fixed1", "maw-fixed0"}
    doc = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert doc["models"]["gated"]["untrained_arm"] == "gated" and doc["reference"] == "standard"


def test_arms_are_built_on_the_model_named_and_it_encodes_as_its_folder_says(tiny_model, toy_beir, tmp_path):
    """``eval --model X --arms ...`` builds the arms on X (init/standard IS X: the same run, hit for hit), and X is
    pooled as its own sentence-transformers folder says, not as the config's default model's (before: the arms
    were MiniLM's, and a CLS folder was mean-pooled with a warning, exit 0). Two plain models with --arms: one line."""
    from test_st_recipe import _st_folder

    from maw_bench.evaluation.pipeline import run_evaluation

    folder = _st_folder(tiny_model, tmp_path / "cls_model", "cls_token")
    cfg = BenchmarkConfig.load(overrides=[f"data.eval=[{toy_beir}]", f"eval.cache_dir={tmp_path / 'c'}",
                                          "eval.metrics=[ndcg@10]", "maw.depth=2", "model.max_length=64",
                                          "model.query_max_length=16"])
    assert cfg.model.name != folder
    run_evaluation(cfg, [folder], [str(toy_beir)], tmp_path / "e", print_table=False, arms=["standard", "gated"])
    runs = {p.name.split("__")[0]: p.read_text().split("\n") for p in (tmp_path / "e" / "runs").glob("*.trec")}
    strip = lambda lines: [" ".join(x.split()[:5]) for x in lines if x]  # noqa: E731  (the run tag differs)
    assert strip(runs["zero-shot"]) == strip(runs["init_standard"]) == strip(runs["init_gated"])
    explicit = cfg.derive({"model.name": folder, "model.pooling": "cls"})
    run_evaluation(explicit, [], [str(toy_beir)], tmp_path / "cls", print_table=False)
    (cls_run,) = (tmp_path / "cls" / "runs").glob("*.trec")
    assert strip(cls_run.read_text().split("\n")) == strip(runs["zero-shot"])
    with pytest.raises(UserError, match="--arms builds its arms on one model, and --model names 2 plain ones"):
        run_evaluation(cfg, [folder, tiny_model], [str(toy_beir)], tmp_path / "two", print_table=False, arms=["standard"])


def test_a_mechanism_and_maw_in_one_arm_is_one_line():
    with pytest.raises(UserError, match="one attention under test"):
        BenchmarkConfig.load(overrides=["attention.mechanism=gated", "maw.enabled=true"])


@pytest.mark.parametrize("arm", MECHANISMS)
def test_save_load_roundtrip_is_exact(tiny_model, tmp_path, arm):
    cfg = BenchmarkConfig.load(overrides=[f"model.name={tiny_model}", "attention.diff.lambda_init=0.3"]).arm(arm)
    enc = build_encoder(cfg)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_encoder(enc, tmp_path / "m")
    again = load_encoder(tmp_path / "m")
    assert again.attention_cfg.mechanism == arm
    assert _max_diff(enc.encode(texts()), again.encode(texts())) == 0.0


def test_a_runs_arms_at_init_are_built_on_the_model_the_run_fine_tuned(tiny_model, toy_beir, tmp_path):
    """``eval --model RUN --arms standard`` scores init/standard on the run's base model (its maw_bench.json),
    not on the config's default model: init/standard is the run's base encoder, hit for hit."""
    from conftest import tiny_overrides

    from maw_bench.evaluation.pipeline import run_evaluation
    from maw_bench.training.run import train_arms

    train = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "train.max_steps=1"))
    train_arms(train, ["standard"], tmp_path / "run")
    cfg = BenchmarkConfig.load(overrides=[f"data.eval=[{toy_beir}]", f"eval.cache_dir={tmp_path / 'c'}",
                                          "eval.metrics=[ndcg@10]", "model.max_length=32", "model.query_max_length=16"])
    assert cfg.model.name != tiny_model  # the config names the default model; the run says the tiny one
    run_evaluation(cfg, [str(tmp_path / "run")], [str(toy_beir)], tmp_path / "e", print_table=False, arms=["standard"])
    base = train.derive({"eval.cache_dir": str(tmp_path / "c"), "eval.metrics": ["ndcg@10"]})
    run_evaluation(base, [], [str(toy_beir)], tmp_path / "zero", print_table=False)
    strip = lambda path: [" ".join(x.split()[:5]) for x in path.read_text().split("\n") if x]  # noqa: E731
    (zero,) = (tmp_path / "zero" / "runs").glob("*.trec")
    assert strip(next((tmp_path / "e" / "runs").glob("init_standard__*.trec"))) == strip(zero)
