"""maw-bench: does Multi-Attention-Weight attention make a better dense retriever?

Python API::

    from maw_bench import BenchmarkConfig, build_encoder, load_encoder
    cfg = BenchmarkConfig.load("x.yaml", overrides=["maw.enabled=true"])
    enc = build_encoder(cfg)
    vecs = enc.encode(["a text"], batch_size=32)
"""

from __future__ import annotations

from typing import Any

from maw_bench.config import BenchmarkConfig


def _version() -> str:
    """The installed package's version (one source of truth: pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("maw-bench")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


__version__ = _version()
__all__ = ["BenchmarkConfig", "build_encoder", "load_encoder", "save_encoder", "__version__"]


def __getattr__(name: str) -> Any:  # lazy: keep `maw-bench --help` free of torch start-up
    if name in ("build_encoder", "load_encoder", "save_encoder"):
        from maw_bench import modeling

        return getattr(modeling, name)
    raise AttributeError(name)
