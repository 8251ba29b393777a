"""CUDA paths (run by scripts/gpu_check.sh on a GPU machine; skipped elsewhere)."""

from __future__ import annotations

import pytest
import torch
from conftest import texts, tiny_overrides

from maw_bench import BenchmarkConfig, build_encoder

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_bf16_encoding_on_cuda_matches_fp32_on_cpu(minilm_path):
    cfg = BenchmarkConfig.load(overrides=[f"model.name={minilm_path}", "maw.enabled=true", "maw.depth=4"])
    cpu = build_encoder(cfg).encode(texts())
    gpu = build_encoder(cfg, "cuda").encode(texts(), dtype="bf16")
    assert torch.nn.functional.cosine_similarity(cpu, gpu).min() > 0.999


@pytest.mark.parametrize("variant", ["split", "full"])
def test_hard_path_equals_full_path_on_cuda(variant):
    from maw_bench.maw import MAWAttention

    m = MAWAttention(64, 4, 4, variant=variant, selection="grpo").cuda().eval()
    x = torch.randn(3, 17, 64, device="cuda")
    mask = torch.ones(3, 1, 1, 17, dtype=torch.bool, device="cuda")
    mask[1, ..., 9:] = False
    hard = m(x, mask)
    m.force_full = True
    assert (hard - m(x, mask)).abs().max() < 1e-4


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_training_steps_on_cuda(tiny_model, toy_beir, tmp_path, dtype):
    import json

    from maw_bench.training.run import train_arms

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "train.max_steps=3", f"train.dtype={dtype}"))
    train_arms(cfg, ["maw"], tmp_path / "run", device="cuda")
    log = [json.loads(x) for x in (tmp_path / "run" / "maw" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and all(r["loss"] == r["loss"] for r in log)
    manifest = json.loads((tmp_path / "run" / "maw" / "manifest.json").read_text())
    assert manifest["device"].startswith("cuda")
