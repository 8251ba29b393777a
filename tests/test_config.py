"""BenchmarkConfig: YAML round trip, overrides, clear errors."""

from __future__ import annotations

import pytest

from maw_bench.config import BenchmarkConfig, all_keys
from maw_bench.errors import UserError


def test_defaults_and_yaml_round_trip(tmp_path):
    cfg = BenchmarkConfig.load(overrides=["maw.enabled=true", "maw.layers=[-2,-1]", "train.lr=1e-4"])
    assert cfg.maw.layers == [-2, -1] and cfg.train.lr == 1e-4 and cfg.maw.enabled
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert BenchmarkConfig.load(path) == cfg


def test_overrides_win_over_yaml_and_parse_as_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("maw:\n  depth: 2\n  selection: soft\ntrain:\n  epochs: 3\n")
    cfg = BenchmarkConfig.load(path, overrides=["maw.depth=8", "maw.layers=all", "maw.grpo.group_size=6"])
    assert (cfg.maw.depth, cfg.maw.selection, cfg.maw.layers, cfg.maw.grpo.group_size) == (8, "soft", "all", 6)
    assert cfg.train.epochs == 3.0


def test_unknown_key_names_it_and_the_closest():
    with pytest.raises(UserError, match=r"unknown config key 'maw.dpeth'; did you mean maw.depth\?"):
        BenchmarkConfig.load(overrides=["maw.dpeth=4"])
    with pytest.raises(UserError, match="did you mean train.lr"):
        BenchmarkConfig.from_dict({"train": {"lrr": 0.1}})


@pytest.mark.parametrize("override, needle", [
    ("maw.selection=fixed:4", "0 <= t < maw.depth=4"),
    ("maw.depth=0", "must be >= 1"),
    ("train.lr=5", "out of range"),
    ("train.temperature=0", "must be > 0"),
    ("train.batch_size=0", "must be >= 1"),
    ("maw.selection=greedy", "is unknown"),
    ("maw.variant=half", "maw.variant='half' is not allowed"),
    ("maw.reward=bogus", "maw.reward='bogus' is not allowed; use one of: task, rank, focus"),  # the reward registry
    ("maw.depth=four", "must be of type int"),
    ("eval.ranx_engine=fast", "eval.ranx_engine='fast' is not allowed; use one of: auto, compiled, interpreted"),
])
def test_invalid_values_say_what_to_change(override, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        BenchmarkConfig.load(overrides=[override])


def test_yaml_must_be_a_safe_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="must be a mapping"):
        BenchmarkConfig.load(bad)
    evil = tmp_path / "evil.yaml"
    evil.write_text("seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UserError, match="not valid \\(safe\\) YAML"):
        BenchmarkConfig.load(evil)


def test_all_keys_is_every_leaf_of_the_config_and_each_takes_an_override():
    def leaves(tree: dict, prefix: str = "") -> list[str]:
        return [k for key, v in tree.items()
                for k in (leaves(v, f"{prefix}{key}.") if isinstance(v, dict) and key not in ("columns", "arms")
                          else [f"{prefix}{key}"])]

    default = BenchmarkConfig()
    assert sorted(all_keys()) == sorted(leaves(default.to_dict()))
    flat = dict(zip(leaves(default.to_dict()), [None] * len(all_keys())))
    for key in flat:  # setting a key to its own default is accepted and changes nothing
        value = default.to_dict()
        for part in key.split("."):
            value = value[part]
        assert BenchmarkConfig.from_dict(_nested(key, value)).to_dict() == default.to_dict(), key


def _nested(key: str, value) -> dict:
    out: dict = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


@pytest.mark.parametrize("encode, train, expected_eval_train", [(1.7, 1.07, ("bf16", "fp32")), (3.0, 1.5, ("bf16", "bf16")),
                                                     (0.18, 0.3, ("fp32", "fp32")), (1.2, 1.19, ("bf16", "fp32"))])
def test_dtype_auto_picks_bf16_only_where_the_measurement_says_it_is_faster(monkeypatch, encode, train, expected_eval_train):
    """Each kind of work takes bf16 where its own measured speed-up reaches the margin (1.2x), whatever the flags."""
    import torch

    from maw_bench.runtime import hardware, precision

    probe = precision.Bf16Probe(encode, train, "a CPU", 2, torch.__version__, "2026-01-01T00:00:00", 0.9)
    monkeypatch.setattr(hardware, "bf16_probe", lambda: (probe, True))
    train_dtype, why, record = hardware.resolve_dtype("auto", torch.device("cpu"), "train")
    assert why.startswith("auto:") and f"{train:.2f}x" in why and "1.20x" in why
    assert record == {"requested": "auto", "dtype": train_dtype, "bf16_speedup": train, "margin": 1.2, "cpu": "a CPU",
                      "threads": 2, "measured_at": "2026-01-01T00:00:00"}
    assert hardware.resolve_dtype("fp16", torch.device("cpu"))[::2] == ("fp16", {"requested": "fp16", "dtype": "fp16"})
    cfg, chosen = hardware.resolve_config_dtypes(BenchmarkConfig.load(overrides=["train.dtype=auto",
                                                                                 "eval.dtype=auto"]), torch.device("cpu"))
    assert (cfg.eval.dtype, cfg.train.dtype) == expected_eval_train == (chosen["eval"]["dtype"], chosen["train"]["dtype"])
    assert chosen["eval"]["bf16_speedup"] == encode and chosen["train"]["bf16_speedup"] == train


def test_the_bf16_probe_measures_once_per_machine_and_is_cached(monkeypatch, tmp_path):
    """The first use measures (a real run of the workload, both kinds of work) and caches; later uses read the cache
    (a second measurement here would raise); another thread count is another machine."""
    import math

    import torch

    from maw_bench.runtime import precision

    monkeypatch.setenv("MAW_BENCH_CACHE", str(tmp_path))
    real = precision.measure_bf16(rounds=1)
    assert all(math.isfinite(x) and x > 0 for x in (real.encode_speedup, real.train_speedup))
    monkeypatch.setattr(precision, "measure_bf16", lambda: real)
    first, cached = precision.bf16_probe()
    assert first == real and not cached and precision.probe_file().is_file()

    def again():
        raise AssertionError("measured twice")

    monkeypatch.setattr(precision, "measure_bf16", again)
    assert precision.bf16_probe() == (real, True)
    assert precision.probe_key(torch.get_num_threads() + 1) != precision.probe_key()
    precision.probe_file().write_text("{damaged")
    monkeypatch.setattr(precision, "measure_bf16", lambda: real)
    assert precision.bf16_probe() == (real, False)  # a damaged cache is measured again, not an error


def test_every_recipe_asks_for_auto_precision_or_says_why_not():
    """Whether bf16 pays is measured per machine; a recipe that fixes a precision must say why (the study: its
    committed seeds)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    recipes = sorted([*(root / "configs").glob("*.yaml"), *(root / "maw_bench" / "recipes").glob("*.yaml")])
    assert len(recipes) >= 5
    import yaml

    for path in recipes:
        BenchmarkConfig.load(path)
        raw = yaml.safe_load(path.read_text())
        fixed = [s for s in ("train", "eval") if (raw.get(s) or {}).get("dtype", "auto") != "auto"]
        if fixed:
            assert "on purpose" in path.read_text(), f"{path.name} fixes {fixed[0]}.dtype without saying why"


def test_derive_is_typed_validated_and_in_order():
    """Code derives a config one way: typed values, the same checks a file gets, later changes win."""
    base = BenchmarkConfig()
    cfg = base.derive({"seed": 7, "train.dtype": "fp32", "maw.layers": [-2, -1]})
    assert (cfg.seed, cfg.train.dtype, cfg.maw.layers, base.seed) == (7, "fp32", [-2, -1], BenchmarkConfig().seed)
    assert base.derive([("seed", 3), ("seed", 4)]).seed == 4
    assert base.with_overrides(["maw.layers=[-2,-1]", "seed=7", "train.dtype=fp32"]).to_dict() == cfg.to_dict()
    with pytest.raises(UserError, match="train.dtype"):
        base.derive({"train.dtype": "fp8"})
    with pytest.raises(UserError, match="did you mean"):
        base.derive({"train.dtyp": "fp32"})
