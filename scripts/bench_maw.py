"""What MAW costs: encoding throughput and peak memory, and the time of one training step.

MiniLM, 512 passages at max length 256; the arms alternate in one process, round after round (peak
memory: one process per arm). Arms: standard attention; MAW with depth 4 on the last layer and a hard
selection (grpo at inference = argmax). Training step:
16 queries + 16 passages, standard vs MAW gumbel vs MAW grpo (group sizes 2, 4 and 8; split and nested).
``--grpo-regimes``: GRPO's step at initialisation and with a settled router, groups of 2, 4 and 8, and the
mean number of distinct choices per sequence (what the shared group forward's cost follows).

    python scripts/bench_maw.py
    python scripts/bench_maw.py --grpo-regimes
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from maw_bench.runtime.progress import quiet_third_party_bars  # noqa: E402 - before ir_datasets and tqdm load

quiet_third_party_bars()  # ir_datasets' docs_iter bar in a log is a line of carriage returns, as in the CLI

ARMS = {
    "standard": [],
    "maw-d4-last-hard": ["maw.enabled=true", "maw.depth=4", "maw.layers=[-1]", "maw.selection=grpo"],
    "gated-last": ["attention.mechanism=gated", "maw.layers=[-1]"],
    "diff-last": ["attention.mechanism=diff", "maw.layers=[-1]"],
}
TRAIN_ARMS = {
    "standard": [],
    "maw-gumbel": ["maw.enabled=true", "maw.depth=4", "maw.layers=[-1]", "maw.selection=gumbel"],
    "maw-grpo-g2": ["maw.enabled=true", "maw.depth=4", "maw.layers=[-1]", "maw.selection=grpo", "maw.grpo.group_size=2"],
    "maw-grpo-g4": ["maw.enabled=true", "maw.depth=4", "maw.layers=[-1]", "maw.selection=grpo", "maw.grpo.group_size=4"],
    "maw-grpo-g8": ["maw.enabled=true", "maw.depth=4", "maw.layers=[-1]", "maw.selection=grpo", "maw.grpo.group_size=8"],
    "maw-nested-grpo-g4": ["maw.enabled=true", "maw.depth=4", "maw.layers=[-1]", "maw.variant=nested",
                           "maw.selection=grpo", "maw.grpo.group_size=4"],
    "gated": ["attention.mechanism=gated", "maw.layers=[-1]"],
    "diff": ["attention.mechanism=diff", "maw.layers=[-1]"],
}


def texts(n: int) -> list[str]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_encode import scifact_texts

    return scifact_texts(n)


def peak_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def encode_child(arm: str, n: int, batch: int, dtype: str) -> None:
    """Runs in its own process so the peak-memory reading belongs to one arm."""
    import torch

    from maw_bench import BenchmarkConfig, build_encoder

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    docs = texts(n)
    enc = build_encoder(BenchmarkConfig.load(overrides=["model.max_length=256", *ARMS[arm]]), device)
    enc.encode(docs[:batch], batch_size=batch, dtype=dtype)  # warm-up
    base = peak_mb()
    enc.encode(docs, batch_size=batch, dtype=dtype)
    print(f"RESULT {peak_mb():.1f} {base:.1f}")


def encode_rates(n: int, batch: int, dtype: str, rounds: int) -> dict[str, list[float]]:
    """Docs/s of each arm per round, the arms alternating within one process so drifts of the machine's
    speed hit both alike (each round encodes all ``n`` passages once per arm)."""
    import torch

    from maw_bench import BenchmarkConfig, build_encoder

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    docs = texts(n)
    encoders = {arm: build_encoder(BenchmarkConfig.load(overrides=["model.max_length=256", *o]), device)
                for arm, o in ARMS.items()}
    for enc in encoders.values():
        enc.encode(docs[:batch], batch_size=batch, dtype=dtype)  # warm-up
    rates: dict[str, list[float]] = {arm: [] for arm in encoders}
    for _ in range(rounds):
        for arm, enc in encoders.items():
            start = time.perf_counter()
            enc.encode(docs, batch_size=batch, dtype=dtype)
            if device.type == "cuda":
                torch.cuda.synchronize()
            rates[arm].append(len(docs) / (time.perf_counter() - start))
    return rates


def timed_steps(setups: dict, exclude, device, dtype: str, reps: int) -> dict[str, list[float]]:
    """Seconds of each arm's optimiser steps (``setups[arm] = (encoder, optimiser, q, d)``), arms interleaved
    so drifts of the machine hit all of them alike; the first round warms up."""
    import torch

    from maw_bench.modeling.encoder import autocast_context
    from maw_bench.training.step import LossSettings, train_step

    times: dict[str, list[float]] = {arm: [] for arm in setups}
    for i in range(reps + 1):
        for arm, (enc, opt, q, d) in setups.items():
            start = time.perf_counter()
            with autocast_context(device, dtype):
                res = train_step(enc, enc, q, d, LossSettings(), exclude, routing_seed=i)
            res.loss.backward()
            opt.step()
            opt.zero_grad()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times[arm].append(time.perf_counter() - start)
    return times


def train_steps(reps: int, dtype: str, arms: list[str] | None = None) -> dict[str, float]:
    import torch

    from maw_bench import BenchmarkConfig, build_encoder
    from maw_bench.runtime.hardware import keep_freed_memory

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        keep_freed_memory()  # what `maw-bench train` does on a CPU
    docs = texts(64)
    queries = [d[:80] for d in docs[32:48]]
    setups = {}
    for arm, overrides in TRAIN_ARMS.items():
        if arms and arm not in arms and arm != "standard":
            continue
        cfg = BenchmarkConfig.load(overrides=["model.max_length=256", *overrides])
        enc = build_encoder(cfg, device).train()
        opt = torch.optim.AdamW(enc.parameters(), lr=1e-5)
        q = {k: v.to(device) for k, v in enc.tokenize(queries, "query").items()}
        d = {k: v.to(device) for k, v in enc.tokenize(docs[:16], "doc").items()}
        setups[arm] = (cfg, enc, opt, q, d)
    exclude = torch.zeros(16, 16, dtype=torch.bool, device=device)
    times = timed_steps({arm: (enc, opt, q, d) for arm, (_cfg, enc, opt, q, d) in setups.items()}, exclude, device,
                        dtype, reps)
    out = {arm: sorted(t)[len(t) // 2] for arm, t in times.items()}
    return out


GROUP_SIZES = (2, 4, 8)
SETTLED = ["maw.router.init_last_prob=0.9"]  # one depth at about 90%, as routers were in the study after 10-45 steps


def cpu_name() -> str:
    """The CPU model and its bf16-relevant flags, as a benchmark must name it (no flag predicts whether bf16 pays:
    ``maw_bench/runtime/precision.py`` measures it)."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        import platform

        return platform.processor() or "unknown"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f" {f}" in info]
    return f"{model}, {os.cpu_count()} cores, {' '.join(flags) or 'no AVX2'}"


def grpo_regime_arms() -> dict[str, list[str]]:
    """GRPO with groups of 2, 4, 8 at initialisation (uniform router) and settled, and the path that re-runs
    every sample (share_choices=false) at group 4 in both regimes, for the before/after."""
    base = ["maw.enabled=true", "maw.depth=4", "maw.layers=[-1]", "maw.selection=grpo"]
    arms: dict[str, list[str]] = {"standard": []}
    for regime, extra in (("init", ["maw.router.init_last_prob=0"]), ("settled", SETTLED)):
        for g in GROUP_SIZES:
            arms[f"grpo-g{g}-{regime}"] = [*base, f"maw.grpo.group_size={g}", *extra]
        arms[f"grpo-g4-{regime}-rerun"] = [*base, "maw.grpo.group_size=4", *extra, "maw.grpo.share_choices=false"]
    return arms


def grpo_regimes(reps: int, dtype: str) -> None:
    """Step time relative to standard and mean distinct choices per sequence, per group size and regime."""
    import torch

    from maw_bench import BenchmarkConfig, build_encoder
    from maw_bench.modeling.encoder import autocast_context
    from maw_bench.runtime.hardware import keep_freed_memory
    from maw_bench.training.step import LossSettings, train_step

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        keep_freed_memory()
    docs = texts(64)
    queries = [d[:80] for d in docs[32:48]]
    setups = {}
    for arm, overrides in grpo_regime_arms().items():
        enc = build_encoder(BenchmarkConfig.load(overrides=["model.max_length=256", *overrides]), device).train()
        q = {k: v.to(device) for k, v in enc.tokenize(queries, "query").items()}
        d = {k: v.to(device) for k, v in enc.tokenize(docs[:16], "doc").items()}
        setups[arm] = (enc, torch.optim.AdamW(enc.parameters(), lr=1e-5), q, d)
    exclude = torch.zeros(16, 16, dtype=torch.bool, device=device)
    distinct: dict[str, list[float]] = {arm: [] for arm in setups}
    for i in range(reps + 1):  # the distinct count of each step, read outside the timed region
        for arm, (enc, _opt, q, d) in setups.items():
            with torch.no_grad(), autocast_context(device, dtype):
                res = train_step(enc, enc, q, d, LossSettings(), exclude, routing_seed=i)
            if "distinct_choices" in res.policy:
                distinct[arm].append(res.policy["distinct_choices"])
    times = timed_steps(setups, exclude, device, dtype, reps)
    med = {arm: statistics.median(t) for arm, t in times.items()}
    print(f"GRPO regimes: 16 queries + 16 passages, {dtype}, median of {reps} interleaved steps")
    print(f"cpu: {cpu_name()}")
    print(f"  {'arm':<24} {'step':>9} {'x standard':>11} {'distinct/seq':>13}")
    for arm, t in med.items():
        dc = f"{statistics.mean(distinct[arm]):.2f}" if distinct[arm] else "-"
        print(f"  {arm:<24} {t * 1000:7.0f}ms {t / med['standard']:10.2f}x {dc:>13}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--passages", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--train-reps", type=int, default=9)
    ap.add_argument("--encode-rounds", type=int, default=5, help="Alternating rounds of the encoding comparison.")
    ap.add_argument("--skip-train", action="store_true", help="Time the encoding only.")
    ap.add_argument("--skip-encode", action="store_true", help="Time the training steps only.")
    ap.add_argument("--train-arms", default="", help=f"Comma-separated subset of {', '.join(TRAIN_ARMS)} "
                    "(standard is always timed).")
    ap.add_argument("--grpo-regimes", action="store_true", help="Time GRPO's group sizes at initialisation and "
                    "with a settled router (and the path that re-runs every sample), with the distinct choices.")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        encode_child(args.child, args.passages, args.batch_size, args.dtype)
        return
    if args.grpo_regimes:
        grpo_regimes(args.train_reps, args.dtype)
        return
    print(f"encode: {args.passages} passages, max length 256, batch {args.batch_size}, {args.dtype}")
    if not args.skip_encode:
        for arm in ARMS:
            res = subprocess.run([sys.executable, __file__, "--child", arm, "--passages", str(args.passages),
                                  "--batch-size", str(args.batch_size), "--dtype", args.dtype],
                                 capture_output=True, text=True, check=True)
            peak, base = map(float, res.stdout.split("RESULT")[-1].split())
            print(f"  {arm:<18} peak memory {peak:8.1f} MB (after warm-up {base:.1f} MB), own process")
        rates = encode_rates(args.passages, args.batch_size, args.dtype, args.encode_rounds)
        for arm, r in rates.items():
            print(f"  {arm:<18} {statistics.median(r):8.1f} docs/s (median of {len(r)} alternating rounds)")
        ratios = [m / s for m, s in zip(rates["maw-d4-last-hard"], rates["standard"])]
        print(f"  MAW/standard throughput, median of the rounds' ratios: {statistics.median(ratios):.3f}x "
              f"(goal >= 0.95x; rounds: {', '.join(f'{r:.3f}' for r in ratios)})")
    if args.skip_train:
        return
    print(f"train step: 16 queries + 16 passages, {args.dtype}, median of {args.train_reps}")
    times = train_steps(args.train_reps, args.dtype, [a for a in args.train_arms.split(",") if a])
    for arm, t in times.items():
        print(f"  {arm:<18} {t * 1000:8.1f} ms   {t / times['standard']:.2f}x standard (goal <= 1.5x)")


if __name__ == "__main__":
    main()
