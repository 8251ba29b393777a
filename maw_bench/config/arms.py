"""Named arms: lists of ``maw.*``/``attention.*`` overrides on the shared config, and the controls of a MAW arm."""

from __future__ import annotations

from typing import Any

from maw_bench.config.parsing import parse_override
from maw_bench.errors import UserError


def validate_arms(arms: Any) -> None:
    """Each arm is a list of ``maw.*`` overrides: arms may differ in the attention and nothing else."""
    if not isinstance(arms, dict) or not arms:
        raise UserError("arms must map arm names to lists of maw.* overrides, e.g. maw-nested: [maw.variant=nested].")
    for name, items in arms.items():
        if not isinstance(items, list):
            raise UserError(f"arms.{name} must be a list of overrides such as [maw.enabled=true].")
        for item in items:
            key, _ = parse_override(str(item))
            if not key.startswith(("maw.", "attention.")):
                raise UserError(
                    f"arms.{name}: {key} is not a maw.* or attention.* key; arms may differ only in the attention "
                    "(seed, data and training settings are shared)."
                )


def arm_overrides(arms: dict, name: str) -> list[str]:
    """Overrides of a named arm or of a control of one (``<arm>-uniform``, ``<arm>-fixed<t>``: the strategies
    that declare themselves controls)."""
    if name in arms:
        return [str(x) for x in arms[name]]
    from maw_bench.maw.selection import STRATEGIES

    for control, cls in STRATEGIES.items():
        if not cls.is_control:
            continue
        base, sep, rest = name.rpartition(f"-{control}")
        if sep and base in arms and (rest.isdigit() if cls.takes_argument else rest == ""):
            return [*map(str, arms[base]), f"maw.selection={control}{':' + rest if rest else ''}"]
    raise UserError(f"unknown arm {name!r}; use one of {', '.join(arms)} (or <arm>-uniform, <arm>-fixed<t>), "
                    "or define it under arms: in the config.")


def control_arms(cfg, arm: str) -> list[str]:
    """The controls of a MAW arm: the same split with no router (``uniform``) and every ``fixed:t``."""
    from maw_bench.maw.selection import control_selections

    acfg = cfg.arm(arm)
    if not acfg.maw.enabled:
        return []
    return [arm + suffix for suffix, _ in control_selections(acfg.maw.depth)]


