"""The docs cannot drift from the code: every relative link resolves, every `maw-bench ...` line is a real command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from maw_bench.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GLOBAL = {"--debug", "--quiet", "-q", "--version", "--install-completion", "--show-completion", "--help"}


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+://|mailto:", t)]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_resolves(page):
    for target in _links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: link {target} points at nothing"
        if anchor and dest.suffix == ".md":
            slugs = {re.sub(r"[^\w\- ]", "", h.lower()).strip().replace(" ", "-")
                     for h in re.findall(r"^#+ (.*)$", dest.read_text(), re.M)}
            assert anchor in slugs, f"{page.name}: no heading #{anchor} in {dest.name}"


def _command_lines(page: Path) -> list[str]:
    """``maw-bench ...`` invocations in code blocks (continued lines joined) and in inline code."""
    text = page.read_text()
    found = []
    for block in re.findall(r"```(?:bash|console|sh)?\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            m = re.search(r"(?:^|-m maw_bench |&& )(maw-bench\b.*|(?<=-m maw_bench ).*)", line)
            if line.startswith("maw-bench ") or "-m maw_bench " in line:
                found.append(line[line.index("maw-bench"):] if line.startswith("maw-bench")
                             else "maw-bench " + line.split("-m maw_bench ", 1)[1])
            elif m and m.group(1).startswith("maw-bench "):
                found.append(m.group(1))
    found += re.findall(r"`(maw-bench [^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return found


def _check(line: str, root) -> None:
    line = line.split(" # ")[0].split("  #")[0]
    for part in line.split(";"):
        part = part.strip()
        if not part.startswith("maw-bench"):
            continue
        tokens = [t.strip("[]") for t in shlex.split(part.replace("...", ""), posix=True)][1:]
        cmd = root
        while tokens and hasattr(cmd, "commands"):
            head = tokens[0]
            if head in GLOBAL:
                tokens.pop(0)
                continue
            if head.startswith("-"):
                raise AssertionError(f"{part!r}: {head} is not a global option")
            assert head in cmd.commands, f"{part!r}: {head!r} is not a maw-bench command"
            cmd = cmd.commands[tokens.pop(0)]
        options = {o for p in cmd.params for o in getattr(p, "opts", [])} | {"--help"}
        for tok in tokens:
            if tok.startswith("--"):
                assert tok.split("=")[0] in options, f"{part!r}: {cmd.name} has no option {tok}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_command_line_in_the_docs_names_real_commands_and_options(page):
    root = typer.main.get_command(app)
    for line in _command_lines(page):
        _check(line, root)


def test_the_checker_can_fail():
    root = typer.main.get_command(app)
    with pytest.raises(AssertionError, match="not a maw-bench command"):
        _check("maw-bench trian --output x", root)
    with pytest.raises(AssertionError, match="has no option --nope"):
        _check("maw-bench eval --nope 3", root)


def test_the_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
