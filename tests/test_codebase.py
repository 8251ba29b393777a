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


def _import_graph() -> dict[str, set[str]]:
    """Module -> the maw_bench modules it imports, at the top or inside functions (lazy imports count)."""
    mods = {}
    for p in SOURCES:
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        mods[name] = p
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.ImportFrom) and n.level == 0 and (n.module or "").startswith("maw_bench"):
                targets = [n.module, *(f"{n.module}.{a.name}" for a in n.names)]
            elif isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            else:
                continue
            graph[m] |= {t for t in targets if t in mods and t != m}
    return graph


def test_no_import_cycle_lazy_imports_included():
    graph = _import_graph()

    def related(a: str, b: str) -> bool:  # a package and its own modules: __init__ re-exports are not cycles
        return a.startswith(b + ".") or b.startswith(a + ".")

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            for nxt in graph[node]:
                if nxt == goal:
                    return True
                if nxt not in seen and not related(node, nxt):
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    cycles = [(a, b) for a in graph for b in graph[a] if not related(a, b) and reaches(b, a)]
    assert not cycles


def test_config_compares_no_selection_strategy_by_name():
    """Strategies declare their constraints and idle settings; the config (maw_bench/config/) asks them and names none in its logic
    (names in help texts and the default arms are data)."""
    import re

    from maw_bench.maw.selection import STRATEGIES

    source = "".join(p.read_text() for p in sorted((ROOT / "maw_bench" / "config").glob("*.py")))
    names = "|".join(STRATEGIES)
    logic = re.findall(rf"""(?:==|!=|\bin\b)\s*[\(\[]?\s*["']({names})\b""", source)
    logic += re.findall(rf"""["']({names})["']\s*(?:==|!=)""", source)
    assert not logic, f"the config decides by a strategy's name: {logic}"
