"""Result tables: Markdown, LaTeX and the terminal, with significance markers.

``results`` is ``{dataset: {model: {metric: value}}}``; ``comparisons`` are dicts
as :class:`maw_bench.evaluation.significance.Comparison` writes them. A marker
means the Holm-corrected Fisher randomisation p-value against the reference is
below ``alpha``: ``▲`` better, ``▼`` worse.
"""

from __future__ import annotations

from rich.table import Table

ALPHA = 0.05


def _marker(comparisons: list[dict], dataset: str, model: str, metric: str, alpha: float = ALPHA) -> str:
    for c in comparisons:
        if c["dataset"] == dataset and c["model"] == model and c["metric"] == metric:
            if c["p_fisher_holm"] < alpha:
                return "▲" if c["mean_diff"] > 0 else "▼"
    return ""


def _rows(results: dict, metrics: list[str], comparisons: list[dict]):
    for dataset, models in results.items():
        for model, values in models.items():
            cells = []
            for m in metrics:
                v = values.get(m)
                cells.append(("-" if v is None else f"{v:.4f}", _marker(comparisons, dataset, model, m)))
            yield dataset, model, cells


def markdown_table(results: dict, metrics: list[str], comparisons: list[dict], reference: str | None) -> str:
    lines = ["| dataset | model | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 2)]
    for dataset, model, cells in _rows(results, metrics, comparisons):
        lines.append(f"| {dataset} | {model} | " + " | ".join(v + m for v, m in cells) + " |")
    if reference:
        lines.append("")
        lines.append(f"▲/▼: better/worse than `{reference}` at p < {ALPHA} (Fisher randomisation, Holm-corrected).")
    return "\n".join(lines) + "\n"


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"), ("$", r"\$")):
        s = s.replace(a, b)
    return s


def latex_table(results: dict, metrics: list[str], comparisons: list[dict], reference: str | None) -> str:
    cols = "ll" + "r" * len(metrics)
    out = [r"\begin{tabular}{" + cols + "}", r"\toprule",
           "Dataset & Model & " + " & ".join(_tex_escape(m) for m in metrics) + r" \\", r"\midrule"]
    for dataset, model, cells in _rows(results, metrics, comparisons):
        rendered = [v + ({"▲": r"$^{\blacktriangle}$", "▼": r"$^{\blacktriangledown}$"}.get(m, "")) for v, m in cells]
        out.append(f"{_tex_escape(dataset)} & {_tex_escape(model)} & " + " & ".join(rendered) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    if reference:
        out.append(f"% markers: p < {ALPHA} vs {reference} (Fisher randomisation, Holm-corrected); needs amssymb")
    return "\n".join(out) + "\n"


def rich_table(results: dict, metrics: list[str], comparisons: list[dict], title: str = "results") -> Table:
    table = Table(title=title)
    table.add_column("dataset")
    table.add_column("model")
    for m in metrics:
        table.add_column(m, justify="right")
    for dataset, model, cells in _rows(results, metrics, comparisons):
        styled = [f"[green]{v}{m}[/green]" if m == "▲" else f"[red]{v}{m}[/red]" if m == "▼" else v for v, m in cells]
        table.add_row(dataset, model, *styled)
    return table
