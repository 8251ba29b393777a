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
(``train_arms``). A rerun resumes: finished arms and evaluations are kept, an
unfinished arm continues from its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from maw_bench.atomic import write_json, write_text
from maw_bench.config import BenchmarkConfig, control_arms
from maw_bench.console import console
from maw_bench.errors import UserError

log = logging.getLogger("maw_bench")
REFERENCE = "standard"


def study_arms(cfg: BenchmarkConfig, arms: list[str], controls: list[str]) -> tuple[list[str], list[str]]:
    """``(arms of every seed, control arms of the first seed)``; the reference arm is always trained."""
    for a in [*arms, *controls]:
        cfg.arm(a)  # unknown names fail before any work
    main = [REFERENCE] + [a for a in arms if a != REFERENCE]
    extra = [c for a in controls for c in control_arms(cfg, a) if c not in main]
    return main, extra


def run_study(
    cfg: BenchmarkConfig, arms: list[str], seeds: list[int], controls: list[str], output: Path,
    datasets: list[str] | None = None,
) -> Path:
    from maw_bench.evaluation.pipeline import run_evaluation
    from maw_bench.training.run import train_arms

    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {seeds}: give distinct seeds, e.g. --seeds 13,14,15.")
    main, extra = study_arms(cfg, arms, controls)
    datasets = list(datasets or cfg.data.eval)
    output.mkdir(parents=True, exist_ok=True)
    previous = _read(output / "study.json")
    spec = {"arms": main, "controls": extra, "controls_seed": seeds[0], "seeds": seeds, "datasets": datasets,
            "config": cfg.to_dict()}
    if previous and (not _same_config(previous.get("config"), spec["config"]) or previous.get("datasets") != datasets):
        raise UserError(f"{output} holds a study with another config or datasets; use another --output.")
    write_json(output / "study.json", {**spec, "created": (previous or {}).get("created", time.strftime("%Y-%m-%dT%H:%M:%S"))})
    # every seed's main arms first (the answer), then the controls of the first seed (where it comes from)
    passes = [(seed, main) for seed in seeds] + ([(seeds[0], main + extra)] if extra else [])
    for seed, arm_list in passes:
        scfg = cfg.with_overrides([f"seed={seed}"])
        run, ev = output / f"seed-{seed}" / "run", output / f"seed-{seed}" / "eval"
        console.print(f"[bold]seed {seed}[/bold]: {', '.join(arm_list)}")
        train_arms(scfg, arm_list, run, resume=run.exists())
        done = _read(ev / "metrics.json")
        if done is None or any(a not in m for a in arm_list for m in done["results"].values()):
            run_evaluation(scfg, [str(run)], datasets, ev, print_table=False)
    summarise_study(output)
    return output


def _same_config(stored: dict | None, current: dict) -> bool:
    """Compare with the stored config read through today's schema, so keys added since (with their
    defaults) do not block resuming a study; a stored config today's schema refuses counts as different."""
    try:
        return BenchmarkConfig.from_dict(stored or {}).to_dict() == current
    except UserError:
        return False


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summarise_study(output: Path) -> dict:
    """Write summary.json/md and plots from the finished evaluations (recomputes no embedding)."""
    from maw_bench.evaluation.seed_stats import compare_over_seeds, mean_std
    from maw_bench.results.plots import arm_differences
    from maw_bench.results.records import read_per_query
    from maw_bench.results.tables import study_markdown, study_rich_table

    spec = _read(output / "study.json")
    if spec is None:
        raise UserError(f"{output} is not a study folder (no study.json).")
    per_seed: dict[int, dict] = {}
    for seed in spec["seeds"]:
        ev = output / f"seed-{seed}" / "eval"
        if (ev / "per_query.csv").is_file():
            per_seed[seed] = read_per_query(ev)
    if not per_seed:
        raise UserError(f"{output}: no evaluated seed yet; run the study first.")
    first = _read(output / f"seed-{next(iter(per_seed))}" / "eval" / "metrics.json") or {}
    metrics = first.get("metrics", [])
    rows, comparisons = [], []
    for ds_id in sorted({d for pq in per_seed.values() for d in pq}):
        for arm in [*spec["arms"], *spec["controls"]]:
            seeds_with = [s for s, pq in per_seed.items() if arm in pq.get(ds_id, {})]
            if not seeds_with:
                continue
            row = {"dataset": ds_id, "arm": arm, "seeds": seeds_with, "control": arm in spec["controls"]}
            for m in metrics:
                vals = [sum(per_seed[s][ds_id][arm][m].values()) / len(per_seed[s][ds_id][arm][m]) for s in seeds_with]
                row[m], row[f"{m}_std"] = mean_std(vals)
                row[f"{m}_per_seed"] = vals
            rows.append(row)
            if arm != REFERENCE:
                for m in metrics:
                    scores = {s: per_seed[s][ds_id][arm][m] for s in seeds_with}
                    ref = {s: per_seed[s][ds_id][REFERENCE][m] for s in seeds_with if REFERENCE in per_seed[s][ds_id]}
                    if ref:
                        c = compare_over_seeds(scores, ref, arm, REFERENCE, m).to_dict()
                        comparisons.append({"dataset": ds_id, **c})
    wall = _wall_times(output, spec)
    doc = {"schema": "maw-bench/study/v1", "metrics": metrics, "reference": REFERENCE, "rows": rows,
           "comparisons": comparisons, "wall_s": wall, "seeds": spec["seeds"],
           "method": "pigeonhole bootstrap over seeds and queries (Owen 2007), 10,000 resamples; "
                     "p from the normal approximation; min_detectable = 2.80 x se (80% power, 5% level)"}
    write_json(output / "summary.json", doc)
    write_text(output / "summary.md", study_markdown(doc))
    if metrics:
        for dataset in {r["dataset"] for r in rows}:
            arm_differences([c for c in comparisons if c["dataset"] == dataset and c["metric"] == metrics[0]],
                            metrics[0], output / f"differences__{dataset.replace('/', '_')}.png")
    console.print(study_rich_table(doc))
    console.print(f"summary in {output / 'summary.md'}")
    return doc


def _wall_times(output: Path, spec: dict) -> dict[str, float]:
    """Training wall time per arm, summed over seeds (from each arm's manifest)."""
    out: dict[str, float] = {}
    for seed in spec["seeds"]:
        for arm in [*spec["arms"], *spec["controls"]]:
            m = _read(output / f"seed-{seed}" / "run" / arm / "manifest.json")
            if m:
                out[arm] = round(out.get(arm, 0.0) + float(m.get("wall_s", 0.0)), 1)
    return out
