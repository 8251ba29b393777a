"""Turn ir_datasets' failed downloads into one line that says where the file goes.

ir_datasets tries to download what is missing. Offline, that fails with a long
traceback (or, behind a silent firewall, a long wait). Inside :func:`explain_missing`
every download that is about to start is recorded; when ``MAW_BENCH_OFFLINE=1``
it is refused at once, and any failure becomes a :class:`UserError` naming the
dataset, the file, where to put it and how to fetch it elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from maw_bench.errors import UserError


class _Refused(RuntimeError):
    pass


def offline_mode() -> bool:
    return os.environ.get("MAW_BENCH_OFFLINE", "0").lower() in ("1", "true", "yes")


def _url(download) -> str:
    for mirror in getattr(download, "mirrors", []):
        url = getattr(mirror, "url", None)
        if url:
            return url
    return "<see ir_datasets' downloads.json>"


@contextlib.contextmanager
def explain_missing(dataset_id: str) -> Iterator[None]:
    """Run ir_datasets calls; a missing, undownloadable file becomes a one-line ``UserError``."""
    from ir_datasets.util.download import Download

    attempts: list[tuple[str, str]] = []
    original = Download.path

    def path(self, force: bool = True):  # noqa: ANN001 - ir_datasets' signature
        target = self._cache_path
        if force and self._path is None and (target is None or not os.path.exists(target)):
            attempts.append((_url(self), str(target or "a temporary file")))
            if offline_mode():
                raise _Refused(attempts[-1][0])
        return original(self, force)

    previous = logging.root.manager.disable
    # ir_datasets' own loggers would print retries and tracebacks. The guard is global, so it must only wrap
    # ir_datasets' own calls: iterators pull blocks inside it and yield outside it (DatasetBundle.docs_iter).
    logging.disable(logging.WARNING)
    Download.path = path
    try:
        yield
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure after a download attempt
        if not attempts:
            raise
        url, target = attempts[-1]
        name = url.rsplit("/", 1)[-1]
        raise UserError(
            f"dataset {dataset_id} needs {name}, which is not at {target} and cannot be downloaded here "
            f"({type(exc).__name__}); on a connected machine run `curl -L -o {name} {url}` "
            f"and copy it to {target} (IR_DATASETS_HOME={irds_home()})."
        ) from exc
    finally:
        Download.path = original
        logging.disable(previous)


def irds_home() -> Path:
    return Path(os.environ.get("IR_DATASETS_HOME", Path.home() / ".ir_datasets"))
