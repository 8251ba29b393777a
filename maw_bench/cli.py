"""The ``maw-bench`` command line: thin Typer commands over ``BenchmarkConfig``.

Every user mistake ends as one line on stderr with exit status 2 (``--debug``
shows the traceback).
"""

from __future__ import annotations

import sys

import typer

from maw_bench.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Does Multi-Attention-Weight attention make a better dense retriever? Train, evaluate, compare.",
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(no_args_is_help=True, help="List and check datasets.")
app.add_typer(datasets_app, name="datasets")

_STATE = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors.")) -> None:
    _STATE["debug"] = debug
    from maw_bench.console import setup_logging

    setup_logging()


def _todo(name: str) -> None:
    raise UserError(f"`maw-bench {name}` is not implemented yet in this version.")


@app.command()
def train() -> None:
    """Fine-tune the standard and MAW arms contrastively."""
    _todo("train")


@app.command("eval")
def evaluate() -> None:
    """Encode, retrieve and score models with ranx."""
    _todo("eval")


@app.command()
def smoke() -> None:
    """The whole pipeline on the built-in dataset, offline, in about a minute."""
    _todo("smoke")


@app.command()
def sweep() -> None:
    """Run a YAML grid of experiments; resumes where it stopped."""
    _todo("sweep")


@app.command()
def report() -> None:
    """Rebuild tables and plots from existing run and eval folders."""
    _todo("report")


@datasets_app.command("list")
def datasets_list() -> None:
    """Known dataset ids and whether each is available locally (no network)."""
    from rich.table import Table

    from maw_bench.console import console
    from maw_bench.data.registry import known_ids, locally_available

    table = Table(title="datasets (ir_datasets ids; local BEIR folders work too)")
    table.add_column("id")
    table.add_column("local", justify="center")
    for dataset_id in known_ids():
        table.add_row(dataset_id, "yes" if locally_available(dataset_id) else "-")
    console.print(table)


@datasets_app.command("check")
def datasets_check(
    dataset: str = typer.Argument(..., help="ir_datasets id, BEIR folder or builtin."),
    split: str = typer.Option("test", help="Split of a local BEIR folder or builtin."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Load a dataset and count documents, queries, judged queries, qrels and missing judged docs."""
    import json

    from maw_bench.console import console
    from maw_bench.data import load_bundle

    bundle = load_bundle(dataset, split)
    summary = bundle.summary()
    if as_json:
        print(json.dumps(summary))
        return
    console.print(f"[bold]{bundle.id}[/bold]")
    for key, value in summary.items():
        console.print(f"  {key:<20} {value:>10,}")
    if summary["missing_judged_docs"]:
        console.print(f"[yellow]{summary['missing_judged_docs']} judged documents are not in the corpus.[/yellow]")


def main() -> None:
    """Console entry point: run the app, turning ``UserError`` into one line and exit 2."""
    debug = "--debug" in sys.argv
    try:
        app(standalone_mode=False)
    except UserError as exc:
        if debug:
            raise
        print(f"maw-bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("maw-bench: interrupted.", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            print(f"maw-bench: error: {exc.format_message()}", file=sys.stderr)
            sys.exit(2)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise
