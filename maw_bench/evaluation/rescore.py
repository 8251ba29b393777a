"""Re-score an evaluation from the rankings it kept: a metric or a qrels fix without encoding or retraining.

A study keeps each evaluation's run files (``runs/<model>__<dataset>.trec.gz``, cut at the depth its metrics
read; ``commands/study.py``). ``maw-bench report STUDY --rescore`` reads them back, scores them against the
collections' qrels as the current config says (``eval.metrics``, ``eval.relevance_scale``,
``eval.relevance_level``), rewrites each seed's ``metrics.json`` and ``per_query.csv`` and rebuilds the summary.
The rankings themselves are not recomputed, so the scores equal those of a fresh evaluation of the same models
(a test checks it). An evaluation without its run files, or kept shallower than a metric reads, is refused in one
line naming what is missing.
"""

from __future__ import annotations

from pathlib import Path

from maw_bench.config import BenchmarkConfig
from maw_bench.data.relevance import as_gains
from maw_bench.errors import UserError
from maw_bench.evaluation.metrics import score_run
from maw_bench.evaluation.pipeline import conventions, load_eval_bundles, run_file, write_scores
from maw_bench.evaluation.runfiles import read_trec
from maw_bench.evaluation.significance import compare
from maw_bench.metric_names import max_cutoff
from maw_bench.outputs.layout import METRICS_FILE
from maw_bench.runtime.atomic import read_json_file, write_json


def kept_runs(folder: Path, doc: dict, suffix: str) -> dict[tuple[str, str], Path]:
    """``(model, dataset) -> run file`` for every score in ``doc``; a missing one is refused in one line."""
    found, missing = {}, []
    for ds, models in doc["results"].items():
        for label in models:
            path = run_file(folder, label, ds, suffix)
            (found.__setitem__((label, ds), path) if path.is_file() else missing.append(f"{label} on {ds}"))
    if missing:
        raise UserError(f"{folder}: no kept ranking for {missing[0]}" + (f" and {len(missing) - 1} more" if missing[1:]
                        else "") + f" (runs/*{suffix}); re-scoring needs the rankings: this evaluation kept none "
                        "(a study before maw-bench kept them), so rerun it.")
    return found


def _check_depth(path: Path, hits: dict, metrics: list[str], top_k: int) -> None:
    depth = max((len(h) for h in hits.values()), default=0)
    needed = max_cutoff(metrics)
    if needed > depth and depth < top_k:
        raise UserError(f"{path}: the ranking was kept to depth {depth}, and a metric reads {needed}; re-score with "
                        f"metrics that read at most {depth} ranks, or rerun the evaluation.")


def rescore_evaluation(folder: Path, cfg: BenchmarkConfig, dataset_specs: list[str], suffix: str) -> dict:
    """Rewrite ``folder``'s metrics.json and per_query.csv from its kept run files; returns the new record."""
    doc = read_json_file(folder / METRICS_FILE, "run the evaluation first")
    runs = kept_runs(folder, doc, suffix)  # before any collection loads
    metrics = list(cfg.eval.metrics)
    bundles = {b.id: b for b in load_eval_bundles(cfg, dataset_specs) if b.id in doc["results"]}
    lost = sorted(set(doc["results"]) - set(bundles))
    if lost:
        raise UserError(f"{folder}: scored {lost[0]}, which the study's datasets do not name; re-score it with them.")
    conv = conventions(list(bundles.values()), cfg)
    results: dict = {}
    per_query: dict = {}
    for (label, ds), path in sorted(runs.items()):
        b = bundles[ds]
        if len(b.scored_qrels()) != (doc.get("queries") or {}).get(ds, len(b.scored_qrels())):
            raise UserError(f"{folder}: {ds} now has {len(b.scored_qrels())} judged queries, the evaluation scored "
                            f"{doc['queries'][ds]}; the collection or its sample changed, so rerun the evaluation.")
        hits = read_trec(path)
        _check_depth(path, hits, metrics, cfg.eval.top_k)
        qrels = as_gains(b.scored_qrels(), ds, cfg.eval.relevance_scale)
        means, scores = score_run(qrels, hits, metrics, name=label, relevance_level=conv["relevance_level"][ds])
        results.setdefault(ds, {})[label] = means
        per_query.setdefault(ds, {})[label] = scores
    new = {**doc, "metrics": metrics, "results": results, "relevance_level": conv["relevance_level"],
           "relevance_scale": conv["relevance_scale"],
           "comparisons": [c.to_dict() for c in compare(per_query, doc["reference"], metrics, seed=cfg.seed)],
           "rescored": f"from the kept rankings (runs/*{suffix}), eval.relevance_scale={cfg.eval.relevance_scale}"}
    write_json(folder / METRICS_FILE, new)
    write_scores(new, per_query, folder)
    return new
