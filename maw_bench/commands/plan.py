"""``maw-bench plan``: how many seeds a study needs, from the variance components it measured.

Two questions per comparison: how many seeds detect a difference of ``delta`` (the difference test), and how
many show equivalence within ``+-margin`` if the arms are in truth the same (TOST, the study's margin by
default). Both use the crossed model and the same Satterthwaite rule as the study's own test
(:mod:`maw_bench.evaluation.crossed`), at the queries the study scored.
"""

from __future__ import annotations

from pathlib import Path

from maw_bench.errors import UserError
from maw_bench.evaluation.crossed import seeds_for_equivalence, seeds_needed
from maw_bench.runtime.atomic import read_json_file
from maw_bench.runtime.console import console

MAX_SEEDS = 1000


def plan_lines(doc: dict, delta: float, power: float, margin: float | None) -> list[str]:
    """One line per comparison of the summary's first metric: seeds to detect ``delta``, to show equivalence."""
    metric = doc["metrics"][0]
    lines = []
    for c in (c for c in doc["comparisons"] if c["metric"] == metric):
        head = f"  {c['dataset']} {c['arm']}: "
        if c["seeds"] < 2:
            lines.append(head + "cannot tell (1 seed: the seed variance is not estimated; run at least 2 seeds)")
            continue
        comps = (c["var_seed"], c["var_query"], c["var_resid"], c["queries"])
        need = seeds_needed(*comps, delta, power, MAX_SEEDS)
        now = f"now {c['seeds']} seeds, smallest detectable ±{c['min_detectable']:.4f}"
        if c["min_detectable"] <= abs(delta) and (need is None or need > c["seeds"]):
            # the study's SE uses the seed mean square it measured, below what REML's components (seed 0) imply
            detect = (f"detect: detectable now ({now}, the seed mean square as measured); {need or 'more than 1000'} "
                      "seeds at the components' expected mean squares")
        elif need:
            detect = f"detect: {need} seeds ({now})"
        else:
            detect = f"detect: more than {MAX_SEEDS} seeds ({now}); the query variance bounds it: more queries, not seeds"
        lines.append(head + detect + (f"; {_equivalence(c, comps, margin, power)}" if margin else ""))
    return lines


def _equivalence(c: dict, comps: tuple, margin: float, power: float) -> str:
    need = seeds_for_equivalence(*comps, margin, power, 0.0, MAX_SEEDS)
    now = f"now equivalent within ±{c['equivalent_within']:.4f}" if c.get("equivalent_within") is not None else ""
    if need is None:
        return (f"equivalence ±{margin:g}: more than {MAX_SEEDS} seeds{f' ({now})' if now else ''}; the query variance "
                "bounds it: more queries, not seeds")
    return f"equivalence ±{margin:g}: {need} seeds{f' ({now})' if now else ''}"


def run_plan(study: Path, delta: float, power: float, margin: float | None) -> None:
    """Print the plan of a study folder (its summary.json)."""
    if not 0 < power < 1 or delta == 0:
        raise UserError("--power must be in (0, 1) and --delta non-zero, e.g. --delta 0.005 --power 0.8.")
    if margin is not None and margin <= 0:
        raise UserError(f"--equivalence-margin must be positive (got {margin:g}), e.g. --equivalence-margin 0.01.")
    doc = read_json_file(study / "summary.json", f"run `maw-bench report {study}` to write it")
    margin = doc.get("equivalence_margin") if margin is None else margin
    metric = doc["metrics"][0]
    eq = f", and to show equivalence within ±{margin:g} when the arms are the same" if margin else ""
    console.print(f"{study}: seeds needed to detect Δ = {delta:g} in {metric}{eq}, with power {power:g} at 5% "
                  "(the same queries; crossed model with the components measured):")
    for line in plan_lines(doc, delta, power, margin):
        console.print(line)
