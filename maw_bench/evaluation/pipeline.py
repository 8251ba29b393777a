"""``maw-bench eval``: encode, retrieve, score, compare, and write everything a paper needs.

Outputs in the output folder: ``metrics.json`` (schema below), ``runs/<model>__<dataset>.trec``,
``per_query.csv``, ``report.md``, ``report.tex``; the same table is printed.

``metrics.json``::

    {"schema": "maw-bench/metrics/v1",
     "metrics": [...], "reference": "standard",
     "results": {dataset: {model: {metric: value}}},
     "queries": {dataset: number of judged queries scored},
     "comparisons": [{"dataset", "metric", "reference", "model", "n", "mean_diff",
                      "ci95_low", "ci95_high", "p_student", "p_fisher",
                      "p_student_holm", "p_fisher_holm"}],
     "models": {label: {"source", "zero_shot", "provenance" (exported models)}},
     "skipped": {dataset: {"queries_without_judgements": n, "judged_queries_without_text": n,
                           "judged_docs_missing_from_corpus": n}},
     "max_lengths": {model: {"query": tokens, "document": tokens}},
     "routing": {dataset: {model: {"queries"|"documents": {"layer <i>": [count per depth]
                                                               (per head: a list per head)]}}}}}
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from maw_bench.config import BenchmarkConfig
from maw_bench.data import apply_caps, load_bundle
from maw_bench.data.bm25 import read_corpus
from maw_bench.data.bundle import DatasetBundle
from maw_bench.data.registry import check_named_once
from maw_bench.data.relevance import as_gains, scale_name
from maw_bench.data.sampling import sample_note
from maw_bench.errors import UserError
from maw_bench.evaluation.embeddings import encode_corpus, finish_sharded
from maw_bench.evaluation.merge import KeptEvaluation, check_joinable, join_records, join_scores
from maw_bench.evaluation.metrics import cache_dir_default, score_run, use_ranx_engine
from maw_bench.evaluation.models import ModelRef, arm_base, resolve_models, unique_labels, untrained_arms
from maw_bench.evaluation.runfiles import write_trec
from maw_bench.evaluation.search import Hits, bm25_search, exact_search, faiss_search
from maw_bench.evaluation.significance import compare
from maw_bench.outputs.eval_report import report_markdown
from maw_bench.outputs.folders import safe_name
from maw_bench.outputs.layout import METRICS_FILE, REFERENCE_ARM
from maw_bench.outputs.plots import eval_plots
from maw_bench.outputs.tables import latex_table, rich_table
from maw_bench.runtime.atomic import write_json, write_text
from maw_bench.runtime.console import console
from maw_bench.runtime.distributed import DistInfo
from maw_bench.runtime.distributed import setup as dist_setup
from maw_bench.runtime.hardware import resolve_config_dtypes
from maw_bench.runtime.progress import step

log = logging.getLogger("maw_bench")
SCHEMA = "maw-bench/metrics/v1"


@dataclass
class EvalOutput:
    results: dict = field(default_factory=dict)
    per_query: dict = field(default_factory=dict)
    comparisons: list = field(default_factory=list)
    reference: str | None = None
    timings: dict = field(default_factory=dict)
    routing: dict = field(default_factory=dict)
    max_lengths: dict = field(default_factory=dict)
    dtype: str = ""
    precision: dict = field(default_factory=dict)  # how the dtype was chosen (runtime/hardware.py: resolve_dtype)
    self_hits: dict = field(default_factory=dict)  # dataset -> "drop" | "keep"
    relevance_level: dict = field(default_factory=dict)  # dataset -> lowest grade binary metrics count
    relevance_scale: dict = field(default_factory=dict)  # dataset -> how grades became gains (data/relevance.py)
    run_suffix: str = ".trec"  # ".trec.gz": a study's kept rankings (evaluation/runfiles.py)
    run_depth: int | None = None  # hits kept per query in the run file (None: every hit, eval.top_k)


def run_file(output: Path, label: str, dataset_id: str, suffix: str = ".trec") -> Path:
    """Where an evaluation writes the run of ``label`` on ``dataset_id``."""
    return output / "runs" / f"{safe_name(label)}__{safe_name(dataset_id)}{suffix}"


def load_eval_bundles(cfg: BenchmarkConfig, specs: list[str]) -> list[DatasetBundle]:
    """The collections to score, each once (two names of one collection, such as ``--beir scifact`` and
    ``--dataset beir/scifact/test``, are one line: results are keyed by the collection)."""
    bundles = [load_bundle(spec, cfg.data.eval_split) for spec in specs]
    check_named_once([(spec, b.id) for spec, b in zip(specs, bundles)])  # before any cap reads a corpus
    for b in bundles:
        apply_caps(b, cfg.data.max_queries, cfg.data.max_docs, cfg.data.eval_seed)  # one sample for every arm and seed
    return bundles


def retrieve(
    encoder, bundle: DatasetBundle, cfg: BenchmarkConfig, label: str, ctx: DistInfo
) -> tuple[Hits, float | None, dict | None] | None:
    """Encode (or re-use) the corpus and the judged queries, then search.

    Returns the hits, the docs/s of the encode (None on a cache hit) and what the encoder
    reported about its routing (depth counts per layer, for queries and documents; None
    for an encoder without routes).

    Under torchrun every rank encodes its own shards; after a barrier rank 0 alone
    checks the shards, encodes the queries and searches (the others return None).
    """
    cache_root = Path(cfg.eval.cache_dir) if cfg.eval.cache_dir else cache_dir_default()
    doc_len, query_len = eval_lengths(encoder, cfg)
    start = time.perf_counter()
    cache = encode_corpus(
        encoder, bundle, cache_root, cfg.eval.batch_size, doc_len, cfg.eval.dtype,
        shard_docs=cfg.eval.shard_docs, rank=ctx.rank, world_size=ctx.world_size, label=label,
        verify=cfg.eval.verify_cache,
    )
    ctx.barrier()
    if not ctx.is_main:
        return None
    if ctx.world_size > 1 and not cache.complete():
        finish_sharded(cache, bundle, encoder.dim, cfg.eval.shard_docs)
    # docs/s of this encode; None when the cache held the vectors (nothing was encoded)
    rate = None if cache.reused else bundle.docs_count() / max(time.perf_counter() - start, 1e-9)
    queries = bundle.judged_queries()
    qids = list(queries)
    q_usage: dict = {}
    q_emb = torch.empty(len(qids), encoder.dim)
    with step(f"encode queries {label} {bundle.id}", total=len(qids)) as advance:
        for pos, vecs in encoder.encode_batches([queries[q] for q in qids], cfg.eval.batch_size, "query", query_len,
                                                cfg.eval.dtype, usage=q_usage):
            q_emb[pos] = vecs
            advance(len(pos))
    routing = {"queries": q_usage, "documents": cache.usage()} if q_usage else None
    docs = cache.manifest().get("docs")
    drop_self = bundle.drops_self_hits(cfg.eval.self_hits)
    with step(f"search {label} {bundle.id}", total=docs) as advance:
        if cfg.eval.index == "exact":
            hits = exact_search(q_emb, qids, cache.shards(), cfg.eval.top_k, cfg.eval.chunk_size,
                                drop_self, advance=advance)
        else:
            factory = cfg.eval.index.split(":", 1)[1]
            hits = faiss_search(factory, q_emb, qids, cache.shards(), cfg.eval.top_k, drop_self,
                                advance=advance)
    return hits, rate, routing


def conventions(bundles: list[DatasetBundle], cfg: BenchmarkConfig) -> dict[str, dict]:
    """How each collection is scored, as metrics.json records it: ``{"self_hits": {dataset: "drop" | "keep"},
    "relevance_level": {dataset: grade}}``; an evaluation joins another only where they agree."""
    return {"self_hits": {b.id: "drop" if b.drops_self_hits(cfg.eval.self_hits) else "keep" for b in bundles},
            "relevance_level": {b.id: b.relevance_level(cfg.eval.relevance_level) for b in bundles},
            "relevance_scale": {b.id: scale_name(b.id, cfg.eval.relevance_scale) for b in bundles}}


def unjudged_self_hits(hits: Hits, qrels: dict[str, dict[str, int]]) -> list[str]:
    """Queries that retrieved a document with their own id that is not judged relevant to them."""
    return [q for q, h in hits.items() if q in h and qrels.get(q, {}).get(q, 0) <= 0]


def warn_self_hits(bundle: DatasetBundle, hits: Hits, setting: str, label: str) -> None:
    """Say when kept self-hits take ranks (as on a copy of Quora or ArguAna under another name)."""
    if bundle.drops_self_hits(setting) or setting == "keep":
        return
    found = unjudged_self_hits(hits, bundle.scored_qrels())
    if found:
        log.warning("%s: %d of %d queries retrieved a document with their own id (%s for %r), which is not judged "
                    "relevant and takes a rank; BEIR and MTEB drop such self-hits on ArguAna, Quora and "
                    "CQADupStack: set eval.self_hits=drop to match them, or keep to silence this",
                    bundle.id, len(found), len(hits), label, found[0])


def check_file_names(labels: list[str]) -> None:
    """Every model its own run file: two labels that make one file name (``a/b``, ``a_b``) would overwrite one."""
    seen: dict[str, str] = {}
    for label in labels:
        other = seen.setdefault(safe_name(label), label)
        if other != label:
            raise UserError(f"models {other!r} and {label!r} would write the same run file ({safe_name(label)}); "
                            "rename one of their folders.")


def warn_trained_on(refs: list[ModelRef], bundles: list[DatasetBundle]) -> None:
    """A model scored on the very split it was fine-tuned on measures memory, not retrieval: say so."""
    for ref in refs:
        for b in bundles:
            if ref.trained_on and ref.trained_on == b.id:
                log.warning("%s was fine-tuned on %s and is now evaluated on it: its scores there are not held-out "
                            "figures", ref.label, b.id)


def check_scorable(bundles: list[DatasetBundle]) -> None:
    """Every collection has judged queries to average over; judged ids without a query text are left out (warned)."""
    for b in bundles:
        missing = b.judged_without_text()
        if not b.scored_qrels():
            raise UserError(f"{b.id}: no judged query is in its queries file ({len(b.qrels)} judged ids, "
                            f"{len(b.queries)} queries), so there is nothing to score; check that the qrels and "
                            "queries belong to the same split.")
        if missing:
            log.warning("%s: %d judged query ids have no query text; they are left out of every mean "
                        "(as trec_eval does), %d queries are scored", b.id, missing, len(b.scored_qrels()))


def eval_lengths(encoder, cfg: BenchmarkConfig) -> tuple[int, int]:
    """``(document, query)`` max lengths at evaluation: the config's, or the model's published length."""
    from maw_bench.modeling.encoder import position_limit

    published = encoder.published_max_length
    limit = position_limit(encoder.backbone.config)
    for key, value in (("eval.max_length", cfg.eval.max_length), ("eval.query_max_length", cfg.eval.query_max_length)):
        if limit is not None and value > limit:
            raise UserError(f"{key}={value} (--max-length) is longer than the {limit} positions this model can "
                            f"encode; use at most {limit} (0 = the published length, {published}).")
    return cfg.eval.max_length or published, cfg.eval.query_max_length or published


def bm25_hits(bundle: DatasetBundle, top_k: int, self_hits: str = "auto") -> Hits:
    ids, texts = read_corpus(bundle)
    return bm25_search(ids, texts, bundle.judged_queries(), top_k, bundle.drops_self_hits(self_hits))


def model_refs(model_specs: list[str], arms: list[str] | None, cfg: BenchmarkConfig) -> list[ModelRef]:
    """The models to score: ``--model`` values, and the untrained arms (``init/<arm>`` beside other models) built
    on the one plain model named. ``model.*: auto`` stays auto: build_encoder resolves it for each model, as its
    own folder says (a CLS-pooled --model is pooled by CLS whatever the config's default model does)."""
    refs: list[ModelRef] = resolve_models(model_specs, cfg) if model_specs or not arms else []
    if arms:
        refs = unique_labels(refs + untrained_arms(arms, arm_base(refs, cfg), cfg, prefix="init/" if model_specs else ""))
    return refs


def run_evaluation(
    cfg: BenchmarkConfig,
    model_specs: list[str],
    dataset_specs: list[str],
    output: Path,
    bm25: bool = False,
    device: str | torch.device | None = None,
    print_table: bool = True,
    arms: list[str] | None = None,
    keep: KeptEvaluation | None = None,
    runs: tuple[str, int | None] = (".trec", None),
) -> EvalOutput:
    """Score every model on every dataset into ``output``; ``keep``: an evaluation there joins (``merge``);
    ``runs``: the run files' suffix and depth (a study keeps ``.trec.gz`` at the depth its metrics read)."""
    metrics = list(cfg.eval.metrics)  # names checked when the config was built
    ctx = dist_setup(device)
    cfg, precision = resolve_config_dtypes(cfg, ctx.device, ctx.world_size, uses=("eval",))
    refs = model_refs(model_specs, arms, cfg)
    bundles = load_eval_bundles(cfg, dataset_specs)
    check_scorable(bundles)  # before any model loads or encodes
    if keep is not None:
        check_joinable(keep, metrics, cfg.eval.dtype, {b.id: len(b.scored_qrels()) for b in bundles},
                       conventions(bundles, cfg), {b.id: b.sample for b in bundles})
    entries = sum(len(b.judged_queries()) for b in bundles) * cfg.eval.top_k * (len(refs) + bm25)
    use_ranx_engine(cfg.eval.ranx_engine, entries)
    out = EvalOutput(run_suffix=runs[0], run_depth=runs[1])
    (output / "runs").mkdir(parents=True, exist_ok=True)
    labels = [r.label for r in refs] + (["bm25"] if bm25 else [])
    check_file_names(labels)
    warn_trained_on(refs, bundles)
    for ref in refs:
        encoder = ref.load(cfg, ctx.device)
        for bundle in bundles:
            res = retrieve(encoder, bundle, cfg, ref.label, ctx)
            if res is None:  # not rank 0
                continue
            hits, rate, routing = res
            out.timings[f"{ref.label}__{bundle.id}"] = {"docs_per_s": rate}
            doc_len, query_len = eval_lengths(encoder, cfg)
            out.max_lengths[ref.label] = {"query": query_len, "document": doc_len}
            if routing is not None:
                out.routing.setdefault(bundle.id, {})[ref.label] = routing
            _record(out, bundle, ref.label, hits, cfg, output)
        del encoder
    if not ctx.is_main:
        return out
    if bm25:
        for bundle in bundles:
            _record(out, bundle, "bm25", bm25_hits(bundle, cfg.eval.top_k, cfg.eval.self_hits), cfg, output)
    if keep is not None:
        join_scores(out, keep)
        labels += [m for models in out.results.values() for m in models if m not in labels]
    out.reference = REFERENCE_ARM if REFERENCE_ARM in labels else labels[0]
    out.comparisons = [c.to_dict() for c in compare(out.per_query, out.reference, metrics, seed=cfg.seed)]
    out.dtype, out.precision = cfg.eval.dtype, precision["eval"]
    write_outputs(out, metrics, output, refs, bundles, keep)
    if print_table:
        console.print(rich_table(out.results, metrics, out.comparisons, title=f"maw-bench eval (reference: {out.reference})"))
        console.print(f"outputs in {output}")
    return out


def _record(out: EvalOutput, bundle: DatasetBundle, label: str, hits: Hits, cfg: BenchmarkConfig, output: Path) -> None:
    if bundle.id not in out.self_hits:  # the first model scored here: say once if kept self-hits took ranks
        for key, values in conventions([bundle], cfg).items():
            getattr(out, key).update(values)
        warn_self_hits(bundle, hits, cfg.eval.self_hits, label)
    metrics = list(cfg.eval.metrics)
    write_trec(run_file(output, label, bundle.id, out.run_suffix), hits, label, out.run_depth)
    qrels = as_gains(bundle.scored_qrels(), bundle.id, cfg.eval.relevance_scale)  # Cranfield's codes run downwards
    means, per_query = score_run(qrels, hits, metrics, name=label,
                                 relevance_level=out.relevance_level[bundle.id])
    out.results.setdefault(bundle.id, {})[label] = means
    out.per_query.setdefault(bundle.id, {})[label] = per_query


def model_record(ref: ModelRef) -> dict:
    """What metrics.json says about a model: its source, whether it is zero-shot, and an export's provenance."""
    record: dict = {"source": ref.source, "zero_shot": ref.zero_shot}
    if ref.arm is not None:
        record["untrained_arm"] = ref.arm
    if ref.exported:
        from maw_bench.modeling.export import read_export_record

        record["provenance"] = (read_export_record(Path(ref.source)) or {}).get("provenance", {})
    return record


def write_outputs(out: EvalOutput, metrics: list[str], output: Path, refs: list[ModelRef],
                  bundles: list[DatasetBundle], keep: KeptEvaluation | None = None) -> None:
    doc = {
        "schema": SCHEMA,
        "metrics": metrics,
        "reference": out.reference,
        "results": out.results,
        "queries": {b.id: len(b.scored_qrels()) for b in bundles},
        "comparisons": out.comparisons,
        "models": {r.label: model_record(r) for r in refs},
        "skipped": {b.id: {"queries_without_judgements": len(b.queries) - len(b.judged_queries()),
                           "judged_queries_without_text": b.judged_without_text(),
                           "judged_docs_missing_from_corpus": b.summary()["missing_judged_docs"]} for b in bundles},
        "timings": out.timings,
        "routing": out.routing,
        "max_lengths": out.max_lengths,
        "dtype": out.dtype,
        "precision": out.precision,  # as configured, or auto with the bf16 speed-up measured on this machine
        "self_hits": out.self_hits,
        "relevance_level": out.relevance_level,
        "relevance_scale": out.relevance_scale,  # how grades became gains, per dataset (data/relevance.py)
        "sample": {b.id: b.sample for b in bundles if b.sample},  # what data.max_queries / max_docs kept
    }
    if keep is not None:
        doc = join_records(doc, keep)
    write_json(output / METRICS_FILE, doc)
    write_scores(doc, out.per_query, output)
    for ds, sample in doc["sample"].items():
        log.warning("%s", sample_note(ds, sample))


def write_scores(doc: dict, per_query: dict, output: Path) -> None:
    """per_query.csv, report.md/tex and the plots of an evaluation whose metrics.json is ``doc``."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dataset", "model", "query_id", "metric", "value"])
    for dataset, models in per_query.items():
        for model, per_metric in models.items():
            for metric, scores in per_metric.items():
                for qid in sorted(scores):
                    w.writerow([dataset, model, qid, metric, f"{scores[qid]:.6f}"])
    write_text(output / "per_query.csv", buf.getvalue())
    write_text(output / "report.md", report_markdown(doc))
    write_text(output / "report.tex", latex_table(doc["results"], doc["metrics"], doc["comparisons"], doc["reference"]))
    eval_plots(doc, per_query, output)
