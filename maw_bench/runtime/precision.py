"""Whether bf16 autocast pays on this CPU, measured once per machine and cached.

No CPU flag predicts it: bf16 encoding ran about 3x as fast as fp32 on a Xeon with AMX, 1.7x on an AMD EPYC
(Zen 4) with ``avx512_bf16`` and no AMX, and 5.5x slower on an EPYC with AVX2 only. So ``dtype: auto`` on a
CPU times a short workload shaped like one encoder layer (the fused QKV matmul, scaled-dot-product
attention, the feed-forward block), in fp32 and under bf16 autocast, forward only (what encoding pays) and
forward plus backward (what a training step pays), and picks bf16 for each only where it ran at least
``BF16_MARGIN`` times as fast. The result is cached under maw-bench's cache keyed by the CPU model, its flags,
the torch version and the thread count, so the probe (about a second) runs once per machine.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from maw_bench.runtime.atomic import write_json
from maw_bench.runtime.paths import cache_root

# bf16 changes the scores a little (MiniLM on SciFact: nDCG@10 0.6472 against 0.6451 in fp32), so it is taken only
# where it buys a clear speed-up: 1.2x is above the +-15% that timings drift from run to run on these machines.
BF16_MARGIN = 1.2
PROBE_VERSION = 1  # bump when the workload changes: older cached results are then measured again


@dataclass(frozen=True)
class Bf16Probe:
    """How much faster bf16 autocast ran than fp32 on this machine (>1: faster), per kind of work."""

    encode_speedup: float  # forward only
    train_speedup: float  # forward and backward
    cpu: str
    threads: int
    torch: str
    measured_at: str
    seconds: float  # what the probe cost when it ran

    def speedup(self, work: str) -> float:
        return self.encode_speedup if work == "eval" else self.train_speedup


def cpu_identity() -> tuple[str, str]:
    """(model name, flags) from ``/proc/cpuinfo``; the platform's processor string elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine(), ""
    name = flags = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = value.strip()
    return name or platform.processor() or platform.machine(), flags


def probe_key(threads: int | None = None) -> str:
    """What the measurement depends on: CPU model and flags, torch version, thread count (this process's unless
    given), probe version."""
    name, flags = cpu_identity()
    threads = torch.get_num_threads() if threads is None else threads
    raw = json.dumps([PROBE_VERSION, name, sorted(flags.split()), torch.__version__, threads])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _layer_workload(train: bool):
    """One encoder layer at MiniLM's width (d 384, 12 heads, feed-forward 1536) on 4 x 128 tokens."""
    gen = torch.Generator().manual_seed(0)
    b, length, d, heads = 4, 128, 384, 12
    qkv, up, down = (torch.nn.Linear(i, o) for i, o in ((d, 3 * d), (d, 4 * d), (4 * d, d)))
    x = torch.randn(b, length, d, generator=gen)

    def run() -> None:
        with torch.set_grad_enabled(train):
            q, k, v = qkv(x).view(b, length, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, length, d)
            out = down(torch.nn.functional.gelu(up(a)))
            if train:
                out.float().sum().backward()

    return run


def _speedup(train: bool, rounds: int) -> float:
    """fp32 time / bf16 time, each the best of ``rounds`` alternating runs after one warm-up of each (the best is
    the run least disturbed by other work on the machine)."""
    run = _layer_workload(train)
    best = {"fp32": float("inf"), "bf16": float("inf")}
    for i in range(rounds + 1):
        for kind in ("fp32", "bf16"):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=kind == "bf16"):
                start = time.perf_counter()
                run()
                took = time.perf_counter() - start
            if i:  # the first round warms kernels and caches up
                best[kind] = min(best[kind], took)
    return best["fp32"] / best["bf16"]


def measure_bf16(rounds: int = 4) -> Bf16Probe:
    """Time the workload now (about a second on a 2-core CPU)."""
    start = time.perf_counter()
    encode = _speedup(False, rounds)
    train = _speedup(True, rounds)
    name, _ = cpu_identity()
    return Bf16Probe(round(encode, 3), round(train, 3), name, torch.get_num_threads(), torch.__version__,
                     time.strftime("%Y-%m-%dT%H:%M:%S"), round(time.perf_counter() - start, 3))


def probe_file(threads: int | None = None) -> Path:
    return cache_root() / "precision" / f"bf16-{probe_key(threads)}.json"


def bf16_probe() -> tuple[Bf16Probe, bool]:
    """This machine's probe and whether it came from the cache; measured (and cached) on the first use."""
    path = probe_file()
    try:
        return Bf16Probe(**json.loads(path.read_text())), True
    except (OSError, ValueError, TypeError):
        pass
    probe = measure_bf16()
    write_json(path, asdict(probe))
    return probe, False
