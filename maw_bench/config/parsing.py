"""YAML files, ``key=value`` overrides, dotted keys, and building typed sections from raw values (coercion)."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from maw_bench.config.sections import MAWConfig
from maw_bench.errors import UserError


# ---------------------------------------------------------------------- YAML I/O
def read_yaml_mapping(path: str | Path) -> dict:
    """Safe-load a YAML file that must hold a mapping (Python tags are refused)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {p} does not exist; pass a path to a YAML file.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{p}{where}: not valid (safe) YAML: {problem}.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{p}: the top level must be a mapping of config keys, not {type(data).__name__}.")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """``'maw.layers=[-2,-1]' -> ('maw.layers', [-2, -1])``."""
    if "=" not in item:
        raise UserError(f"override {item!r} must look like key=value, e.g. maw.depth=4.")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise UserError(f"override {item!r}: the value is not valid YAML.") from exc
    return key.strip(), value


def set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value


def leaf_fields(cls: type, obj: Any = None, prefix: str = "") -> list[tuple[str, Any, str]]:
    """``(dotted key, value, help)`` of every leaf of the dataclass ``cls`` (``obj``'s values, the defaults
    without it): one walk for suggestions, ``maw-bench config-keys`` and the CLI shorthands' help."""
    obj = cls() if obj is None else obj
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t, value = hints[f.name], getattr(obj, f.name)
        if dataclasses.is_dataclass(t):
            out.extend(leaf_fields(t, value, f"{prefix}{f.name}."))
        else:
            out.append((prefix + f.name, value, f.metadata.get("help", "")))
    return out


def _unknown_key(key: str, root: tuple[type, str]) -> UserError:
    keys = [k for k, _, _ in leaf_fields(root[0], prefix=root[1])]
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else "; run `maw-bench config-keys` for the list."
    return UserError(f"unknown config key {key!r}{hint}")


def _coerce(key: str, value: Any, t: Any) -> Any:
    origin = typing.get_origin(t)
    if t is Any:
        return value
    if t is bool:
        if isinstance(value, bool):
            return value
    elif t is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif t is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '1e-4' as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif t is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif t is dict or origin is dict:
        if isinstance(value, dict):
            return value
    elif t is list or origin is list:
        if isinstance(value, list):
            return value
        if isinstance(value, (str, int)):
            return [value]
    elif origin in (Union, types.UnionType):
        return value
    else:
        return value
    name = getattr(t, "__name__", str(t))
    raise UserError(f"config key {key}={value!r} must be of type {name}.")


def _build(cls: type, raw: Any, prefix: str, root: tuple[type, str] | None = None) -> Any:
    """``cls`` from raw values, coerced to each field's type; ``root``: the section the build began at (for
    suggestions of a misspelt key)."""
    root = root or (cls, prefix)
    if not isinstance(raw, dict):
        raise UserError(f"config section {prefix.rstrip('.') or 'top level'} must be a mapping, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if cls is MAWConfig and isinstance(raw.get("router"), str):  # maw.router=head (older spelling)
        raw = {**raw, "router": {"granularity": raw["router"]}}
    for key in raw:
        if key not in names:
            raise _unknown_key(prefix + str(key), root)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            kwargs[f.name] = _build(t, raw[f.name], f"{prefix}{f.name}.", root)
        else:
            kwargs[f.name] = _coerce(prefix + f.name, raw[f.name], t)
    return cls(**kwargs)
