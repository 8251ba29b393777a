"""``maw-bench study``: named arms x seeds (plus controls), trained and scored alike, then one honest table.

Layout::

    STUDY/study.json                    arms, seeds, controls, datasets, the shared config
    STUDY/seed-<s>/run/                 a training run (every arm, seed s; controls at the first seed,
                                        trained after every seed's main arms)
    STUDY/seed-<s>/eval/                its evaluation (metrics.json, per_query.csv, plots)
    STUDY/summary.md|json, STUDY/*.png  per arm mean +- std over seeds; each arm minus the reference with a
                                        95% interval, p-value and smallest detectable difference over seeds
                                        and queries (maw_bench.evaluation.seed_stats)

Every arm of a seed shares that seed, its batches and its number of optimiser steps
(``train_arms``). A rerun resumes: an arm scored on every dataset is kept (its model
need not be), an unfinished arm continues from its last checkpoint, and arms, controls
or datasets added later are trained and scored alone, joining the seed's evaluation.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from pathlib import Path

from maw_bench.config import BenchmarkConfig, control_arms
from maw_bench.errors import UserError
from maw_bench.evaluation.seed_stats import mean_std
from maw_bench.modeling.st_recipe import resolve_config_recipe
from maw_bench.outputs.layout import METRICS_FILE, REFERENCE_ARM, STUDY_FILE
from maw_bench.runtime.atomic import write_json, write_text
from maw_bench.runtime.console import console

log = logging.getLogger("maw_bench")
REFERENCE = REFERENCE_ARM


def study_arms(cfg: BenchmarkConfig, arms: list[str], controls: list[str]) -> tuple[list[str], list[str]]:
    """``(arms of every seed, control arms of the first seed)``; the reference arm is always trained."""
    for a in [*arms, *controls]:
        cfg.arm(a)  # unknown names fail before any work
    main = [REFERENCE] + [a for a in arms if a != REFERENCE]
    extra = [c for a in controls for c in control_arms(cfg, a) if c not in main]
    return main, extra


def run_study(
    cfg: BenchmarkConfig, arms: list[str], seeds: list[int], controls: list[str], output: Path,
    datasets: list[str] | None = None, equivalence_margin: float | None = None,
) -> Path:
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {seeds}: give distinct seeds, e.g. --seeds 13,14,15.")
    main, extra = study_arms(cfg, arms, controls)
    from maw_bench.training.run import check_arms

    check_arms(cfg, [*main, *extra])  # every arm fits the model (its attention layout too) before any seed trains
    cfg = resolve_config_recipe(cfg)  # what the study records and compares is how it encodes
    datasets = list(datasets or cfg.data.eval)
    output.mkdir(parents=True, exist_ok=True)
    previous = _read(output / STUDY_FILE)
    spec = {"arms": main, "controls": extra, "controls_seed": seeds[0], "seeds": seeds, "datasets": datasets,
            "config": cfg.to_dict(),
            "equivalence_margin": _margin(equivalence_margin, previous)}
    if previous and (not _same_config(previous.get("config"), cfg, [*main, *extra])
                     or not set(previous.get("datasets") or []) <= set(datasets)):
        raise UserError(f"{output} holds a study with another config or datasets (a study may add evaluation "
                        "datasets, not drop them); use another --output.")
    # every seed's main arms first (the answer), then the controls of the first seed (where it comes from)
    passes = [(seed, main) for seed in seeds] + ([(seeds[0], main + extra)] if extra else [])
    check_roles(output, spec, {seed: arms for seed, arms in passes})
    ids = dataset_ids(cfg, datasets)
    check_scales(output, spec, cfg, set(ids.values()))
    write_json(output / STUDY_FILE, {**spec, "created": (previous or {}).get("created", time.strftime("%Y-%m-%dT%H:%M:%S"))})
    for seed, arm_list in passes:
        run_pass(cfg.derive({"seed": seed}), output, seed, arm_list, ids)
    summarise_study(output)
    return output


def _margin(asked: float | None, spec: dict | None) -> float:
    """The equivalence margin: as asked, else the study's own (study.json), else the default; an analysis
    setting, so changing it retrains nothing."""
    from maw_bench.outputs.study_summary import EQUIVALENCE_MARGIN

    margin = asked if asked is not None else (spec or {}).get("equivalence_margin", EQUIVALENCE_MARGIN)
    if not margin > 0:
        raise UserError(f"--equivalence-margin {margin}: give a positive difference in the first metric, e.g. 0.01.")
    return float(margin)


def dataset_ids(cfg: BenchmarkConfig, specs: list[str]) -> dict[str, str]:
    """``{spec: id}``: what an evaluation keys its results by (a folder's id is not its path)."""
    from maw_bench.data import load_bundle
    from maw_bench.data.registry import check_named_once

    named = [(spec, load_bundle(spec, cfg.data.eval_split).id) for spec in specs]
    check_named_once(named)  # before any seed trains: its evaluation would refuse them only after
    return dict(named)


def run_pass(scfg: BenchmarkConfig, output: Path, seed: int, arms: list[str], datasets: dict[str, str]) -> None:
    """Train and score what a seed lacks: an arm scored on every dataset is neither retrained nor scored
    again (its model need not be kept); new arms and datasets join the seed's evaluation.
    ``datasets``: ``{spec: id}``."""
    from maw_bench.evaluation.pipeline import run_evaluation
    from maw_bench.training.run import train_arms

    run, ev = output / f"seed-{seed}" / "run", output / f"seed-{seed}" / "eval"
    kept = _kept(output, seed)
    todo = {ds: [a for a in arms if kept is None or a not in kept.scored(ds_id)] for ds, ds_id in datasets.items()}
    needed = [a for a in arms if any(a in t for t in todo.values())]
    if not needed:
        return
    console.print(f"[bold]seed {seed}[/bold]: {', '.join(needed)}")
    train_arms(scfg, needed, run, resume=run.exists())
    groups: dict[tuple[str, ...], list[str]] = {}
    for ds, missing in todo.items():
        if missing:
            groups.setdefault(tuple(missing), []).append(ds)
    for missing, group in groups.items():
        run_evaluation(scfg, [str(run / a) for a in missing], group, ev, print_table=False, keep=kept,
                       runs=(KEPT_RUN_SUFFIX, kept_run_depth(scfg)))
        kept = _kept(output, seed)


KEPT_RUN_SUFFIX = ".trec.gz"


def kept_run_depth(cfg: BenchmarkConfig) -> int:
    """How deep a study keeps each evaluation's ranking: the deepest cut-off its metrics read (``recall@100``:
    100), or every hit (``eval.top_k``) when a metric reads the whole ranking (``map``, ``rbp``); a metric added later
    is re-scored from these only up to that depth."""
    from maw_bench.metric_names import max_cutoff, parse_metric

    whole = any(parse_metric(str(m))[0] == "rbp" or "@" not in str(m) for m in cfg.eval.metrics)
    return cfg.eval.top_k if whole else min(cfg.eval.top_k, max_cutoff(list(cfg.eval.metrics)))


def _kept(output: Path, seed: int):
    """The seed's evaluation so far (``KeptEvaluation``), or None before its first."""
    from maw_bench.evaluation.merge import KeptEvaluation
    from maw_bench.outputs.study_summary import read_seed_tables, seed_scores

    ev = output / f"seed-{seed}" / "eval"
    doc = _read(ev / METRICS_FILE)
    if doc is None:
        return None
    return KeptEvaluation(doc, seed_scores(read_seed_tables(output, [seed]), seed), str(ev))


def _same_config(stored: dict | None, current: BenchmarkConfig, arms: list[str]) -> bool:
    """Whether every arm of the study resolves to the same settings as when the study began.

    The stored config is read through today's schema, so keys added since (with their defaults) do not
    block resuming; arms are compared resolved (shared config plus the arm's overrides, without the arms
    table), so a recipe that gains an arm, or spells out a default, still resumes its study. A stored
    config today's schema refuses counts as different.
    """
    try:
        old = resolve_config_recipe(BenchmarkConfig.from_dict(stored or {}))  # a key it predates: as resolved
        return all(_resolved(old, a) == _resolved(current, a) for a in arms if _defines(old, a))
    except UserError:
        return False


def _resolved(cfg: BenchmarkConfig, arm: str) -> dict:
    return {k: v for k, v in cfg.arm(arm).to_dict().items() if k != "arms"}


def _defines(cfg: BenchmarkConfig, arm: str) -> bool:
    """Whether a config names ``arm`` (or the arm a control is of); an arm new to the study is not a change."""
    try:
        cfg.arm(arm)
    except UserError:
        return False
    return True


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summarise_study(output: Path, equivalence_margin: float | None = None) -> dict:
    """Write per_query.csv.gz, summary.json/md and plots from the folder (recomputes no embedding).

    The seeds' evaluations are read where they are; where they are gone (a committed study keeps
    only its root), ``per_query.csv.gz`` is. Either way the same bytes come out.
    """
    from maw_bench.outputs import study_summary as ss
    from maw_bench.outputs.plots import across_forest, arm_differences
    from maw_bench.outputs.tables import study_markdown, study_rich_table

    spec = _read(output / STUDY_FILE)
    if spec is None:
        raise UserError(f"{output} is not a study folder (no study.json).")
    margin = _margin(equivalence_margin, spec)
    if equivalence_margin is not None and spec.get("equivalence_margin") != margin:
        write_json(output / STUDY_FILE, {**spec, "equivalence_margin": margin})  # the next rebuild keeps it
    rows_pq = ss.read_seed_tables(output, spec["seeds"])
    if rows_pq:
        ss.write_per_query(output / ss.PER_QUERY_FILE, rows_pq)
    else:
        raise UserError(f"{output}: no evaluated seed yet; run the study first.")
    table = ss.nest(rows_pq)
    metrics = _metric_order(output, spec, table)
    dtypes = _dtypes(output, spec)
    check_roles(output, spec)
    rows, comparisons = _rows_and_comparisons(table, spec, metrics, dtypes, margin)
    family = ss.add_holm([c for c in comparisons if c["arm"] in spec["arms"]], metrics[0])
    maw_arms = [a for a in [*spec["arms"], *spec["controls"]] if a != REFERENCE]
    evaluated = {**spec, "seeds": [s for s in spec["seeds"] if any(s in r["seeds"] for r in rows)]}  # not a running one
    doc = {"schema": "maw-bench/study/v2", "metrics": metrics, "reference": REFERENCE, "rows": rows,
           "comparisons": comparisons, "wall_s": _wall_times(output, evaluated), "seeds": spec["seeds"],
           "routing": ss.routing_facts(output, evaluated, maw_arms), "family": family,
           "equivalence_margin": margin,
           "method": "crossed random effects per dataset and metric (d[s,q] = mu + seed + query + residual; REML "
                     "components; for the SE the seed mean square always kept and the query factor pooled on REML's "
                     "boundary; Satterthwaite df at the mean squares' upper 75% bounds; t interval); smallest detectable = (t_.975 + t_.80) x SE at that df; sensitivity: "
                     "pigeonhole bootstrap (normal quantiles) and a paired t over per-seed means"}
    across = ss.across_collections(table, spec["arms"], REFERENCE, metrics[0], comparisons, margin)
    if across:  # two or more collections: their average and whether they agree (evaluation/across.py)
        doc["across"] = across
    doc["relevance_scale"] = _scales(output, evaluated)  # Cranfield's codes, defined or raw (data/relevance.py)
    sample = _samples(output, evaluated)
    if sample:  # a study on data.max_docs / max_queries caps says so, as each of its evaluations does
        doc["sample"] = sample
    write_json(output / "summary.json", doc)
    write_text(output / "summary.md", study_markdown(doc))
    for dataset in {r["dataset"] for r in rows}:
        arm_differences([c for c in comparisons if c["dataset"] == dataset and c["metric"] == metrics[0]],
                        metrics[0], output / f"differences__{dataset.replace('/', '_')}.png", margin)
    if across:
        across_forest(across, comparisons, output / f"across_collections__{metrics[0]}.png", margin)
    console.print(study_rich_table(doc))
    console.print(f"summary in {output / 'summary.md'}")
    return doc


def _rows_and_comparisons(table: dict, spec: dict, metrics: list[str], dtypes: dict, margin: float):
    """Per dataset and arm: mean +- std over seeds of every metric, and each arm against the reference."""
    from maw_bench.outputs import study_summary as ss

    rows, comparisons = [], []
    for ds_id in sorted(table):
        for arm in [*spec["arms"], *spec["controls"]]:
            per_metric = table[ds_id].get(arm)
            if not per_metric:
                continue
            seeds_with = sorted(per_metric[metrics[0]])
            row = {"dataset": ds_id, "arm": arm, "seeds": seeds_with, "control": arm in spec["controls"],
                   "dtype": dtypes.get(arm)}
            for m in metrics:
                vals = [sum(per_metric[m][s].values()) / len(per_metric[m][s]) for s in seeds_with]
                row[m], row[f"{m}_std"] = mean_std(vals)
                row[f"{m}_per_seed"] = vals
            rows.append(row)
            if arm != REFERENCE and REFERENCE in table[ds_id]:
                for m in metrics:
                    ref = {s: v for s, v in table[ds_id][REFERENCE][m].items() if s in per_metric[m]}
                    comparisons.append({**ss.compare(per_metric[m], ref, arm, REFERENCE, m, ds_id, margin),
                                        "metric": m})
    return rows, comparisons


def _metric_order(output: Path, spec: dict, table: dict) -> list[str]:
    """The evaluation's metric order (its metrics.json), else the order the per-query table holds them."""
    for seed in spec["seeds"]:
        doc = _read(output / f"seed-{seed}" / "eval" / METRICS_FILE)
        if doc and doc.get("metrics"):
            return list(doc["metrics"])
    seen: list[str] = []
    for arms in table.values():
        for per_metric in arms.values():
            seen += [m for m in per_metric if m not in seen]
    return seen


def _dtypes(output: Path, spec: dict) -> dict[str, str | None]:
    """The training precision of each arm over its seeds (manifests); a mixture is refused."""
    found: dict[str, set] = {}
    for seed in spec["seeds"]:
        for arm in [*spec["arms"], *spec["controls"]]:
            m = _read(output / f"seed-{seed}" / "run" / arm / "manifest.json")
            if m and m.get("dtype"):
                found.setdefault(arm, set()).add(m["dtype"])
    mixed = {a: sorted(d) for a, d in found.items() if len(d) > 1}
    if mixed:
        arm, kinds = next(iter(mixed.items()))
        raise UserError(f"{output}: arm {arm} was trained in {' and '.join(kinds)} at different seeds; every seed "
                        "of an arm must share one precision: retrain the odd seeds with the study's train.dtype.")
    return {a: next(iter(d)) for a, d in found.items()}


def _samples(output: Path, spec: dict) -> dict[str, dict]:
    """What the seeds' evaluations scored of each collection where caps made it a sample (one sample per study:
    the evaluation seed is the study's, so the first evaluation that records one speaks for all)."""
    found: dict[str, dict] = {}
    for seed in spec["seeds"]:
        doc = _read(output / f"seed-{seed}" / "eval" / METRICS_FILE) or {}
        for ds, sample in (doc.get("sample") or {}).items():
            found.setdefault(ds, sample)
    return found


def _scales(output: Path, spec: dict) -> dict[str, str]:
    """How the seeds' evaluations turned each collection's grades into gains (``data/relevance.py``); seeds that
    scored one collection on different scales are not averaged together."""
    from maw_bench.data.relevance import recorded_scale

    found: dict[str, dict[str, list[int]]] = {}
    for seed in spec["seeds"]:
        doc = _read(output / f"seed-{seed}" / "eval" / METRICS_FILE) or {}
        for ds in doc.get("results") or {}:
            found.setdefault(ds, {}).setdefault(recorded_scale(doc, ds), []).append(seed)
    for ds, by_scale in found.items():
        if len(by_scale) > 1:
            parts = "; ".join(f"seeds {', '.join(map(str, s))}: {name}" for name, s in by_scale.items())
            raise UserError(f"{output}: the seeds scored {ds} on different relevance scales ({parts}); re-score them "
                            "alike (eval.relevance_scale) before they are averaged.")
    return {ds: next(iter(by_scale)) for ds, by_scale in sorted(found.items())}


def check_scales(output: Path, spec: dict, cfg: BenchmarkConfig, datasets: set[str]) -> None:
    """Before any seed trains: the study's collections are scored on the scale its seeds were scored on."""
    from maw_bench.data.relevance import scale_name, setting_of

    for ds, name in _scales(output, spec).items():
        now = scale_name(ds, cfg.eval.relevance_scale)
        if ds in datasets and name != now:
            raise UserError(f"{output}: its seeds scored {ds} with nDCG gains = {name}; this run would use {now}: "
                            f"set eval.relevance_scale={setting_of(name)} to continue it, or start a new study.")


def check_roles(output: Path, spec: dict, to_train: dict[int, list[str]] | None = None) -> None:
    """Every seed of an arm trained the same weights at ``train.router_lr`` (manifests: ``router_lr_params``).
    A ``diff`` seed trained before that was recorded learned its second query/key at ``train.lr``; one trained
    since learns them at ``router_lr``: the two are different experiments, so they are not mixed in one row, and
    ``to_train`` (seed -> arms about to train) is refused before any work."""
    for arm in [*spec["arms"], *spec["controls"]]:
        found = {seed: m for seed in spec["seeds"]
                 if (m := _read(output / f"seed-{seed}" / "run" / arm / "manifest.json"))}
        kinds = {m.get("router_lr_params", "before") for m in found.values() if m.get("attention") == "diff"}
        kinds |= {m["router_lr_params"] for m in found.values() if "router_lr_params" in m}
        new = [s for s, arms in (to_train or {}).items() if arm in arms and s not in found]
        if "before" in kinds and (len(kinds) > 1 or new):
            old = sorted(s for s, m in found.items() if "router_lr_params" not in m)
            raise UserError(f"{output}: arm {arm} at seeds {', '.join(map(str, old))} was trained when diff's second "
                            "query/key learned at train.lr; maw-bench now trains them at train.router_lr, so "
                            f"{'seeds ' + ', '.join(map(str, new)) if new else 'the other seeds'} would be another "
                            "experiment: start a new study in another --output (or retrain those seeds there).")
        if len(kinds) > 1:
            raise UserError(f"{output}: arm {arm}'s seeds trained different weights at train.router_lr "
                            f"({', '.join(map(str, sorted(kinds, key=str)))}); retrain them in one study folder.")


def _wall_times(output: Path, spec: dict) -> dict:
    """Training wall time per arm and seed (the manifests, at their precision), and each arm's median ratio to the
    reference at the same seed, over the seeds where neither was resumed without the time before the resume
    (``partial``) and the reference's time is above 0. An arm with no such seed has ratio ``None`` and says why
    in ``no_ratio``: a tiny run on a fast machine can take 0.0 s, which is a time, not an error."""
    per: dict[str, dict[str, float]] = {}
    partial: list[str] = []
    for seed in spec["seeds"]:
        for arm in [*spec["arms"], *spec["controls"]]:
            m = _read(output / f"seed-{seed}" / "run" / arm / "manifest.json")
            if m:
                per.setdefault(arm, {})[str(seed)] = float(m.get("wall_s", 0.0))
                if m.get("wall_s_partial"):
                    partial.append(f"{arm}@{seed}")
    ref = per.get(REFERENCE, {})
    ratio: dict[str, float | None] = {}
    spread: dict[str, list | None] = {}
    no_ratio: dict[str, str] = {}
    for arm, seeds in per.items():
        usable = [s for s in seeds if s in ref and f"{arm}@{s}" not in partial and f"{REFERENCE}@{s}" not in partial]
        ok = [seeds[s] / ref[s] for s in usable if ref[s] > 0]
        if ok:
            ratio[arm] = round(statistics.median(ok), 2)
            spread[arm] = [round(min(ok), 2), round(max(ok), 2), len(ok)]  # how clean the machine was
        else:
            ratio[arm], spread[arm] = None, None
            no_ratio[arm] = (f"{REFERENCE}'s training time is 0 s at every seed it shares" if usable else
                             f"no seed where both it and {REFERENCE} trained without a resume of unknown time")
    return {"per_seed": per, "ratio_to_reference": ratio, "ratio_range": spread, "partial": partial,
            "no_ratio": no_ratio}
