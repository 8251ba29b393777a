"""Where maw-bench keeps caches: ``$MAW_BENCH_CACHE`` or ``~/.cache/maw-bench``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = Path(os.environ.get("MAW_BENCH_CACHE", Path.home() / ".cache" / "maw-bench"))
    root.mkdir(parents=True, exist_ok=True)
    return root
