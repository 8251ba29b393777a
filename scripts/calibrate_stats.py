"""How often does each study method reject a true null at 5%, and with what power? Simulated studies.

    python scripts/calibrate_stats.py [--seeds 3 5] [--queries 300] [--sims 4000] [--grid-sims 10000]
                                      [--output results/calibration.json]

Two tables. The named regimes of maw_bench.evaluation.calibration.REGIMES (sd of the seed, query and
residual parts of the per-query differences) at S seeds and Q queries, every method: crossed = the study's
primary method; crossed-plain-df = the same with Satterthwaite's df at the plain plug-in mean squares;
crossed-reml-boundary = plain df, and the seed factor pooled where REML sets it to 0; crossed-pool-0.25 =
plain df, and the F-test pooling rule used before; bootstrap-normal = the pigeonhole bootstrap's
SE with normal quantiles; seed-t = a t-test over per-seed means; and the primary method's power at its
expected smallest detectable difference (80% by construction when it is calibrated). Then the grid
(calibration.grid(): 3 and 5 seeds x 100, 225, 300 queries x query parts x seed parts), the crossed
variants, summarised per seeds x queries by the lowest and highest rate and the regime of the highest.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from maw_bench.evaluation.calibration import (
    FAST_METHODS,
    METHODS,
    REGIMES,
    expected_min_detectable,
    grid,
    rejection_rates,
)


def named_rows(args: argparse.Namespace) -> list[dict]:
    rows = []
    for s in args.seeds:
        for name, sd in REGIMES.items():
            fast = rejection_rates(s, args.queries, sd, args.sims, seed=1, methods=(*FAST_METHODS, "seed-t"))
            boot = rejection_rates(s, args.queries, sd, args.boot_sims, seed=2, methods=("bootstrap-normal",))
            mde = expected_min_detectable(s, args.queries, sd)
            power = rejection_rates(s, args.queries, sd, args.sims, seed=3, methods=("crossed",), mu=mde)["crossed"]
            rows.append({"seeds": s, "queries": args.queries, "regime": name, "sd": sd, **fast, **boot,
                         "min_detectable": mde, "power_at_min_detectable": power})
    return rows


def grid_summary(rows: list[dict]) -> list[dict]:
    """Per (seeds, queries): each method's lowest and highest rate over the grid, and where the highest is."""
    out = []
    for key in sorted({(r["seeds"], r["queries"]) for r in rows}):
        cell = [r for r in rows if (r["seeds"], r["queries"]) == key]
        item = {"seeds": key[0], "queries": key[1], "regimes": len(cell)}
        for m in FAST_METHODS:
            worst = max(cell, key=lambda r: r[m])
            item[m] = {"min": min(r[m] for r in cell), "max": worst[m], "max_regime": worst["regime"]}
        out.append(item)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--sims", type=int, default=4000)
    ap.add_argument("--boot-sims", type=int, default=1000, help="studies for the (slow) bootstrap method")
    ap.add_argument("--grid-sims", type=int, default=10000, help="studies per regime of the grid")
    ap.add_argument("--output", default="results/calibration.json")
    args = ap.parse_args()
    rows = named_rows(args)
    table = Table(title=f"rejection rate of a true null at 5% ({args.sims} studies; bootstrap {args.boot_sims})")
    for col in ("S", "regime (sd seed, query, resid)", *METHODS, "MDE", "power"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["seeds"]), f"{r['regime']} {r['sd']}", *(f"{r[m]:.3f}" for m in METHODS),
                      f"{r['min_detectable']:.4f}", f"{r['power_at_min_detectable']:.3f}")
    Console().print(table)
    grid_rows = [{"seeds": s, "queries": q, "regime": name, "sd": sd,
                  **rejection_rates(s, q, sd, args.grid_sims, seed=4, methods=FAST_METHODS)}
                 for s, q, name, sd in grid()]
    summary = grid_summary(grid_rows)
    gt = Table(title=f"grid: lowest - highest rate over {summary[0]['regimes']} regimes ({args.grid_sims} studies each)")
    for col in ("S", "Q", *FAST_METHODS, "highest (primary) at"):
        gt.add_column(col, justify="right")
    for g in summary:
        gt.add_row(str(g["seeds"]), str(g["queries"]), *(f"{g[m]['min']:.3f} - {g[m]['max']:.3f}" for m in FAST_METHODS),
                   g["crossed"]["max_regime"])
    Console().print(gt)
    with open(args.output, "w") as f:
        json.dump({"sims": args.sims, "boot_sims": args.boot_sims, "grid_sims": args.grid_sims, "rows": rows,
                   "grid": grid_rows, "grid_summary": summary}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
