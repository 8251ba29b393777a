"""``maw-bench sweep FILE.yaml``: a grid of experiments that resumes where it stopped.

A sweep file::

    name: depth_layers                      # folder name under results/ (optional)
    base: ../scifact_finetune.yaml          # base config, relative to this file (optional)
    set: [train.max_steps=50]               # overrides applied to the base (optional)
    datasets: [beir/scifact/test]           # evaluation datasets (default: data.eval of the base)
    grid:                                   # any config keys; every combination is a cell
      maw.depth: [2, 4, 8]
      maw.layers: [[-1], [-2, -1]]
      maw.selection: [grpo, gumbel]
      seed: [1, 2, 3]
    standard: true                          # also train the standard arm it is compared with

MAW cells take the whole grid with ``maw.enabled=true``; standard cells take only
the grid's non-``maw.`` keys (e.g. the seeds). A cell is a folder named from its
values with ``run/`` (training) and ``eval/`` (evaluation) and, once finished,
``cell.json``; a rerun skips finished cells and resumes the unfinished one.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from maw_bench.commands import launch
from maw_bench.config import BenchmarkConfig, all_keys, read_yaml_mapping
from maw_bench.errors import UserError
from maw_bench.evaluation.seed_stats import mean_std
from maw_bench.outputs.folders import slug
from maw_bench.outputs.layout import CELL_FILE, REFERENCE_ARM, SWEEP_FILE
from maw_bench.runtime.atomic import read_json_file, write_json, write_text
from maw_bench.runtime.console import console

log = logging.getLogger("maw_bench")
SWEEP_KEYS = ("name", "base", "set", "datasets", "grid", "standard", "slurm")


@dataclass
class Cell:
    name: str
    arm: str  # "standard" or "maw"
    values: dict  # grid key -> value for this cell

    def overrides(self) -> list[str]:
        out = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}" for k, v in self.values.items()]
        return [*out, f"maw.enabled={'true' if self.arm == 'maw' else 'false'}"]


@dataclass
class SweepSpec:
    name: str
    base: BenchmarkConfig
    datasets: list[str]
    grid: dict[str, list]
    standard: bool
    slurm: dict


def _value_slug(v) -> str:
    if isinstance(v, list):
        return "_".join(_value_slug(x) for x in v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v).replace("-", "m")  # -1 -> m1, so [-1] and [1] get different names
    return slug(str(v), 40)


def cell_name(arm: str, values: dict) -> str:
    """``maw__depth-4__layers-m2_m1__selection-grpo__seed-1``: readable, unique, never a path."""
    parts = [arm] + [f"{k.split('.')[-1]}-{_value_slug(v)}" for k, v in values.items()]
    return slug("__".join(parts), 200).replace("/", "_")


def load_sweep(path: Path) -> SweepSpec:
    raw = read_yaml_mapping(path)
    unknown = [k for k in raw if k not in SWEEP_KEYS]
    if unknown:
        raise UserError(f"{path}: unknown sweep key {unknown[0]!r}; a sweep file has {', '.join(SWEEP_KEYS)}.")
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict) or not grid or any(not isinstance(v, list) or not v for v in grid.values()):
        raise UserError(f"{path}: 'grid' must map config keys to non-empty lists, e.g. maw.depth: [2, 4].")
    for k, values in grid.items():
        spelled = [json.dumps(v, sort_keys=True) for v in values]
        repeated = next((values[i] for i, v in enumerate(spelled) if v in spelled[:i]), None)
        if len(set(spelled)) < len(spelled):
            raise UserError(f"{path}: grid.{k} lists {repeated!r} more than once; a grid is a set (a repeated "
                            "seed would be one run counted twice): remove the repeat.")
    keys = set(all_keys())
    for k in grid:
        if k not in keys:
            BenchmarkConfig.load(overrides=[f"{k}=0"])  # raises the unknown-key error with a suggestion
    base_path = raw.get("base")
    base_file = (path.parent / base_path) if base_path and not Path(base_path).is_absolute() else base_path
    if base_file is not None and not Path(base_file).is_file() and Path(base_path).is_file():
        base_file = Path(base_path)
    base = BenchmarkConfig.load(base_file, overrides=list(raw.get("set") or []))
    datasets = list(raw.get("datasets") or base.data.eval)
    name = str(raw.get("name") or path.stem)
    slurm = raw.get("slurm") or {}
    if not isinstance(slurm, dict):
        raise UserError(f"{path}: 'slurm' must be a mapping such as {{partition: gpu, time_min: 120, gpus_per_cell: 1}}.")
    return SweepSpec(name, base, datasets, grid, bool(raw.get("standard", True)), slurm)


def expand(spec: SweepSpec) -> list[Cell]:
    """Every MAW cell of the grid, plus the standard cells (grid without maw.* keys)."""
    cells = []
    keys = list(spec.grid)
    for combo in itertools.product(*(spec.grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        cells.append(Cell(cell_name("maw", values), "maw", values))
    if spec.standard:
        std_keys = [k for k in keys if not k.startswith("maw.")]
        for combo in itertools.product(*(spec.grid[k] for k in std_keys)):
            values = dict(zip(std_keys, combo))
            cells.append(Cell(cell_name(REFERENCE_ARM, values), REFERENCE_ARM, values))
    seen: dict[str, Cell] = {}
    names: dict[str, Cell] = {}
    for c in cells:  # validate every cell before running any; a grid is a set of distinct experiments
        resolved = spec.base.with_overrides(c.overrides()).to_yaml()
        twin = seen.get(resolved) or names.get(c.name)
        if twin is not None:
            raise UserError(f"the grid gives the same experiment twice ({twin.name} and {c.name} have equal "
                            "settings once parsed); a grid is a set: remove one of the values.")
        seen[resolved], names[c.name] = c, c
    return cells


def run_cell(file: Path, output: Path, name: str) -> dict:
    """Train and evaluate one cell into ``output/cells/<name>`` (resuming what is there); return its record.

    A top-level function of plain arguments, so ``submitit`` can run it on a cluster node
    and a ``--jobs N`` child process can run it by name.
    """
    from maw_bench.evaluation.pipeline import run_evaluation
    from maw_bench.training.run import train_arms

    spec = load_sweep(Path(file))
    cell = next((c for c in expand(spec) if c.name == name), None)
    if cell is None:
        raise UserError(f"{file} has no cell {name!r}; list them with --dry-run.")
    folder = Path(output) / "cells" / cell.name
    done = folder / CELL_FILE
    if done.is_file():
        try:
            return json.loads(done.read_text())
        except (OSError, ValueError):
            log.warning("%s is damaged; finishing the cell again (its training resumes)", done)
    cfg = spec.base.with_overrides(cell.overrides())
    train_arms(cfg, [cell.arm], folder / "run", resume=(folder / "run").exists())
    out = run_evaluation(cfg, [str(folder / "run")], spec.datasets, folder / "eval", print_table=False)
    record = {"name": cell.name, "arm": cell.arm, "values": cell.values,
              "results": {d: m[cell.arm] for d, m in out.results.items()}}
    write_json(done, record)
    return record


def run_sweep(
    file: Path, output: Path | None, dry_run: bool, launcher: str = "serial", jobs: int = 1,
    slurm: dict | None = None,
) -> Path:
    """Run every unfinished cell (``serial``, ``local`` processes, or ``slurm``/``submitit-local`` jobs), then summarise."""
    from maw_bench.outputs.folders import ensure_writable
    from maw_bench.runtime.locks import folder_lock

    spec = load_sweep(file)
    cells = expand(spec)
    if dry_run:
        for c in cells:
            console.print(f"{c.name}  [dim]{' '.join(c.overrides())}[/dim]")
        console.print(f"{len(cells)} cells")
        return output or Path("results") / f"sweep-{slug(spec.name)}"
    output = ensure_writable(output or Path("results") / f"sweep-{slug(spec.name)}", "sweep")
    with folder_lock(output):
        write_json(output / SWEEP_FILE, {"name": spec.name, "datasets": spec.datasets, "grid": spec.grid,
                                           "cells": [{"name": c.name, "arm": c.arm, "values": c.values} for c in cells]})
        write_text(output / "base_config.yaml", spec.base.to_yaml())
        todo = []
        for i, c in enumerate(cells, 1):
            if (output / "cells" / c.name / CELL_FILE).is_file():
                console.print(f"[{i}/{len(cells)}] {c.name}: done, skipped")
            else:
                todo.append(c.name)
        if launcher == "serial":
            for name in todo:
                console.print(f"[{cells.index(next(c for c in cells if c.name == name)) + 1}/{len(cells)}] {name}")
                run_cell(file, output, name)
        elif launcher == "local":
            launch.run_local(file, output, todo, jobs)
        elif launcher in ("slurm", "submitit-local"):
            pending = launch.submit(file, output, todo, {**spec.slurm, **(slurm or {})}, run_cell, cluster=launcher)
            if pending:
                console.print(f"{len(pending)} cells queued or running; rerun this command to collect them.")
        else:
            raise UserError(f"--launcher {launcher}: use serial, local or slurm.")
        if any((output / "cells" / c.name / CELL_FILE).is_file() for c in cells):
            summarise_sweep(output)
    return output


# ------------------------------------------------------------------------ summary
def group_key(values: dict) -> tuple:
    return tuple((k, json.dumps(v)) for k, v in values.items() if k != "seed")


def summarise_cells(cells: list[dict], metrics: list[str]) -> list[dict]:
    """One row per (arm, config without seed, dataset): mean and std over seeds of each metric."""
    groups: dict[tuple, list[dict]] = {}
    for c in cells:
        for dataset, res in c["results"].items():
            groups.setdefault((c["arm"], group_key(c["values"]), dataset), []).append(res)
    rows = []
    for (arm, key, dataset), results in groups.items():
        row = {"arm": arm, "config": ", ".join(f"{k}={json.loads(v)}" for k, v in key) or "-", "dataset": dataset,
               "seeds": len(results), "values": dict((k, json.loads(v)) for k, v in key)}
        for m in metrics:
            row[m], row[f"{m}_std"] = mean_std([r[m] for r in results if m in r])
        rows.append(row)
    return rows


def summarise_sweep(output: Path) -> None:
    """Write summary.md/csv/tex and plots from the finished cells (recomputes nothing else)."""
    from maw_bench.evaluation.significance import compare
    from maw_bench.outputs.plots import depth_histograms, loss_curves, metric_vs_depth
    from maw_bench.outputs.records import read_log, read_per_query
    from maw_bench.outputs.tables import sweep_tables

    sweep = read_json_file(output / SWEEP_FILE, "rerun `maw-bench sweep FILE` with this --output to rewrite it")
    again = "rerun `maw-bench sweep FILE` with this --output: a damaged cell is finished again"
    done = [read_json_file(output / "cells" / c["name"] / CELL_FILE, again)
            for c in sweep["cells"] if (output / "cells" / c["name"] / CELL_FILE).is_file()]
    if not done:
        raise UserError(f"{output}: no finished cell to summarise yet.")
    metrics = list(next(iter(done[0]["results"].values())).keys())
    rows = summarise_cells(done, metrics)

    # paired significance: each MAW config against the standard arm, per-query scores averaged over seeds
    per_query: dict = {}
    for arm_label, cells in _by_config(done).items():
        for c in cells:
            for dataset, per_model in read_per_query(output / "cells" / c["name"] / "eval").items():
                slot = per_query.setdefault(dataset, {}).setdefault(arm_label, {})
                for metric, scores in next(iter(per_model.values())).items():
                    acc = slot.setdefault(metric, {})
                    for q, v in scores.items():
                        acc[q] = acc.get(q, 0.0) + v / len(cells)
    comparisons = [c.to_dict() for c in compare(per_query, REFERENCE_ARM, metrics)] if any(
        REFERENCE_ARM in m for m in per_query.values()) else []
    files = sweep_tables(rows, metrics, comparisons)
    for name, text in files.items():
        write_text(output / name, text)
    write_json(output / "comparisons.json", comparisons)

    main = metrics[0]
    for dataset in sorted({r["dataset"] for r in rows}):
        plot_rows = []
        for r in rows:
            if r["dataset"] != dataset:
                continue
            depth = r["values"].get("maw.depth") if r["arm"] == "maw" else None
            series = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in r["values"].items() if k != "maw.depth") or "maw"
            if r["arm"] == "maw" and depth is None:
                depth = sweep_base_depth(output)
            plot_rows.append({"depth": depth, "series": series, "mean": r[main], "std": r[f"{main}_std"]})
        metric_vs_depth(plot_rows, main, output / f"{slug(dataset)}_{slug(main)}_vs_depth.png")
    logs = {c["name"]: read_log(output / "cells" / c["name"] / "run" / c["arm"]) for c in done}
    loss_curves(logs, output / "loss_curves.png")
    depth_histograms({k: v for k, v in logs.items() if k.startswith("maw")}, output / "depth_histograms.png")
    console.print(f"summary in {output / 'summary.md'}")


def sweep_base_depth(output: Path) -> int | None:
    try:
        return yaml.safe_load((output / "base_config.yaml").read_text())["maw"]["depth"]
    except (OSError, KeyError, TypeError):
        return None


def _by_config(done: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in done:
        label = REFERENCE_ARM if c["arm"] == REFERENCE_ARM else "maw: " + ", ".join(
            f"{k.split('.')[-1]}={v}" for k, v in c["values"].items() if k != "seed")
        out.setdefault(label, []).append(c)
    return out
