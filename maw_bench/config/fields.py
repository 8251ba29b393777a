"""Config fields: a default, a help line and the range a value must be in, and the check of those ranges."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import field
from typing import Any

from maw_bench.errors import UserError


def _f(default: Any, help: str, ge: float | None = None, gt: float | None = None, lt: float | None = None,  # noqa: A002
       le: float | None = None) -> Any:
    """A dataclass field with a default (copied if mutable), a help line and the range it accepts.

    The range (``ge``/``gt``/``lt``/``le``) is the schema: :func:`check_ranges` enforces it for every
    key when a config is built, so a value a library would refuse at step 1 (or after the encoding)
    is one line before any work.
    """
    meta = {"help": help, **{k: v for k, v in (("ge", ge), ("gt", gt), ("lt", lt), ("le", le)) if v is not None}}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: typing.cast(Any, type(d)(d)), metadata=meta)
    return field(default=default, metadata=meta)


RANGE_WORDS = {"ge": ">=", "gt": ">", "lt": "<", "le": "<="}


def range_text(meta: typing.Mapping) -> str:
    """``'>= 1 and < 10'`` for a field's declared range ('' when it has none)."""
    return " and ".join(f"{RANGE_WORDS[k]} {meta[k]}" for k in RANGE_WORDS if k in meta)


def check_ranges(obj: Any, prefix: str = "") -> None:
    """Every numeric key within the range its field declares, else one :class:`UserError` naming it."""
    import operator

    ops = {"ge": operator.ge, "gt": operator.gt, "lt": operator.lt, "le": operator.le}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_ranges(value, f"{prefix}{f.name}.")
            continue
        bad = [k for k in ops if k in f.metadata and not ops[k](value, f.metadata[k])]
        if bad:
            raise UserError(f"{prefix}{f.name}={value!r} is out of range: it must be {range_text(f.metadata)} "
                            f"(default {f.default!r}).")


