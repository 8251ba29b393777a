"""A sentence-transformers model is encoded as its own folder says, or the difference is one line."""

from __future__ import annotations

import json
import logging
import shutil
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides, write_toy_beir

from maw_bench.config import BenchmarkConfig
from maw_bench.errors import UserError
from maw_bench.modeling import build_encoder

MODES = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens")
TEXTS = ["the cell of the heart", "a drug trial with patient data", "risk", "gene virus cancer brain blood dose"]


def _st_folder(tiny_model: str, folder: Path, mode: str, normalize: bool = True, extra: dict | None = None) -> str:
    """The tiny BERT as a sentence-transformers folder that pools by ``mode``."""
    shutil.copytree(tiny_model, folder)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir()
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, **{f"pooling_mode_{m}": m == mode for m in MODES}}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": True}))
    if extra:
        (folder / "config_sentence_transformers.json").write_text(json.dumps(extra))
    return str(folder)


def _cfg(model: str, tmp_path: Path, *extra: str) -> BenchmarkConfig:
    return BenchmarkConfig.load(overrides=tiny_overrides(model, tmp_path, *extra))


@pytest.mark.parametrize("mode", ["cls_token", "mean_tokens"])
def test_auto_pooling_encodes_as_sentence_transformers_does(tiny_model, tmp_path, mode):
    """The law: with `model.pooling: auto` maw-bench's embeddings are sentence-transformers' own for that folder
    (CLS for a BGE-like folder, mean for a MiniLM-like one), and not those of the other pooling."""
    from sentence_transformers import SentenceTransformer

    folder = _st_folder(tiny_model, tmp_path / "st", mode)
    enc = build_encoder(_cfg(folder, tmp_path)).eval()
    assert enc.model_cfg.pooling == mode.split("_")[0]
    ours = enc.encode(TEXTS, kind="doc", max_length=64)
    theirs = SentenceTransformer(folder, device="cpu").encode(TEXTS, convert_to_tensor=True).cpu()
    assert torch.allclose(ours, theirs, atol=1e-5)
    other = "mean" if mode == "cls_token" else "cls"
    assert not torch.allclose(build_encoder(_cfg(folder, tmp_path, f"model.pooling={other}")).eval()
                              .encode(TEXTS, kind="doc", max_length=64), theirs, atol=1e-3)


def test_a_pooling_maw_bench_does_not_implement_is_one_line(tiny_model, tmp_path):
    folder = _st_folder(tiny_model, tmp_path / "st", "max_tokens")
    with pytest.raises(UserError, match=r"pools by max \(1_Pooling/config.json\).*model.pooling to mean or cls"):
        build_encoder(_cfg(folder, tmp_path))
    assert build_encoder(_cfg(folder, tmp_path, "model.pooling=mean")).model_cfg.pooling == "mean"  # knowingly


@pytest.mark.parametrize("doc_name", ["document", "passage", "corpus"])
def test_declared_prompts_encode_as_encode_query_and_encode_document_do(tiny_model, tmp_path, doc_name):
    """The law: with `model.prompts: auto` an E5-like folder's queries and documents are encoded as
    sentence-transformers' encode_query / encode_document (and MTEB) encode them, prompt included; with
    `model.prompts: none` they are not, and that is a warning naming the prompt."""
    from sentence_transformers import SentenceTransformer

    folder = _st_folder(tiny_model, tmp_path / "e5", "mean_tokens",
                        extra={"prompts": {"query": "query: ", doc_name: "passage: "}})
    cfg = _cfg(folder, tmp_path)
    enc = build_encoder(cfg).eval()
    assert (enc.model_cfg.query_prefix, enc.model_cfg.doc_prefix) == ("query: ", "passage: ")
    st = SentenceTransformer(folder, device="cpu")
    # sentence-transformers 6 gives every model an empty "document" prompt, so its encode_document finds a saved
    # "passage" or "corpus" prompt only when named; maw-bench follows the order encode_document documents
    document = st.encode_document if doc_name == "document" else partial(st.encode, prompt_name=doc_name)
    for kind, theirs in (("query", st.encode_query), ("doc", document)):
        assert torch.allclose(enc.encode(TEXTS, kind=kind, max_length=64),
                              theirs(TEXTS, convert_to_tensor=True).cpu(), atol=1e-5), kind
    from maw_bench.modeling.st_recipe import resolve_config_recipe

    assert resolve_config_recipe(cfg).model.query_prefix == "query: "  # what a run records is how it encodes
    bare = build_encoder(_cfg(folder, tmp_path, "model.prompts=none")).eval()
    assert not torch.allclose(bare.encode(TEXTS, kind="query", max_length=64),
                              st.encode_query(TEXTS, convert_to_tensor=True).cpu(), atol=1e-3)
    own = build_encoder(_cfg(folder, tmp_path, "model.query_prefix='search: '")).model_cfg
    assert (own.query_prefix, own.doc_prefix) == ("search: ", "passage: ")  # a prefix set is the user's


def test_a_module_maw_bench_does_not_apply_is_one_line(tiny_model, tmp_path, caplog):
    """A LaBSE- or GTR-like folder (a Dense projection after pooling): its embeddings are not the transformer's
    pooled vectors, so `auto` stops in one line; a pooling set knowingly encodes without it, with a warning."""
    folder = Path(_st_folder(tiny_model, tmp_path / "labse", "cls_token"))
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(UserError, match=r"applies Dense \(2_Dense\) after its transformer.*model.pooling to mean"):
        build_encoder(_cfg(str(folder), tmp_path))
    with caplog.at_level(logging.WARNING, logger="maw_bench"):
        assert build_encoder(_cfg(str(folder), tmp_path, "model.pooling=cls")).model_cfg.pooling == "cls"
    assert "Dense (2_Dense)" in caplog.text and "leaves out" in caplog.text


def test_what_the_folder_says_and_the_config_does_not_is_warned(tiny_model, tmp_path, caplog):
    folder = _st_folder(tiny_model, tmp_path / "st", "cls_token", normalize=False,
                        extra={"similarity_fn_name": "dot", "prompts": {"query": "query: ", "document": "passage: "}})
    with caplog.at_level(logging.WARNING, logger="maw_bench"):
        build_encoder(_cfg(folder, tmp_path, "model.pooling=mean", "model.prompts=none"))
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "published with cls pooling" in text and "model.pooling=mean" in text
    assert text.count("set model.prompts=auto") == 2 and "'passage: '" in text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="maw_bench"):
        build_encoder(_cfg(folder, tmp_path, "model.query_prefix='search: '"))
    assert "encoded here with 'search: ': set model.query_prefix='query: '" in caplog.text
    assert "doc_prefix" not in caplog.text  # the document prompt was applied
    caplog.clear()
    pooled = _st_folder(tiny_model, tmp_path / "instr", "mean_tokens", extra={"prompts": {"query": "query: "}})
    flags = json.loads((Path(pooled) / "1_Pooling" / "config.json").read_text())
    (Path(pooled) / "1_Pooling" / "config.json").write_text(json.dumps({**flags, "include_prompt": False}))
    with caplog.at_level(logging.WARNING, logger="maw_bench"):
        build_encoder(_cfg(pooled, tmp_path))
    assert "include_prompt false" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="maw_bench"):
        build_encoder(_cfg(_st_folder(tiny_model, tmp_path / "plain", "mean_tokens"), tmp_path))
    assert not caplog.records  # a folder encoded as it says: nothing to say


def test_a_run_recorded_before_auto_resumes_under_it(tiny_model, tmp_path):
    """A run whose config.yaml says `pooling: mean` (the old default) resumes with today's default, auto."""
    from maw_bench.training.run import train_arms

    data = write_toy_beir(tmp_path / "toy")
    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, data, "train.max_steps=2"))
    assert cfg.model.pooling == "auto"
    train_arms(cfg.derive({"model.pooling": "mean"}), ["standard"], tmp_path / "run", stop_after=1)
    assert "pooling: mean" in (tmp_path / "run" / "standard" / "config.yaml").read_text()
    train_arms(cfg, ["standard"], tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "standard" / "model").is_dir()


def test_a_dot_product_folder_is_scored_by_dot_product_and_exports_as_one(tiny_model, tmp_path):
    """A TAS-B-like folder (CLS, no Normalize, similarity_fn_name dot): `auto` keeps the norms, so maw-bench's
    embeddings are sentence-transformers' own; its export scores by dot product in sentence-transformers too."""
    from sentence_transformers import SentenceTransformer

    from maw_bench.modeling.export import export_sentence_transformers

    folder = _st_folder(tiny_model, tmp_path / "tasb", "cls_token", normalize=False,
                        extra={"similarity_fn_name": "dot"})
    enc = build_encoder(_cfg(folder, tmp_path)).eval()
    assert (enc.model_cfg.pooling, enc.model_cfg.similarity) == ("cls", "dot")
    ours = enc.encode(TEXTS, kind="doc", max_length=64)
    theirs = SentenceTransformer(folder, device="cpu").encode(TEXTS, convert_to_tensor=True).cpu()
    assert torch.allclose(ours, theirs, atol=1e-5) and not torch.allclose(ours.norm(dim=-1), torch.ones(len(TEXTS)))
    cosine = build_encoder(_cfg(folder, tmp_path, "model.similarity=cosine")).eval()
    assert torch.allclose(cosine.encode(TEXTS, kind="doc", max_length=64),
                          torch.nn.functional.normalize(theirs, dim=-1), atol=1e-5)
    exported = SentenceTransformer(str(export_sentence_transformers(enc, tmp_path / "export")), device="cpu")
    assert exported.similarity_fn_name == "dot"
    assert torch.allclose(exported.encode(TEXTS, convert_to_tensor=True).cpu(), ours, atol=1e-5)


def test_a_similarity_set_against_the_folder_is_warned(tiny_model, tmp_path, caplog):
    folder = _st_folder(tiny_model, tmp_path / "tasb", "cls_token", normalize=False,
                        extra={"similarity_fn_name": "dot"})
    with caplog.at_level(logging.WARNING, logger="maw_bench"):
        build_encoder(_cfg(folder, tmp_path, "model.similarity=cosine"))
    assert "published to score by dot" in caplog.text and "model.similarity=cosine" in caplog.text


def test_folders_and_studies_written_before_the_keys_existed_read_as_they_were_made():
    """A saved model without `model.similarity` scored by cosine; the committed five-seed study (its study.json
    predates both keys) resumes under today's recipe."""
    from maw_bench.commands.study import _same_config
    from maw_bench.config import ModelConfig
    from maw_bench.modeling.st_recipe import as_saved, resolve_config_recipe

    assert as_saved(ModelConfig(pooling="mean")).similarity == "cosine"
    root = Path(__file__).resolve().parents[1]
    spec = json.loads((root / "results" / "study-scifact-cranfield" / "study.json").read_text())
    assert "similarity" not in spec["config"]["model"]
    cfg = resolve_config_recipe(BenchmarkConfig.load(root / "configs" / "scifact_study.yaml"))
    assert _same_config(spec["config"], cfg, spec["arms"] + spec["controls"])
