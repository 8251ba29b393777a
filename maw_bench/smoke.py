"""``maw-bench smoke``: the whole pipeline on the built-in dataset, offline, in under a minute.

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
from maw_bench.console import console, err_console
from maw_bench.errors import UserError
from maw_bench.results.layout import REFERENCE_ARM

log = logging.getLogger("maw_bench")

# The built-in smoke recipe; configs/smoke.yaml is the same (a test keeps them equal). Sized for a first
# run under a minute on a 2-core CPU in fp32: 4 steps per arm, 50 test queries and their judged documents.
SMOKE: dict = {
    "seed": 13,
    "model": {"max_length": 96, "query_max_length": 32},
    "maw": {"depth": 4, "layers": [-1], "selection": "grpo", "grpo": {"group_size": 4}},
    "data": {
        "train": "builtin", "train_split": "train", "eval": ["builtin"], "eval_split": "test",
        "max_queries": 50, "max_docs": 250, "negatives": {"source": "bm25", "bm25_window": [5, 50]},
    },
    "train": {"max_steps": 4, "batch_size": 16, "lr": 5e-5, "router_lr": 5e-3, "warmup_ratio": 0.1, "dtype": "auto",
              "negatives": 1},
    "eval": {"dtype": "auto", "batch_size": 32, "metrics": ["ndcg@10", "mrr@10", "recall@10", "map@100"]},
}


def smoke_config(config: Path | None, sets: list[str]) -> BenchmarkConfig:
    import copy

    raw = copy.deepcopy(SMOKE)
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
    from maw_bench.evaluation.pipeline import run_evaluation
    from maw_bench.locks import folder_lock
    from maw_bench.report import write_run_plots
    from maw_bench.results.folders import ensure_writable, new_output_dir
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
