"""Readers of the files runs leave behind, tolerant of a last line cut short by a kill."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

log = logging.getLogger("maw_bench")


def read_jsonl(path: Path) -> list[dict]:
    """Every complete JSON line of ``path`` (``[]`` when missing); a line cut by a kill is skipped with a warning."""
    if not path.is_file():
        return []
    out, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            bad += 1
    if bad:
        log.warning("%s: skipped %d line(s) that are not complete JSON (a run killed while writing?)", path, bad)
    return out


def read_log(folder: Path) -> list[dict]:
    """A training arm's ``train_log.jsonl``."""
    return read_jsonl(folder / "train_log.jsonl")


def read_per_query(eval_dir: Path) -> dict:
    """``{dataset: {model: {metric: {qid: score}}}}`` from an evaluation's ``per_query.csv``."""
    out: dict = {}
    with (eval_dir / "per_query.csv").open() as f:
        for r in csv.DictReader(f):
            slot = out.setdefault(r["dataset"], {}).setdefault(r["model"], {}).setdefault(r["metric"], {})
            slot[r["query_id"]] = float(r["value"])
    return out
