"""Export a trained arm so that the field's tools load it as it is.

Every arm becomes a sentence-transformers folder (``modules.json``: Transformer ->
Pooling -> Normalize, ``sentence_bert_config.json`` with the published max length,
query/document prefixes as sentence-transformers prompts):

* the standard arm of ``replace`` is the plain HF backbone (``save_pretrained``), so
  ``SentenceTransformer(path)`` and MTEB load it with nothing else;
* a MAW arm, or any ``append`` arm, carries modelling code: ``config.json`` with an
  ``auto_map`` to ``modeling_maw.MAWEncoderModel`` and, beside it, copies of the
  ``maw/`` modules with their imports made relative. ``AutoModel.from_pretrained(path,
  trust_remote_code=True)`` and ``SentenceTransformer(path, trust_remote_code=True)``
  then rebuild it without maw-bench installed; the weights are the encoder's own
  state dict (the model has the same module tree, so the same keys).

``push_to_hub`` uploads a written folder with ``huggingface_hub``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import save_file

from maw_bench.errors import UserError
from maw_bench.maw import selection as builtin_selection
from maw_bench.modeling.encoder import Encoder
from maw_bench.modeling.st_recipe import as_saved

MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]
REMOTE_TEMPLATES = Path(__file__).parent / "remote_code"
# maw-bench modules the remote code needs, per package, and the prefix of their flat names in the exported folder
SHIPPED = {"maw": ("scores", "grpo", "router", "selection", "attention", "hf_layers"),
           "mechanisms": ("gated", "diff", "block", "kernels"),
           "modeling": ("interface", "plug")}
PREFIX = {"maw": "maw_", "mechanisms": "mech_", "modeling": "model_"}
# attention mechanisms the shipped modelling code builds (modeling/plug.py builtin_mechanisms)
SHIPPED_MECHANISMS = ("gated", "diff")
AUTO_MAP = {"AutoConfig": "configuration_maw.MAWEncoderConfig", "AutoModel": "modeling_maw.MAWEncoderModel"}


def exportable(encoder: Encoder) -> str | None:
    """Why this encoder cannot be exported (None: it can)."""
    if encoder.mechanism and encoder.mechanism not in SHIPPED_MECHANISMS:
        return (f"its attention mechanism {encoder.attention_cfg.mechanism!r} is registered outside maw-bench's own "
                "mechanisms, so the shipped modelling code would not know it")
    strategy = encoder.strategy
    if strategy is not None and type(strategy).__module__ != builtin_selection.__name__:
        return (f"its selection {type(strategy).__name__} is registered outside maw-bench's own strategies, "
                "so the shipped modelling code would not know it")
    return None


def needs_remote_code(encoder: Encoder) -> bool:
    """True when the folder needs ``trust_remote_code=True`` (MAW layers or appended blocks)."""
    return bool(encoder.maw_modules()) or len(encoder.blocks) > 0 or encoder.mechanism is not None


EXPORT_FILE = "maw_bench_export.json"  # what an export wrote: the files it may replace, and the model's provenance


def export_sentence_transformers(encoder: Encoder, directory: str | Path, overwrite: bool = False,
                                 provenance: dict | None = None) -> Path:
    """Write ``directory`` as a sentence-transformers (and HF) model folder.

    Nothing is deleted that an export did not write: a new or empty folder receives the
    finished folder by one rename; an earlier export is replaced (``overwrite``) file by
    file, only the files its ``maw_bench_export.json`` lists, so files a user added stay.
    Any other non-empty folder is refused. ``provenance`` (base model, arm, training data,
    maw-bench version) goes into that file, so an evaluation knows the model is fine-tuned.
    """
    why = exportable(encoder)
    if why is not None:
        raise UserError(f"cannot export this arm: {why}.")
    final = Path(directory)
    earlier = check_export_target(final, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        remote = needs_remote_code(encoder)
        if remote:
            _write_remote_model(encoder, tmp)
        else:
            getattr(encoder.backbone, "base_model", encoder.backbone).save_pretrained(tmp, safe_serialization=True)
        encoder.tokenizer.save_pretrained(tmp)
        _write_sentence_transformers_files(encoder, tmp)
        (tmp / "README.md").write_text(model_card(encoder, remote))
        files = sorted(str(f.relative_to(tmp)) for f in tmp.rglob("*") if f.is_file())
        record = {"format": 1, "files": files, "provenance": provenance or {},
                  "model": dataclasses.asdict(encoder.model_cfg), "maw": dataclasses.asdict(encoder.maw_cfg),
                  "attention": dataclasses.asdict(encoder.attention_cfg),
                  "published_max_length": encoder.published_max_length}
        (tmp / EXPORT_FILE).write_text(json.dumps(record, indent=2))
        if earlier is None:
            if final.is_dir():
                final.rmdir()  # empty: checked above
            tmp.rename(final)
        else:
            _replace_export(tmp, final, earlier, files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # our own temporary folder (gone after a rename)
    return final


def read_export_record(folder: Path) -> dict | None:
    """The ``maw_bench_export.json`` of an exported folder (None when there is none or it does not parse)."""
    try:
        record = json.loads((Path(folder) / EXPORT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("files"), list) else None


def is_export(folder: str | Path) -> bool:
    """Whether ``folder`` is a model folder maw-bench exported (it carries its record)."""
    return read_export_record(Path(folder)) is not None


def load_exported(folder: str | Path, device=None) -> Encoder:
    """The :class:`Encoder` an export was written from, rebuilt from the folder alone (weights exactly)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    from maw_bench.config import AttentionConfig, MAWConfig, ModelConfig, _build
    from maw_bench.modeling.loading import load_backbone, load_tokenizer, quiet_transformers

    path = Path(folder)
    record = read_export_record(path)
    if record is None or not isinstance(record.get("model"), dict) or not isinstance(record.get("maw"), dict):
        raise UserError(f"{path} is not a maw-bench export with its settings ({EXPORT_FILE}); export it again.")
    model_cfg = as_saved(_build(ModelConfig, record["model"], "model."))
    maw_cfg = _build(MAWConfig, record["maw"], "maw.")
    attention_cfg = _build(AttentionConfig, record.get("attention") or {}, "attention.")
    config = json.loads((path / "config.json").read_text())
    with quiet_transformers():
        tokenizer = load_tokenizer(str(path), False)
        if "backbone" in config:  # MAW or appended blocks: the weights are the encoder's own state dict
            spec = dict(config["backbone"])
            backbone_cfg = AutoConfig.for_model(spec.pop("model_type"), **spec)
            try:
                backbone = AutoModel.from_config(backbone_cfg, add_pooling_layer=False)
            except TypeError:
                backbone = AutoModel.from_config(backbone_cfg)
            enc = Encoder(backbone, tokenizer, model_cfg, maw_cfg, attention_cfg)
            enc.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
        else:
            enc = Encoder(load_backbone(str(path), False, from_config=False), tokenizer, model_cfg, maw_cfg)
    enc.published_max_length = int(record.get("published_max_length") or enc.published_max_length)
    return enc.to(device) if device is not None else enc


def check_export_target(final: Path, overwrite: bool) -> dict | None:
    """The earlier export record in ``final`` (None when it is new or empty); refuses anything else."""
    if final.exists() and not final.is_dir():
        raise UserError(f"--output {final} is a file; choose a folder to export into.")
    if not final.is_dir() or not any(final.iterdir()):
        return None
    record = read_export_record(final)
    if record is None:
        raise UserError(f"--output {final} is not empty and holds no earlier maw-bench export; choose a new or "
                        "empty folder (nothing there was changed).")
    if not overwrite:
        raise UserError(f"--output {final} holds an earlier export; pass --overwrite to replace the files it wrote "
                        "(other files there stay), or choose another folder.")
    return record


def _replace_export(tmp: Path, final: Path, earlier: dict, files: list[str]) -> None:
    """Swap an earlier export's files for the new ones; the record first lists both, so a kill leaves it honest."""
    old = [str(f) for f in earlier["files"] if isinstance(f, str)]
    record = json.loads((tmp / EXPORT_FILE).read_text())
    (final / EXPORT_FILE).write_text(json.dumps({**record, "files": sorted(set(old) | set(files))}, indent=2))
    root = final.resolve()
    for name in old:
        path = (final / name).resolve()
        if root in path.parents and path.is_file() and name not in files:
            path.unlink()
    for name in files:
        (final / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / name, final / name)
    for name in sorted({str(Path(n).parent) for n in old if Path(n).parent != Path(".")}, key=len, reverse=True):
        with contextlib.suppress(OSError):  # a folder an old export made and nothing uses now
            (final / name).rmdir()


def _write_sentence_transformers_files(encoder: Encoder, folder: Path) -> None:
    dot = encoder.model_cfg.similarity == "dot"  # unnormalised embeddings, scored by dot product
    (folder / "modules.json").write_text(json.dumps(MODULES[:2] if dot else MODULES, indent=2))
    (folder / "sentence_bert_config.json").write_text(json.dumps(
        {"max_seq_length": encoder.published_max_length, "do_lower_case": False}, indent=2))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": encoder.dim,
        "pooling_mode_cls_token": encoder.model_cfg.pooling == "cls",
        "pooling_mode_mean_tokens": encoder.model_cfg.pooling == "mean",
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_lasttoken": encoder.model_cfg.pooling == "lasttoken"}, indent=2))
    if not dot:
        (folder / "2_Normalize").mkdir()
    prompts = {"query": encoder.model_cfg.query_prefix, "document": encoder.model_cfg.doc_prefix}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "dot" if dot else "cosine"}, indent=2))


def _write_remote_model(encoder: Encoder, folder: Path) -> None:
    """config.json with ``auto_map`` and the arm's spec, the modelling code, and the encoder's state dict as
    safetensors: the shipped ``model_plug.py`` builds the arm from the spec exactly as the Encoder did."""
    live = encoder.backbone.config  # attribute names every family answers (DistilBERT's dim is hidden_size here)
    shape = {k: getattr(live, k) for k in ("hidden_size", "num_attention_heads", "num_hidden_layers",
                                           "max_position_embeddings", "vocab_size") if hasattr(live, k)}
    config = {"model_type": "maw_encoder", "architectures": ["MAWEncoderModel"], "auto_map": AUTO_MAP,
              "backbone": live.to_dict(), "arm": encoder.spec, **shape, "torch_dtype": "float32"}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("configuration_maw.py", "modeling_maw.py"):
        shutil.copyfile(REMOTE_TEMPLATES / name, folder / name)
    for package, modules in SHIPPED.items():
        for module in modules:
            (folder / shipped_name(package, module)).write_text(shipped_source(module, package))
    state = {k: v.detach().contiguous().cpu() for k, v in encoder.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def shipped_name(package: str, module: str) -> str:
    """The flat file name of maw-bench's ``<package>/<module>.py`` in an exported folder."""
    return f"{PREFIX[package]}{module}.py"


def shipped_source(module: str, package: str = "maw") -> str:
    """maw-bench's ``<package>/<module>.py`` with its maw-bench imports made relative to the exported folder.

    ``from maw_bench.<package>.x import a`` becomes ``from .<prefix>x import a`` (``maw_``, ``mech_``,
    ``model_``); ``from maw_bench.maw import x as y`` becomes ``from . import maw_x as y`` plus a ``from .maw_x
    import`` line, the form transformers follows to copy the file along.
    """
    text = (Path(builtin_selection.__file__).parent.parent / package / f"{module}.py").read_text()

    def module_alias(m: re.Match) -> str:
        name, alias = m.group(1), m.group(2)
        return (f"from .maw_{name} import __name__ as _maw_{name}_module  # noqa: F401  (transformers copies this file)\n"
                f"from . import maw_{name} as {alias}")

    def relative(m: re.Match) -> str:
        return f"{m.group(1)}from .{shipped_name(m.group(2), m.group(3))[:-3]} import"

    text = re.sub(r"^from maw_bench\.maw import (\w+) as (\w+)$", module_alias, text, flags=re.MULTILINE)
    text = re.sub(r"^(\s*)from maw_bench\.(maw|mechanisms|modeling)\.(\w+) import", relative, text,
                  flags=re.MULTILINE)
    left = re.findall(r"^\s*(?:from|import)\s+maw_bench\b.*$", text, flags=re.MULTILINE)
    if left:
        raise RuntimeError(f"{package}/{module}.py imports {left[0]!r}, which the exported code cannot ship; "
                           "shipped modules import only shipped modules (docs/design.md section 4)")
    unshipped = [f"{p}.{m}" for p, m in re.findall(r"from \.(maw|mech|model)_(\w+) import", text)
                 if m not in SHIPPED[{"maw": "maw", "mech": "mechanisms", "model": "modeling"}[p]]]
    if unshipped:
        raise RuntimeError(f"{package}/{module}.py imports {unshipped[0]}, which is not in SHIPPED")
    return text


def model_card(encoder: Encoder, remote: bool) -> str:
    """A short README.md: what the folder is and how to load it."""
    cfg = encoder.maw_cfg
    arm = (f"MAW attention ({cfg.variant}, depth {cfg.depth}, selection {cfg.selection}, "
           f"{cfg.placement} at layers {', '.join(encoder.maw_layer_names())})" if cfg.enabled
           else "standard attention" + (" with appended blocks" if len(encoder.blocks) else ""))
    flag = ", trust_remote_code=True" if remote else ""
    pooling = {"cls": "CLS", "mean": "Mean", "lasttoken": "Last-token"}[encoder.model_cfg.pooling]
    scoring = ("unnormalised, dot-product similarity" if encoder.model_cfg.similarity == "dot"
               else "L2-normalised, cosine similarity")
    return f"""---
library_name: sentence-transformers
tags: [sentence-transformers, feature-extraction, sentence-similarity, maw-bench]
pipeline_tag: sentence-similarity
---

# Dense retriever trained with maw-bench

Arm: {arm}. {pooling} pooling, {scoring}; queries and documents
encoded with at most {encoder.published_max_length} tokens.

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("PATH_OR_REPO"{flag})
queries = model.encode_query(["what is MAW attention?"])
documents = model.encode_document(["Multi-Attention-Weight attention ..."])
print(model.similarity(queries, documents))
```
""" + ("""
The attention code ships with the weights (`modeling_maw.py`, `maw_*.py`); read it
before passing `trust_remote_code=True`.
""" if remote else "")


def push_to_hub(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload an exported folder to the HF Hub (creating the model repo if needed); the repo URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                          commit_message="Upload a model trained with maw-bench")
    except OfflineModeIsEnabled as exc:
        raise UserError(f"cannot push to the Hub while offline ({exc}); unset HF_HUB_OFFLINE and rerun "
                        f"`maw-bench export ... --push-to-hub {repo_id}`; the folder {folder} is written.") from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot push {folder} to {repo_id}: {first}; log in with `hf auth login` "
                        "(or set HF_TOKEN) and rerun.") from exc
    return str(url)
