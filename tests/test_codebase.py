"""The shape of the code, held: functions that read in one screen, design references that resolve."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "maw_bench").rglob("*.py"))


def test_no_function_in_maw_bench_is_over_60_lines():
    long = [f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in SOURCES for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
    assert not long


def test_every_design_reference_points_at_a_section_of_docs_design():
    design = (ROOT / "docs" / "design.md").read_text()
    sections = {int(m) for m in re.findall(r"^## (\d+)\.", design, re.M)}
    for path in [*SOURCES, *sorted((ROOT / "tests").glob("*.py")), ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if path.name == Path(__file__).name:
            continue  # this file spells the patterns it looks for
        text = path.read_text()
        assert not re.search(r"\bDESIGN section|DESIGN\.md", text), f"{path.name} cites a design outside the repository"
        for n in re.findall(r"docs/design\.md section (\d+)", text):
            assert int(n) in sections, f"{path.name} cites docs/design.md section {n}, which does not exist"
