"""A study's summary, rebuilt from its folder alone: the per-query table, the statistics, the routing facts.

``STUDY/per_query.csv.gz`` (long format: ``dataset,seed,arm,query_id,metric,value``) is
the data behind every number: written from the seeds' evaluations, it is what
``maw-bench report STUDY`` reads when those are gone, so a committed study can be
re-derived and audited. Written deterministically (sorted rows, gzip mtime 0), so a
rebuild gives the same bytes.

Statistics per dataset, arm and metric: the crossed random-effects model of
:mod:`maw_bench.evaluation.crossed` (primary), with the pigeonhole bootstrap and a
seed-level paired t as sensitivity columns; Holm's adjustment over the study's family
(every arm against the reference on every dataset, first metric).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import numpy as np

from maw_bench.errors import UserError
from maw_bench.outputs.layout import METRICS_FILE

PER_QUERY_FILE = "per_query.csv.gz"
COLUMNS = ["dataset", "seed", "arm", "query_id", "metric", "value"]


def read_seed_tables(output: Path, seeds: list[int]) -> list[tuple]:
    """Rows ``(dataset, seed, arm, query_id, metric, value)`` of every evaluated seed.

    A seed's own ``eval/per_query.csv`` where it is there, else that seed's rows of the study's
    ``per_query.csv.gz`` (a committed study keeps only that), so continuing a study in a fresh
    clone keeps the seeds it already had. A seed evaluated (its ``metrics.json`` is there) whose
    scores are in neither is an error naming it, never a seed left out.
    """
    stored: list[tuple] | None = None
    rows = []
    for seed in seeds:
        path = output / f"seed-{seed}" / "eval" / "per_query.csv"
        if path.is_file():
            rows += read_eval_table(path, seed)
            continue
        if not (output / f"seed-{seed}" / "eval" / METRICS_FILE).is_file():
            continue  # not evaluated yet
        if stored is None:
            stored = read_per_query(output / PER_QUERY_FILE) if (output / PER_QUERY_FILE).is_file() else []
        mine = [r for r in stored if r[1] == seed]
        if not mine:
            raise UserError(f"{output}: seed {seed} was evaluated but its per-query scores are neither in "
                            f"seed-{seed}/eval/per_query.csv nor in {PER_QUERY_FILE}; restore one of them.")
        rows += mine
    return rows


def read_eval_table(path: Path, seed: int) -> list[tuple]:
    """One evaluation's ``per_query.csv`` as study rows of ``seed``."""
    with path.open(newline="") as f:
        return [(r["dataset"], seed, r["model"], r["query_id"], r["metric"], float(r["value"]))
                for r in csv.DictReader(f)]


def seed_scores(rows: list[tuple], seed: int) -> dict:
    """``{dataset: {arm: {metric: {query_id: value}}}}`` of one seed (an evaluation's per-query layout)."""
    out: dict = {}
    for ds, s, arm, qid, metric, value in rows:
        if s == seed:
            out.setdefault(ds, {}).setdefault(arm, {}).setdefault(metric, {})[qid] = value
    return out


def write_per_query(path: Path, rows: list[tuple]) -> None:
    """The long table, sorted, gzip with mtime 0: the same rows give the same bytes."""
    from maw_bench.runtime.atomic import atomic_open

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in sorted(rows, key=lambda r: (r[0], r[1], r[2], r[4], r[3])):
        w.writerow([r[0], r[1], r[2], r[3], r[4], f"{r[5]:.6f}"])
    with atomic_open(path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
            gz.write(buf.getvalue().encode())


def read_per_query(path: Path) -> list[tuple]:
    try:
        with gzip.open(path, "rt", newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != COLUMNS:
                raise ValueError(f"columns {reader.fieldnames}")
            return [(r["dataset"], int(r["seed"]), r["arm"], r["query_id"], r["metric"], float(r["value"]))
                    for r in reader]
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path} cannot be read ({exc}); rerun the study to rewrite it.") from None


def nest(rows: list[tuple]) -> dict:
    """``{dataset: {arm: {metric: {seed: {query_id: value}}}}}``."""
    out: dict = {}
    for ds, seed, arm, qid, metric, value in rows:
        out.setdefault(ds, {}).setdefault(arm, {}).setdefault(metric, {}).setdefault(seed, {})[qid] = value
    return out


def difference_table(arm: dict[int, dict[str, float]], ref: dict[int, dict[str, float]], name: str,
                     reference: str, where: str) -> tuple[list[int], np.ndarray]:
    """``(seeds, d[S, Q])``: every seed and query of the reference must be in the arm, and the reverse."""
    seeds = sorted(ref)
    missing_seeds = [s for s in seeds if s not in arm]
    if missing_seeds or sorted(arm) != seeds:
        extra = sorted(set(arm) - set(ref))
        raise UserError(f"{where}: {name} and {reference} were not scored at the same seeds ({name} lacks "
                        f"{missing_seeds or '-'}, {reference} lacks {extra or '-'}); finish the study first.")
    qids = sorted(ref[seeds[0]])
    for s in seeds:
        for side, table in ((reference, ref[s]), (name, arm[s])):
            gap = sorted(set(qids) ^ set(table))
            if gap:
                raise UserError(f"{where}: {side} at seed {s} does not score the same queries (query {gap[0]!r} and "
                                f"{len(gap) - 1} more differ); every arm and seed must be evaluated on one sample.")
    return seeds, np.array([[arm[s][q] - ref[s][q] for q in qids] for s in seeds])


# The default equivalence margin: one point of nDCG@10 (0.01), the smallest difference retrieval papers commonly
# report as a gain, and about a third of what MAW's split arm lost on Cranfield; a field with other stakes sets its own
# (study/report --equivalence-margin).
EQUIVALENCE_MARGIN = 0.01


def compare(arm: dict, ref: dict, name: str, reference: str, metric: str, dataset: str,
            margin: float = EQUIVALENCE_MARGIN) -> dict:
    """The primary estimate, equivalence within ``margin`` on the same fit (TOST p, and the smallest margin at
    which equivalence holds at 5%) and the sensitivity columns for one arm, metric and dataset."""
    from maw_bench.evaluation.crossed import crossed_estimate, equivalent_within, seed_level_t, tost_p
    from maw_bench.evaluation.seed_stats import compare_over_seeds

    seeds, d = difference_table(arm, ref, name, reference, f"{dataset} {metric}")
    est = crossed_estimate(d).to_dict()
    boot = compare_over_seeds(arm, ref, name, reference, metric)
    return {"dataset": dataset, "arm": name, "reference": reference, **est,
            "tost_p": tost_p(est["mean_diff"], est["se"], est["df"], margin),
            "equivalent_within": equivalent_within(est["mean_diff"], est["se"], est["df"]),
            "per_seed_diff": [float(x) for x in d.mean(1)], "seeds_list": seeds,
            "bootstrap": {"se": boot.se, "ci95_low": boot.ci95_low, "ci95_high": boot.ci95_high,
                          "p_value": boot.p_value, "rule": "pigeonhole bootstrap SE, normal quantiles"},
            "seed_t": {**seed_level_t(d), "rule": "paired t over per-seed means", **sign_count(d.mean(1))}}


def sign_count(per_seed: np.ndarray) -> dict:
    """How many seeds put the arm ahead of and behind the reference (its mean over the same queries)."""
    return {"seeds_ahead": int((per_seed > 0).sum()), "seeds_behind": int((per_seed < 0).sum())}


def add_holm(comparisons: list[dict], metric: str) -> str:
    """``p_holm`` on each comparison of the family (every arm x dataset, ``metric``); the family's description."""
    from maw_bench.evaluation.crossed import holm

    family = [c for c in comparisons if c["metric"] == metric]
    for c, p, p_eq in zip(family, holm([c["p_value"] for c in family]), holm([c["tost_p"] for c in family])):
        c["p_holm"], c["tost_p_holm"] = p, p_eq
    return (f"Holm over the {len(family)} comparisons of every arm against the reference on every dataset "
            f"({metric})")


def across_collections(table: dict, arms: list[str], reference: str, metric: str, comparisons: list[dict],
                       margin: float) -> dict | None:
    """Per arm, its equal-weight average over the study's collections with Cochran's Q and I²
    (:mod:`maw_bench.evaluation.across`), Holm over the arms; None with fewer than 2 collections."""
    from maw_bench.evaluation.across import across_collections as combine
    from maw_bench.evaluation.crossed import holm

    datasets = sorted(ds for ds in table if reference in table[ds])
    if len(datasets) < 2:
        return None
    out = []
    for arm in (a for a in arms if a != reference):
        if not all(arm in table[ds] for ds in datasets):
            out.append({"arm": arm, "not_computed": "not scored on every collection"})
            continue
        tables = {ds: difference_table(table[ds][arm][metric], table[ds][reference][metric], arm, reference,
                                       f"{ds} {metric}") for ds in datasets}
        seed_lists = {tuple(seeds) for seeds, _ in tables.values()}
        if len(seed_lists) > 1 or len(next(iter(seed_lists))) < 2:
            out.append({"arm": arm, "not_computed": "the collections were not scored at the same 2 or more seeds"})
            continue
        per = {c["dataset"]: c for c in comparisons if c["arm"] == arm and c["metric"] == metric}
        out.append({"arm": arm, "seeds": len(next(iter(seed_lists))),
                    **combine({ds: d for ds, (_, d) in tables.items()}, per, margin)})
    done = [r for r in out if "mean_diff" in r]
    for r, p, p_eq in zip(done, holm([r["p_value"] for r in done]), holm([r["tost_p"] for r in done])):
        r["p_holm"], r["tost_p_holm"] = p, p_eq
    return {"metric": metric, "collections": datasets, "weights": "equal", "family": f"Holm over the {len(done)} arms",
            "arms": out}


def routing_facts(output: Path, spec: dict, arms: list[str]) -> list[dict]:
    """Per MAW arm and seed: the final inference depth and its share, when the router settled, its final entropy."""
    facts = []
    for seed in spec["seeds"]:
        for arm in arms:
            log = output / f"seed-{seed}" / "run" / arm / "train_log.jsonl"
            if not log.is_file() or _selection(log.parent) not in ROUTED:
                continue  # a fixed depth or a mixture chooses nothing
            records = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
            hist = [(r["step"], r["depth_histogram"]) for r in records if r.get("depth_histogram")]
            if not hist:
                continue  # no router choice (uniform, soft)
            fact = {"arm": arm, "seed": seed, **settle_step(hist),
                    "final_entropy": (records[-1].get("grpo") or {}).get("entropy")}
            fact.update(inference_depth(output / f"seed-{seed}" / "eval" / METRICS_FILE, arm))
            facts.append(fact)
    return facts


ROUTED = ("grpo", "gumbel")  # selections whose router chooses a depth per text


def _selection(arm_folder: Path) -> str | None:
    import yaml

    try:
        return str(yaml.safe_load((arm_folder / "config.yaml").read_text())["maw"]["selection"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def settle_step(hist: list[tuple[int, list[list[int]]]]) -> dict:
    """The final step's modal depth (first MAW layer) and the first step from which its share stayed >= 90%."""
    counts = [np.asarray(h[0], dtype=float) for _, h in hist]
    modal = int(np.argmax(counts[-1]))
    shares = [float(c[modal] / c.sum()) if c.sum() else 0.0 for c in counts]
    settled = None
    for i in range(len(shares) - 1, -1, -1):
        if shares[i] < 0.9:
            break
        settled = hist[i][0]
    return {"training_modal_depth": modal, "final_training_share": round(shares[-1], 4), "settled_from_step": settled}


def inference_depth(metrics_path: Path, arm: str) -> dict:
    """The depth the evaluation's routing counts chose most (documents and queries of every dataset)."""
    try:
        routing = json.loads(metrics_path.read_text()).get("routing") or {}
    except (OSError, ValueError):
        return {}
    total = None
    for per_model in routing.values():
        for kind in (per_model.get(arm) or {}).values():
            layer = next(iter(kind.values()), None)
            if layer is None or (layer and isinstance(layer[0], list)):
                continue  # per-head counts: no single depth
            total = np.asarray(layer, dtype=float) + (0 if total is None else total)
    if total is None or not total.sum():
        return {}
    return {"inference_depth": int(np.argmax(total)), "inference_share": round(float(total.max() / total.sum()), 4)}
