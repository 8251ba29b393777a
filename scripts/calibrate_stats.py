"""How often does each study method reject a true null at 5%, and with what power? Simulated studies.

    python scripts/calibrate_stats.py [--seeds 3 5] [--queries 300] [--sims 4000] [--output calibration.json]

For each regime of maw_bench.evaluation.calibration.REGIMES (the sd of the seed, query and residual parts
of the per-query differences), S seeds and Q queries: the share of null studies each method rejects at 5%
(crossed = the study's primary method; crossed-reml-boundary = the same without the pooling rule;
bootstrap-normal = the pigeonhole bootstrap's SE with normal quantiles, the method before; seed-t = a
t-test over per-seed means), and the primary method's power at its expected smallest detectable difference
(80% by construction when it is calibrated).
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from maw_bench.evaluation.calibration import METHODS, REGIMES, expected_min_detectable, rejection_rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--sims", type=int, default=4000)
    ap.add_argument("--boot-sims", type=int, default=1000, help="studies for the (slow) bootstrap method")
    ap.add_argument("--output", default="calibration.json")
    args = ap.parse_args()
    rows = []
    for s in args.seeds:
        for name, sd in REGIMES.items():
            fast = rejection_rates(s, args.queries, sd, args.sims, seed=1, methods=("crossed", "crossed-reml-boundary",
                                                                                      "seed-t"))
            boot = rejection_rates(s, args.queries, sd, args.boot_sims, seed=2, methods=("bootstrap-normal",))
            mde = expected_min_detectable(s, args.queries, sd)
            power = rejection_rates(s, args.queries, sd, args.sims, seed=3, methods=("crossed",), mu=mde)["crossed"]
            rows.append({"seeds": s, "queries": args.queries, "regime": name, "sd": sd, **fast, **boot,
                         "min_detectable": mde, "power_at_min_detectable": power})
    table = Table(title=f"rejection rate of a true null at 5% ({args.sims} studies; bootstrap {args.boot_sims})")
    for col in ("S", "regime (sd seed, query, resid)", *METHODS, "MDE", "power"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["seeds"]), f"{r['regime']} {r['sd']}", *(f"{r[m]:.3f}" for m in METHODS),
                      f"{r['min_detectable']:.4f}", f"{r['power_at_min_detectable']:.3f}")
    Console().print(table)
    with open(args.output, "w") as f:
        json.dump({"sims": args.sims, "boot_sims": args.boot_sims, "rows": rows}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
