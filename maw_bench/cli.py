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
    """Known dataset ids and whether each is available locally."""
    _todo("datasets list")


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
