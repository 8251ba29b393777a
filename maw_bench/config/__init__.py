"""One typed configuration for every command: ``BenchmarkConfig``.

Sections ``model``, ``maw``, ``data``, ``train`` and ``eval`` are dataclasses whose
fields carry their default and a one-line help. A config comes from YAML plus
dotted overrides (``maw.depth=4``) whose values parse as YAML. Unknown keys and
invalid combinations are :class:`UserError` s that say what to change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from maw_bench.config import checks
from maw_bench.config.arms import arm_overrides, control_arms, validate_arms
from maw_bench.config.fields import _f, check_ranges, range_text
from maw_bench.config.parsing import _build, leaf_fields, parse_override, read_yaml_mapping, set_dotted
from maw_bench.config.sections import (
    DEFAULT_ARMS,
    DEFAULT_MODEL,
    AttentionConfig,
    DataConfig,
    DiffConfig,
    EvalConfig,
    GatedConfig,
    GradCacheConfig,
    GRPOConfig,
    GumbelConfig,
    LoRAConfig,
    MAWConfig,
    ModelConfig,
    NegativesConfig,
    RouterConfig,
    TrainConfig,
)

__all__ = ["DEFAULT_ARMS", "DEFAULT_MODEL", "AttentionConfig", "BenchmarkConfig", "DataConfig", "DiffConfig",
           "EvalConfig", "GRPOConfig", "GatedConfig", "GradCacheConfig", "GumbelConfig", "LoRAConfig", "MAWConfig",
           "ModelConfig", "NegativesConfig", "RouterConfig", "TrainConfig", "all_keys", "arm_overrides",
           "check_ranges", "control_arms", "key_fields", "parse_override", "range_text", "read_yaml_mapping",
           "set_dotted", "shorthand_help", "validate_arms"]


@dataclass
class BenchmarkConfig:
    seed: int = _f(13, "Seed for sampling, initialisation and data order.", ge=0, lt=2**32)
    model: ModelConfig = field(default_factory=ModelConfig)
    maw: MAWConfig = field(default_factory=MAWConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    arms: dict = _f(DEFAULT_ARMS, "Named arms: name -> list of maw.* overrides (e.g. maw-nested: [maw.enabled=true, maw.variant=nested]).")

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> BenchmarkConfig:
        """Read YAML (optional), apply ``key=value`` overrides, validate."""
        raw: dict = {}
        if path is not None:
            raw = read_yaml_mapping(path)
        for item in overrides or []:
            key, value = parse_override(item)
            set_dotted(raw, key, value)
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict) -> BenchmarkConfig:
        cfg = _build(cls, raw, prefix="")
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def derive(self, changes: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> BenchmarkConfig:
        """A validated copy with typed ``{dotted key: value}`` changes, applied in order: the one way code
        derives a config (no strings to parse, and nothing skips the checks a file gets)."""
        raw = self.to_dict()
        for key, value in (changes.items() if isinstance(changes, Mapping) else changes):
            set_dotted(raw, key, value)
        return BenchmarkConfig.from_dict(raw)

    def with_overrides(self, overrides: list[str]) -> BenchmarkConfig:
        """``derive`` from ``key=value`` strings (the command line's ``--set``, a recipe's arms and grids)."""
        return self.derive([parse_override(item) for item in overrides])

    # --------------------------------------------------------------- validation
    def validate(self) -> None:
        """Check what can be checked without the model (depth vs head is checked at build)."""
        checks.validate(self)

    def ignored_settings(self) -> list[str]:
        """Settings changed from their default that have no effect in this configuration (one line each)."""
        return checks.ignored_settings(self)

    def arm(self, name: str) -> BenchmarkConfig:
        """The config of one named arm: the shared config plus that arm's ``maw.*`` overrides."""
        return self.with_overrides(arm_overrides(self.arms, name))




def key_fields() -> list[tuple[str, Any, str]]:
    """``(dotted key, default, help)`` of every config key."""
    return leaf_fields(BenchmarkConfig)


def all_keys() -> list[str]:
    """Every dotted key of the config, for suggestions and docs."""
    return [key for key, _, _ in key_fields()]


def shorthand_help(key: str, example: str = "") -> str:
    """A CLI shorthand's help: the config key it sets and that key's own help (written once, in the schema)."""
    text = next(h for k, _, h in key_fields() if k == key)
    return f"Shorthand for --set {key}=...{f' (e.g. {example})' if example else ''}: {text}"
