"""GPU figures in one JSON: bf16 encode throughput, training-step times of both arms, a 2-process NCCL step.

    python scripts/gpu_check.py --out gpu_check_out            # on a CUDA machine (scripts/gpu_check.sh)
    python scripts/gpu_check.py --device cpu --passages 200 --out /tmp/g   # a dry run of the script itself

Synthetic passages (about 100 words each, generated: no data needed), MiniLM from the
offline package. Meant to finish in a few minutes on one GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def passages(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = ("protein cell gene virus cancer brain heart blood drug trial patient dose risk study effect model data "
             "the of and to in a is that for it as was with be by on not this are or from at which").split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(60, 140))) for _ in range(n)]


def encode_rate(device, n: int, batch: int, dtype: str) -> float:
    import torch

    from maw_bench import BenchmarkConfig, build_encoder

    enc = build_encoder(BenchmarkConfig.load(overrides=["model.max_length=256"]), device)
    docs = passages(n)
    enc.encode(docs[:batch], batch_size=batch, dtype=dtype)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    enc.encode(docs, batch_size=batch, dtype=dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(docs) / (time.perf_counter() - start)


def step_times(device, batch: int, dtype: str, reps: int) -> dict[str, float]:
    import torch

    from maw_bench import BenchmarkConfig, build_encoder

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_maw import timed_steps

    arms = {"standard": [], "maw-grpo-g4": ["maw.enabled=true", "maw.depth=4"],
            "maw-nested-grpo-g4": ["maw.enabled=true", "maw.depth=4", "maw.variant=nested"]}
    docs = passages(2 * batch, seed=1)
    setups = {}
    for arm, overrides in arms.items():
        enc = build_encoder(BenchmarkConfig.load(overrides=["model.max_length=256", *overrides]), device).train()
        q = {k: v.to(device) for k, v in enc.tokenize([d[:200] for d in docs[:batch]], "query").items()}
        d = {k: v.to(device) for k, v in enc.tokenize(docs[batch:], "doc").items()}
        setups[arm] = (enc, torch.optim.AdamW(enc.parameters(), lr=1e-5), q, d)
    exclude = torch.zeros(batch, batch, dtype=torch.bool, device=device)
    times = timed_steps(setups, exclude, device, dtype, reps)
    return {arm: sorted(t)[len(t) // 2] for arm, t in times.items()}


def ddp_step(out_dir: Path) -> dict:
    import torch

    if torch.cuda.device_count() < 2:
        return {"ran": False, "why": f"{torch.cuda.device_count()} GPU(s); the NCCL check needs 2"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "maw_bench", "train",
         "--arms", "standard,maw", "--output", str(out_dir / "ddp_run"), "--set", "train.max_steps=3",
         "--set", "data.max_queries=64", "--set", "data.max_docs=500", "--set", "train.dtype=bf16"],
        capture_output=True, text=True, timeout=600)
    return {"ran": True, "ok": proc.returncode == 0, "wall_s": round(time.perf_counter() - start, 1),
            "stderr_tail": proc.stderr[-1500:] if proc.returncode else ""}


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="gpu_check_out")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--passages", type=int, default=50_000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    figures: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     "torch": torch.__version__}
    t0 = time.perf_counter()
    figures["encode_bf16_docs_per_s"] = round(encode_rate(device, args.passages, args.batch_size, "bf16"), 1)
    figures["encode_fp32_docs_per_s"] = round(encode_rate(device, min(args.passages, 10_000), args.batch_size, "fp32"), 1)
    steps = step_times(device, args.train_batch, "bf16", args.reps)
    figures["train_step_bf16_s"] = {k: round(v, 4) for k, v in steps.items()}
    figures["train_step_ratio"] = {k: round(v / steps["standard"], 3) for k, v in steps.items()}
    figures["ddp_nccl"] = ddp_step(out) if device.type == "cuda" else {"ran": False, "why": "not on CUDA"}
    figures["wall_s"] = round(time.perf_counter() - t0, 1)
    (out / "gpu_check.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
