"""Bad input gets one line and exit 2; a killed run resumes exactly; nothing unsafe is loaded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides, write_toy_beir
from safetensors.torch import load_file

SIGNAL_AT_STEP = str(Path(__file__).with_name("signal_at_step.py"))


def _cli(args: list[str], cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAW_BENCH_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "maw_bench", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """Files for the table below."""
    root = tmp_path_factory.mktemp("bad")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "broken.yaml").write_text("maw: {depth: 4\n")
    (root / "evil.yaml").write_text("seed: !!python/object/apply:os.system ['echo pwned']\n")
    (root / "sweep_unknown.yaml").write_text("grid: {seed: [1]}\nfoo: 1\n")
    (root / "sweep_empty.yaml").write_text("grid: {seed: []}\n")
    empty = root / "empty_beir"
    empty.mkdir()
    badjson = write_toy_beir(root / "badjson")
    with (badjson / "corpus.jsonl").open("a") as f:
        f.write("{not json\n")
    noqrels = write_toy_beir(root / "noqrels")
    (noqrels / "qrels" / "test.tsv").unlink()
    noheader = write_toy_beir(root / "noheader")
    lines = (noheader / "qrels" / "test.tsv").read_text().splitlines()[1:]
    (noheader / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    notmodel = root / "not_a_model"
    notmodel.mkdir()
    (root / "empty_run" / "maw").mkdir(parents=True)  # a run killed before its first checkpoint
    (root / "empty_run" / "run.json").write_text('{"arms": ["maw"]}')
    return root


CASES = [
    ("misspelt key", ["train", "--set", "maw.dpeth=4"], "did you mean maw.depth"),
    ("unknown section", ["train", "--set", "modle.name=x"], "unknown config key 'modle'"),
    ("depth 0", ["train", "--set", "maw.depth=0"], "maw.depth=0 is out of range: it must be >= 1"),
    ("fixed index", ["train", "--set", "maw.selection=fixed:7"], "needs 0 <= t < maw.depth=4"),
    ("learning rate", ["train", "--set", "train.lr=3"], "train.lr=3.0 is out of range: it must be > 0 and < 1"),
    ("batch size", ["train", "--set", "train.batch_size=0"], "train.batch_size=0 is out of range: it must be >= 1"),
    ("temperature", ["train", "--set", "train.temperature=-1"], "train.temperature=-1.0 is out of range: it must be > 0"),
    ("non-mapping yaml", ["train", "--config", "{root}/list.yaml"], "must be a mapping"),
    ("malformed yaml", ["train", "--config", "{root}/broken.yaml"], "not valid (safe) YAML"),
    ("python tag yaml", ["train", "--config", "{root}/evil.yaml"], "not valid (safe) YAML"),
    ("unknown dataset", ["eval", "--dataset", "beir/scifakt/test"], "did you mean beir/scifact/test"),
    ("empty beir folder", ["datasets", "check", "{root}/empty_beir"], "corpus.jsonl is missing"),
    ("bad json line", ["datasets", "check", "{root}/badjson"], "corpus.jsonl line 121: not valid JSON"),
    ("missing qrels", ["datasets", "check", "{root}/noqrels"], "qrels/test.tsv is missing"),
    ("qrels header", ["datasets", "check", "{root}/noheader"], "must be the header"),
    ("unknown metric", ["eval", "--dataset", "builtin", "--metrics", "ndgc@10"], "unknown metric 'ndgc@10'"),
    ("not a model", ["eval", "--model", "{root}/not_a_model", "--dataset", "builtin"], "is not a model folder"),
    ("unwritable output", ["eval", "--dataset", "builtin", "--output", "{root}/list.yaml/out"], "cannot be written"),
    ("sweep unknown key", ["sweep", "{root}/sweep_unknown.yaml"], "unknown sweep key 'foo'"),
    ("sweep empty grid", ["sweep", "{root}/sweep_empty.yaml"], "non-empty lists"),
    ("depth too wide", ["train", "--set", "maw.depth=64", "--use-maw"], "does not fit a head of width 32"),
    ("layer out of range", ["train", "--set", "maw.layers=[9]", "--use-maw"], "encoder has 6 layers"),
    ("cut-off zero", ["eval", "--dataset", "builtin", "--metrics", "ndcg@0"], "must be >= 1"),
    ("cut-off not a number", ["eval", "--dataset", "builtin", "--metrics", "recall@ten"], "unknown metric"),
    ("relevance level zero", ["eval", "--dataset", "builtin", "--metrics", "map@100-l0"], "must be >= 1"),
    ("rbp without persistence", ["eval", "--dataset", "builtin", "--metrics", "rbp"], "unknown metric"),
    ("metric typo in a study", ["study", "--seeds", "13", "--output", "{root}/study_out", "--set",
                                "eval.metrics=[ndcg@10,mrr@1O]"], "unknown metric 'mrr@1O'"),  # before any training
    ("metric typo in smoke", ["smoke", "--output", "{root}/smoke_out", "--set", "eval.metrics=[ndgc@10]"],
     "unknown metric 'ndgc@10'"),
    ("resume with nothing", ["train", "--resume", "--output", "{root}/nothing_here"], "holds no checkpoint"),
    ("resume an empty run", ["train", "--resume", "--output", "{root}/empty_run"], "holds no checkpoint"),
    ("unknown arm", ["train", "--arms", "standard,maw-nestd"], "unknown arm 'maw-nestd'"),
    ("arm changes training", ["train", "--set", "arms={{x: [train.lr=1]}}"], "not a maw.* or attention.* key"),
]


@pytest.mark.parametrize("name, args, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(bad_inputs, tmp_path, name, args, needle):
    args = [a.replace("{root}", str(bad_inputs)).replace("{{", "{").replace("}}", "}") for a in args]
    if args[0] in ("train",) and "--output" not in args:
        args += ["--output", str(tmp_path / "run")]
    proc = _cli(args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("maw-bench: error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback():
    proc = _cli(["--debug", "train", "--set", "maw.dpeth=4"])
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def _train_args(tiny_model: str, data: Path, out: Path, *extra: str) -> list[str]:
    sets = tiny_overrides(tiny_model, data, "train.max_steps=12", "train.save_every=1", "train.deterministic=true",
                          "maw.selection=grpo", *extra)
    return ["train", "--arms", "maw", "--output", str(out), *[x for s in sets for x in ("--set", s)]]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "maw" / "model" / "model.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tiny_model, toy_beir, tmp_path):
    full = tmp_path / "full"
    assert _cli(_train_args(tiny_model, toy_beir, full)).returncode == 0
    run = tmp_path / "killed"
    env = {**os.environ, "MAW_BENCH_OFFLINE": "1"}
    # killed right after step 4 is logged, before its checkpoint: the log is ahead of the newest checkpoint
    proc = subprocess.run([sys.executable, SIGNAL_AT_STEP, "KILL", "4", "maw", "--",
                           *_train_args(tiny_model, toy_beir, run)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    log = run / "maw" / "train_log.jsonl"
    assert not (run / "maw" / "model").exists() and len(log.read_text().splitlines()) == 4
    resumed = _cli([*_train_args(tiny_model, toy_beir, run), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert _same(_weights(full), _weights(run))
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == list(range(1, 13))


def test_truncated_newest_checkpoint_falls_back_to_the_previous(tiny_model, toy_beir, tmp_path, caplog):
    from maw_bench.config import BenchmarkConfig
    from maw_bench.training.run import train_arms

    overrides = tiny_overrides(tiny_model, toy_beir, "train.max_steps=6", "train.save_every=1",
                               "train.deterministic=true", "maw.selection=grpo")
    cfg = BenchmarkConfig.load(overrides=overrides)
    train_arms(cfg, ["maw"], tmp_path / "full")
    train_arms(cfg, ["maw"], tmp_path / "part", stop_after=4)
    ckpts = sorted((tmp_path / "part" / "maw" / "checkpoints").glob("step-*"))
    assert [c.name for c in ckpts] == ["step-0000003", "step-0000004"]
    weights = ckpts[-1] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with caplog.at_level("WARNING", logger="maw_bench"):
        train_arms(cfg, ["maw"], tmp_path / "part", resume=True)
    assert any("truncated or corrupt" in r.message for r in caplog.records)
    assert _same(_weights(tmp_path / "full"), _weights(tmp_path / "part"))


def test_a_second_writer_is_refused(tmp_path):
    from maw_bench.errors import UserError
    from maw_bench.runtime.locks import folder_lock

    with folder_lock(tmp_path):
        with pytest.raises(UserError, match="is in use by pid"):
            with folder_lock(tmp_path):
                pass
    with folder_lock(tmp_path):  # released: usable again
        pass


def test_a_checkpoint_with_pickled_code_is_refused_by_resume(tiny_model, toy_beir, tmp_path):
    """Checksums made to match (as anyone who can write the file can): resume must still run no pickled code."""
    from maw_bench.config import BenchmarkConfig
    from maw_bench.errors import UserError
    from maw_bench.runtime.atomic import sha256_file, write_json
    from maw_bench.training.run import train_arms

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "train.max_steps=2", "train.save_every=1"))
    train_arms(cfg, ["standard"], tmp_path / "run", stop_after=1)
    ckpt = next((tmp_path / "run" / "standard" / "checkpoints").glob("step-*"))
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"optimizer": Evil(), "scheduler": {}, "scaler": None}, ckpt / "optim.pt")
    write_json(ckpt / "checksums.json", {p.name: sha256_file(p) for p in sorted(ckpt.iterdir()) if p.name != "checksums.json"})
    with pytest.raises(UserError, match="refusing to load it"):
        train_arms(cfg, ["standard"], tmp_path / "run", resume=True)
    assert not marker.exists()


@pytest.mark.slow
def test_ctrl_c_ends_with_130_and_the_resume_line_then_resume_auto_continues(tiny_model, toy_beir, tmp_path):
    run = tmp_path / "run"
    # SIGINT right after step 2 is logged, whatever the machine's speed; its handler reset to the default in the
    # child, as at a terminal (a shell's background job, e.g. `.ci/run &`, ignores it)
    args = _train_args(tiny_model, toy_beir, run, "train.max_steps=20")
    env = {**os.environ, "MAW_BENCH_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, SIGNAL_AT_STEP, "INT", "2", "maw", "--", *args], capture_output=True,
                          text=True, env=env, timeout=600,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    err = proc.stderr
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; rerun the same command (with --resume" in err and "Traceback" not in err
    log = run / "maw" / "train_log.jsonl"
    done = len(log.read_text().splitlines())
    assert done == 2
    again = _cli([*_train_args(tiny_model, toy_beir, run, "train.max_steps=20"), "--resume", "auto"], timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    steps = [json.loads(x)["step"] for x in log.read_text().splitlines()]
    assert steps == list(range(1, 21))
    fresh = _cli([*_train_args(tiny_model, toy_beir, tmp_path / "fresh", "train.max_steps=2"), "--resume", "auto"])
    assert fresh.returncode == 0, fresh.stderr[-2000:]  # auto: nothing to resume, so it starts


@pytest.mark.slow
def test_a_sweep_killed_inside_a_cell_redoes_only_that_cell(tiny_model, toy_beir, tmp_path):
    import yaml

    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "name": "k", "standard": False, "datasets": [str(toy_beir)],
        "set": tiny_overrides(tiny_model, toy_beir, "train.max_steps=8", "train.save_every=1",
                              f"eval.cache_dir={tmp_path / 'cache'}"),
        "grid": {"maw.depth": [2, 4]},
    }))
    out = tmp_path / "sw"
    env = {**os.environ, "MAW_BENCH_OFFLINE": "1"}
    # killed once the second cell has logged step 3, whatever the machine's speed
    proc = subprocess.run([sys.executable, SIGNAL_AT_STEP, "KILL", "3", "maw__depth-4", "--", "sweep", str(sweep_file),
                           "--output", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    first, second = out / "cells" / "maw__depth-2", out / "cells" / "maw__depth-4"
    log = second / "run" / "maw" / "train_log.jsonl"
    assert len(log.read_text().splitlines()) == 3
    assert (first / "cell.json").is_file() and not (second / "cell.json").is_file()
    stamp = (first / "cell.json").stat().st_mtime_ns, (first / "run" / "maw" / "train_log.jsonl").stat().st_mtime_ns
    again = _cli(["sweep", str(sweep_file), "--output", str(out)], timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "maw__depth-2: done, skipped" in again.stdout
    assert stamp == ((first / "cell.json").stat().st_mtime_ns,
                     (first / "run" / "maw" / "train_log.jsonl").stat().st_mtime_ns)  # the finished cell untouched
    steps = [json.loads(x)["step"] for x in log.read_text().splitlines()]
    assert steps == list(range(1, 9)) and (second / "cell.json").is_file()  # resumed, not restarted twice


@pytest.mark.slow
def test_two_evaluations_sharing_one_cache_give_one_valid_cache_and_the_same_metrics(tiny_model, toy_beir, tmp_path):
    env = {**os.environ, "MAW_BENCH_OFFLINE": "1"}
    common = ["eval", "--dataset", str(toy_beir), "--set", f"model.name={tiny_model}", "--set",
              f"eval.cache_dir={tmp_path / 'cache'}", "--set", "eval.shard_docs=30", "--set", "eval.batch_size=4"]
    procs = [subprocess.Popen([sys.executable, "-m", "maw_bench", *common, "--output", str(tmp_path / f"e{i}")],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    docs = [json.loads((tmp_path / f"e{i}" / "metrics.json").read_text())["results"] for i in (0, 1)]
    assert docs[0] == docs[1]
    from maw_bench.evaluation.embeddings import EmbeddingCache

    (folder,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    cache = EmbeddingCache(folder)
    assert cache.complete() and cache.manifest()["num_shards"] == 4
    assert sum(len(ids) for ids, _ in cache.shards()) == 120
