"""Every arm on families beyond BERT (issue 32): the laws per family, on tiny random configs with dropout.

``maw.placement: append`` puts every arm on top of any ``AutoModel``; ``replace`` needs a BERT self-attention
and is refused in one line at config check otherwise (``maw_bench/modeling/sites.py``). Families here: BERT,
RoBERTa (replace and append), XLM-R and ELECTRA (replace), DistilBERT, ModernBERT, Qwen3 (append; replace
refused), and the refusals of MPNet, DeBERTa-v2, ALBERT and MobileBERT.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_family, texts, tiny_overrides

from maw_bench import BenchmarkConfig, build_encoder
from maw_bench.errors import UserError
from maw_bench.modeling import load_encoder
from maw_bench.modeling.encoder import check_model_fits
from maw_bench.training.run import train_arms

APPEND_ONLY = ("distilbert", "modernbert", "qwen3")
REFUSED = ("mpnet", "deberta-v2", "albert", "mobilebert", *APPEND_ONLY)
ARMS = {"standard": [], "maw-nested": ["maw.enabled=true", "maw.variant=nested", "maw.depth=2", "maw.selection=grpo"],
        "gated": ["attention.mechanism=gated"], "diff": ["attention.mechanism=diff"]}


@pytest.fixture(scope="module")
def family_folder(tmp_path_factory):
    made: dict[str, str] = {}

    def get(family: str) -> str:
        if family not in made:
            made[family] = str(make_tiny_family(tmp_path_factory.mktemp(family.replace("-", "_")), family))
        return made[family]

    return get


def _cfg(folder: str, *extra: str) -> BenchmarkConfig:
    return BenchmarkConfig.load(overrides=[f"model.name={folder}", "model.pooling=mean", "model.similarity=cosine",
                                           "model.prompts=none", "model.max_length=32", "model.query_max_length=16",
                                           *extra])


def _plain_embeddings(folder: str, sample: list[str]) -> torch.Tensor:
    """The unmodified AutoModel's mean-pooled, normalised embedding: what every arm must equal at init."""
    from transformers import AutoModel, AutoTokenizer

    model, tok = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    feats = tok(sample, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**{k: v for k, v in feats.items() if k != "token_type_ids" or "token_type" in
                          str(model.forward.__code__.co_varnames)}).last_hidden_state
    m = feats["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)


@pytest.mark.parametrize("family", REFUSED)
def test_replace_placement_on_a_family_without_bert_self_attention_is_one_line_at_config_check(family_folder, family):
    """Found from the model's modules on the meta device, before any data or weights; append is offered."""
    for arm in ("maw-nested", "gated", "diff"):
        with pytest.raises(UserError, match=rf"model type '{family}': maw.placement=replace needs a BERT "
                                            r"self-attention.*use maw.placement=append"):
            check_model_fits(_cfg(family_folder(family), *ARMS[arm]))
    check_model_fits(_cfg(family_folder(family), *ARMS["maw-nested"], "maw.placement=append"))


@pytest.mark.parametrize("family, placement", [("bert", "replace"), ("bert", "append"), ("roberta", "replace"),
                                               ("roberta", "append"), ("xlm-roberta", "replace"), ("electra", "replace"),
                                               *[(f, "append") for f in APPEND_ONLY]])
def test_at_init_every_arm_is_the_unmodified_model(family_folder, tiny_model, family, placement):
    folder = tiny_model if family == "bert" else family_folder(family)
    sample = texts()
    plain = _plain_embeddings(folder, sample)
    for arm, sets in ARMS.items():
        enc = build_encoder(_cfg(folder, *sets, f"maw.placement={placement}")).eval()
        assert float((enc.encode(sample) - plain).abs().max()) <= 1e-5, (family, placement, arm)


@pytest.mark.parametrize("family", ["roberta", *APPEND_ONLY])
def test_one_training_step_of_every_arm_runs_and_depth_one_is_the_standard_arm(family_folder, toy_beir, tmp_path,
                                                                               family):
    """Every arm trains a step on the family (append placement); with maw.depth=1 the MAW arm trained beside the
    standard arm gives the same embeddings (dropout on): the depth-1 law holds on the family too."""
    folder = family_folder(family)
    base = tiny_overrides(folder, toy_beir, "maw.placement=append", "train.batch_size=6", "model.pooling=mean",
                          "model.similarity=cosine", "model.prompts=none")
    cfg = BenchmarkConfig.load(overrides=[*base, "train.max_steps=1"])
    results = train_arms(cfg, ["standard", "maw", "maw-nested", "gated", "diff"], tmp_path / "all")
    assert len(results) == 5
    twins = BenchmarkConfig.load(overrides=[*base, "train.max_steps=3", "maw.depth=1", "maw.selection=fixed:0"])
    train_arms(twins, ["standard", "maw"], tmp_path / "twins")
    std, maw = (load_encoder(tmp_path / "twins" / a / "model") for a in ("standard", "maw"))
    sample = texts()
    assert float((std.encode(sample) - maw.encode(sample)).abs().max()) <= 1e-5
    assert float((std.encode(sample) - build_encoder(twins).encode(sample)).abs().max()) > 1e-4  # and they trained


@pytest.mark.parametrize("family", ["roberta", *APPEND_ONLY])
def test_appended_arms_of_a_family_export_and_load_without_maw_bench(family_folder, tmp_path, family):
    """The export round trip per family: every appended arm loads with AutoModel/SentenceTransformer
    (trust_remote_code) in a process where maw-bench cannot be imported, with maw-bench's embeddings to 1e-5."""
    import numpy as np
    from test_export import _load_without_maw_bench

    from maw_bench.modeling.export import export_sentence_transformers

    folders, ours = [], []
    for i, (arm, sets) in enumerate(ARMS.items()):
        enc = build_encoder(_cfg(family_folder(family), *sets, "maw.placement=append"))
        torch.manual_seed(i)
        with torch.no_grad():  # blocks that act (at init they are the identity)
            for p in enc.blocks.parameters():
                p.add_(0.05 * torch.randn_like(p))
        enc.eval()
        ours.append(enc.encode(texts(), max_length=enc.published_max_length).numpy())
        folders.append(export_sentence_transformers(enc, tmp_path / arm))
    theirs = _load_without_maw_bench(folders, tmp_path)
    for i, arm in enumerate(ARMS):
        assert np.abs(theirs[f"doc{i}"] - ours[i]).max() <= 1e-5, (family, arm)


def test_a_study_whose_maw_arm_cannot_fit_the_family_stops_before_the_standard_arm_trains(family_folder, toy_beir,
                                                                                          tmp_path):
    from maw_bench.commands.study import run_study

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(family_folder("modernbert"), toy_beir, "model.pooling=mean",
                                                        "model.similarity=cosine", "model.prompts=none"))
    with pytest.raises(UserError, match="model type 'modernbert'"):
        run_study(cfg, ["standard", "maw"], [1], [], tmp_path / "study")
    assert not (tmp_path / "study" / "seed-1").exists()


def test_attn_implementation_and_revision_pass_through_to_transformers_and_run_json(tiny_model, toy_beir, tmp_path,
                                                                                     monkeypatch):
    import json

    from transformers import AutoModel

    sample = texts()
    embs = {}
    for kernel in ("eager", "sdpa"):
        enc = build_encoder(_cfg(tiny_model, f"model.attn_implementation={kernel}")).eval()
        assert enc.backbone.config._attn_implementation == kernel
        embs[kernel] = enc.encode(sample)
    assert float((embs["eager"] - embs["sdpa"]).abs().max()) <= 1e-5  # the kernel, not the model
    seen: dict = {}
    original = AutoModel.from_pretrained

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **{k: v for k, v in kwargs.items() if k != "revision"})

    monkeypatch.setattr(AutoModel, "from_pretrained", spy)
    build_encoder(_cfg(tiny_model, "model.revision=v1.0"))
    assert seen.get("revision") == "v1.0"
    monkeypatch.undo()
    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "train.max_steps=1",
                                                        "model.attn_implementation=eager"))
    train_arms(cfg, ["standard"], tmp_path / "run")
    record = json.loads((tmp_path / "run" / "run.json").read_text())["model"]
    assert record["attn_implementation"] == "eager" and record["revision"] == "default branch"
    from maw_bench.modeling import load_encoder

    assert load_encoder(tmp_path / "run" / "standard" / "model").backbone.config._attn_implementation == "eager"


@pytest.mark.parametrize("side", ["left", "right"])
def test_a_decoder_embedder_pools_its_last_token_as_sentence_transformers_does(family_folder, tmp_path, side):
    """A Qwen3-Embedding-like folder (Pooling: lasttoken, the tokenizer padding on ``side``): with model.pooling=auto
    maw-bench's embeddings are sentence-transformers' own, and differ from mean pooling; the export keeps it."""
    import json
    import shutil

    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    folder = tmp_path / "qwen3-st"
    shutil.copytree(family_folder("qwen3"), folder)
    AutoTokenizer.from_pretrained(folder, padding_side=side).save_pretrained(folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "2_Normalize").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_lasttoken": True, "pooling_mode_mean_tokens": False}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32, "do_lower_case": True}))
    cfg = BenchmarkConfig.load(overrides=[f"model.name={folder}", "model.max_length=32", "model.query_max_length=16"])
    enc = build_encoder(cfg).eval()
    assert enc.model_cfg.pooling == "lasttoken" and enc.tokenizer.padding_side == side
    sample = texts()
    ours = enc.encode(sample, kind="doc", max_length=32)
    theirs = SentenceTransformer(str(folder), device="cpu").encode(sample, convert_to_tensor=True).cpu()
    assert float((ours - theirs).abs().max()) <= 1e-5
    mean = build_encoder(cfg.derive({"model.pooling": "mean"})).eval().encode(sample, kind="doc", max_length=32)
    assert float((mean - theirs).abs().max()) > 1e-3
    from test_export import _load_without_maw_bench

    from maw_bench.modeling.export import export_sentence_transformers

    appended = build_encoder(cfg.derive({"maw.placement": "append", "maw.enabled": True, "maw.depth": 2})).eval()
    with torch.no_grad():
        for p in appended.blocks.parameters():
            p.add_(0.05 * torch.randn_like(p))
    exported = _load_without_maw_bench([export_sentence_transformers(appended, tmp_path / "exp")], tmp_path)
    assert float(abs(exported["doc0"] - appended.encode(sample, max_length=32).numpy()).max()) <= 1e-5
