"""Plots as PNG: training loss curves, the router's depth choices, a metric against depth."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from maw_bench.runtime.atomic import atomic_open  # noqa: E402


def _save(fig, path: Path) -> Path:
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def loss_curves(logs: dict[str, list[dict]], path: Path) -> Path:
    """Training loss per optimiser step, one line per arm."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, records in logs.items():
        if records:
            ax.plot([r["step"] for r in records], [r["loss"] for r in records], label=label)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("InfoNCE loss")
    ax.set_title("training loss")
    ax.legend()
    return _save(fig, path)


def depth_histograms(logs: dict[str, list[dict]], path: Path) -> Path | None:
    """How often the router chose each depth, per MAW layer, summed over training."""
    panels = []
    for label, records in logs.items():
        hists = [r["depth_histogram"] for r in records if "depth_histogram" in r]
        if not hists:
            continue
        totals = [[sum(col) for col in zip(*(h[layer] for h in hists))] for layer in range(len(hists[0]))]
        panels.append((label, totals))
    if not panels:
        return None
    n = sum(len(t) for _, t in panels)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3), squeeze=False)
    i = 0
    for label, totals in panels:
        for layer, counts in enumerate(totals):
            ax = axes[0][i]
            ax.bar(range(len(counts)), counts, color="tab:purple")
            ax.set_xticks(range(len(counts)))
            ax.set_xlabel("depth")
            ax.set_title(f"{label}: MAW layer {layer}", fontsize=9)
            i += 1
    axes[0][0].set_ylabel("choices (training)")
    return _save(fig, path)


def metric_vs_depth(rows: list[dict], metric: str, path: Path) -> Path | None:
    """``rows``: dicts with ``depth``, ``series`` (layers/selection), ``mean``, ``std``; plus a reference line."""
    series: dict[str, list[tuple[int, float, float]]] = {}
    reference = None
    for r in rows:
        if r.get("depth") is None:
            reference = r["mean"]
            continue
        series.setdefault(r["series"], []).append((r["depth"], r["mean"], r["std"]))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, points in sorted(series.items()):
        points.sort()
        ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], marker="o", capsize=3, label=name)
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", label="standard")
    ax.set_xlabel("maw.depth")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    return _save(fig, path)


def per_query_deltas(deltas: dict[str, list[float]], metric: str, reference: str, path: Path) -> Path | None:
    """Sorted per-query differences (model minus reference), one line per model: where a mean comes from."""
    if not deltas:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, values in deltas.items():
        if values:
            ax.plot(range(len(values)), values, label=f"{label} (mean {sum(values) / len(values):+.4f})")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("queries, sorted by difference")
    ax.set_ylabel(f"{metric}: model - {reference}")
    ax.set_title(f"per-query {metric} against {reference}")
    ax.legend(fontsize=8)
    return _save(fig, path)


def routing_counts(models: dict[str, dict], path: Path, title: str = "") -> Path | None:
    """How often each depth was chosen at evaluation, per model, layer and side (queries / documents).

    ``models[label][side]["layer <i>"]`` is a list of counts per depth, or one list per head.
    """
    panels = []
    for label, sides in models.items():
        for side in ("queries", "documents"):
            for layer, counts in (sides.get(side) or {}).items():
                panels.append((f"{label}: {side}, {layer}", counts))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3), squeeze=False)
    for ax, (name, counts) in zip(axes[0], panels):
        if counts and isinstance(counts[0], list):  # per head: a heat map heads x depths
            ax.imshow(counts, aspect="auto", cmap="Purples")
            ax.set_ylabel("head")
        else:
            ax.bar(range(len(counts)), counts, color="tab:purple")
        ax.set_xlabel("depth")
        ax.set_title(name, fontsize=8)
    fig.suptitle(f"depth chosen at evaluation {title}", fontsize=9)
    return _save(fig, path)


def arm_differences(comparisons: list[dict], metric: str, path: Path, margin: float | None = None) -> Path | None:
    """Each arm minus the reference: mean difference with its 95% interval, per-seed differences as dots, and the
    equivalence margin as a shaded band (an interval inside it, at 90%, is what TOST calls equivalent)."""
    if not comparisons:
        return None
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(comparisons)))
    for i, c in enumerate(comparisons):
        ax.errorbar([c["mean_diff"]], [i], xerr=[[c["mean_diff"] - c["ci95_low"]], [c["ci95_high"] - c["mean_diff"]]],
                    fmt="o", color="tab:purple", capsize=3)
        ax.scatter(c["per_seed_diff"], [i] * len(c["per_seed_diff"]), color="grey", s=12, zorder=3)
    ax.axvline(0.0, color="grey", linewidth=0.8)
    if margin:
        ax.axvspan(-margin, margin, color="tab:green", alpha=0.12, label=f"equivalence margin ±{margin:g}")
        ax.legend(fontsize=7, loc="best")
    ax.set_yticks(range(len(comparisons)))
    ax.set_yticklabels([c["arm"] for c in comparisons], fontsize=8)
    ax.set_xlabel(f"{metric}: arm - {comparisons[0]['reference']} (95% CI over seeds and queries; dots: seeds)")
    return _save(fig, path)


def across_forest(across: dict, comparisons: list[dict], path: Path, margin: float | None = None) -> Path | None:
    """Per arm, one row per collection (its Δ and 95% interval) and one for the equal-weight average (a diamond),
    with the equivalence margin shaded: the forest plot of a study over several collections."""
    arms = [r for r in across["arms"] if "mean_diff" in r]
    if not arms:
        return None
    comp = {(c["dataset"], c["arm"]): c for c in comparisons if c["metric"] == across["metric"]}
    rows = []
    for r in arms:
        rows += [(f"{r['arm']} · {ds}", comp[(ds, r["arm"])], "o", "tab:purple") for ds in r["collections"]]
        rows.append((f"{r['arm']} · average", r, "D", "black"))
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.32 * len(rows)))
    for i, (_, c, marker, color) in enumerate(rows):
        y = len(rows) - 1 - i
        ax.errorbar([c["mean_diff"]], [y], xerr=[[c["mean_diff"] - c["ci95_low"]], [c["ci95_high"] - c["mean_diff"]]],
                    fmt=marker, color=color, capsize=3, markersize=5)
    ax.axvline(0.0, color="grey", linewidth=0.8)
    if margin:
        ax.axvspan(-margin, margin, color="tab:green", alpha=0.12, label=f"equivalence margin ±{margin:g}")
        ax.legend(fontsize=7, loc="best")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label for label, *_ in reversed(rows)], fontsize=7)
    ax.set_xlabel(f"{across['metric']}: arm - reference, 95% CI (diamond: equal-weight average over the collections)")
    return _save(fig, path)


def eval_plots(doc: dict, per_query: dict, output: Path) -> list[Path]:
    """An evaluation's figures: per-query deltas against the reference (first metric) and routing counts."""
    from maw_bench.outputs.folders import safe_name

    written = []
    metric, ref = doc["metrics"][0], doc["reference"]
    for dataset, models in per_query.items():
        if ref not in models:
            continue
        base = models[ref][metric]
        deltas = {model: sorted(scores[metric].get(q, 0.0) - v for q, v in base.items())
                  for model, scores in models.items() if model != ref}
        p = per_query_deltas(deltas, metric, ref, output / f"per_query_delta__{safe_name(dataset)}.png")
        if p is not None:
            written.append(p)
    for dataset, models in (doc.get("routing") or {}).items():
        p = routing_counts(models, output / f"depth_choices__{safe_name(dataset)}.png", title=dataset)
        if p is not None:
            written.append(p)
    return written
