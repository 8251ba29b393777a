"""Output folders: a new one per command under ``results/``, never overwriting an earlier one."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from maw_bench.errors import UserError
from maw_bench.outputs.layout import METRICS_FILE, RUN_FILE, STUDY_FILE, SWEEP_FILE


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
            (candidate / OWNER_FILE).write_text(f"{command}\n")
            return candidate
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")
        except OSError as exc:
            raise UserError(f"cannot create output folder {candidate}: {exc.strerror}; pass --output to a writable place.") from None


OWNER_FILE = ".maw-bench-output"  # written into every output folder a command claims: maw-bench writes here
# files that mark a folder earlier versions of maw-bench wrote (before OWNER_FILE existed)
_WRITTEN_BY_US = (RUN_FILE, METRICS_FILE, STUDY_FILE, SWEEP_FILE, f"eval/{METRICS_FILE}")
_IGNORED = (".maw-bench.lock", ".write-test-")  # our lock file and write probes say nothing about ownership


def written_by_maw_bench(folder: Path) -> bool:
    """Whether ``folder`` is an output folder of maw-bench (claimed by a command, or an older run/eval/study)."""
    return (folder / OWNER_FILE).is_file() or any((folder / name).is_file() for name in _WRITTEN_BY_US)


def user_files(folder: Path) -> list[str]:
    """Names in ``folder`` that are not maw-bench's own lock or probe files."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(_IGNORED))


def ensure_writable(folder: Path, command: str = "output") -> Path:
    """Claim ``folder`` for a command: it must be new, empty, or an earlier maw-bench output folder.

    A folder of someone else's files is refused before any work, so nothing maw-bench writes
    later (or replaces with ``--overwrite``) can land on them.
    """
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output {folder} is a file, not a folder; choose a folder.")
    if folder.is_dir() and not written_by_maw_bench(folder):
        theirs = user_files(folder)
        if theirs:
            raise UserError(f"--output {folder} holds files maw-bench did not write ({', '.join(theirs[:3])}"
                            f"{', ...' if len(theirs) > 3 else ''}); choose a new or empty folder.")
    owner = folder / OWNER_FILE
    claimed = owner.read_text(errors="replace").strip() if owner.is_file() else ""
    if claimed and command != "output" and claimed != command:
        raise UserError(f"--output {folder} is the folder of a maw-bench {claimed}, not of a {command}; "
                        "choose another folder (a subfolder of it is fine).")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"  # per process: ranks of one job probe at once
        probe.write_text("")
        probe.unlink()
        if not (folder / OWNER_FILE).is_file():
            (folder / OWNER_FILE).write_text(f"{command}\n")
    except OSError as exc:
        raise UserError(f"output folder {folder} cannot be written ({exc.strerror}); choose another --output.") from None
    return folder


def inside_run_folder(path: Path) -> Path | None:
    """The training run folder ``path`` is, or lies inside (None when it is in none)."""
    path = path.resolve()
    for folder in (path, *path.parents):
        if (folder / RUN_FILE).is_file():
            return folder
    return None


def safe_name(text: str) -> str:
    """A file-name-safe version of a label or dataset id."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("._") or "x"


def _only_bookkeeping(folder: Path) -> bool:
    """Nothing in ``folder`` but maw-bench's marker, lock files and empty subfolders."""
    for _root, _, files in os.walk(folder):
        if any(name != OWNER_FILE and not name.startswith(_IGNORED) for name in files):
            return False
    return True


@contextmanager
def removed_if_refused(folder: Path, existed_before: bool) -> Iterator[None]:
    """A command that fails before writing a result leaves no folder behind: if ``folder`` is new (it did not
    exist before the command) and still holds only maw-bench's own marker, lock and empty subfolders when the
    command stops with an error, it is removed. Anything else in it, or a folder that existed, is left alone."""
    try:
        yield
    except BaseException:
        if not existed_before and folder.is_dir() and _only_bookkeeping(folder):
            shutil.rmtree(folder, ignore_errors=True)
        raise
