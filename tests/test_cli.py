"""The command line: smoke end to end, failing stages, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maw_bench.cli import app
from maw_bench.config import BenchmarkConfig

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_smoke_runs_the_packaged_recipe_and_lays_a_config_file_over_it(tmp_path):
    """One recipe, in the package (a pip install has it); --config and --set change only what they name."""
    from maw_bench.commands.smoke import smoke_config, smoke_recipe

    base = smoke_config(None, [])
    assert base.to_dict() == BenchmarkConfig.from_dict(smoke_recipe()).to_dict()
    assert (base.data.train, base.train.max_steps, base.maw.selection) == ("builtin", 4, "grpo")
    mine = tmp_path / "mine.yaml"
    mine.write_text("train:\n  max_steps: 7\n")
    over = smoke_config(mine, ["seed=2"])
    assert (over.train.max_steps, over.seed) == (7, 2)
    assert over.with_overrides(["train.max_steps=4", f"seed={base.seed}"]).to_dict() == base.to_dict()


def _tiny_smoke_args(tiny_model: str, out: Path) -> list[str]:
    return ["smoke", "--output", str(out), "--set", f"model.name={tiny_model}", "--set", "train.max_steps=2",
            "--set", "data.max_docs=200", "--set", "data.max_queries=30", "--set", f"eval.cache_dir={out / 'cache'}"]


@pytest.fixture(scope="module")
def tiny_smoke(tiny_model, tmp_path_factory) -> tuple[Path, str]:
    """One tiny smoke run in its own process, stderr a pipe as in a log file (the tests below only read it):
    its folder and its stderr. ``dtype: auto`` as the recipe asks, on the tests' seeded bf16 measurement."""
    out = tmp_path_factory.mktemp("smoke") / "s"
    proc = _cli(*_tiny_smoke_args(tiny_model, out), env_extra={"MAW_BENCH_OFFLINE": "1"}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stderr


def test_smoke_runs_every_stage(tiny_smoke):
    out, _ = tiny_smoke
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert set(metrics["results"]["builtin/test"]) == {"standard", "maw", "zero-shot"}
    assert (out / "loss_curves.png").stat().st_size > 1000
    assert (out / "depth_histograms.png").stat().st_size > 1000


def test_smoke_logs_the_measured_bf16_ratio_and_records_the_choice(tiny_smoke):
    out, stderr = tiny_smoke
    said = " ".join(stderr.split())  # the log wraps long lines at the console's width
    for work, what in (("train", "a training step"), ("eval", "a forward pass")):
        assert f"{work}.dtype=fp32 (auto: bf16 autocast ran {what} 1.00x as fast as fp32" in said, stderr[-3000:]
        assert said.count(f"{work}.dtype=fp32 (auto:") == 1  # by the stage that uses it, once (smoke said each twice)
        assert "bf16 where >= 1.20x" in said
    run = json.loads((out / "run" / "run.json").read_text())
    manifest = json.loads((out / "run" / "maw" / "manifest.json").read_text())
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    for record, work in ((run["precision"], "train"), (manifest["precision"], "train"), (metrics["precision"], "eval")):
        assert record["requested"] == "auto" and record["dtype"] == "fp32" and record["bf16_speedup"] == 1.0, work
        assert record["margin"] == 1.2
    assert manifest["dtype"] == "fp32" and metrics["dtype"] == "fp32"


def test_a_log_file_holds_no_progress_bar(tiny_smoke):
    """stderr to a pipe or file: neither maw-bench's bars nor ir_datasets', transformers' or the hub's tqdm bars."""
    _, stderr = tiny_smoke
    assert "\r" not in stderr and "it/s]" not in stderr and "%|" not in stderr, stderr[-3000:]
    assert "docs_iter" not in stderr and "Writing model shards" not in stderr


def test_report_rebuilds_tables_and_plots_without_recomputing(tiny_smoke, tmp_path, monkeypatch):
    import shutil

    out = tmp_path / "s"
    shutil.copytree(tiny_smoke[0], out)
    before = (out / "eval" / "report.md").read_text()
    for p in (out / "eval" / "report.md", out / "eval" / "report.tex", out / "loss_curves.png"):
        p.unlink()
    from maw_bench.evaluation import pipeline

    monkeypatch.setattr(pipeline, "run_evaluation", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "eval" / "report.md").read_text() == before
    assert (out / "eval" / "report.tex").stat().st_size > 0 and (out / "loss_curves.png").stat().st_size > 1000


def test_datasets_list_shows_sizes_without_network():
    result = runner.invoke(app, ["datasets", "list"])
    assert result.exit_code == 0, result.output
    assert "msmarco-passage/dev/small" in result.output and "8,841,823" in result.output
    assert "beir/scifact/test" in result.output


def test_smoke_exits_non_zero_when_a_stage_fails(tiny_model, tmp_path, monkeypatch):
    from maw_bench.evaluation import pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("index exploded")

    monkeypatch.setattr(pipeline, "run_evaluation", broken)
    result = runner.invoke(app, _tiny_smoke_args(tiny_model, tmp_path / "s"))
    assert result.exit_code == 1
    assert "smoke stage 'eval' failed" in result.output and "index exploded" in result.output


def _cli(*args: str, env_extra: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "maw_bench", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_help_lists_the_commands():
    import re

    proc = _cli("--help")
    assert proc.returncode == 0
    section = proc.stdout.split("Commands", 1)[1]  # the rows of the commands panel, not the app's description
    listed = set(re.findall(r"^\W*([a-z][a-z-]+)\s{2,}\S", section, re.M))
    assert {"train", "eval", "smoke", "sweep", "study", "report", "datasets", "config-keys"} <= listed, listed


def test_datasets_check_json_on_builtin():
    proc = _cli("datasets", "check", "builtin", "--split", "test", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"docs": 2400, "queries": 250, "judged_queries": 250, "qrels": 1238, "missing_judged_docs": 0}


def test_every_command_and_option_has_help_text():
    import click
    import typer.main

    root = typer.main.get_command(app)
    missing = []

    def walk(cmd: click.Command, path: str) -> None:
        if not (cmd.help or "").strip():
            missing.append(path)
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip():
                missing.append(f"{path} {p.opts[0]}")
            if isinstance(p, click.Argument) and not getattr(p, "help", None):
                missing.append(f"{path} {p.name}")
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(root, "maw-bench")
    assert missing == []


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"maw-bench {version('maw-bench')}"
    assert "--install-completion" in runner.invoke(app, ["--help"]).output


def test_help_and_version_do_not_load_torch():
    """``maw-bench --help``/``--version`` answer in a fraction of a second: nothing imports torch before a command runs."""
    import subprocess
    import sys

    probe = "import sys; from maw_bench.cli import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_every_shorthand_option_takes_its_help_from_the_config_key_it_sets():
    """A shorthand names its key, and its help is that key's help in the schema: written once, never drifting."""
    import re

    import typer

    from maw_bench.config import key_fields

    helps = {k: h for k, _, h in key_fields()}
    found = []
    root = typer.main.get_command(app)
    for name, cmd in root.commands.items():
        for param in cmd.params:
            text = getattr(param, "help", None) or ""
            m = re.match(r"Shorthand for --set ([\w.]+)=", text)
            if m:
                found.append((name, m.group(1)))
                assert text.endswith(helps[m.group(1)]), (name, param.name)
    assert {("train", "maw.depth"), ("eval", "eval.dtype"), ("eval", "eval.index")} <= set(found)
