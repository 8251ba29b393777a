"""Exported arms load in the field's tools, without maw-bench, and give maw-bench's own embeddings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import texts, tiny_overrides
from typer.testing import CliRunner

from maw_bench.cli import app
from maw_bench.config import BenchmarkConfig
from maw_bench.modeling import build_encoder, load_encoder
from maw_bench.modeling.export import export_sentence_transformers

ARMS = {  # one of each kind of modelling code the export must carry
    "split-grpo-head": ["maw.enabled=true", "maw.router.granularity=head"],
    "nested-gumbel-all": ["maw.enabled=true", "maw.variant=nested", "maw.depth=2", "maw.selection=gumbel",
                          "maw.layers=all"],
    "full-soft-append": ["maw.enabled=true", "maw.variant=full", "maw.selection=soft", "maw.placement=append"],
    "standard-append": ["maw.placement=append"],
    "standard-prefixes": ["model.query_prefix='query: '", "model.doc_prefix='passage: '"],
    "gated-channel-all": ["attention.mechanism=gated", "attention.gated.granularity=channel", "maw.layers=all"],
    "diff-last": ["attention.mechanism=diff"],
    "gated-append": ["attention.mechanism=gated", "maw.placement=append", "maw.num_blocks=2"],
    "diff-append": ["attention.mechanism=diff", "maw.placement=append", "attention.diff.lambda_init=0.2"],
}


def _load_without_maw_bench(folders: list[Path], tmp_path: Path) -> dict[str, np.ndarray]:
    (tmp_path / "texts.json").write_text(json.dumps(texts()))
    out = tmp_path / "theirs.npz"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    script = Path(__file__).with_name("load_exported.py")
    res = subprocess.run([sys.executable, str(script), str(tmp_path / "texts.json"), str(out), *map(str, folders)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return dict(np.load(out))


def test_every_kind_of_arm_loads_without_maw_bench_with_the_same_embeddings(tiny_model, tmp_path):
    folders, ours = [], []
    for i, (name, overrides) in enumerate(ARMS.items()):
        enc = build_encoder(BenchmarkConfig.load(overrides=[f"model.name={tiny_model}", "maw.depth=4", *overrides]))
        torch.manual_seed(i)
        with torch.no_grad():  # a trained-looking model: routers that choose, appended blocks that act
            for p in enc.parameters():
                p.add_(0.05 * torch.randn_like(p))
            for layer, m in enumerate(enc.maw_modules()):  # routers centred on these texts: each depth wins somewhere
                if m.router is not None:
                    m.router.policy.weight.normal_()
                    logits = enc.eval()(**enc.tokenize(texts())).routes[0][layer].logits
                    m.router.policy.bias.sub_(logits.mean(0).flatten() + 0.01 * torch.randn(logits[0].numel()))
        enc.eval()
        if enc.maw_modules() and enc.strategy.needs_router:
            batch = enc.tokenize(texts())
            for route in enc(**batch).routes[0]:
                assert route.chosen().unique().numel() > 1, name  # the routers really pick different depths per text
        length = enc.published_max_length
        ours.append((enc.encode(texts(), max_length=length).numpy(),
                     enc.encode(texts(), kind="query", max_length=length).numpy()))
        folders.append(export_sentence_transformers(enc, tmp_path / name))
    theirs = _load_without_maw_bench(folders, tmp_path)
    for i, name in enumerate(ARMS):
        doc, query = ours[i]
        remote = "append" in name or name.startswith(("split", "nested", "full", "gated", "diff"))
        assert str(theirs[f"class{i}"]) == ("MAWEncoderModel" if remote else "BertModel"), name
        assert np.abs(theirs[f"doc{i}"] - doc).max() <= 1e-5, name
        assert np.abs(theirs[f"query{i}"] - query).max() <= 1e-5, name
        if "prefix" not in name:  # AutoModel by hand has no prompts
            assert np.abs(theirs[f"auto{i}"] - doc).max() <= 1e-5, name


def test_training_exports_every_arm_and_export_pushes_only_when_online(tiny_model, toy_beir, tmp_path, monkeypatch):
    from maw_bench.training.run import train_arms

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "train.max_steps=2"))
    train_arms(cfg, ["standard", "maw"], tmp_path / "run")
    for arm in ("standard", "maw"):
        assert (tmp_path / "run" / arm / "sentence-transformers" / "modules.json").is_file()
    assert (tmp_path / "run" / "maw" / "sentence-transformers" / "modeling_maw.py").is_file()
    assert load_encoder(tmp_path / "run" / "maw" / "model").maw_modules()

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--arm", "maw", "--output", str(tmp_path / "y"),
                                   "--push-to-hub", "someone/maw-model"])
    assert res.exit_code == 2, res.output
    assert "offline" in res.output and "HF_HUB_OFFLINE" in res.output
    assert (tmp_path / "y" / "modeling_maw.py").is_file()  # the folder is written before the push is tried
    res = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--arm", "nope", "--output", str(tmp_path / "z")])
    assert res.exit_code == 2 and "no finished arm 'nope'" in res.output


def _shipped():
    from maw_bench.modeling.export import SHIPPED

    return [(m, package) for package, modules in SHIPPED.items() for m in modules]


@pytest.mark.parametrize("module, package", _shipped())
def test_shipped_modules_import_nothing_from_maw_bench(module, package):
    import re

    from maw_bench.modeling.export import shipped_source

    text = shipped_source(module, package)
    assert not re.search(r"^\s*(from|import)\s+maw_bench", text, re.M)
    compile(text, f"maw_{module}.py", "exec")
