"""Result tables: Markdown, LaTeX and the terminal, with significance markers.

``results`` is ``{dataset: {model: {metric: value}}}``; ``comparisons`` are dicts
as :class:`maw_bench.evaluation.significance.Comparison` writes them. A marker
means the Holm-corrected Fisher randomisation p-value against the reference is
below ``alpha``: ``▲`` better, ``▼`` worse.
"""

from __future__ import annotations

from rich.table import Table

from maw_bench.data.relevance import AS_JUDGED
from maw_bench.data.sampling import sample_note
from maw_bench.outputs.layout import REFERENCE_ARM

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


# ------------------------------------------------------------------ studies (arms x seeds)
def _study_cells(doc: dict, row: dict) -> list[str]:
    cells = []
    for m in doc["metrics"]:
        # one seed has no spread over seeds: no "± 0.0000" that would read as a measured zero
        cell = f"{row[m]:.4f} ± {row[m + '_std']:.4f}" if len(row.get("seeds", [0, 0])) > 1 else f"{row[m]:.4f}"
        comp = next((c for c in doc["comparisons"] if c["dataset"] == row["dataset"] and c["arm"] == row["arm"]
                     and c["metric"] == m), None)
        if comp is not None:
            holm = f", Holm p={comp['p_holm']:.2g}" if "p_holm" in comp else ""
            cell += (f" (Δ {comp['mean_diff']:+.4f} [{comp['ci95_low']:+.4f}, {comp['ci95_high']:+.4f}], "
                     f"p={comp['p_value']:.2g}{holm})")
        cells.append(cell)
    return cells


def _equivalence_lines(doc: dict, comps: list[dict], main: str) -> list[str]:
    """The TOST table of the first metric, where the summary has one (docs/statistics.md)."""
    margin = doc.get("equivalence_margin")
    if margin is None or "tost_p" not in comps[0]:
        return []
    lines = ["", f"{main}: equivalence to `{doc['reference']}` within ±{margin:g} (two one-sided t-tests on the same "
             "fit, SE and df as Δ; Holm over the same family; a non-significant Δ is not equivalence). Equivalent "
             "within: the smallest margin at which equivalence holds at 5% (|Δ| + t_.95 x SE).", "",
             f"| dataset | arm | Δ | TOST p (±{margin:g}) | Holm | equivalent within |", "|---|---|---|---|---|---|"]
    for c in comps:
        holm_eq = f"{c['tost_p_holm']:.2g}" if "tost_p_holm" in c else "-"  # a control: outside the family
        lines.append(f"| {c['dataset']} | {c['arm']} | {c['mean_diff']:+.4f} | {c['tost_p']:.2g} | {holm_eq} | "
                     f"±{c['equivalent_within']:.4f} |")
    return lines


def _two_questions(doc: dict, comps: list[dict], main: str) -> list[str]:
    """Each comparison answered for both questions a study can ask (docs/statistics.md): would the difference hold
    on new queries (the crossed model: every Δ, p and Holm p above), and would it hold on these queries if the
    arms were trained again (a paired t over the per-seed means, df = seeds - 1, with the sign count)."""
    rows = [c for c in comps if c["seeds"] > 1 and (c.get("seed_t") or {}).get("p_value") is not None]
    if not rows:
        return []
    lines = ["", f"{main}, two questions: *on new queries* (crossed, seeds and queries random: the Δ, p and Holm p "
             "above, the headline) and *on these queries, retrained* (seeds random, queries fixed: a paired t over "
             "the per-seed means, and how many seeds put the arm ahead or behind).", "",
             "| dataset | arm | Δ | p on new queries | p on these queries, retrained [95% CI] | seeds ahead / behind |",
             "|---|---|---|---|---|---|"]
    for c in rows:
        t = c["seed_t"]
        lines.append(f"| {c['dataset']} | {c['arm']} | {c['mean_diff']:+.4f} | {c['p_value']:.2g} | {t['p_value']:.2g} "
                     f"[{t['ci95_low']:+.4f}, {t['ci95_high']:+.4f}] | {t.get('seeds_ahead', '-')} / "
                     f"{t.get('seeds_behind', '-')} of {c['seeds']} |")
    return lines


def _across_lines(doc: dict) -> list[str]:
    """The equal-weight average over the study's collections, with Cochran's Q and I² (docs/statistics.md)."""
    across = doc.get("across")
    if not across:
        return []
    margin = doc.get("equivalence_margin")
    k = len(across["collections"])
    lines = ["", f"{across['metric']} across the {k} collections ({', '.join(across['collections'])}): each arm's "
             "equal-weight average of the collections' Δ, its SE from the seeds' own averages over the collections "
             "(they share the seeds) and each collection's query part; p and TOST on new queries of *these* "
             f"collections, {across['family']}. Cochran's Q and I²: do the collections agree (Q treats their "
             "estimates as independent).", "",
             f"| arm | Δ average [95% CI] | p | Holm | TOST p (±{margin:g}) | equivalent within | Cochran's Q (p) | I² | "
             "collections in general |", "|---|---|---|---|---|---|---|---|---|"]
    for r in across["arms"]:
        if "mean_diff" not in r:
            lines.append(f"| {r['arm']} | not computed: {r['not_computed']} | | | | | | | |")
            continue
        re_ = r["random_effects"]
        general = re_ if isinstance(re_, str) else (f"{re_['mean_diff']:+.4f} [{re_['ci95_low']:+.4f}, "
                                                    f"{re_['ci95_high']:+.4f}] (HKSJ, p {re_['p_value']:.2g})")
        lines.append(f"| {r['arm']} | {r['mean_diff']:+.4f} [{r['ci95_low']:+.4f}, {r['ci95_high']:+.4f}] | "
                     f"{r['p_value']:.2g} | {r['p_holm']:.2g} | {r['tost_p']:.2g} (Holm {r['tost_p_holm']:.2g}) | "
                     f"±{r['equivalent_within']:.4f} | {r['cochran_q']:.2f} ({r['q_p']:.2g}) | {r['i2']:.0%} | "
                     f"{general} |")
    return lines


def study_markdown(doc: dict) -> str:
    """Per arm: mean ± std over seeds; Δ to the reference with its 95% interval, p and Holm p over seeds and queries."""
    metrics = doc["metrics"]
    lines = ["# maw-bench study", "",
             f"Mean ± std over seeds. Δ: arm minus `{doc['reference']}` (same seed), 95% interval and p-value over "
             f"seeds and queries ({doc['method']}). Holm p: {doc.get('family', 'not computed')}.", "",
             *[f"{sample_note(ds, sample)}\n" for ds, sample in (doc.get("sample") or {}).items()],
             *[f"{ds}: nDCG's gains are {scale}.\n"
               for ds, scale in (doc.get("relevance_scale") or {}).items() if scale != AS_JUDGED],
             "| dataset | arm | seeds | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 3)]
    for r in doc["rows"]:
        arm = r["arm"] + (" (control)" if r.get("control") else "")
        lines.append(f"| {r['dataset']} | {arm} | {len(r['seeds'])} | " + " | ".join(_study_cells(doc, r)) + " |")
    main = metrics[0] if metrics else None
    comps = [c for c in doc["comparisons"] if c["metric"] == main]
    if comps:
        lines += _equivalence_lines(doc, comps, main) + _two_questions(doc, comps, main) + _across_lines(doc)
        lines += ["", f"{main}: smallest difference the design detects (80% power, 5% level, t at the fitted df) and "
                  "the variance components (sd) of the per-query differences:", "",
                  "| dataset | arm | test | seeds x queries | df | smallest detectable Δ | sd seed | sd query | "
                  "sd residual | per-seed Δ |", "|---|---|---|---|---|---|---|---|---|---|"]
        for c in comps:
            zero = f" (set to 0: {', '.join(c['set_to_zero'])})" if c.get("set_to_zero") else ""
            test = "paired t over queries (1 seed)" if c["seeds"] == 1 else "crossed"
            lines.append(f"| {c['dataset']} | {c['arm']} | {test} | {c['seeds']} x {c['queries']} | {c['df']:.1f} | "
                         f"±{c['min_detectable']:.4f} | {c['var_seed'] ** 0.5:.4f} | {c['var_query'] ** 0.5:.4f} | "
                         f"{c['var_resid'] ** 0.5:.4f}{zero} | " + ", ".join(f"{x:+.4f}" for x in c["per_seed_diff"]) + " |")
    if doc.get("routing"):
        lines += ["", "Routing (training logs and the evaluation's choices): final depth chosen at inference and its "
                  "share; the step from which the modal training depth's share stayed >= 90%; final router entropy.",
                  "", "| arm | seed | inference depth (share) | settled from step | final entropy |", "|---|---|---|---|---|"]
        for f in doc["routing"]:
            depth = f"{f['inference_depth']} ({f['inference_share']:.1%})" if "inference_depth" in f else "-"
            settled = f["settled_from_step"] if f["settled_from_step"] is not None else "never"
            entropy = f"{f['final_entropy']:.3f}" if f.get("final_entropy") is not None else "-"
            lines.append(f"| {f['arm']} | {f['seed']} | {depth} | {settled} | {entropy} |")
    wall = doc.get("wall_s") or {}
    if wall.get("ratio_to_reference"):
        spread = wall.get("ratio_range") or {}

        def ratio(a: str, r: float | None) -> str:
            if r is None:
                return f"{a}: no ratio ({(wall.get('no_ratio') or {}).get(a, 'none could be formed')})"
            lo, hi, n = spread.get(a) or (r, r, 1)
            return f"{a} {r:.2f}x" + (f" ({lo:.2f}-{hi:.2f} over {n} seeds)" if n > 1 and a != doc["reference"] else "")

        lines += ["", f"Training wall time x {doc['reference']} (median over seeds, each arm against the reference at "
                  "its seed; manifests; a ratio is as clean as the machine was while both trained, so a wide range "
                  "means other work shared it: `scripts/bench_maw.py` measures cost in one process): "
                  + ", ".join(ratio(a, r) for a, r in wall["ratio_to_reference"].items())
                  + (f"; left out, resumed without the time before the resume: {', '.join(wall['partial'])}"
                     if wall.get("partial") else "") + "."]
    return "\n".join(lines) + "\n"


def study_rich_table(doc: dict) -> Table:
    table = Table(title=f"study: mean ± std over seeds; Δ vs {doc['reference']} [95% CI], p")
    for col in ("dataset", "arm", "seeds", *doc["metrics"]):
        table.add_column(col, justify="right" if col in doc["metrics"] else "left")
    for r in doc["rows"]:
        table.add_row(r["dataset"], r["arm"] + (" (control)" if r.get("control") else ""), str(len(r["seeds"])),
                      *_study_cells(doc, r))
    return table


# ------------------------------------------------------------------ sweeps (a grid, mean over seeds)
def sweep_tables(rows: list[dict], metrics: list[str], comparisons: list[dict]) -> dict[str, str]:
    """``summary.csv``, ``summary.md`` and ``summary.tex`` of a sweep: one row per (dataset, arm, config)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dataset", "arm", "config", "seeds", *[x for m in metrics for x in (m, f"{m}_std")]])
    for r in rows:
        w.writerow([r["dataset"], r["arm"], r["config"], r["seeds"],
                    *[f"{r[x]:.6f}" for m in metrics for x in (m, f"{m}_std")]])

    def p_of(dataset: str, label: str, metric: str) -> str:
        for c in comparisons:
            if c["dataset"] == dataset and c["model"] == label and c["metric"] == metric:
                return f" (Δ {c['mean_diff']:+.4f}, p={c['p_fisher_holm']:.3g})"
        return ""

    md = ["# Sweep summary", "", "Mean ± std over seeds; Δ and Holm-corrected Fisher p against the standard arm.", "",
          "| dataset | arm | config | seeds | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 4)]
    tex = [r"\begin{tabular}{lllr" + "r" * len(metrics) + "}", r"\toprule",
           "Dataset & Arm & Config & Seeds & " + " & ".join(_tex_escape(m) for m in metrics) + r" \\", r"\midrule"]
    for r in rows:
        label = REFERENCE_ARM if r["arm"] == REFERENCE_ARM else "maw: " + ", ".join(
            f"{k.split('.')[-1]}={v}" for k, v in r["values"].items())
        cells = [f"{r[m]:.4f} ± {r[m + '_std']:.4f}" + (p_of(r["dataset"], label, m) if r["arm"] == "maw" else "")
                 for m in metrics]
        md.append(f"| {r['dataset']} | {r['arm']} | {r['config']} | {r['seeds']} | " + " | ".join(cells) + " |")
        tex.append(" & ".join([_tex_escape(x) for x in (r["dataset"], r["arm"], r["config"], str(r["seeds"]))]
                              + [f"{r[m]:.4f} $\\pm$ {r[m + '_std']:.4f}" for m in metrics]) + r" \\")
    tex += [r"\bottomrule", r"\end{tabular}"]
    return {"summary.csv": buf.getvalue(), "summary.md": "\n".join(md) + "\n", "summary.tex": "\n".join(tex) + "\n"}
