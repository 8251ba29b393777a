"""``maw-bench smoke``: the whole pipeline on the built-in dataset, offline, in under 30 s on a 2-core CPU.

Trains the standard and the MAW (GRPO) arm for a few steps each, evaluates both and
the zero-shot encoder, tests significance, writes the report and plots, and prints
the table. Any failing stage makes the command exit non-zero, naming the stage.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

from maw_bench.config import BenchmarkConfig, parse_override, read_yaml_mapping, set_dotted
from maw_bench.errors import UserError
from maw_bench.outputs.layout import REFERENCE_ARM
from maw_bench.runtime.console import console, err_console

log = logging.getLogger("maw_bench")

RECIPE = "smoke.yaml"  # in maw_bench/recipes: 4 steps per arm, 50 test queries and their judged documents


def smoke_recipe() -> dict:
    """The built-in recipe, read from the package (so a pip install has it), sized for a first run under 30 s
    on a 2-core CPU in fp32."""
    from importlib.resources import files

    import yaml

    return yaml.safe_load(files("maw_bench.recipes").joinpath(RECIPE).read_text(encoding="utf-8"))


def smoke_config(config: Path | None, sets: list[str]) -> BenchmarkConfig:
    raw = smoke_recipe()
    if config is not None:
        _merge(raw, read_yaml_mapping(config))
    for item in sets:
        key, value = parse_override(item)
        set_dotted(raw, key, value)
    return BenchmarkConfig.from_dict(raw)


def _merge(base: dict, extra: dict) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def _stage(name: str, fn, *args, **kwargs):
    start = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
    except UserError:
        raise
    except Exception as exc:
        log.debug("".join(traceback.format_exception(exc)))
        raise StageFailed(name, exc) from exc
    log.info("stage %s done in %.1f s", name, time.perf_counter() - start)
    return out


class StageFailed(Exception):
    def __init__(self, stage: str, exc: Exception) -> None:
        super().__init__(f"smoke stage '{stage}' failed: {type(exc).__name__}: {exc}")
        self.stage = stage


def run_smoke(config: Path | None, sets: list[str], output: Path | None) -> int:
    """Run every stage; return the exit status (0 when all stages pass)."""
    from maw_bench.commands.report import write_run_plots
    from maw_bench.evaluation.pipeline import run_evaluation
    from maw_bench.outputs.folders import ensure_writable, new_output_dir
    from maw_bench.runtime.locks import folder_lock
    from maw_bench.training.run import train_arms

    begin = time.perf_counter()
    cfg = smoke_config(config, sets)
    output = ensure_writable(output, "smoke") if output else new_output_dir("smoke", cfg.data.eval)
    try:
        with folder_lock(output):
            run = output / "run"
            _stage("train", train_arms, cfg, [REFERENCE_ARM, "maw"], run, overwrite=True)
            _stage("eval", run_evaluation, cfg, [str(run), cfg.model.name], list(cfg.data.eval), output / "eval")
            _stage("report", write_run_plots, run, output)
    except StageFailed as exc:
        err_console.print(f"[red]maw-bench smoke: {exc}[/red]")
        return 1
    console.print(f"smoke passed in {time.perf_counter() - begin:.1f} s; outputs in {output}")
    return 0
