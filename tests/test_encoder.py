"""The encoder wrapper: D=1 equals the base model, masks, arms, save/load."""

from __future__ import annotations

import pytest
import torch
from conftest import texts

from maw_bench import BenchmarkConfig, build_encoder, load_encoder
from maw_bench.errors import UserError
from maw_bench.maw import DepthRouter
from maw_bench.modeling.saving import save_encoder


def cfg_for(model: str, *overrides: str) -> BenchmarkConfig:
    return BenchmarkConfig.load(overrides=[f"model.name={model}", *overrides])


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("layers", ["[-1]", "all"])
def test_split_depth_one_reproduces_the_unmodified_encoder_tiny(tiny_model, layers):
    base = build_encoder(cfg_for(tiny_model)).encode(texts())
    maw = build_encoder(cfg_for(tiny_model, "maw.enabled=true", "maw.depth=1", f"maw.layers={layers}"))
    assert maw.maw_layers
    assert _max_diff(maw.encode(texts()), base) <= 1e-5


@pytest.mark.parametrize("layers", ["[-1]", "all"])
def test_split_depth_one_reproduces_minilm(minilm_path, layers):
    sample = ["Aspirin lowers the risk of heart attack.", "A short one.", "Protein folding " * 30]
    base = build_encoder(cfg_for(minilm_path)).encode(sample)
    maw = build_encoder(cfg_for(minilm_path, "maw.enabled=true", "maw.depth=1", f"maw.layers={layers}"))
    assert _max_diff(maw.encode(sample), base) <= 1e-5


def test_fixed_depths_give_different_embeddings_on_real_text(minilm_path):
    sample = ["Vitamin D deficiency is associated with higher mortality.", "Gene expression in the brain."]
    a = build_encoder(cfg_for(minilm_path, "maw.enabled=true", "maw.depth=4", "maw.selection=fixed:0")).encode(sample)
    b = build_encoder(cfg_for(minilm_path, "maw.enabled=true", "maw.depth=4", "maw.selection=fixed:1")).encode(sample)
    assert _max_diff(a, b) > 1e-3
    assert torch.allclose(a.norm(dim=-1), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize("selection", ["grpo", "soft", "uniform"])
def test_text_alone_equals_text_beside_a_longer_one(tiny_model, selection):
    enc = build_encoder(cfg_for(tiny_model, "maw.enabled=true", "maw.depth=4", f"maw.selection={selection}", "maw.layers=all"))
    short, long = "the cell and the gene", " ".join(["protein brain heart"] * 30)
    alone = enc.encode([short])
    together = enc.encode([short, long], batch_size=2)
    assert _max_diff(alone[0], together[0]) <= 1e-5


def test_batches_follow_token_counts_and_give_each_text_its_own_embedding(tiny_model):
    """Encoding batches texts by token count (longest first, windows of batches tokenized once): every text is
    encoded once, each batch pads to fewer positions than character order would, and each embedding equals the
    text encoded alone, across window boundaries."""
    enc = build_encoder(cfg_for(tiny_model))
    # character length and token count disagree: long words are one unknown token each, short words one each
    texts = [" ".join(["w" + "x" * 40] * (i % 5 + 1)) if i % 2 else " ".join(["the cell"] * (i % 7 + 1))
             for i in range(23)]
    batches = list(enc._token_batches(texts, 4, "doc", None, window=2))
    positions = [p for pos, _ in batches for p in pos]
    assert sorted(positions) == list(range(23))
    tokens = [int(f["attention_mask"].sum(1).max()) for _, f in batches]
    window_firsts = [tokens[i] for i in range(0, len(tokens), 2)]
    assert all(tokens[i] >= tokens[i + 1] for i in range(0, len(tokens) - 1, 2))  # longest first in a window
    assert window_firsts == [int(max(f["attention_mask"].sum(1).max() for _, f in batches[i:i + 2]))
                             for i in range(0, len(batches), 2)]
    by_chars = sorted(range(23), key=lambda i: -len(texts[i]))
    char_cost = sum(enc.tokenize([texts[i] for i in by_chars[a:a + 4]])["input_ids"].numel() for a in range(0, 23, 4))
    one_window = list(enc._token_batches(texts, 4, "doc", None))
    assert sum(f["input_ids"].numel() for _, f in one_window) < char_cost  # less padding than character order
    together = enc.encode(texts, batch_size=4)
    alone = torch.cat([enc.encode([t]) for t in texts])
    assert _max_diff(together, alone) <= 1e-5


def test_append_arms_differ_by_exactly_the_router(tiny_model):
    std = build_encoder(cfg_for(tiny_model, "maw.placement=append", "maw.num_blocks=2"))
    maw = build_encoder(cfg_for(tiny_model, "maw.placement=append", "maw.num_blocks=2", "maw.enabled=true", "maw.depth=4"))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    routers = [m for m in maw.modules() if isinstance(m, DepthRouter)]
    assert len(routers) == 2
    assert count(maw) - count(std) == sum(count(r) for r in routers) > 0
    # the appended blocks start as the identity: both arms equal the bare encoder
    base = build_encoder(cfg_for(tiny_model)).encode(texts())
    assert _max_diff(std.encode(texts()), base) <= 1e-5
    assert _max_diff(maw.encode(texts()), base) <= 1e-5


@pytest.mark.parametrize("overrides", [
    ("maw.enabled=true", "maw.depth=4", "maw.selection=gumbel"),
    ("maw.enabled=true", "maw.depth=3", "maw.variant=full", "maw.router=head"),
    ("maw.placement=append", "maw.enabled=true", "maw.depth=2", "maw.selection=soft"),
])
def test_save_load_roundtrip_is_exact(tiny_model, tmp_path, overrides):
    enc = build_encoder(cfg_for(tiny_model, *overrides))
    with torch.no_grad():
        for m in enc.maw_modules():
            if m.router is not None:
                m.router.policy.weight.normal_()
    before = enc.encode(texts())
    save_encoder(enc, tmp_path / "enc")
    again = load_encoder(tmp_path / "enc")
    assert torch.equal(again.encode(texts()), before)
    save_encoder(enc, tmp_path / "enc")  # overwriting a saved folder is atomic and works
    assert torch.equal(load_encoder(tmp_path / "enc").encode(texts()), before)


def test_depth_wider_than_head_is_a_clear_error(tiny_model):
    with pytest.raises(UserError, match="does not fit a head of width 8"):
        build_encoder(cfg_for(tiny_model, "maw.enabled=true", "maw.depth=9"))


def test_layer_out_of_range_is_a_clear_error(tiny_model):
    with pytest.raises(UserError, match="encoder has 2 layers"):
        build_encoder(cfg_for(tiny_model, "maw.enabled=true", "maw.layers=[5]"))


def test_forward_samples_reuses_lower_layers_and_resamples_maw(tiny_model):
    enc = build_encoder(cfg_for(tiny_model, "maw.enabled=true", "maw.depth=8", "maw.layers=[-1]")).train()
    feats = enc.tokenize(texts(), "doc")
    calls = {"n": 0}
    first = enc.backbone.encoder.layer[0]
    first.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    out = enc(**feats, samples=4)
    assert calls["n"] == 1  # the layer below MAW ran once for four samples
    choices = torch.stack([routes[0].choice for routes in out.routes])
    assert choices.shape == (4, len(texts()))
    assert len({tuple(c.tolist()) for c in choices}) > 1
    assert out.embeddings.shape == (4, len(texts()), 32)


def test_missing_model_offline_fails_fast():
    from maw_bench.modeling.resolve import resolve_model

    with pytest.raises(UserError, match="hub is unreachable"):
        resolve_model("someone/not-a-cached-model")


def test_default_model_resolves_to_the_offline_package(minilm_path):
    from maw_bench.modeling.resolve import resolve_model

    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == minilm_path


def test_a_trained_standard_arm_loads_in_sentence_transformers(tiny_model, toy_beir, tmp_path):
    from conftest import tiny_overrides
    from sentence_transformers import SentenceTransformer

    from maw_bench.cli import app
    from maw_bench.training.run import train_arms

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "train.max_steps=2"))
    train_arms(cfg, ["standard", "maw"], tmp_path / "run")
    enc = load_encoder(tmp_path / "run" / "standard" / "model")
    ours = enc.encode(texts(), max_length=enc.published_max_length)  # what evaluation and ST both use
    st = SentenceTransformer(str(tmp_path / "run" / "standard" / "sentence-transformers"), device="cpu")
    theirs = st.encode(texts(), convert_to_tensor=True)
    assert _max_diff(ours, theirs.cpu()) <= 1e-5

    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--arm", "standard", "--output", str(tmp_path / "x")])
    assert res.exit_code == 0, res.output
    again = SentenceTransformer(str(tmp_path / "x"), device="cpu").encode(texts(), convert_to_tensor=True)
    assert _max_diff(ours, again.cpu()) <= 1e-5


def test_a_folder_saved_before_lengths_were_recorded_gets_the_base_models_length(minilm_path, tmp_path):
    """Older saves lack ``published_max_length``: the base model's (256 for MiniLM), not the tokenizer's 512."""
    import json

    enc = build_encoder(BenchmarkConfig.load(overrides=[f"model.name={minilm_path}"]))
    assert enc.published_max_length == 256
    folder = save_encoder(enc, tmp_path / "old")
    meta = json.loads((folder / "maw_bench.json").read_text())
    del meta["published_max_length"]
    (folder / "maw_bench.json").write_text(json.dumps(meta))
    assert load_encoder(folder).published_max_length == 256


@pytest.mark.parametrize("arm", [[], ["maw.enabled=true", "maw.selection=fixed:3"]])
def test_bf16_autocast_on_the_cpu_stays_close_to_fp32(minilm_path, arm):
    """The bf16 path itself, on a handful of texts: bulk bf16 work on a CPU without AMX is 1.4-5.5x slower."""
    enc = build_encoder(cfg_for(minilm_path, *arm))
    sample = texts()[:8]
    full, half = enc.encode(sample, dtype="fp32"), enc.encode(sample, dtype="bf16")
    assert half.dtype == torch.float32 and not torch.equal(full, half)  # autocast acted, output back in fp32
    assert float((full * half).sum(-1).min()) >= 0.99


def test_an_embedding_that_is_not_finite_stops_the_encode_in_one_line(tiny_model):
    """A diverged model (NaN weights) or an fp16 overflow would be searched as random scores: it stops instead."""
    enc = build_encoder(cfg_for(tiny_model))
    enc.encode(texts())  # finite
    with torch.no_grad():
        next(p for n, p in enc.backbone.named_parameters() if "encoder.layer.1.output.dense.weight" in n)[0, 0] = float("nan")
    with pytest.raises(UserError, match=r"embeddings in a batch are not finite .*weights hold NaN"):
        enc.encode(texts())
