"""docs/extending.md's "Adding a selection method" example, run as written: registered, validated, trained, evaluated."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from conftest import tiny_overrides

from maw_bench import BenchmarkConfig
from maw_bench.maw.selection import STRATEGIES, selection_choices

README = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _readme_example() -> str:
    text = README.read_text()
    section = text[text.index("## Adding a selection method"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_strategy_registers_trains_and_selects(tiny_model, toy_beir, tmp_path):
    from maw_bench.modeling import load_encoder
    from maw_bench.modeling.export import exportable
    from maw_bench.training.run import train_arms

    STRATEGIES.pop("topk-soft", None)
    try:
        exec(compile(_readme_example(), str(README), "exec"), {})
        assert "topk-soft:<t>" in selection_choices()
        cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "maw.selection=topk-soft:2",
                                                            "train.max_steps=4"))
        train_arms(cfg, ["maw"], tmp_path / "run")
        log = [json.loads(x) for x in (tmp_path / "run" / "maw" / "train_log.jsonl").read_text().splitlines()]
        assert len(log) == 4
        enc = load_encoder(tmp_path / "run" / "maw" / "model")
        # the exported modelling code ships maw-bench's own strategies only, so this arm is not exported
        assert "registered outside" in exportable(enc)
        assert not (tmp_path / "run" / "maw" / "sentence-transformers").exists()
        m = enc.maw_modules()[0]
        with torch.no_grad():
            m.router.policy.weight.normal_()
        _, route = m.eval().routed(torch.randn(5, 7, 32))
        assert ((route.weights > 0).sum(-1) == 2).all()  # exactly k depths carry weight
    finally:
        STRATEGIES.pop("topk-soft", None)


def test_the_mechanism_example_registers_and_starts_at_the_pretrained_encoder(tiny_model):
    from conftest import texts

    from maw_bench import build_encoder
    from maw_bench.mechanisms import MECHANISMS

    text = README.read_text()
    block = re.search(r"```python\n(.*?)```", text[text.index("## Adding an attention mechanism"):], re.S).group(1)
    MECHANISMS.pop("scaled", None)
    try:
        exec(compile(block, str(README), "exec"), {})
        cfg = BenchmarkConfig.load(overrides=[f"model.name={tiny_model}", "arms={scaled: [attention.mechanism=scaled]}",
                                              "model.max_length=32"])
        enc = build_encoder(cfg.arm("scaled"))
        assert enc.params_added == 4 and enc.mechanism_layers == [1]
        assert float((enc.encode(texts()) - build_encoder(cfg).encode(texts())).abs().max()) <= 1e-6
    finally:
        MECHANISMS.pop("scaled", None)


def test_the_mechanism_kernel_example_takes_it_to_a_family_through_the_attention_interface(tmp_path):
    """The second block of that section, run after the first: the same mechanism on a tiny ModernBERT (replace
    placement, through the attention interface), starting at the unmodified model."""
    from conftest import make_tiny_family, texts

    from maw_bench import build_encoder
    from maw_bench.mechanisms import MECHANISMS

    text = README.read_text()
    section = text[text.index("## Adding an attention mechanism"):]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    kernel_block = next(b for b in blocks if "SiteKernel" in b)
    folder = make_tiny_family(tmp_path / "modernbert", "modernbert")
    MECHANISMS.pop("scaled", None)
    try:
        namespace: dict = {}
        exec(compile(blocks[0], str(README), "exec"), namespace)
        exec(compile(kernel_block, str(README), "exec"), namespace)
        cfg = BenchmarkConfig.load(overrides=[f"model.name={folder}", "arms={scaled: [attention.mechanism=scaled]}",
                                              "model.max_length=32", "model.pooling=mean", "model.prompts=none"])
        enc = build_encoder(cfg.arm("scaled"))
        assert enc.via_interface and enc.params_added == 4 and enc.mechanism_layers == [1]
        assert float((enc.encode(texts()) - build_encoder(cfg).encode(texts())).abs().max()) <= 1e-6
    finally:
        MECHANISMS.pop("scaled", None)
