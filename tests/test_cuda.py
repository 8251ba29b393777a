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
    with torch.no_grad():
        m.router.policy.weight.normal_(std=0.5)  # a policy that prefers something (it starts uniform)
    x = torch.randn(3, 17, 64, device="cuda")
    mask = torch.ones(3, 1, 1, 17, dtype=torch.bool, device="cuda")
    mask[1, ..., 9:] = False
    hard, route = m.routed(x, mask)
    m.force_full = True
    full, route_full = m.routed(x, mask)
    assert torch.equal(route.choice, route_full.choice) and len(set(route.choice.tolist())) > 1
    assert (hard - full).abs().max() < 1e-4


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_training_steps_on_cuda(tiny_model, toy_beir, tmp_path, dtype):
    import json

    from maw_bench.training.run import train_arms

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "train.max_steps=3", f"train.dtype={dtype}"))
    import math

    from maw_bench.modeling import load_encoder

    train_arms(cfg, ["maw"], tmp_path / "run", device="cuda")
    log = [json.loads(x) for x in (tmp_path / "run" / "maw" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and all(math.isfinite(r["loss"]) for r in log)
    trained = load_encoder(tmp_path / "run" / "maw" / "model").state_dict()
    start = build_encoder(cfg.arm("maw")).state_dict()
    assert any(not torch.equal(trained[k].cpu(), start[k]) for k in start)  # the weights moved
    manifest = json.loads((tmp_path / "run" / "maw" / "manifest.json").read_text())
    assert manifest["device"].startswith("cuda")


def test_grad_cache_replays_the_cuda_random_state(tiny_model, toy_beir):
    """On a GPU the dropout masks come from the device's generator: the replay must restore it too."""
    from maw_bench.data import load_bundle
    from maw_bench.training.step import LossSettings, _chunks, batch_loss, grad_cache_step

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir))
    enc = build_encoder(cfg, "cuda").train()
    bundle = load_bundle(str(toy_beir), "train")
    q = {k: v.cuda() for k, v in enc.tokenize(list(bundle.queries.values())[:8], "query").items()}
    d = {k: v.cuda() for k, v in enc.tokenize([t for _, t in bundle.docs_iter()][:16], "doc").items()}
    exclude = torch.zeros(8, 16, dtype=torch.bool, device="cuda")
    torch.manual_seed(0)
    torch.cuda.manual_seed(0)
    qe = torch.cat([enc(**c).single for c in _chunks(q, 3)])
    de = torch.cat([enc(**c).single for c in _chunks(d, 3)])
    batch_loss(qe, de, LossSettings(), exclude, None)[0].backward()
    ref = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
    enc.zero_grad()
    torch.manual_seed(0)
    torch.cuda.manual_seed(0)
    grad_cache_step(enc, enc, q, d, LossSettings(), 3, exclude)
    for n, p in enc.named_parameters():
        if n in ref:
            assert torch.allclose(p.grad, ref[n], atol=1e-4, rtol=1e-3), n
