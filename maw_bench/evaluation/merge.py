"""Add models to an evaluation that exists: the arms it scored are kept, not scored again.

A study's controls (and an arm added later) are trained after the seed's main arms were
evaluated; scoring only the new arms and joining them to the kept evaluation costs their
encodes alone, and works where the kept arms' models are gone (a committed study keeps
no models). The join is refused where the two could not be one evaluation: other metrics,
another precision, or another sample of queries.
"""

from __future__ import annotations

from dataclasses import dataclass

from maw_bench.data.relevance import recorded_scale, setting_of
from maw_bench.data.sampling import sample_words
from maw_bench.errors import UserError


@dataclass
class KeptEvaluation:
    """An evaluation's ``metrics.json`` and its per-query scores ``{dataset: {model: {metric: {qid: v}}}}``."""

    doc: dict
    per_query: dict
    where: str  # the folder, for messages

    def scored(self, dataset: str) -> set[str]:
        return set((self.doc.get("results") or {}).get(dataset) or {})


def check_joinable(kept: KeptEvaluation, metrics: list[str], dtype: str, queries: dict[str, int],
                   conventions: dict[str, dict] | None = None, samples: dict[str, dict | None] | None = None) -> None:
    """One line naming what differs, before any model loads."""
    if list(kept.doc.get("metrics") or []) != list(metrics):
        raise UserError(f"{kept.where} was scored with metrics {kept.doc.get('metrics')}, not {metrics}; evaluate "
                        "into a new --output, or use the kept evaluation's eval.metrics.")
    if kept.doc.get("dtype") and kept.doc["dtype"] != dtype:
        raise UserError(f"{kept.where} was encoded in {kept.doc['dtype']}, this evaluation would be {dtype}; set "
                        f"eval.dtype={kept.doc['dtype']} so that every model of it shares one precision.")
    for ds, n in queries.items():
        had = (kept.doc.get("queries") or {}).get(ds)
        if had is not None and had != n:
            raise UserError(f"{kept.where} scored {had} queries of {ds}, this evaluation {n}: not the same sample "
                            "(data.max_queries, data.eval_seed); use the kept evaluation's settings.")
    for key, values in (conventions or {}).items():  # self_hits, relevance_level/scale: see pipeline.conventions
        for ds, value in values.items():
            had = (kept.doc.get(key) or {}).get(ds)
            if key == "relevance_scale":
                had = recorded_scale(kept.doc, ds) if kept.scored(ds) else None
                if had is not None and had != value:
                    raise UserError(f"{kept.where} scored {ds} with grades {had}, this evaluation would use {value}; "
                                    f"set eval.relevance_scale={setting_of(had)} so that every model is scored alike.")
                continue
            if had is not None and had != value:
                raise UserError(f"{kept.where} scored {ds} with {key} {had}, this evaluation would use {value}; "
                                f"set eval.{key}={had} so that every model is scored alike.")
    if "sample" in kept.doc:  # written since samples are recorded: the same documents and queries, or none
        for ds, sample in (samples or {}).items():
            had = (kept.doc["sample"] or {}).get(ds)
            if kept.scored(ds) and had != sample:
                raise UserError(f"{kept.where} scored {ds} on {sample_words(had)}, this evaluation would score "
                                f"{sample_words(sample)}: not the same sample (data.max_docs, data.max_queries, "
                                "data.eval_seed); use the kept evaluation's settings.")
    missing = [(ds, m) for ds, models in (kept.doc.get("results") or {}).items() for m in models
               if not (kept.per_query.get(ds) or {}).get(m)]
    if missing:
        ds, m = missing[0]
        raise UserError(f"{kept.where}: the per-query scores of {m} on {ds} are gone, so it cannot be compared "
                        "again; restore per_query.csv, or evaluate every model into a new --output.")


def join_scores(out, kept: KeptEvaluation) -> None:
    """Put the kept models into ``out`` (an ``EvalOutput``), before its own; a model scored again keeps the new
    scores."""
    for name in ("results", "per_query", "routing"):
        old, new = kept.per_query if name == "per_query" else kept.doc.get(name) or {}, getattr(out, name)
        joined = {ds: {**models, **new.get(ds, {})} for ds, models in old.items()}
        joined.update({ds: models for ds, models in new.items() if ds not in joined})
        setattr(out, name, joined)
    for key, value in (kept.doc.get("timings") or {}).items():
        out.timings.setdefault(key, value)
    for key, value in (kept.doc.get("max_lengths") or {}).items():
        out.max_lengths.setdefault(key, value)


def join_records(doc: dict, kept: KeptEvaluation) -> dict:
    """``metrics.json`` of the joined evaluation: the kept models' records and datasets beside the new ones."""
    for key in ("models", "queries", "skipped", "self_hits", "relevance_level", "relevance_scale", "sample"):
        merged = dict(kept.doc.get(key) or {})
        merged.update(doc.get(key) or {})
        doc[key] = merged
    return doc
