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
    changes = {}
    for key in ("train", "eval"):
        requested = getattr(cfg, key).dtype
        if requested == "auto":
            dtype, why = resolve_dtype(requested, device)
            log.info("%s.dtype=%s (%s)", key, dtype, why)
            changes[f"{key}.dtype"] = dtype
    return cfg.derive(changes) if changes else cfg


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory for reuse rather than hand it back to the kernel.

    A training step allocates and frees the same large activation buffers every time. By
    default glibc returns the top of its heap to the kernel after each free of more than
    128 KiB and serves buffers above its (adaptive) mmap threshold with fresh mappings, so
    every step page-faults its buffers in again; on a 2-core CPU that was a tenth of a
    GRPO step. This sets ``M_TRIM_THRESHOLD`` to its maximum and ``M_MMAP_THRESHOLD`` to
    the largest value glibc accepts (what ``MALLOC_TRIM_THRESHOLD_``/``MALLOC_MMAP_THRESHOLD_``
    do). Memory is then reused, not returned: the process's resident size stays at its peak.
    Nothing happens off glibc, or when the user set ``MALLOC_*``/``GLIBC_TUNABLES`` (theirs wins).
    Returns whether the setting was made.
    """
    import ctypes
    import os
    import sys

    if not sys.platform.startswith("linux") or "GLIBC_TUNABLES" in os.environ or any(
            k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_trim_threshold, 2**31 - 1) == 1
    ok = mallopt(m_mmap_threshold, 32 << 20) == 1 and ok  # glibc's ceiling on 64-bit: HEAP_MAX / 2
    log.debug("allocator: keep freed memory (mallopt %s)", "done" if ok else "refused")
    return ok
