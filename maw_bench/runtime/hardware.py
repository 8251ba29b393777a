"""Which precision pays on this machine: ``dtype: auto`` resolves here.

On CUDA bf16 pays wherever the device supports it. On a CPU no flag predicts it (see
``runtime/precision.py``), so ``auto`` measures it once per machine: bf16 for encoding where a forward pass
ran at least ``BF16_MARGIN`` times as fast under bf16 autocast, for training where forward plus backward did.
"""

from __future__ import annotations

import logging

import torch

from maw_bench.runtime.precision import BF16_MARGIN, bf16_probe

log = logging.getLogger("maw_bench")


def resolve_dtype(requested: str, device: torch.device, work: str = "eval") -> tuple[str, str, dict]:
    """``(fp32 | bf16 | fp16, why, record)`` for ``work`` (``train`` or ``eval``); only ``auto`` is decided here,
    the rest pass through. ``record`` is what ``run.json`` and ``metrics.json`` keep of the choice."""
    record: dict = {"requested": requested}
    if requested != "auto":
        return requested, "as configured", {**record, "dtype": requested}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        dtype = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        why = f"auto: {name} supports bf16" if dtype == "bf16" else "auto: this CUDA device has no bf16"
        return dtype, why, {**record, "dtype": dtype, "device": name}
    if device.type != "cpu":
        return "fp32", f"auto: fp32 on {device.type}", {**record, "dtype": "fp32"}
    probe, cached = bf16_probe()
    speedup = probe.speedup(work)
    dtype = "bf16" if speedup >= BF16_MARGIN else "fp32"
    what = "a forward pass" if work == "eval" else "a training step"
    why = (f"auto: bf16 autocast ran {what} {speedup:.2f}x as fast as fp32 on this CPU ({probe.cpu}, "
           f"{probe.threads} threads; {'measured ' + probe.measured_at if cached else 'measured now'}); "
           f"bf16 where >= {BF16_MARGIN:.2f}x")
    return dtype, why, {**record, "dtype": dtype, "bf16_speedup": speedup, "margin": BF16_MARGIN,
                        "cpu": probe.cpu, "threads": probe.threads, "measured_at": probe.measured_at}


def resolve_config_dtypes(cfg, device: torch.device, world_size: int = 1, uses: tuple[str, ...] = ("train", "eval")):
    """``(cfg, record)``: the config with ``train.dtype`` and ``eval.dtype`` made concrete for ``device``, and what
    was chosen and why, per section. The auto choices of the sections the caller ``uses`` are logged with the
    measured bf16/fp32 ratio (a smoke logged each choice twice, once per stage). Rank 0 decides for every rank:
    ranks that measured for themselves could pick different precisions."""
    from maw_bench.runtime.distributed import from_main_rank

    choices = from_main_rank(lambda: {key: resolve_dtype(getattr(cfg, key).dtype, device, key)
                                      for key in ("train", "eval")}, world_size)
    changes, record = {}, {}
    for key, (dtype, why, record[key]) in choices.items():
        if getattr(cfg, key).dtype == "auto":
            if key in uses:
                log.info("%s.dtype=%s (%s)", key, dtype, why)
            changes[f"{key}.dtype"] = dtype
    return (cfg.derive(changes) if changes else cfg), record


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
