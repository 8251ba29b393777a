"""Output folders: a new one per command under ``results/``, never overwriting an earlier one."""

from __future__ import annotations

import os
import time
from pathlib import Path

from maw_bench.errors import UserError

RUN_FILE = "run.json"  # marks a training run folder: {"arms": [...], ...}


def slug(text: str, limit: int = 60) -> str:
    out = "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-.")
    while "--" in out:
        out = out.replace("--", "-")
    return out[:limit] or "x"


def new_output_dir(command: str, datasets: list[str], root: str | Path = "results") -> Path:
    """``results/<command>-<datasets>-<YYYYmmdd-HHMMSS>[-N]``, created empty."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / slug(f"{command}-{'+'.join(d.replace('/', '_') for d in datasets)}-{stamp}", 120)
    candidate, n = base, 1
    while True:
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")
        except OSError as exc:
            raise UserError(f"cannot create output folder {candidate}: {exc.strerror}; pass --output to a writable place.") from None


def ensure_writable(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"  # per process: ranks of one job probe at once
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"output folder {folder} cannot be written ({exc.strerror}); choose another --output.") from None
    return folder


def safe_name(text: str) -> str:
    """A file-name-safe version of a label or dataset id."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("._") or "x"
