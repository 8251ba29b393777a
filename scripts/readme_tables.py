"""Regenerate README's five-seed study tables from the study's summary.json (tests/test_docs_numbers.py checks them).

    python scripts/readme_tables.py            # rewrite the blocks between <!-- study5-table ... --> and
                                               # <!-- routing5-table ... --> markers
    python scripts/readme_tables.py --check    # exit 1 if README differs from what the data gives
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "results" / "study-scifact-cranfield" / "summary.json"
HEADER = ("| dataset | arm | seeds | nDCG@10 | Δ vs standard [95% CI] | p | Holm p | smallest detectable Δ |\n"
          "|---|---|---|---|---|---|---|---|")


def study5_table(doc: dict) -> str:
    """One row per dataset and arm (the summary's order), its comparison with the reference on nDCG@10."""
    comps = {(c["dataset"], c["arm"]): c for c in doc["comparisons"] if c["metric"] == doc["metrics"][0]}
    lines = [HEADER]
    for r in doc["rows"]:
        c = comps.get((r["dataset"], r["arm"]))
        cells = [r["dataset"], r["arm"] + (" (control)" if r.get("control") else ""), str(len(r["seeds"])),
                 f"{r[doc['metrics'][0]]:.4f}"]
        if c is None:
            cells += ["-", "-", "-", "-"]
        else:
            cells += [f"{c['mean_diff']:+.4f} [{c['ci95_low']:+.4f}, {c['ci95_high']:+.4f}]", f"{c['p_value']:.2g}",
                      f"{c['p_holm']:.2g}" if "p_holm" in c else "-", f"±{c['min_detectable']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


ROUTING_HEADER = ("| arm | seeds | depth at inference | settled from step | final router entropy |\n"
                  "|---|---|---|---|---|")


def routing5_table(doc: dict) -> str:
    """One row per routed arm: per seed (in order), the depth chosen at inference (its share where below 100%),
    the step from which the modal training depth kept >= 90% of texts ("never"), and the final entropy."""
    by_arm: dict[str, list[dict]] = {}
    for f in sorted(doc.get("routing") or [], key=lambda f: f["seed"]):
        by_arm.setdefault(f["arm"], []).append(f)
    lines = [ROUTING_HEADER]
    for arm, facts in by_arm.items():
        depth = ", ".join(f"{f['inference_depth']}" + ("" if f["inference_share"] >= 0.9995 else
                                                       f" ({100 * f['inference_share']:.0f}%)") for f in facts)
        settled = ", ".join("never" if f["settled_from_step"] is None else str(f["settled_from_step"]) for f in facts)
        entropy = ", ".join(f"{f['final_entropy']:.3f}" for f in facts)
        lines.append(f"| {arm} | {', '.join(str(f['seed']) for f in facts)} | {depth} | {settled} | {entropy} |")
    return "\n".join(lines) + "\n"


def rewrite(readme: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:.*?-->\n)(.*?)(<!-- /{name} -->)", re.S)
    if not pattern.search(readme):
        raise SystemExit(f"README has no {name} block")
    return pattern.sub(lambda m: m.group(1) + body + m.group(3), readme)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    doc = json.loads(STUDY.read_text())
    new = rewrite(rewrite(readme, "study5-table", study5_table(doc)), "routing5-table", routing5_table(doc))
    if args.check:
        sys.exit(0 if new == readme else 1)
    readme_path.write_text(new)


if __name__ == "__main__":
    main()
