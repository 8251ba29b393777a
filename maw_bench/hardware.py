"""Which precision pays on this machine: ``dtype: auto`` resolves here.

bf16 autocast encodes about 3x faster than fp32 on a CPU with AMX tiles, but only
0.73x as fast on one without (AVX-512 with bf16 instructions emulates the tiles'
work), and on CUDA it pays wherever the device supports it. So ``auto`` means bf16 on
CUDA with bf16 and on CPUs with AMX, fp32 elsewhere.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

log = logging.getLogger("maw_bench")


@functools.lru_cache(maxsize=1)
def cpu_has_amx() -> bool:
    """True when the CPU advertises AMX bf16 tiles (Linux ``/proc/cpuinfo``; False where it cannot tell)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith("flags") and " amx_bf16" in line for line in text.splitlines())


def resolve_dtype(requested: str, device: torch.device) -> tuple[str, str]:
    """``(fp32 | bf16 | fp16, why)``; only ``auto`` is decided here, the rest pass through."""
    if requested != "auto":
        return requested, "as configured"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"auto: {torch.cuda.get_device_name(device)} supports bf16"
        return "fp32", "auto: this CUDA device has no bf16"
    if device.type == "cpu" and cpu_has_amx():
        return "bf16", "auto: the CPU has AMX (bf16 about 3x faster than fp32)"
    return "fp32", "auto: no AMX on this CPU (bf16 would be slower than fp32)"


def resolve_config_dtypes(cfg, device: torch.device):
    """The config with ``train.dtype`` and ``eval.dtype`` made concrete for ``device``; each auto choice logged."""
    overrides = []
    for key in ("train", "eval"):
        requested = getattr(cfg, key).dtype
        if requested == "auto":
            dtype, why = resolve_dtype(requested, device)
            log.info("%s.dtype=%s (%s)", key, dtype, why)
            overrides.append(f"{key}.dtype={dtype}")
    return cfg.with_overrides(overrides) if overrides else cfg
