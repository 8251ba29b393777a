"""Scale-out on CPU: DDP with gloo and 2 processes equals one process; sharded encoding; GradCache."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from conftest import tiny_overrides
from safetensors.torch import load_file

from maw_bench.config import BenchmarkConfig
from maw_bench.evaluation.runfiles import read_trec

TIMEOUT = 240  # every distributed test ends within this many seconds (no hang)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], nproc: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "maw_bench", *args]
    else:
        cmd = [sys.executable, "-m", "maw_bench", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _sets(*items: str) -> list[str]:
    return [x for item in items for x in ("--set", item)]


@pytest.mark.slow
@pytest.mark.parametrize("arm, selection", [("standard", "soft"), ("maw", "soft")])
def test_one_step_on_two_ranks_equals_one_process(tiny_model_no_dropout, toy_beir, tmp_path, arm, selection):
    """Deterministic arms only: sampled selections (gumbel, grpo) draw different noise per rank. Dropout off:
    two ranks draw their masks from two streams and one process from one, and this law is about the reduction."""
    common = tiny_overrides(tiny_model_no_dropout, toy_beir, "train.max_steps=1", "train.warmup_ratio=0.0",
                            f"maw.selection={selection}", "train.deterministic=true", "train.negatives=2")
    _run(["train", "--arms", arm, "--output", str(tmp_path / "one"), *_sets(*common, "train.batch_size=8")])
    _run(["train", "--arms", arm, "--output", str(tmp_path / "two"), *_sets(*common, "train.batch_size=4")], nproc=2)
    logs = [json.loads((tmp_path / r / arm / "train_log.jsonl").read_text().splitlines()[0]) for r in ("one", "two")]
    assert logs[0]["loss"] == pytest.approx(logs[1]["loss"], abs=1e-5)
    a = load_file(str(tmp_path / "one" / arm / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / arm / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=0), k


def _reduce_worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from maw_bench.runtime.distributed import mean_across_ranks

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    stats = mean_across_ranks({"reward_mean": float(rank + 1), "kl": 10.0 * rank}, 2)
    with open(f"{out}.{rank}", "w") as f:
        json.dump(stats, f)
    dist.destroy_process_group()


def test_policy_statistics_are_the_mean_over_ranks(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_reduce_worker, args=(_free_port(), str(tmp_path / "stats")), nprocs=2, join=True)
    for rank in (0, 1):
        assert json.loads((tmp_path / f"stats.{rank}").read_text()) == {"reward_mean": 1.5, "kl": 5.0}


@pytest.mark.slow
def test_grpo_trains_on_two_ranks(tiny_model, toy_beir, tmp_path):
    common = tiny_overrides(tiny_model, toy_beir, "train.max_steps=2", "maw.grpo.group_size=2", "train.batch_size=4")
    _run(["train", "--arms", "maw", "--output", str(tmp_path / "two"), *_sets(*common)], nproc=2)
    log = [json.loads(line) for line in (tmp_path / "two" / "maw" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    # the histogram counts the sequences of both ranks: 2 x (4 queries + 4 x (1 + 1) documents)
    assert all(sum(r["depth_histogram"][0]) == 2 * (4 + 8) for r in log)
    assert all("kl" in r["grpo"] for r in log)


@pytest.mark.slow
def test_sharded_encoding_on_two_ranks_gives_the_same_run_file(tiny_model, toy_beir, tmp_path):
    sets = _sets(f"model.name={tiny_model}", "eval.shard_docs=40", "eval.batch_size=8", "model.max_length=32")
    _run(["eval", "--dataset", str(toy_beir), "--output", str(tmp_path / "one"),
          *sets, "--set", f"eval.cache_dir={tmp_path / 'c1'}"])
    _run(["eval", "--dataset", str(toy_beir), "--output", str(tmp_path / "two"),
          *sets, "--set", f"eval.cache_dir={tmp_path / 'c2'}"], nproc=2)
    (one,) = (tmp_path / "one" / "runs").glob("*.trec")
    (two,) = (tmp_path / "two" / "runs").glob("*.trec")
    r1, r2 = read_trec(one), read_trec(two)
    assert r1.keys() == r2.keys()
    for q in r1:
        assert list(r1[q])[:10] == list(r2[q])[:10]
        assert all(abs(r1[q][d] - r2[q].get(d, -9)) < 1e-5 for d in list(r1[q])[:10])
    shards = sorted(p.name for p in (tmp_path / "c2").rglob("shard_*.npy"))
    assert shards == ["shard_00000.npy", "shard_00001.npy", "shard_00002.npy"]


@pytest.mark.parametrize("arm", ["standard", "maw"])
def test_grad_cache_gives_the_same_gradients_as_plain_info_nce(tiny_model, toy_beir, monkeypatch, arm):
    """Dropout on (and Gumbel noise in the MAW arm): the replay must draw the masks of the first pass."""
    from maw_bench.data import load_bundle
    from maw_bench.modeling import build_encoder
    from maw_bench.runtime import rng
    from maw_bench.training.step import LossSettings, _chunks, batch_loss, grad_cache_step

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "maw.selection=gumbel"))
    enc = build_encoder(cfg.arm(arm)).train()
    bundle = load_bundle(str(toy_beir), "train")
    q = enc.tokenize(list(bundle.queries.values())[:8], "query")
    d = enc.tokenize([t for _, t in bundle.docs_iter()][:16], "doc")
    exclude = torch.zeros(8, 16, dtype=torch.bool)
    settings = LossSettings()

    def grads() -> dict[str, torch.Tensor]:
        out = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
        enc.zero_grad()
        return out

    torch.manual_seed(0)  # the plain loss over the same chunks, so it draws the same masks in the same order
    qe = torch.cat([enc(**c).single for c in _chunks(q, 3)])
    de = torch.cat([enc(**c).single for c in _chunks(d, 3)])
    plain = batch_loss(qe, de, settings, exclude, None)[0]
    plain.backward()
    ref = grads()
    torch.manual_seed(0)
    cached = grad_cache_step(enc, enc, q, d, settings, 3, exclude)
    assert cached.backward_done and abs(float(cached.loss) - float(plain.detach())) < 1e-6
    got = grads()
    for n, g in ref.items():
        assert torch.allclose(got[n], g, atol=1e-5, rtol=1e-4), n
    monkeypatch.setattr(rng, "restore", lambda state: None)  # a replay that forgets the random state ...
    torch.manual_seed(0)
    grad_cache_step(enc, enc, q, d, settings, 3, exclude)
    wrong = grads()
    assert any(not torch.allclose(wrong[n], g, atol=1e-5, rtol=1e-4) for n, g in ref.items())  # ... is caught
