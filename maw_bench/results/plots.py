"""Plots as PNG: training loss curves, the router's depth choices, a metric against depth."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from maw_bench.atomic import atomic_open  # noqa: E402


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
