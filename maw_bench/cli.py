"""The ``maw-bench`` command line: thin Typer commands over ``BenchmarkConfig``.

Every user mistake ends as one line on stderr with exit status 2 (``--debug``
shows the traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import typer
from typer.core import TyperGroup

from maw_bench.config import shorthand_help
from maw_bench.errors import UserError


class MawGroup(TyperGroup):
    """Turns a ``UserError`` into one line and exit 2 (a traceback with ``--debug``), Ctrl-C into exit 130."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """``--resume auto`` is spelled as one option to the commands (``--resume-auto``)."""
        out: list[str] = []
        for a in args:
            if a == "auto" and out and out[-1] == "--resume":
                out[-1] = "--resume-auto"
            else:
                out.append(a)
        return super().parse_args(ctx, out)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            print(f"maw-bench: error: {exc}", file=sys.stderr)
            ctx.exit(2)
        except KeyboardInterrupt:
            print("maw-bench: interrupted; rerun the same command (with --resume for train) to continue.",
                  file=sys.stderr)
            ctx.exit(130)
        except (typer.exceptions.TyperException, typer.Exit, typer.Abort, click.exceptions.Exit,
                click.ClickException, click.exceptions.Abort):
            raise  # exit codes and usage errors: typer (and its click) print their own
        except Exception as exc:  # the last resort: whatever no check foresaw is still one line
            if (ctx.obj or {}).get("debug"):
                raise
            if isinstance(exc, OSError) and exc.filename:
                print(f"maw-bench: error: cannot use {exc.filename}: {exc.strerror or one_line(exc)} "
                      f"({type(exc).__name__}); free space or fix its permissions (or choose another folder) and "
                      "rerun the same command: finished work is kept.", file=sys.stderr)
            else:
                print(f"maw-bench: error: {one_line(exc)} ({type(exc).__name__}); rerun with --debug for the "
                      "traceback.", file=sys.stderr)
            ctx.exit(1)


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


app = typer.Typer(
    cls=MawGroup,
    add_completion=True,
    no_args_is_help=True,
    help="Does Multi-Attention-Weight attention make a better dense retriever? Train, evaluate, compare.",
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(no_args_is_help=True, help="List and check datasets.")
app.add_typer(datasets_app, name="datasets")

CONFIG_OPT = typer.Option(None, "--config", "-c", help="YAML config file.")
SET_OPT = typer.Option(None, "--set", "-s", help="Override a config key: key=value (repeatable).")
DATASET_OPT = typer.Option(None, "--dataset", "-d", help="ir_datasets id, BEIR folder or builtin (repeatable).")
BEIR_OPT = typer.Option(None, "--beir", help="BEIR collection name, e.g. scifact (repeatable).")
SPLIT_OPT = typer.Option(None, "--split", help="Split of a local BEIR folder / builtin.")


def _print_version(value: bool) -> None:
    if value:
        from maw_bench import __version__

        print(f"maw-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors and debug-level logs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars and only warnings in the log "
                               "(bars are also off when stdout or stderr is not a terminal)."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    from maw_bench.evaluation.metrics import _numba_cache
    from maw_bench.runtime.console import setup_logging
    from maw_bench.runtime.progress import quiet_third_party_bars, set_quiet

    ctx.obj = {"debug": debug}
    setup_logging(verbose=debug, quiet=quiet)
    set_quiet(quiet)
    quiet_third_party_bars()  # before ir_datasets, transformers or tqdm is imported
    _numba_cache()  # ranx's numba JIT is compiled once per machine, into maw-bench's cache folder


def load_config(config: Path | None, sets: list[str] | None, extra: list[str] | None = None):
    from maw_bench.config import BenchmarkConfig

    return BenchmarkConfig.load(config, overrides=[*(extra or []), *(sets or [])])


def _eval_specs(datasets: list[str] | None, beir: list[str] | None, msmarco: bool, split: str) -> list[str]:
    from maw_bench.data.registry import MSMARCO_EVAL, beir_shortcut

    out = list(datasets or [])
    out += [beir_shortcut(name, split) for name in beir or []]
    if msmarco:
        out += MSMARCO_EVAL
    return out


def arm_names(cfg, arms: list[str], controls: bool) -> list[str]:
    """The arms to train: the named ones, then (``--controls``) each MAW arm's uniform and fixed:t controls."""
    from maw_bench.config import control_arms

    out = list(arms)
    if controls:
        for arm in arms:
            out += [c for c in control_arms(cfg, arm) if c not in out]
    return out


def warn_ignored(cfg, arms: list[str]) -> None:
    """Warn once per setting that no arm uses (``maw.*`` keys count only in MAW arms); never silence."""
    import logging

    per_arm = []
    for arm in arms:
        acfg = cfg.arm(arm)
        lines = {line.split(" ")[0].split("=")[0]: line for line in acfg.ignored_settings()}
        per_arm.append((acfg.maw.enabled, lines))
    keys = {k for _, lines in per_arm for k in lines}
    for key in sorted(keys):
        relevant = [lines for enabled, lines in per_arm if enabled or not key.startswith("maw.")]
        if relevant and all(key in lines for lines in relevant):
            logging.getLogger("maw_bench").warning(relevant[0][key])


def train_shorthands(trust_remote_code: bool, msmarco: bool, dataset: str | None, train_data: str | None,
                     split: str | None, maw_keys: dict) -> list[str]:
    """The overrides ``train``'s shorthand options stand for (``--set`` values given after them win)."""
    from maw_bench.data.registry import MSMARCO_EVAL, MSMARCO_TRAIN

    extra = ["model.trust_remote_code=true"] if trust_remote_code else []
    if msmarco:
        extra += [f"data.train={MSMARCO_TRAIN}", f"data.eval={MSMARCO_EVAL}", "data.negatives.source=triples"]
    extra += [f"data.train={x}" for x in (dataset, train_data) if x]
    if split:
        extra.append(f"data.train_split={split}")
    return extra + [f"{key}={value}" for key, value in maw_keys.items() if value is not None]


@app.command()
def train(
    config: Path = CONFIG_OPT,
    sets: list[str] = SET_OPT,
    dataset: str = typer.Option(None, "--dataset", "-d", help="Training dataset (ir_datasets id, BEIR folder, builtin)."),
    train_data: str = typer.Option(None, "--train-data", help="Training rows (query, positive[, negatives]): "
                                   "hf:ORG/NAME[:config][@split] or a .jsonl/.parquet/.csv file (data.train)."),
    msmarco: bool = typer.Option(False, "--msmarco", help="Train on MS MARCO triples; evaluate on dev/small, DL19, DL20."),
    split: str = SPLIT_OPT,
    arms: str = typer.Option(
        "maw", "--arms", help="Named arms from the config's arms: (standard, maw, maw-nested, ...), comma-separated; "
        "same seed, data and steps for each."),
    controls: bool = typer.Option(
        False, "--controls", help="Add the controls of every MAW arm: <arm>-uniform and <arm>-fixed<t> for each depth."),
    use_maw: bool = typer.Option(False, "--use-maw", help="Shorthand for --arms maw."),
    maw_depth: int = typer.Option(None, "--maw-depth", help=shorthand_help("maw.depth", "4")),
    maw_layers: str = typer.Option(None, "--maw-layers", help=shorthand_help("maw.layers", "-1, [-2,-1], all")),
    maw_selection: str = typer.Option(None, "--maw-selection", help=shorthand_help("maw.selection", "fixed:0")),
    output: Path = typer.Option(None, "--output", "-o", help="Run folder (default: results/train-...)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --output from its last checkpoint (an error if there is none); "
        "--resume auto continues if there is one and starts otherwise."),
    resume_auto: bool = typer.Option(False, "--resume-auto", hidden=True, help="Spelled --resume auto."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run in --output."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow model code from the hub to run."),
) -> None:
    """Fine-tune the standard and/or MAW arm contrastively (InfoNCE + hard negatives; GRPO router)."""
    from maw_bench.outputs.folders import ensure_writable, new_output_dir, removed_if_refused
    from maw_bench.runtime.console import console
    from maw_bench.runtime.locks import folder_lock
    from maw_bench.training.run import train_arms

    extra = train_shorthands(trust_remote_code, msmarco, dataset, train_data, split,
                             {"maw.depth": maw_depth, "maw.layers": maw_layers, "maw.selection": maw_selection})
    from maw_bench.runtime.distributed import launch_rank, launched_distributed

    cfg = load_config(config, sets, extra)
    arm_list = arm_names(cfg, ["maw"] if use_maw else [a.strip() for a in arms.split(",") if a.strip()], controls)
    warn_ignored(cfg, arm_list)
    distributed = launched_distributed()
    if output is None:
        if resume or resume_auto or distributed:
            raise UserError("--resume and torchrun need --output naming the run folder (every rank must agree on it).")
        existed = False
        output = new_output_dir("train", [cfg.data.train])
    else:
        existed = output.exists()
    ensure_writable(output, "train")
    with removed_if_refused(output, existed), folder_lock(output, enabled=not distributed or launch_rank() == 0):
        results = train_arms(cfg, arm_list, output, resume=resume or resume_auto, overwrite=overwrite,
                             require_checkpoint=resume and not resume_auto)
    for arm, res in results.items():
        if res is not None:
            console.print(f"{arm}: {res.steps} steps, final loss {res.final_loss:.4f}, {res.wall_s:.1f} s")
    console.print(f"run folder: {output}  (evaluate with `maw-bench eval --model {output}`)")


@app.command("eval")
def evaluate(
    model: list[str] = typer.Option(None, "--model", "-m", help="Run folder, saved encoder or HF model (repeatable)."),
    dataset: list[str] = DATASET_OPT,
    beir: list[str] = BEIR_OPT,
    msmarco: bool = typer.Option(False, "--msmarco", help="Evaluate on MS MARCO dev/small, DL19 and DL20."),
    split: str = typer.Option("test", "--split", help="Split of local BEIR folders / builtin / --beir."),
    output: Path = typer.Option(None, "--output", "-o", help="Output folder (default: results/eval-...)."),
    bm25: bool = typer.Option(False, "--bm25", help="Add a BM25 baseline (bm25s)."),
    metrics: str = typer.Option(None, "--metrics", help="Comma-separated ranx metrics."),
    dtype: str = typer.Option(None, "--dtype", help=shorthand_help("eval.dtype", "fp32")),
    batch_size: int = typer.Option(None, "--batch-size", help=shorthand_help("eval.batch_size", "64")),
    max_length: int = typer.Option(None, "--max-length", help=shorthand_help("eval.max_length", "512")),
    index: str = typer.Option(None, "--index", help=shorthand_help("eval.index", "faiss:HNSW32")),
    config: Path = CONFIG_OPT,
    sets: list[str] = SET_OPT,
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow model code from the hub to run."),
    verify_cache: bool = typer.Option(False, "--verify-cache", help="Hash every cached embedding shard in full "
                                      "before using it (eval.verify_cache)."),
    arms: str = typer.Option(None, "--arms", help="Also score these named arms as built, untrained, on the one plain "
                             "--model named (else the config's model; e.g. standard,maw,maw-nested,gated,diff): what "
                             "each costs or gives at init."),
) -> None:
    """Encode, retrieve and score models with ranx; significance against the reference arm."""
    from maw_bench.evaluation.pipeline import run_evaluation
    from maw_bench.outputs.folders import ensure_writable, new_output_dir, removed_if_refused
    from maw_bench.runtime.locks import folder_lock

    extra = [f"data.eval_split={split}"] + (["model.trust_remote_code=true"] if trust_remote_code else [])
    extra += ["eval.verify_cache=true"] if verify_cache else []
    for key, value in (("eval.dtype", dtype), ("eval.batch_size", batch_size), ("eval.max_length", max_length),
                       ("eval.index", index)):
        if value is not None:
            extra.append(f"{key}={value}")
    if metrics:
        extra.append(f"eval.metrics=[{','.join(m.strip() for m in metrics.split(',') if m.strip())}]")
    from maw_bench.runtime.distributed import launch_rank, launched_distributed

    cfg = load_config(config, sets, extra)
    specs = _eval_specs(dataset, beir, msmarco, split) or list(cfg.data.eval)
    if output is None and launched_distributed():
        raise UserError("torchrun needs --output naming the evaluation folder (every rank must agree on it).")
    existed = output is not None and output.exists()
    output = ensure_writable(output, "eval") if output else new_output_dir("eval", specs)
    with removed_if_refused(output, existed), folder_lock(output, enabled=not launched_distributed() or launch_rank() == 0):
        arm_list = [a.strip() for a in (arms or "").split(",") if a.strip()]
        run_evaluation(cfg, list(model or []), specs, output, bm25=bm25 or cfg.eval.bm25, arms=arm_list)


@app.command()
def smoke(
    output: Path = typer.Option(None, "--output", "-o", help="Output folder (default: results/smoke-...)."),
    config: Path = CONFIG_OPT,
    sets: list[str] = SET_OPT,
) -> None:
    """The whole pipeline on the built-in dataset, offline: train both arms, evaluate, compare, report."""
    from maw_bench.commands.smoke import run_smoke

    code = run_smoke(config, sets or [], output)
    raise typer.Exit(code)


@app.command()
def sweep(
    file: Path = typer.Argument(..., help="Sweep YAML: base config, datasets, grid, standard arm, slurm options."),
    output: Path = typer.Option(None, "--output", "-o", help="Sweep folder (default: results/sweep-<name>)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the cells and exit."),
    launcher: str = typer.Option("serial", "--launcher", help="serial | local (--jobs processes) | slurm (submitit)."),
    jobs: int = typer.Option(1, "--jobs", help="With --launcher local: cells run at once (one GPU each if any)."),
    partition: str = typer.Option(None, "--partition", help="With --launcher slurm: the partition."),
    time_min: int = typer.Option(None, "--time-min", help="With --launcher slurm: minutes a cell may run."),
    gpus_per_cell: int = typer.Option(None, "--gpus-per-cell", help="With --launcher slurm: GPUs per cell."),
    only: str = typer.Option(None, "--only", hidden=True, help="Run this one cell (the local launcher's children)."),
) -> None:
    """Run a YAML grid of experiments; finished cells are skipped when run again."""
    from maw_bench.commands.sweep import run_cell, run_sweep

    if only:
        from maw_bench.runtime.locks import folder_lock

        if output is None:
            raise UserError("--only needs --output.")
        with folder_lock(output / "cells" / only):
            run_cell(file, output, only)
        return
    slurm = {k: v for k, v in (("partition", partition), ("time_min", time_min), ("gpus_per_cell", gpus_per_cell))
             if v is not None}
    run_sweep(file, output, dry_run, launcher=launcher, jobs=jobs, slurm=slurm)


@app.command()
def study(
    config: Path = CONFIG_OPT,
    sets: list[str] = SET_OPT,
    arms: str = typer.Option("standard,maw", "--arms", help="Named arms (the config's arms:), comma-separated; "
                             "standard is always included as the reference."),
    seeds: str = typer.Option("13,14,15", "--seeds", help="Comma-separated seeds; every arm is trained with each."),
    controls: str = typer.Option("", "--controls", help="MAW arms whose controls (<arm>-uniform, <arm>-fixed<t>) "
                                 "run at the first seed, comma-separated."),
    dataset: list[str] = DATASET_OPT,
    output: Path = typer.Option(None, "--output", "-o", help="Study folder (default: results/study-...); rerun to resume."),
    equivalence_margin: float = typer.Option(None, "--equivalence-margin", help="Equivalence within +-this difference "
                                             "of the first metric (TOST); default the study's own, else 0.01."),
) -> None:
    """Arms x seeds (plus controls) with the same data and budget; mean +- std and differences over seeds and queries."""
    from maw_bench.commands.study import run_study
    from maw_bench.outputs.folders import ensure_writable, new_output_dir, removed_if_refused
    from maw_bench.runtime.locks import folder_lock

    cfg = load_config(config, sets)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {seeds!r}: give integers, e.g. --seeds 13,14,15.") from None
    arm_list = [a.strip() for a in arms.split(",") if a.strip()]
    control_list = [a.strip() for a in controls.split(",") if a.strip()]
    for what, items in (("--seeds", seed_list), ("--arms", arm_list), ("--controls", control_list)):
        repeated = sorted({str(x) for x in items if items.count(x) > 1})
        if repeated:
            raise UserError(f"{what} names {', '.join(repeated)} more than once; each seed or arm is one run: "
                            "remove the repeat.")
    warn_ignored(cfg, arm_list)
    existed = output is not None and output.exists()
    output = ensure_writable(output, "study") if output else new_output_dir("study", list(dataset or cfg.data.eval))
    with removed_if_refused(output, existed), folder_lock(output):
        run_study(cfg, arm_list, seed_list, control_list, output, list(dataset or []) or None, equivalence_margin)


@app.command()
def export(
    run: Path = typer.Argument(..., help="A training run folder (or a saved encoder folder)."),
    arm: str = typer.Option("standard", "--arm", help="Which arm of the run to export (default: the reference arm)."),
    fmt: str = typer.Option("sentence-transformers", "--format",
                            help="Output layout: sentence-transformers (also a HF AutoModel folder)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder to write the exported model into."),
    push_to_hub: str = typer.Option("", "--push-to-hub", help="Also upload the folder to this HF Hub model repo "
                                    "(ORG/NAME; needs a network and `hf auth login` or HF_TOKEN)."),
    private: bool = typer.Option(False, "--private", help="Create the Hub repo as private."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier export in --output (only the "
                                   "files that export wrote; other files there stay)."),
) -> None:
    """Write a trained arm as a sentence-transformers / HF folder; MAW arms carry their attention code."""
    from maw_bench.modeling import is_saved_encoder, load_encoder
    from maw_bench.modeling.export import check_export_target, export_sentence_transformers, needs_remote_code
    from maw_bench.modeling.export import push_to_hub as push
    from maw_bench.runtime.console import console

    if fmt != "sentence-transformers":
        raise UserError(f"--format {fmt}: the one layout built is sentence-transformers.")
    source = run if is_saved_encoder(run) else run / arm / "model"
    if not is_saved_encoder(source):
        raise UserError(f"{run} has no finished arm {arm!r} (no {source}); name one with --arm.")
    guard_export_output(run, output)
    check_export_target(output, overwrite)  # before the model loads
    encoder = load_encoder(source)
    path = export_sentence_transformers(encoder, output, overwrite=overwrite,
                                        provenance=export_provenance(run, source, arm))
    flag = ", trust_remote_code=True" if needs_remote_code(encoder) else ""
    console.print(f"wrote {path}  (SentenceTransformer('{path}'{flag}) loads it)")
    if push_to_hub:
        console.print(f"pushed to {push(path, push_to_hub, private)}")


def guard_export_output(run: Path, output: Path) -> None:
    """An export never writes into or over a training run folder, nor into a folder that holds the run."""
    from maw_bench.outputs.folders import inside_run_folder

    out, src = output.resolve(), run.resolve()
    holder = inside_run_folder(out)
    if holder is not None or out == src or out in src.parents or src in out.parents:
        where = holder or src
        raise UserError(f"--output {output} is inside or above the run folder {where}; export to a folder of "
                        "its own (e.g. exports/<name>), so nothing of the run can be replaced.")


def export_provenance(run: Path, source: Path, arm: str) -> dict:
    """Where an exported model came from: base model, arm, training data, seed, steps, maw-bench version."""
    import json

    import yaml

    from maw_bench import __version__

    out: dict = {"maw_bench": __version__, "arm": arm if source != run else source.name, "fine_tuned": True}
    try:
        manifest = json.loads((source.parent / "manifest.json").read_text())
        out.update({"seed": manifest.get("seed"), "steps": manifest.get("steps"),
                    "train_data": ((manifest.get("datasets") or {}).get("train") or {}).get("id")})
    except (OSError, ValueError, AttributeError):
        pass  # a saved encoder outside a run folder: no manifest beside it
    try:
        out["base_model"] = (yaml.safe_load((source.parent / "config.yaml").read_text())["model"])["name"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        pass
    return out


@app.command()
def report(
    folders: list[Path] = typer.Argument(..., help="Eval, train-run, sweep or study folders."),
    equivalence_margin: float = typer.Option(None, "--equivalence-margin", help="A study's equivalence margin "
                                             "(kept in its study.json for later rebuilds)."),
    rescore: bool = typer.Option(False, "--rescore", help="A study: re-score every seed's evaluation from its kept "
                                 "rankings (runs/*.trec.gz) with the study's config and --set overrides, e.g. "
                                 "--set eval.relevance_scale=defined; no encoding, no training."),
    set_: list[str] = SET_OPT,
) -> None:
    """Rebuild tables and plots from existing folders without recomputing anything (or, --rescore, the scores)."""
    from maw_bench.commands.report import rebuild, rescore_study

    if set_ and not rescore:
        raise UserError("--set changes how a study is re-scored; add --rescore (report alone recomputes nothing).")
    if rescore:
        for folder in folders:
            rescore_study(folder, list(set_ or []))
    rebuild(folders, equivalence_margin)


@app.command()
def plan(
    study: Path = typer.Argument(..., help="A study folder with its summary.json (run or report the study first)."),
    delta: float = typer.Option(0.005, "--delta", help="The difference in the study's first metric to detect."),
    power: float = typer.Option(0.8, "--power", help="The power to detect it with, at the 5% level."),
    equivalence_margin: float = typer.Option(None, "--equivalence-margin", help="Also the seeds to show "
                                             "equivalence within +-this (default: the study's margin)."),
) -> None:
    """Seeds a study needs to detect --delta, and to show equivalence, from the variance components it measured."""
    from maw_bench.commands.plan import run_plan

    run_plan(study, delta, power, equivalence_margin)


@app.command("config-keys")
def config_keys() -> None:
    """Every config key with its default and help."""
    from maw_bench.config import key_fields
    from maw_bench.runtime.console import console

    for key, value, text in key_fields():
        console.print(f"[bold]{key}[/bold] = {value!r}  [dim]{text}[/dim]")


@datasets_app.command("list")
def datasets_list() -> None:
    """Known dataset ids and whether each is available locally (no network)."""
    from rich.table import Table

    from maw_bench.data.registry import known_ids, known_sizes, locally_available
    from maw_bench.runtime.console import console

    table = Table(title="datasets (ir_datasets ids; local BEIR folders work too)")
    table.add_column("id")
    for col in ("docs", "queries", "qrels"):
        table.add_column(col, justify="right")
    table.add_column("local", justify="center")
    for dataset_id in known_ids():
        sizes = known_sizes(dataset_id)
        cells = [f"{sizes[c]:,}" if sizes.get(c) is not None else "?" for c in ("docs", "queries", "qrels")]
        table.add_row(dataset_id, *cells, "yes" if locally_available(dataset_id) else "-")
    console.print(table)


@datasets_app.command("check")
def datasets_check(
    dataset: str = typer.Argument(..., help="ir_datasets id, BEIR folder or builtin."),
    split: str = typer.Option("test", help="Split of a local BEIR folder or builtin."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Load a dataset and count documents, queries, judged queries, qrels and missing judged docs."""
    import json
    import sys

    from maw_bench.data import load_bundle
    from maw_bench.runtime.console import console

    bundle = load_bundle(dataset, split)
    summary = bundle.summary()
    if as_json:  # one write of the whole line: processes sharing a pipe (torchrun ranks) never interleave it
        sys.stdout.write(json.dumps(summary) + "\n")
        sys.stdout.flush()
        return
    console.print(f"[bold]{bundle.id}[/bold]")
    for key, value in summary.items():
        console.print(f"  {key:<20} {value:>10,}")
    if summary["missing_judged_docs"]:
        console.print(f"[yellow]{summary['missing_judged_docs']} judged documents are not in the corpus.[/yellow]")


def main() -> None:
    """Console entry point (errors and Ctrl-C are handled by ``MawGroup``)."""
    app()
