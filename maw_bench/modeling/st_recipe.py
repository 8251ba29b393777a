"""How a sentence-transformers folder says its model encodes: pooling, normalisation, similarity, prompts.

sentence-transformers and MTEB encode a model as its own folder says (``modules.json``, ``1_Pooling/config.json``,
``config_sentence_transformers.json``). maw-bench reads the same files, so that ``model.pooling: auto`` pools as
the model was published (CLS for BGE, mean for MiniLM) and a zero-shot number is the published one; where it
cannot follow them (another pooling mode, dot-product scoring, prompts it was not given) it says so in one line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from maw_bench.errors import UserError

log = logging.getLogger("maw_bench")

POOLINGS = ("mean", "cls", "lasttoken")  # what maw-bench's encoder implements
FOLLOWED_MODULES = ("Transformer", "Pooling", "Normalize")  # modules.json entries maw-bench's encoder reproduces
# sentence-transformers' Pooling flags, by the name maw-bench gives the mode
_POOLING_FLAGS = {
    "cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens",
    "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens", "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}


@dataclass(frozen=True)
class SentenceTransformersRecipe:
    """What the folder declares; ``pooling`` is None without a Pooling module, ``a+b`` when modes are joined."""

    pooling: str | None = None
    pooling_file: str = ""
    similarity: str | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    include_prompt: bool = True  # Pooling's include_prompt: False leaves the prompt's tokens out of the mean
    other_modules: tuple[str, ...] = ()  # e.g. "Dense (2_Dense)": applied by sentence-transformers, not here


def read_model_json(source: str, name: str) -> dict | list | None:
    """A JSON file of a model folder or a cached hub model; None where there is none (never downloads)."""
    from transformers.utils import cached_file

    try:
        path = cached_file(source, name, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
    except (OSError, ValueError):
        return None
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_recipe(source: str) -> SentenceTransformersRecipe | None:
    """The recipe of a sentence-transformers model (a folder or a hub id); None for a plain HF model."""
    modules = read_model_json(source, "modules.json")
    if not isinstance(modules, list):
        return None
    types = {str(m.get("type", "")).rsplit(".", 1)[-1]: m.get("path", "") for m in modules if isinstance(m, dict)}
    pooling, pooling_file, include_prompt = None, "", True
    if "Pooling" in types:
        pooling_file = f"{types['Pooling']}/config.json".lstrip("/")
        flags = read_model_json(source, pooling_file)
        if isinstance(flags, dict):
            on = [name for name, flag in _POOLING_FLAGS.items() if flags.get(flag)]
            pooling = "+".join(on) if on else None
            include_prompt = flags.get("include_prompt", True) is not False
    extra = read_model_json(source, "config_sentence_transformers.json")
    extra = extra if isinstance(extra, dict) else {}
    prompts = extra.get("prompts") if isinstance(extra.get("prompts"), dict) else {}
    return SentenceTransformersRecipe(
        pooling=pooling, pooling_file=pooling_file,
        similarity=extra.get("similarity_fn_name"), prompts={str(k): str(v) for k, v in prompts.items() if v},
        include_prompt=include_prompt,
        other_modules=tuple(f"{t} ({p or 'the root'})" for t, p in types.items() if t not in FOLLOWED_MODULES))


def declared_prompts(recipe: SentenceTransformersRecipe | None) -> dict[str, str]:
    """The query and document prompts the folder declares, by the names sentence-transformers' encode_query and
    encode_document (and MTEB's retrieval tasks) look them up: "query"; "document", else "passage", else "corpus"."""
    if recipe is None:
        return {}
    found = {"query_prefix": recipe.prompts.get("query", "")}
    found["doc_prefix"] = next((recipe.prompts[k] for k in ("document", "passage", "corpus") if recipe.prompts.get(k)),
                               "")
    return {k: v for k, v in found.items() if v}


def published_similarity(recipe: SentenceTransformersRecipe | None) -> str:
    """Dot where the folder scores by dot product (TAS-B, DPR-style models), else cosine (sentence-transformers'
    default, and maw-bench's for a plain HF model)."""
    return "dot" if recipe is not None and str(recipe.similarity or "").startswith("dot") else "cosine"


def _resolved(model_cfg, recipe: SentenceTransformersRecipe | None) -> dict[str, str]:
    """``model.pooling``, ``model.similarity`` and the prefixes made concrete: ``auto`` is what the folder says
    (mean pooling without one; an empty prefix takes the declared prompt); a pooling maw-bench does not implement
    is one line, not a silently different encoder."""
    pooling, similarity = model_cfg.pooling, model_cfg.similarity
    if pooling == "auto" and recipe is not None and recipe.other_modules:
        raise UserError(f"model {model_cfg.name} applies {', '.join(recipe.other_modules)} after its transformer "
                        "(modules.json), which maw-bench does not implement, so its embeddings would not be the "
                        f"model's; set model.pooling to {' or '.join(POOLINGS)} to fine-tune the transformer alone "
                        "(its scores will not be the published ones).")
    if pooling == "auto":
        pooling = recipe.pooling if recipe is not None and recipe.pooling else "mean"
        if pooling not in POOLINGS:
            raise UserError(f"model {model_cfg.name} pools by {pooling} ({recipe.pooling_file}), which maw-bench "
                            f"does not implement; set model.pooling to {' or '.join(POOLINGS)} to use it anyway "
                            "(its scores will not be the published ones).")
    if similarity == "auto":
        similarity = published_similarity(recipe)
    return {"pooling": pooling, "similarity": similarity, **_prefixes(model_cfg, recipe)}


def _prefixes(model_cfg, recipe: SentenceTransformersRecipe | None) -> dict[str, str]:
    """The query and document prefixes encoded with: a prefix set is kept; an empty one takes the declared prompt
    under ``model.prompts: auto``."""
    prefixes = {"query_prefix": model_cfg.query_prefix, "doc_prefix": model_cfg.doc_prefix}
    if model_cfg.prompts == "auto":
        prefixes.update({k: v for k, v in declared_prompts(recipe).items() if not prefixes[k]})
    return prefixes


def recipe_warnings(model_cfg, recipe: SentenceTransformersRecipe | None) -> list[str]:
    """Where this config encodes otherwise than the model's folder says (each a sentence; empty when alike)."""
    if recipe is None:
        return []
    name, found = model_cfg.name, []
    if recipe.other_modules and model_cfg.pooling != "auto":
        found.append(f"model {name} applies {', '.join(recipe.other_modules)} after its transformer (modules.json), "
                     "which maw-bench leaves out: its scores will not be the published ones")
    if recipe.pooling and model_cfg.pooling not in ("auto", recipe.pooling):
        found.append(f"model {name} was published with {recipe.pooling} pooling ({recipe.pooling_file}) and is "
                     f"encoded here with model.pooling={model_cfg.pooling}: its scores will not be the published ones")
    published = published_similarity(recipe)
    if model_cfg.similarity not in ("auto", published):
        found.append(f"model {name} was published to score by {published} (config_sentence_transformers.json) and "
                     f"is scored here with model.similarity={model_cfg.similarity}: its scores will not be the "
                     "published ones")
    prefixes = _prefixes(model_cfg, recipe)
    for key, prompt in declared_prompts(recipe).items():
        used = prefixes[key]
        if used != prompt:
            fix = f"set model.{key}={prompt!r}" if used else "set model.prompts=auto"
            found.append(f"model {name} declares the prompt {prompt!r} (config_sentence_transformers.json), which "
                         f"sentence-transformers and MTEB put before its texts, and is encoded here with "
                         f"{used!r}: {fix} to do the same")
    if not recipe.include_prompt and any(prefixes.values()):
        found.append(f"model {name} leaves its prompt's tokens out of the pooled vector ({recipe.pooling_file}: "
                     "include_prompt false), which maw-bench does not: its scores will not be the published ones")
    return found


def concrete_model_cfg(model_cfg, source: str, warn: bool = False):
    """``model_cfg`` with its ``auto`` settings resolved from the folder at ``source`` (read once); ``warn``: log
    where the config encodes otherwise than the folder says."""
    import dataclasses

    recipe = read_recipe(source)
    if warn:
        for line in recipe_warnings(model_cfg, recipe):
            log.warning("%s", line)
    return dataclasses.replace(model_cfg, **_resolved(model_cfg, recipe))


def as_saved(model_cfg):
    """A model config read back from a saved encoder or an export: one written before ``model.similarity``
    existed scored by cosine (its folder has no ``auto`` to resolve against the base model)."""
    import dataclasses

    return dataclasses.replace(model_cfg, similarity="cosine") if model_cfg.similarity == "auto" else model_cfg


def resolve_config_recipe(cfg):
    """The config with ``model.pooling``, ``model.similarity`` and the prefixes made concrete for its model
    (``auto``: as its folder says), so that what a run records, and a resume or a study compares, is how it
    encodes."""
    if "auto" not in (cfg.model.pooling, cfg.model.similarity, cfg.model.prompts):
        return cfg
    from maw_bench.modeling.resolve import resolve_model

    model = concrete_model_cfg(cfg.model, resolve_model(cfg.model.name))
    chosen = {f"model.{k}": getattr(model, k) for k in ("pooling", "similarity", "query_prefix", "doc_prefix")}
    plain = {"model.pooling": "mean", "model.similarity": "cosine", "model.query_prefix": cfg.model.query_prefix,
             "model.doc_prefix": cfg.model.doc_prefix}  # what needs no saying: a plain model's, the user's own
    said = {k: v for k, v in chosen.items() if v != plain[k]}
    if said:
        log.info("%s (auto: as the model's sentence-transformers config says)",
                 ", ".join(f"{k}={v!r}" if k.endswith("prefix") else f"{k}={v}" for k, v in said.items()))
    return cfg.derive(chosen)
