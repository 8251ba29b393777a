"""What a config is checked for when it is built (one :class:`UserError` naming the key), and the lint of
settings that cannot act in the chosen combination (warnings the commands log)."""

from __future__ import annotations

import dataclasses
from typing import Any

from maw_bench.config.arms import validate_arms
from maw_bench.config.fields import check_ranges
from maw_bench.data.bundle import SELF_HIT_SETTINGS
from maw_bench.data.relevance import RELEVANCE_SCALES
from maw_bench.errors import UserError
from maw_bench.metric_names import ENGINES as RANX_ENGINES
from maw_bench.metric_names import check_metrics, max_cutoff

WEIGHTS_DTYPES = ("float32", "bfloat16", "float16", "auto")


def validate(cfg) -> None:
    """Check what can be checked without the model (depth vs head is checked at build)."""
    check_ranges(cfg)
    m = cfg.maw
    _choice("model.pooling", cfg.model.pooling, ("auto", "mean", "cls", "lasttoken"))
    _choice("model.similarity", cfg.model.similarity, ("auto", "cosine", "dot"))
    _choice("model.prompts", cfg.model.prompts, ("auto", "none"))
    _choice("model.weights_dtype", cfg.model.weights_dtype, WEIGHTS_DTYPES)
    _choice("maw.variant", m.variant, ("split", "full", "nested"))
    _choice("maw.placement", m.placement, ("replace", "append"))
    _choice("maw.router.granularity", m.router.granularity, ("sequence", "head"))
    from maw_bench.training.rewards import reward_names  # imports torch: not for --help

    _choice("maw.reward", m.reward, tuple(reward_names()))
    _choice("train.dtype", cfg.train.dtype, ("fp32", "bf16", "fp16", "auto"))
    _choice("eval.dtype", cfg.eval.dtype, ("fp32", "bf16", "fp16", "auto"))
    _choice("data.negatives.source", cfg.data.negatives.source, ("triples", "bm25", "random"))
    validate_attention(cfg)
    try:
        from maw_bench.maw.selection import parse_selection  # imports torch: not for --help

        strategy = type(parse_selection(m.selection, m.depth))
    except ValueError as exc:
        raise UserError(f"maw.selection: {exc}.") from None
    if not (m.router.init_last_prob == -1 or 0 <= m.router.init_last_prob < 1):
        raise UserError(f"maw.router.init_last_prob={m.router.init_last_prob} must be in [0, 1) or -1 (auto).")
    if not (m.layers == "all" or (isinstance(m.layers, list) and m.layers and all(isinstance(i, int) for i in m.layers))):
        raise UserError(f"maw.layers={m.layers!r} must be a non-empty list of layer indices or 'all'.")
    t = cfg.train
    if t.epochs <= 0 and t.max_steps <= 0:
        raise UserError("Set train.epochs > 0 or train.max_steps > 0.")
    if not isinstance(cfg.eval.metrics, list) or not cfg.eval.metrics:
        raise UserError("eval.metrics must be a non-empty list such as [ndcg@10, mrr@10].")
    check_metrics(cfg.eval.metrics)  # here, not at the evaluation: a study trains for hours first
    deepest = max_cutoff(cfg.eval.metrics)
    if deepest > cfg.eval.top_k:
        raise UserError(f"eval.top_k={cfg.eval.top_k} is below the cut-off of a metric ({deepest}), which would "
                        f"be computed on a truncated ranking; set eval.top_k={deepest} or drop that metric.")
    validate_eval_choices(cfg.eval)
    if (t.gradient_checkpointing or t.grad_cache.chunk_size) and m.enabled and strategy.replays_layers:
        from maw_bench.maw.selection import STRATEGIES

        others = [c.name for c in STRATEGIES.values() if c.needs_router and not c.replays_layers]
        raise UserError(
            f"maw.selection={m.selection} replays the MAW layers per sample and cannot recompute them in "
            "backward; turn off train.gradient_checkpointing and train.grad_cache, or use maw.selection="
            f"{' | '.join(others)}."
        )
    validate_arms(cfg.arms)
    unknown_cols = [k for k in cfg.data.columns if k not in ("query", "positive", "negatives")]
    if unknown_cols:
        raise UserError(f"data.columns.{unknown_cols[0]}: the roles are query, positive and negatives.")
    bad = [r for r in t.report_to if r not in ("tensorboard", "wandb")]
    if bad:
        raise UserError(f"train.report_to has {bad[0]!r}; use tensorboard and/or wandb (or [] for neither).")
    lo_hi = cfg.data.negatives.bm25_window
    if not (isinstance(lo_hi, list) and len(lo_hi) == 2 and 0 <= lo_hi[0] < lo_hi[1]):
        raise UserError(f"data.negatives.bm25_window={lo_hi!r} must be [lo, hi] with 0 <= lo < hi.")


def validate_eval_choices(e) -> None:
    """The evaluation's named settings: ranx engine, self-hits, relevance scale, index."""
    _choice("eval.ranx_engine", e.ranx_engine, RANX_ENGINES)
    _choice("eval.self_hits", e.self_hits, SELF_HIT_SETTINGS)
    _choice("eval.relevance_scale", e.relevance_scale, RELEVANCE_SCALES)
    if not (e.index == "exact" or e.index.startswith("faiss:")):
        raise UserError(f"eval.index={e.index!r}: use exact or faiss:<factory> (e.g. faiss:Flat).")


def validate_attention(cfg) -> None:
    """The attention mechanism (gated, diff, ...) exists, and is the arm's only attention under test."""
    from maw_bench.mechanisms import mechanism_names

    a, m = cfg.attention, cfg.maw
    _choice("attention.mechanism", a.mechanism, tuple(mechanism_names()))
    _choice("attention.gated.granularity", a.gated.granularity, ("head", "channel"))
    if a.mechanism != "standard" and m.enabled:
        raise UserError(f"attention.mechanism={a.mechanism} and maw.enabled=true: an arm has one attention under "
                        "test; set one of them (arms: gated, diff, maw, ...).")

def ignored_settings(cfg) -> list[str]:
    """Settings changed from their default that have no effect in this configuration (one line each).

    A key that cannot act is never silently accepted: the commands log these as warnings.
    """
    default = type(cfg)()
    m, d = cfg.maw, default.maw
    out = []

    def changed(get) -> bool:
        return get(cfg) != get(default)

    from maw_bench.maw.selection import STRATEGIES, parse_selection

    strategy = parse_selection(m.selection, m.depth)
    owners = {c.settings: c.name for c in STRATEGIES.values() if c.settings}
    for section, owner in owners.items():  # a section only one strategy reads, changed under another
        if strategy.settings == section:
            continue
        for f in dataclasses.fields(getattr(m, section)):
            if getattr(getattr(m, section), f.name) != getattr(getattr(d, section), f.name):
                out.append(f"maw.{section}.{f.name} has no effect with maw.selection={m.selection} "
                           f"({owner} only).")
    if not strategy.uses_reward and m.reward != d.reward:
        out.append(f"maw.reward has no effect with maw.selection={m.selection} (it rewards sampled choices).")
    if strategy.settings:
        out += strategy.idle_settings(getattr(m, strategy.settings), getattr(d, strategy.settings))
    if not strategy.needs_router:
        for key in ("granularity", "detach_input", "init_last_prob"):
            if getattr(m.router, key) != getattr(d.router, key):
                out.append(f"maw.router.{key} has no effect with maw.selection={m.selection} (no router).")
    if m.variant != "full" and changed(lambda c: c.maw.init_noise):
        out.append(f"maw.init_noise has no effect with maw.variant={m.variant} (full only).")
    if m.placement != "append":
        for key in ("num_blocks", "num_heads"):
            if getattr(m, key) != getattr(d, key):
                out.append(f"maw.{key} has no effect with maw.placement={m.placement} (append only).")
    mech, dflt = cfg.attention, default.attention
    for name in ("gated", "diff"):
        if mech.mechanism != name and getattr(mech, name) != getattr(dflt, name):
            out.append(f"attention.{name} has no effect with attention.mechanism={mech.mechanism} ({name} only).")
    src = cfg.data.negatives.source
    if src == "triples" and cfg.train.negatives != 1:
        out.append(f"train.negatives={cfg.train.negatives} has no effect with data.negatives.source=triples "
                   "(each triple holds one negative).")
    if src != "bm25" and changed(lambda c: c.data.negatives.bm25_window):
        out.append(f"data.negatives.bm25_window has no effect with data.negatives.source={src}.")
    return out



def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{key}={value!r} is not allowed; use one of: {', '.join(allowed)}.")


