"""``maw-bench report``: rebuild tables and plots from existing folders, recomputing nothing."""

from __future__ import annotations

import json
from pathlib import Path

from maw_bench.errors import UserError
from maw_bench.outputs.eval_report import report_markdown
from maw_bench.outputs.layout import METRICS_FILE, RUN_FILE, STUDY_FILE, SWEEP_FILE
from maw_bench.outputs.plots import depth_histograms, eval_plots, loss_curves
from maw_bench.outputs.records import read_log, read_per_query
from maw_bench.outputs.tables import latex_table, rich_table
from maw_bench.runtime.atomic import read_json_file, write_json, write_text
from maw_bench.runtime.console import console


def write_run_plots(run: Path, out: Path) -> list[Path]:
    """Loss curves and depth histograms of a training run folder."""
    from maw_bench.evaluation.models import read_run_arms

    arms = read_run_arms(run)
    logs = {arm: read_log(run / arm) for arm in arms}
    written = [loss_curves(logs, out / "loss_curves.png")]
    hist = depth_histograms(logs, out / "depth_histograms.png")
    if hist is not None:
        written.append(hist)
    return written


def rebuild_eval(folder: Path) -> None:
    doc = read_json_file(folder / METRICS_FILE, "rerun the evaluation into a new --output to rebuild it")
    try:
        metrics, results, comps, ref = doc["metrics"], doc["results"], doc["comparisons"], doc["reference"]
    except (KeyError, TypeError):
        raise UserError(f"{folder / 'metrics.json'} is not a maw-bench metrics file (keys missing); rerun the "
                        "evaluation into a new --output.") from None
    write_text(folder / "report.md", report_markdown(doc))
    write_text(folder / "report.tex", latex_table(results, metrics, comps, ref))
    if (folder / "per_query.csv").is_file():
        eval_plots(doc, read_per_query(folder), folder)
    console.print(rich_table(results, metrics, comps, title=f"{folder} (reference: {ref})"))


def rescore_study(folder: Path, overrides: list[str]) -> None:
    """Re-score each seed's evaluation of a study from its kept rankings (``evaluation/rescore.py``), with the
    study's config and ``overrides``; the study's config in study.json records the settings it was re-scored with."""
    from maw_bench.commands.study import KEPT_RUN_SUFFIX
    from maw_bench.config import BenchmarkConfig
    from maw_bench.config.parsing import parse_override, set_dotted
    from maw_bench.evaluation.rescore import kept_runs, rescore_evaluation

    spec = read_json_file(folder / STUDY_FILE, "--rescore re-scores a study folder (study.json)")
    raw = json.loads(json.dumps(spec["config"]))  # a deep copy to override
    for item in overrides:
        set_dotted(raw, *parse_override(item))
    cfg = BenchmarkConfig.from_dict(raw)
    evals = [folder / f"seed-{s}" / "eval" for s in spec["seeds"] if (folder / f"seed-{s}" / "eval" / METRICS_FILE).is_file()]
    if not evals:
        raise UserError(f"{folder}: no evaluated seed to re-score.")
    for ev in evals:  # every seed's rankings are there before any is rewritten
        kept_runs(ev, read_json_file(ev / METRICS_FILE, "rerun the study"), KEPT_RUN_SUFFIX)
    for ev in evals:
        rescore_evaluation(ev, cfg, list(spec["datasets"]), KEPT_RUN_SUFFIX)
        console.print(f"re-scored {ev}")
    write_json(folder / STUDY_FILE, {**spec, "config": cfg.to_dict()})


def rebuild(folders: list[Path], equivalence_margin: float | None = None) -> None:
    from maw_bench.commands.sweep import summarise_sweep

    for folder in folders:
        if (folder / METRICS_FILE).is_file():
            rebuild_eval(folder)
        elif (folder / RUN_FILE).is_file():
            for p in write_run_plots(folder, folder):
                console.print(f"wrote {p}")
        elif (folder / SWEEP_FILE).is_file():
            summarise_sweep(folder)
        elif (folder / STUDY_FILE).is_file():
            from maw_bench.commands.study import summarise_study

            summarise_study(folder, equivalence_margin)
        elif (folder / "eval" / METRICS_FILE).is_file():  # a smoke folder
            rebuild_eval(folder / "eval")
            if (folder / "run" / RUN_FILE).is_file():
                write_run_plots(folder / "run", folder)
        else:
            raise UserError(f"{folder} is not an eval, training-run or sweep folder; nothing to rebuild.")
