"""``maw-bench train``: one run folder, one or both arms, the same data and seed for each.

Layout::

    RUN/run.json                  arms, dataset ids, creation time
    RUN/<arm>/model/              the final encoder (``load_encoder``)
    RUN/<arm>/checkpoints/        step-XXXXXXX (newest two)
    RUN/<arm>/train_log.jsonl     one line per optimiser step
    RUN/<arm>/config.yaml         the resolved config of that arm
    RUN/<arm>/manifest.json       versions, git commit, seed, datasets, device, wall time
"""

from __future__ import annotations

import functools
import json
import logging
import platform
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

import torch

from maw_bench.config import BenchmarkConfig
from maw_bench.data import apply_caps, build_examples, check_leakage, load_bundle
from maw_bench.data.bundle import DatasetBundle
from maw_bench.data.leakage import drop_leaked
from maw_bench.data.negatives import TrainingExample
from maw_bench.data.rows import RowsBundle, is_rows_spec, load_rows
from maw_bench.errors import UserError
from maw_bench.modeling import build_encoder
from maw_bench.modeling.encoder import check_model_fits
from maw_bench.modeling.export import export_sentence_transformers, exportable
from maw_bench.modeling.saving import META_FILE, save_encoder
from maw_bench.modeling.st_recipe import resolve_config_recipe
from maw_bench.outputs.layout import ARM_ENTRIES, RUN_FILE
from maw_bench.runtime.atomic import write_json, write_text
from maw_bench.runtime.distributed import setup as dist_setup
from maw_bench.runtime.hardware import keep_freed_memory, resolve_config_dtypes
from maw_bench.training.trainer import Trainer, TrainResult, apply_lora, merge_lora

log = logging.getLogger("maw_bench")


def arm_config(cfg: BenchmarkConfig, arm: str) -> BenchmarkConfig:
    """The config of a named arm (``arms:`` of the config, or a control ``<arm>-uniform``/``<arm>-fixed<t>``)."""
    return cfg.arm(arm)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("maw-bench", "torch", "transformers", "ir_datasets", "ranx", "peft", "bm25s"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the code this process loaded (read once: HEAD may move while a long study runs)."""
    try:
        here = Path(__file__).resolve().parent
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return res.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def prepare_data(cfg: BenchmarkConfig) -> tuple[DatasetBundle, list[TrainingExample], dict]:
    """The training bundle and examples (shared by both arms) after caps and the leakage check."""
    t = cfg.train
    if is_rows_spec(cfg.data.train):  # (query, positive[, negatives]) rows through HF datasets
        rows_limit = t.max_steps * t.batch_size * t.grad_accum if t.max_steps > 0 else None
        train = load_rows(cfg.data.train, dict(cfg.data.columns), t.negatives, rows_limit)
    else:
        train = load_bundle(cfg.data.train, cfg.data.train_split)
    apply_caps(train, cfg.data.max_queries, cfg.data.max_docs, cfg.seed)
    evals = [load_bundle(spec, cfg.data.eval_split) for spec in cfg.data.eval]
    reports = check_leakage(train, evals, cfg.data.allow_leakage or cfg.data.drop_leaked)
    dropped = drop_leaked(train, reports) if cfg.data.drop_leaked else 0
    if dropped:
        log.warning("dropped %d training queries that also appear in evaluation (data.drop_leaked)", dropped)
    limit = None
    if isinstance(train, RowsBundle) and (train.has_docpairs() or t.negatives == 0):
        kept = train.judged_queries()
        examples = [e for e in train.examples if e.query_id in kept]
        return train, examples, _data_info(train, examples, reports, dropped)
    if train.has_docpairs() and (cfg.data.negatives.source == "triples" or not train.has_qrels()):
        steps = t.max_steps if t.max_steps > 0 else None
        limit = steps * t.batch_size * t.grad_accum if steps else (cfg.data.max_queries or None)
    examples = build_examples(
        train, cfg.data.negatives.source, t.negatives, tuple(cfg.data.negatives.bm25_window), cfg.seed, limit
    )
    return train, examples, _data_info(train, examples, reports, dropped)


def _data_info(train: DatasetBundle, examples: list[TrainingExample], reports, dropped: int) -> dict:
    return {
        "train": {"id": train.id, "examples": len(examples), "queries": len(train.judged_queries())},
        "leakage": {r.eval_id: r.count for r in reports},
        "dropped_training_queries": dropped,
    }


def has_progress(output: Path) -> bool:
    """Whether a run folder holds anything to resume from: a valid checkpoint or a finished arm."""
    from maw_bench.training.checkpoint import latest_valid

    for arm in output.iterdir() if output.is_dir() else []:
        if arm.is_dir() and ((arm / "model" / META_FILE).is_file() or latest_valid(arm / "checkpoints")):
            return True
    return False


def check_run_folder(output: Path, resume: bool, overwrite: bool, require_checkpoint: bool = False) -> None:
    if require_checkpoint and not overwrite and not has_progress(output):
        raise UserError(f"--resume: {output} holds no checkpoint to continue from; drop --resume to start the run, "
                        "or use --resume auto to continue when there is one.")
    if (output / RUN_FILE).is_file() and not (resume or overwrite):
        raise UserError(f"{output} already holds a training run; pass --resume to continue it or --overwrite to replace it.")
    if overwrite and (output / RUN_FILE).is_file():
        try:
            old = json.loads((output / RUN_FILE).read_text()).get("arms", [])
        except (OSError, ValueError, AttributeError):
            old = []
        for arm in old if isinstance(old, list) else []:
            remove_arm_outputs(output, str(arm))


def remove_arm_outputs(output: Path, arm: str) -> None:
    """What training wrote into ``output/arm`` (:data:`ARM_ENTRIES`), for ``--overwrite``; a file a user put
    there stays (a warning says so), and a name that is not one folder inside ``output`` is left alone."""
    folder = output / arm
    if Path(arm).name != arm or arm in ("", ".", "..") or not folder.is_dir() or folder.is_symlink():
        return
    # ARM_ENTRIES, and what an interrupted atomic write of one left (".model.tmp-PID", ".manifest.json.XYZ.tmp")
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(tuple(f".{n}." for n in ARM_ENTRIES))
                 and (".tmp-" in p.name or p.name.endswith(".tmp"))]
    for name in (*ARM_ENTRIES, *leftovers):
        entry = folder / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()
    kept = sorted(p.name for p in folder.iterdir())
    if kept:
        log.warning("--overwrite: kept %d file(s) maw-bench did not write in %s (%s)", len(kept), folder,
                    ", ".join(kept[:3]) + (" ..." if len(kept) > 3 else ""))
    else:
        folder.rmdir()


# keys a resumed run may change: how long it trains and what it logs (and everything about evaluation)
RESUMABLE_CHANGES = ("train.max_steps", "train.epochs", "train.save_every", "train.log_every", "train.report_to",
                     "train.deterministic", "data.eval", "data.eval_split", "data.allow_leakage", "eval.", "arms.")


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and k not in ("columns",):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resume_conflicts(stored: dict, current: dict) -> list[str]:
    """Keys whose value differs between an arm's stored ``config.yaml`` and today's config.

    Only keys both know are compared (a key added to the schema since the run started is
    not a change), and not the ones a resume may change (:data:`RESUMABLE_CHANGES`).
    """
    old, new = _flat(stored), _flat(current)
    return sorted(k for k in old.keys() & new.keys()
                  if not k.startswith(RESUMABLE_CHANGES) and old[k] != new[k])


def check_resume_matches(output: Path, cfg: BenchmarkConfig, arms: list[str]) -> None:
    """``--resume`` continues the run that is there, or refuses in one line naming what changed."""
    import yaml

    for arm in arms:
        path = output / arm / "config.yaml"
        if not path.is_file():
            continue
        try:
            stored = yaml.safe_load(path.read_text())
            if not isinstance(stored, dict):
                raise ValueError
        except (OSError, ValueError, yaml.YAMLError):
            raise UserError(f"{path} is damaged (not the YAML maw-bench wrote); start the run again with "
                            "--overwrite, or restore the file.") from None
        changed = resume_conflicts(stored, arm_config(cfg, arm).to_dict())
        if changed:
            flat = _flat(stored)
            shown = ", ".join(f"{k} (was {flat[k]!r})" for k in changed[:4])
            raise UserError(f"--resume: arm {arm} in {output} was started with other settings: {shown}"
                            f"{' ...' if len(changed) > 4 else ''}; rerun with those values, or start a new run "
                            "(another --output, or --overwrite).")


def run_record(output: Path, arms: list[str], resume: bool, data: dict, world_size: int, precision: dict,
               model: dict | None = None) -> dict:
    """``run.json`` after this call. A resume keeps the arms already there (then adds new ones) and the
    time the run was created, and notes when it was resumed."""
    old: dict = {}
    if resume:
        try:
            old = json.loads((output / RUN_FILE).read_text())
        except (OSError, ValueError):
            old = {}
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    previous = [str(a) for a in old.get("arms", [])]
    record = {"arms": previous + [a for a in arms if a not in previous], "created": old.get("created", now),
              "data": data, "world_size": world_size, "precision": precision, **({"model": model} if model else {})}
    if old:
        record["resumed"] = now
    return record


def model_record(cfg: BenchmarkConfig) -> dict:
    """What run.json says of the backbone: its name, hub revision and attention kernel ('' = transformers' default)."""
    return {"name": cfg.model.name, "revision": cfg.model.revision or "default branch",
            "attn_implementation": cfg.model.attn_implementation or "transformers' default",
            "weights_dtype": cfg.model.weights_dtype}


def train_arms(
    cfg: BenchmarkConfig,
    arms: list[str],
    output: Path,
    resume: bool = False,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    stop_after: int | None = None,
    require_checkpoint: bool = False,
) -> dict[str, TrainResult | None]:
    """Train every arm into ``output``; a finished arm is skipped on ``resume``.

    ``require_checkpoint``: the user asked to resume, so a folder with nothing to resume
    from is an error rather than a silent fresh start.
    """
    check_arms(cfg, arms)
    commit = git_commit()  # the code this process runs: read now, not when an arm finishes hours later
    ctx = dist_setup(device)
    cfg, precision = resolve_config_dtypes(resolve_config_recipe(cfg), ctx.device, ctx.world_size, uses=("train",))
    if ctx.is_main and cfg.model.similarity == "dot" and cfg.train.temperature < 1:
        log.warning("model.similarity=dot with train.temperature=%g: InfoNCE divides unnormalised dot products "
                    "(tens to hundreds for such models) by it; dot-product retrievers are trained with "
                    "temperature 1 (DPR, Tevatron): set train.temperature=1 unless you mean it", cfg.train.temperature)
    if ctx.device.type == "cpu":
        keep_freed_memory()  # steps reuse their buffers instead of page-faulting them in again
    if ctx.is_main:
        check_run_folder(output, resume, overwrite, require_checkpoint)
    if resume and not overwrite:
        check_resume_matches(output, cfg, arms)  # every rank: each must refuse, not wait at a barrier
    ctx.barrier()
    output.mkdir(parents=True, exist_ok=True)
    finished = [a for a in arms if (output / a / "model" / META_FILE).is_file()]
    bundle, examples, info = prepare_data(cfg)
    if ctx.is_main and not (resume and len(finished) == len(arms)):  # a run that trains nothing rewrites nothing
        write_json(output / RUN_FILE, run_record(output, arms, resume, info, ctx.world_size, precision["train"],
                                                      model_record(cfg)))
    torch.use_deterministic_algorithms(cfg.train.deterministic, warn_only=True)
    results: dict[str, TrainResult | None] = {}
    for arm in arms:
        folder = output / arm
        if arm in finished and resume:
            log.info("%s is finished; skipping", folder)
            results[arm] = None
            continue
        acfg = arm_config(cfg, arm)
        encoder, trainer, result = train_one_arm(cfg, acfg, folder, bundle, examples, ctx, resume, stop_after)
        results[arm] = result
        if result.steps < trainer.total_steps:
            log.info("%s stopped at step %d of %d; rerun with --resume", arm, result.steps, trainer.total_steps)
        elif ctx.is_main:
            finish_arm(cfg, acfg, arm, folder, encoder, result, info, ctx, commit, precision["train"])
    ctx.barrier()
    return results


def check_arms(cfg: BenchmarkConfig, arms: list[str]) -> None:
    """Every arm named once, known, and fitting the model: before any data work."""
    if not arms:
        raise UserError(f"--arms is empty; use names from the config's arms: {', '.join(cfg.arms)}.")
    if len(set(arms)) != len(arms):
        raise UserError(f"--arms {','.join(arms)} names an arm twice.")
    for arm in arms:
        check_model_fits(arm_config(cfg, arm))  # an unknown arm fails in arm_config


def train_one_arm(cfg: BenchmarkConfig, acfg: BenchmarkConfig, folder: Path, bundle, examples, ctx, resume: bool,
                  stop_after: int | None):
    """Build the arm from ``cfg.seed`` and train it from the same RNG stream as every other arm."""
    device = ctx.device
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(acfg, device)
    if acfg.train.lora.enabled:
        apply_lora(encoder, acfg.train.lora)
    ddp = None
    if ctx.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(encoder, device_ids=[device.index] if device.type == "cuda" else None)
    trainer = Trainer(encoder, bundle, examples, acfg, folder, device, ctx.rank, ctx.world_size, ddp, stop_after)
    folder.mkdir(parents=True, exist_ok=True)
    if ctx.is_main:
        write_text(folder / "config.yaml", acfg.to_yaml())
    torch.manual_seed(cfg.seed)  # the same RNG stream (dropout, sampling) for every arm
    return encoder, trainer, trainer.train(resume=resume)


def finish_arm(cfg: BenchmarkConfig, acfg: BenchmarkConfig, arm: str, folder: Path, encoder, result: TrainResult,
               info: dict, ctx, commit: str | None, precision: dict) -> None:
    """Save the trained arm, its sentence-transformers export (where it can be exported) and its manifest."""
    if acfg.train.lora.enabled:
        merge_lora(encoder)
    save_encoder(encoder, folder / "model")
    if exportable(encoder) is None:  # the field's tools load this arm (MAW arms with their code)
        export_sentence_transformers(encoder, folder / "sentence-transformers", overwrite=True, provenance={
            "arm": arm, "base_model": cfg.model.name, "train_data": info["train"]["id"], "seed": cfg.seed,
            "steps": result.steps, "fine_tuned": True, "maw_bench": versions().get("maw-bench")})
    device = ctx.device
    write_json(folder / "manifest.json", {
        "arm": arm,
        "seed": cfg.seed,
        "steps": result.steps,
        "examples": result.examples,
        "final_loss": result.final_loss,
        "wall_s": round(result.wall_s, 6),  # at its precision: a tiny run on a fast CPU takes well under 0.01 s
        **({"wall_s_partial": True} if result.wall_s_partial else {}),  # a leg's time before a resume is unknown
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "world_size": ctx.world_size,
        "dtype": acfg.train.dtype,
        "precision": precision,  # how the dtype was chosen: as configured, or auto with the measured bf16 speed-up
        "params_added": encoder.params_added,
        # the weights trained at train.router_lr (Encoder.added_parameters): a study refuses to mix seeds whose
        # roles differ (before this was recorded, diff's second query/key trained at train.lr)
        "router_lr_params": sum(p.numel() for p in encoder.added_parameters()),
        "attention": "maw" if acfg.maw.enabled else acfg.attention.mechanism,
        "datasets": info,
        "versions": versions(),
        "git_commit": commit,
    })
