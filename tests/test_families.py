"""Every arm on families beyond BERT (issue 32): the laws per family, on tiny random configs with dropout.

``maw.placement: append`` puts every arm on top of any ``AutoModel``; ``replace`` swaps a BERT self-attention
running BERT's own code (BERT, RoBERTa, XLM-R, ELECTRA, CamemBERT) or runs the mechanism where the family calls
transformers' attention interface (DistilBERT, MobileBERT, ModernBERT, NomicBERT, GTE, ESM, Qwen3, Llama, Gemma 3,
StableLM: ``maw_bench/modeling/interface.py``), and refuses anything else in one line at config check (MPNet,
DeBERTa-v2, ALBERT, BERT look-alikes, Gemma 2, encoder-decoders: ``maw_bench/modeling/sites.py``). The families
no test names are swept by ``scripts/family_sweep.py`` (docs/families.md, checked here).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_tiny_family, texts, tiny_overrides

from maw_bench import BenchmarkConfig, build_encoder
from maw_bench.errors import UserError
from maw_bench.modeling import load_encoder
from maw_bench.modeling.encoder import check_model_fits
from maw_bench.training.run import train_arms

APPEND_ONLY = ("distilbert", "modernbert", "qwen3")  # tested with append here; replace through the interface too
INTERFACE = ("distilbert", "mobilebert", "modernbert", "qwen3", "nomic_bert", "gte")
REFUSED = ("mpnet", "deberta-v2", "albert", "megatron-bert", "roformer", "longformer", "gemma2")
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


@pytest.mark.parametrize("family, bert_path", [("bert", True), ("roberta", True), ("xlm-roberta", True),
                                               ("electra", True), ("camembert", True), ("esm", False),
                                               ("megatron-bert", False), ("roformer", False), ("longformer", False)])
def test_only_bert_s_own_self_attention_code_is_swapped_for_the_replacing_modules(family_folder, tiny_model, family,
                                                                                   bert_path):
    """The module-replacing path reimplements BERT's self-attention, so it takes a module whose code is BERT's
    (transformers' copies); a look-alike with rotary (ESM, RoFormer), local (Longformer) or its own arithmetic
    (MegatronBERT) goes through the attention interface if it calls it, else is refused: it is never replaced by
    attention it did not compute."""
    from transformers import AutoConfig, AutoModel

    from maw_bench.modeling.sites import bert_layers

    folder = tiny_model if family == "bert" else family_folder(family)
    with torch.device("meta"):
        model = AutoModel.from_config(AutoConfig.from_pretrained(folder))
    assert (bert_layers(model) is not None) == bert_path


def test_an_encoder_decoder_is_one_line_before_any_work_whatever_the_arm(family_folder, toy_beir, tmp_path):
    """T5's AutoModel needs decoder inputs: before, the standard arm failed at its first batch with transformers'
    "You must specify exactly one of input_ids or inputs_embeds"; now every arm, and a zero-shot eval, stop in one
    line naming the model type."""
    from maw_bench.modeling.loading import load_backbone

    folder = family_folder("t5")
    for arm in ("standard", "gated"):
        for placement in ("replace", "append"):
            with pytest.raises(UserError, match=r"type 't5'\) is an encoder-decoder"):
                check_model_fits(_cfg(folder, *ARMS[arm], f"maw.placement={placement}"))
    with pytest.raises(UserError, match=r"type 't5'\) is an encoder-decoder"):
        load_backbone(folder, trust_remote_code=False, from_config=False)


@pytest.mark.parametrize("family", REFUSED)
def test_replace_placement_on_a_family_without_bert_self_attention_is_one_line_at_config_check(family_folder, family):
    """Found from the model's modules on the meta device, before any data or weights; append is offered."""
    for arm in ("maw-nested", "gated", "diff"):
        with pytest.raises(UserError, match=rf"model type '{family}': maw.placement=replace needs attention that "
                                            r"calls transformers' attention interface.*use maw.placement=append"):
            check_model_fits(_cfg(family_folder(family), *ARMS[arm]))
    check_model_fits(_cfg(family_folder(family), *ARMS["maw-nested"], "maw.placement=append"))


@pytest.mark.parametrize("family, placement", [("bert", "replace"), ("bert", "append"), ("roberta", "replace"),
                                               ("roberta", "append"), ("xlm-roberta", "replace"), ("electra", "replace"),
                                               ("camembert", "replace"), ("esm", "replace"), ("llama", "replace"),
                                               ("gemma3_text", "replace"), ("stablelm", "replace"), ("llama", "append"),
                                               *[(f, "append") for f in APPEND_ONLY],
                                               *[(f, "replace") for f in INTERFACE]])
def test_at_init_every_arm_is_the_unmodified_model(family_folder, tiny_model, family, placement):
    folder = tiny_model if family == "bert" else family_folder(family)
    sample = texts()
    plain = _plain_embeddings(folder, sample)
    for arm, sets in ARMS.items():
        enc = build_encoder(_cfg(folder, *sets, f"maw.placement={placement}")).eval()
        assert float((enc.encode(sample) - plain).abs().max()) <= 1e-5, (family, placement, arm)


@pytest.mark.parametrize("family, placement", [("roberta", "append"), *[(f, "append") for f in APPEND_ONLY],
                                               ("modernbert", "replace"), ("qwen3", "replace"), ("stablelm", "replace"),
                                               ("nomic_bert", "replace")])
def test_one_training_step_of_every_arm_runs_and_depth_one_is_the_standard_arm(family_folder, toy_beir, tmp_path,
                                                                               family, placement):
    """Every arm trains a step on the family; with maw.depth=1 the MAW arm trained beside the standard arm gives
    the same embeddings (dropout on): the depth-1 law holds on the family too, in both placements."""
    folder = family_folder(family)
    base = tiny_overrides(folder, toy_beir, f"maw.placement={placement}", "maw.layers=all", "maw.depth=2",
                          "train.batch_size=6",
                          "model.pooling=mean",
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


@pytest.mark.parametrize("family, placement", [("roberta", "append"), *[(f, "append") for f in APPEND_ONLY],
                                               *[(f, "replace") for f in INTERFACE], ("stablelm", "replace")])
def test_every_arm_of_a_family_exports_and_loads_without_maw_bench(family_folder, tmp_path, family, placement):
    """The export round trip per family and placement: every arm loads with AutoModel/SentenceTransformer
    (trust_remote_code) in a process where maw-bench cannot be imported, with maw-bench's embeddings to 1e-5 (the
    shipped plug function builds the arm from the spec the Encoder built it from; interface sites included)."""
    import numpy as np
    from test_export import _load_without_maw_bench

    from maw_bench.modeling.export import export_sentence_transformers

    folders, ours = [], []
    arms = {**ARMS, "maw": ARMS_ALL["maw"]} if placement == "replace" else ARMS
    for i, (arm, sets) in enumerate(arms.items()):
        enc = build_encoder(_cfg(family_folder(family), *sets, f"maw.placement={placement}", "maw.layers=all",
                                 "attention.diff.lambda_init=0.2"))
        torch.manual_seed(i)
        with torch.no_grad():  # blocks, routers, gates and second maps that act (at init they change nothing)
            for p in [*enc.blocks.parameters(), *enc.added_parameters()]:
                p.add_(0.05 * torch.randn_like(p))
        enc.eval()
        ours.append(enc.encode(texts(), max_length=enc.published_max_length).numpy())
        folders.append(export_sentence_transformers(enc, tmp_path / arm))
    theirs = _load_without_maw_bench(folders, tmp_path)
    for i, arm in enumerate(arms):
        assert np.abs(theirs[f"doc{i}"] - ours[i]).max() <= 1e-5, (family, arm)


def test_a_study_whose_maw_arm_cannot_fit_the_family_stops_before_the_standard_arm_trains(family_folder, toy_beir,
                                                                                          tmp_path):
    from maw_bench.commands.study import run_study

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(family_folder("mpnet"), toy_beir, "model.pooling=mean",
                                                        "model.similarity=cosine", "model.prompts=none"))
    with pytest.raises(UserError, match="model type 'mpnet'"):
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


# ------------------------------------------------------------------ the attention interface (replace, any family)
@pytest.mark.parametrize("rotary_dim", [16, 8, 4])
def test_rotary_chunks_keep_pairs_so_a_chunk_scores_by_relative_position_only(rotary_dim):
    """With rotary embeddings (transformers' rotate_half: column i turns with i + r/2 on the first r columns; the
    rest pass unrotated where the rotary is partial, as StableLM, Phi and GPT-NeoX do), a depth chunk of whole
    pairs scores (q at m, k at n) as (q at m + s, k at n + s); contiguous chunks, as BERT's, do not. diff's second
    map rotates its correction the same way (``interface.rotate``)."""
    from transformers.models.qwen3.modeling_qwen3 import apply_rotary_pos_emb

    from maw_bench.maw.scores import nested_index, split_index
    from maw_bench.modeling.interface import rotate

    d, r, length = 16, rotary_dim, 40
    inv = 1.0 / (10000 ** (torch.arange(0, r, 2).float() / r))
    angles = torch.cat([torch.outer(torch.arange(length).float(), inv)] * 2, dim=-1)
    cos, sin = angles.cos()[None], angles.sin()[None]
    torch.manual_seed(0)
    q = torch.randn(1, 1, 1, d).expand(1, 1, length, d)
    k = torch.randn(1, 1, 1, d).expand(1, 1, length, d)
    qr, kr = apply_rotary_pos_emb(q[..., :r], k[..., :r], cos, sin)  # the family's own rotation, partial as theirs
    qr, kr = torch.cat((qr, q[..., r:]), dim=-1), torch.cat((kr, k[..., r:]), dim=-1)
    assert torch.allclose(rotate(q, (cos, sin)), qr, atol=1e-6)

    def chunk_score(cols, m, n):
        return float((qr[0, 0, m, cols] * kr[0, 0, n, cols]).sum())

    split, nested = split_index(d, 4, rotary_dim=r)[0], nested_index(d, 3, rotary_dim=r)[0]
    assert sorted(nested[-1].tolist()) == list(range(d))  # the last nested depth is the whole head
    assert sorted(split[split < d].tolist()) == list(range(d))  # split depths take each column once
    for index in (split, nested):
        for row in index:
            cols = row[row < d]
            for m, n, shift in ((3, 7, 11), (20, 2, 9), (5, 5, 30)):
                assert chunk_score(cols, m, n) == pytest.approx(chunk_score(cols, m + shift, n + shift), abs=1e-4)
    contiguous = split_index(d, 8)[0][0]  # columns 0 and 1: each cut from its partner
    assert abs(chunk_score(contiguous, 3, 7) - chunk_score(contiguous, 14, 18)) > 1e-3


def test_rotary_the_mechanisms_cannot_follow_is_refused_for_maw_and_diff_and_gated_still_runs(family_folder):
    """A family that turns neighbouring columns (Cohere's rotate_half, found by calling it) gets one line at config
    check for MAW and diff, which read or extend query/key; gated, which leaves them alone, runs and starts at the
    unmodified model."""
    folder = family_folder("cohere")
    for arm in ("maw", "maw-nested", "diff"):
        with pytest.raises(UserError, match="rotary position embedding pairs its columns in a way maw-bench cannot"):
            check_model_fits(_cfg(folder, *ARMS_ALL[arm]))
    check_model_fits(_cfg(folder, *ARMS["gated"]))
    enc = build_encoder(_cfg(folder, *ARMS["gated"])).eval()
    assert float((enc.encode(texts()) - _plain_embeddings(folder, texts())).abs().max()) <= 1e-5


def _arm_encoder(folder: str, arm: str, *extra: str):
    return build_encoder(_cfg(folder, *ARMS_ALL[arm], "maw.layers=all", *extra))


ARMS_ALL = {**ARMS, "maw": ["maw.enabled=true", "maw.depth=2"],
            "maw-uniform": ["maw.enabled=true", "maw.depth=2", "maw.selection=uniform"]}


def test_a_mechanism_holds_its_layer_input_only_while_the_layer_runs(family_folder):
    """The router's, gate's and second map's input is held for the module's forward only: nothing is left after a
    forward, nor after one that raised; the same module called inside its own forward (re-entrant) gets its own."""
    from maw_bench.mechanisms.kernels import SiteKernel

    for arm in ("maw-nested", "gated", "diff"):
        enc = _arm_encoder(family_folder("modernbert"), arm).train()
        kernels = [m for m in enc.modules() if isinstance(m, SiteKernel)]
        assert len(kernels) == 2 and enc.via_interface
        enc(**enc.tokenize(texts()[:3]), samples=2).embeddings.sum().backward()
        assert all(k.inputs.held == 0 for k in kernels)
        with pytest.raises(RuntimeError):
            enc(**{**enc.tokenize(texts()[:3]), "input_ids": torch.full((3, 200), 5)})  # past the positions
        assert all(k.inputs.held == 0 for k in kernels), arm
    site = kernels[0]
    with pytest.raises(RuntimeError, match="outside its module's forward"):
        site.layer_input()


def test_every_mechanism_keeps_a_decoders_causal_mask(family_folder):
    """On Qwen3 (causal, sdpa skips the mask when nothing is padded) a token's hidden state does not move when a
    later token changes, for every arm whose choice does not read the whole sequence."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(family_folder("qwen3"))
    a = tok(["the cat sat on the mat w1 w2"], return_tensors="pt")
    b = {k: v.clone() for k, v in a.items()}
    b["input_ids"][0, -1] = 7
    for arm in ("standard", "gated", "diff", "maw-nested", "maw"):
        enc = _arm_encoder(family_folder("qwen3"), arm, "maw.selection=fixed:0", "attention.diff.lambda_init=0.5").eval()
        with torch.no_grad():
            for p in enc.added_parameters():
                p.add_(0.3 * torch.randn_like(p))
            ha, hb = (enc.backbone(**x).last_hidden_state for x in (a, b))
        assert float((ha[0, :-1] - hb[0, :-1]).abs().max()) <= 1e-5, arm
        assert float((ha[0, -1] - hb[0, -1]).abs().max()) > 1e-4, arm


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("family", ["modernbert", "qwen3"])
def test_interface_mechanisms_learn_at_router_lr_by_object(family_folder, toy_beir, tmp_path, family, lora):
    """The kernels' weights (routers, gates, second maps) are found by object: router_lr, a gradient, trainable
    under LoRA; the family's own weights keep train.lr or stay frozen under LoRA."""
    from test_training import _steering_weights

    from maw_bench.training.run import prepare_data
    from maw_bench.training.trainer import Trainer, apply_lora

    targets = {"modernbert": "[Wqkv,Wo]", "qwen3": "[q_proj,v_proj]"}[family]
    for arm in ("maw-nested", "gated", "diff"):
        cfg = BenchmarkConfig.load(overrides=tiny_overrides(
            family_folder(family), toy_beir, *ARMS_ALL[arm], "train.lr=1e-4", "train.router_lr=7e-3",
            "model.pooling=mean", "model.similarity=cosine", "model.prompts=none",
            f"train.lora.enabled={str(lora).lower()}", f"train.lora.target_modules={targets}"))
        enc = build_encoder(cfg)
        added = _steering_weights(enc)
        assert added and {id(p) for p in added} == {id(p) for p in enc.added_parameters()}, arm
        if lora:
            apply_lora(enc, cfg.train.lora)
        bundle, examples, _ = prepare_data(cfg)
        trainer = Trainer(enc, bundle, examples, cfg, tmp_path / family / arm, torch.device("cpu"))
        lr_of = {id(p): g["lr"] for g in trainer.optimizer.param_groups for p in g["params"]}
        assert all(p.requires_grad and lr_of[id(p)] == 7e-3 for p in added), arm
        added_ids = {id(p) for p in added}
        others = [p for p in enc.parameters() if id(p) not in added_ids]
        assert all((not p.requires_grad) if lora and "lora_" not in n else lr_of[id(p)] == 1e-4
                   for (n, p) in ((n, p) for n, p in enc.named_parameters() if id(p) not in added_ids)), arm
        assert others
        trainer.model.train()
        trainer._accumulate(0)
        assert all(p.grad is not None for p in added), arm


def test_interface_refusals_are_one_line_at_config_check(family_folder):
    """What the interface cannot do is said before any work: the full variant (the family owns the projections),
    a split depth past the rotary pairs."""
    with pytest.raises(UserError, match="maw.variant=full gives each depth its own query/key maps"):
        check_model_fits(_cfg(family_folder("modernbert"), "maw.enabled=true", "maw.variant=full", "maw.depth=2"))
    with pytest.raises(UserError, match=r"maw.depth=5 does not fit a head of width 8 in rotary pairs.*<= 4"):
        check_model_fits(_cfg(family_folder("qwen3"), "maw.enabled=true", "maw.variant=split", "maw.depth=5"))
    check_model_fits(_cfg(family_folder("distilbert"), "maw.enabled=true", "maw.variant=split", "maw.depth=5"))
    with pytest.raises(UserError, match="model.attn_implementation=eager would give the arms different kernels"):
        check_model_fits(_cfg(family_folder("modernbert"), *ARMS["gated"], "model.attn_implementation=eager"))
    check_model_fits(_cfg(family_folder("modernbert"), *ARMS["gated"], "model.attn_implementation=sdpa"))


def test_eval_arms_on_a_modernbert_folder_start_at_the_model(family_folder, toy_beir, tmp_path):
    """``eval --model <ModernBERT> --arms standard,maw,maw-nested,gated,diff`` runs (replace placement, through
    the interface) and the untrained nested, gated and diff arms score as the model itself."""
    from maw_bench.evaluation.pipeline import run_evaluation

    folder = family_folder("modernbert")
    cfg = BenchmarkConfig.load(overrides=[f"data.eval=[{toy_beir}]", f"eval.cache_dir={tmp_path / 'c'}",
                                          "eval.metrics=[ndcg@10]", "maw.depth=2", "model.max_length=64",
                                          "model.query_max_length=16", "model.pooling=mean", "model.prompts=none"])
    out = run_evaluation(cfg, [folder], [str(toy_beir)], tmp_path / "e", print_table=False,
                         arms=["standard", "maw", "maw-nested", "gated", "diff"])
    scores = next(iter(out.results.values()))
    assert len(scores) == 6
    base = scores["zero-shot"] if "zero-shot" in scores else scores["init/standard"]
    for arm in ("standard", "maw-nested", "gated", "diff"):
        assert scores[f"init/{arm}"] == pytest.approx(base, abs=1e-6), arm


def test_weights_dtype_passes_through_and_every_arms_added_weights_follow_it(family_folder, tmp_path, toy_beir):
    """A bf16 checkpoint (as Qwen3-Embedding ships) loads in float32 by default (transformers 5 alone would keep
    bf16 and the added fp32 weights would not fit it); model.weights_dtype=auto keeps the checkpoint's bf16 for the
    backbone and every added weight; a trained bf16 arm saves and loads in bf16; run.json records the choice."""
    import json

    from transformers import AutoModel

    folder = tmp_path / "qwen3-bf16"
    AutoModel.from_pretrained(family_folder("qwen3")).to(torch.bfloat16).save_pretrained(folder)
    from shutil import copy

    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (Path(family_folder("qwen3")) / name).exists():
            copy(Path(family_folder("qwen3")) / name, folder / name)
    for arm in ("standard", "maw-nested", "gated", "diff"):
        enc = build_encoder(_cfg(str(folder), *ARMS[arm]))
        assert {p.dtype for p in enc.parameters()} == {torch.float32}, arm
        auto = build_encoder(_cfg(str(folder), *ARMS[arm], "model.weights_dtype=auto"))
        assert {p.dtype for p in auto.parameters()} == {torch.bfloat16}, arm
        assert torch.isfinite(auto.encode(texts()[:4])).all(), arm
    with pytest.raises(UserError, match="model.weights_dtype"):
        BenchmarkConfig.load(overrides=["model.weights_dtype=fp8"])
    cfg = BenchmarkConfig.load(overrides=tiny_overrides(str(folder), toy_beir, "train.max_steps=1", "model.pooling=mean",
                                                        "model.prompts=none", "model.weights_dtype=auto"))
    train_arms(cfg, ["gated"], tmp_path / "run")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["model"]["weights_dtype"] == "auto"
    again = load_encoder(tmp_path / "run" / "gated" / "model")
    assert {p.dtype for p in again.parameters()} == {torch.bfloat16}


def test_an_exported_interface_arm_keeps_its_mechanism_when_a_loader_picks_another_kernel(family_folder, tmp_path):
    """A loader that sets attn_implementation=sdpa on the exported model's backbone would bypass the mechanisms
    silently; the exported model puts its own implementation back before attending."""
    from transformers import AutoModel, AutoTokenizer

    from maw_bench.modeling.export import export_sentence_transformers

    enc = _arm_encoder(family_folder("modernbert"), "gated")
    with torch.no_grad():
        for p in enc.added_parameters():
            p.add_(0.5 * torch.randn_like(p))
    folder = export_sentence_transformers(enc.eval(), tmp_path / "gated")
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    feats = AutoTokenizer.from_pretrained(folder)(texts()[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(**feats).last_hidden_state
        model.backbone.set_attn_implementation("sdpa")
        after = model(**feats).last_hidden_state
        plain = AutoModel.from_pretrained(family_folder("modernbert")).eval()(**feats).last_hidden_state
    assert float((before - after).abs().max()) <= 1e-6
    assert float((before - plain).abs().max()) > 1e-3  # the gate acts


def test_the_families_table_in_the_docs_is_what_the_sweep_finds(tmp_path):
    """docs/families.md is the output of scripts/family_sweep.py, not typed: its rows for a sample of families
    (one per path: the interface, a rotary refused for MAW, a BERT look-alike refused, an encoder-decoder) are
    what the sweep finds now, and every row holds the init law (no Δ, no error)."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("family_sweep", root / "scripts" / "family_sweep.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    doc = (root / "docs" / "families.md").read_text()
    rows, reasons = mod.sweep(["llama", "cohere", "megatron-bert", "t5"], tmp_path)
    for row in rows:
        assert "| " + " | ".join(row) + " |" in doc, row
    for family, reason in reasons.items():
        assert f"- `{family}`: {reason}" in doc, family
    table = doc[doc.index(mod.BEGIN):doc.index(mod.END)]
    assert "Δ" not in table and "error" not in table
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == len(mod.FAMILIES) + 1
    readme = (root / "README.md").read_text()
    rows_doc = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| family")]
    every = [r for r in rows_doc if "refused" not in r]
    gated_only = [r.split(" | ")[0].strip("| ") for r in rows_doc if "| = | refused | refused | = | refused |" in r]
    assert f"[{len(rows_doc)} families, arm by arm](docs/families.md): {len(every)} take every arm" in readme
    assert f"every arm on {len(rows_doc)} transformers families" in readme
    assert gated_only == ["cohere", "glm"] and "Cohere and GLM all but MAW and diff" in readme


def test_a_spec_written_before_rotary_dim_still_plugs_the_same_chunks():
    """Arm specs saved by the previous release said ``rotary: true/false``; they read as full rotary or none."""
    from maw_bench.modeling.interface import Site

    old = {"name": "layers.0.self_attn", "num_heads": 4, "num_kv_heads": 2, "head_dim": 8, "input_width": 32,
           "scaling": 0.35}
    assert Site.from_spec({**old, "rotary": True}).rotary_dim == 8
    assert Site.from_spec({**old, "rotary": False}).rotary_dim == 0
    assert Site.from_spec({**old, "rotary_dim": 2}).rotary_dim == 2


def test_a_mask_that_carries_a_bias_stops_a_mechanism_rather_than_being_dropped():
    """A float mask of 0 and the dtype's minimum is a mask; one with other values carries a score bias (ALiBi, T5's
    relative positions) that MAW's own scores would silently lose: it is an error, never a boolean mask."""
    from maw_bench.modeling.interface import full_mask

    q = torch.zeros(1, 2, 3, 4)
    lowest = torch.finfo(torch.float32).min
    plain = torch.tensor([[[[0.0, 0.0, lowest]] * 3]])
    assert full_mask(torch.nn.Module(), plain, q, q).tolist() == [[[[True, True, False]] * 3]]
    with pytest.raises(RuntimeError, match="carries a score bias"):
        full_mask(torch.nn.Module(), plain + torch.tensor([0.0, -0.5, 0.0]), q, q)


def test_maw_is_refused_where_a_score_bias_comes_with_the_call_and_the_kernel_never_drops_one(family_folder):
    """T5's attention calls the interface with ``position_bias=`` (sdpa adds it; MAW's own scores would not): the
    probe marks such a site and MAW is refused there in one line, while gated and diff pass it to sdpa. Probed on
    T5's encoder (T5 as a whole is an encoder-decoder, refused before this)."""
    from transformers import AutoConfig, AutoModelForTextEncoding

    from maw_bench.config import MAWConfig
    from maw_bench.mechanisms.kernels import MAWKernel
    from maw_bench.modeling.layers import check_sites, maw_options
    from maw_bench.modeling.sites import interface_sites

    config = AutoConfig.from_pretrained(family_folder("t5"))
    with torch.device("meta"):
        encoder = AutoModelForTextEncoding.from_config(config)
    sites = interface_sites(encoder, on_meta=True)
    assert sites and all(s.mask_bias for s in sites)
    maw = MAWConfig(enabled=True, depth=2, variant="nested", layers="all")
    with pytest.raises(UserError, match="adds a score bias to them"):
        check_sites(maw, sites)
    check_sites(MAWConfig(), sites, "diff")
    check_sites(MAWConfig(), sites, "gated")
    kernel = MAWKernel(sites[0], maw_options(maw))
    with pytest.raises(RuntimeError, match="position bias"):
        kernel.attend(torch.nn.Module(), *([torch.zeros(1, 4, 3, 8)] * 3), None, position_bias=torch.zeros(1, 4, 3, 3))


def test_a_skipped_mask_is_rebuilt_by_sdpas_own_rule():
    """Where sdpa's mask was skipped (None), a mechanism's mask is what sdpa would apply: the call's ``is_causal``,
    else the module's, else causal (sdpa's default), so MAW and the site agree on every module."""
    from maw_bench.modeling.interface import full_mask

    q, bare, bidirectional = torch.zeros(1, 2, 3, 4), torch.nn.Module(), torch.nn.Module()
    bidirectional.is_causal = False
    causal = torch.ones(3, 3, dtype=torch.bool).tril()[None, None]
    assert torch.equal(full_mask(bare, None, q, q), causal)
    assert full_mask(bidirectional, None, q, q) is None
    assert full_mask(bare, None, q, q, is_causal=False) is None
    assert torch.equal(full_mask(bidirectional, None, q, q, is_causal=True), causal)


def test_lora_targets_that_name_no_module_of_the_family_are_one_line_at_config_check(family_folder):
    """The default LoRA targets name BERT's maps (query, key, value, dense); on Llama they name nothing. That is
    said at config check, before any data, with the family's own linear maps to choose from; its names pass."""
    folder = family_folder("llama")
    with pytest.raises(UserError, match=r"query, key, value, dense names no module of this model; its linear maps "
                                        r"are down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj"):
        check_model_fits(_cfg(folder, "train.lora.enabled=true"))
    check_model_fits(_cfg(folder, "train.lora.enabled=true", "train.lora.target_modules=[q_proj,v_proj]"))
