"""Checkpoints that survive SIGKILL: written to a temporary folder, checksummed, renamed.

A checkpoint holds the trainable state (safetensors), optimiser, scheduler and grad
scaler (``torch.load(weights_only=True)`` on the way back), every RNG state and the
data position. ``latest_valid`` returns the newest checkpoint whose checksums
match, warning about (and skipping) a truncated or corrupt newer one.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from maw_bench.errors import UserError
from maw_bench.runtime.atomic import sha256_file, write_json

log = logging.getLogger("maw_bench")
KEEP = 2


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    np_state = np.random.get_state()
    meta = {
        "python": _jsonable(random.getstate()),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, meta


def _jsonable(x):
    return [_jsonable(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tupled(x):
    return tuple(_tupled(v) for v in x) if isinstance(x, list) else x


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda"))]
        if states:
            torch.cuda.set_rng_state_all(states)
    random.setstate(_tupled(meta["python"]))
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))


def save_checkpoint(folder: Path, step: int, model: torch.nn.Module, optimizer, scheduler, scaler, extra: dict) -> Path:
    """Write ``folder/step-XXXXXXX`` atomically; keep the newest ``KEEP``."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:07d}"
    tmp = folder / f".tmp-step-{step:07d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
         "scaler": scaler.state_dict() if scaler is not None else None},
        tmp / "optim.pt",
    )
    rng_tensors, rng_meta = rng_state()
    save_file({k: v.contiguous() for k, v in rng_tensors.items()}, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "rng": rng_meta, **extra}))
    files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
    write_json(tmp / "checksums.json", files)
    for p in tmp.iterdir():
        with p.open("rb") as f:
            os.fsync(f.fileno())
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in sorted(folder.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def is_valid(ckpt: Path) -> bool:
    try:
        sums = json.loads((ckpt / "checksums.json").read_text())
        return bool(sums) and all(sha256_file(ckpt / name) == digest for name, digest in sums.items())
    except (OSError, ValueError):
        return False


def latest_valid(folder: Path) -> Path | None:
    for stale in folder.glob(".tmp-step-*"):  # a save killed half-way
        shutil.rmtree(stale, ignore_errors=True)
    for ckpt in sorted(folder.glob("step-*"), reverse=True):
        if is_valid(ckpt):
            return ckpt
        log.warning("checkpoint %s is truncated or corrupt; falling back to the previous one", ckpt)
    return None


def load_checkpoint(ckpt: Path, model: torch.nn.Module, optimizer, scheduler, scaler) -> dict:
    """Restore everything in place; return ``state.json`` (step, data position, ...)."""
    model.load_state_dict(load_file(str(ckpt / "model.safetensors")), strict=True)
    try:
        blob = torch.load(ckpt / "optim.pt", map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"{ckpt / 'optim.pt'} holds more than tensors and numbers (pickled code?); refusing to load it. "
                        "Delete that checkpoint to resume from the one before.") from exc
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    if scaler is not None and blob["scaler"] is not None:
        scaler.load_state_dict(blob["scaler"])
    state = json.loads((ckpt / "state.json").read_text())
    set_rng_state(load_file(str(ckpt / "rng.safetensors")), state["rng"])
    return state
