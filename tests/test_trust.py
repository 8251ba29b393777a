"""Numbers that cannot be silently wrong, files that cannot be lost: one table-driven test per class (issue 21).

A  nothing is deleted that maw-bench did not write       E  a sweep grid is a set
B  a cached shard proves which documents it holds          F  every value range-checked; a last-resort guard
C  a metric is trec_eval's on the same run, or refused     G  the BEIR file check and the reader agree
D  provenance that cannot lie                              H  damaged or unwritable files: one line, then a rerun
"""

from __future__ import annotations

import dataclasses
import json
import logging
import typing
from pathlib import Path

import pytest
from conftest import tiny_overrides, write_toy_beir
from typer.testing import CliRunner

from maw_bench.cli import app
from maw_bench.config import BenchmarkConfig
from maw_bench.errors import UserError


@pytest.fixture()
def maw_warnings():
    """The warnings maw-bench logs during a test (its logger writes to the console, not to the root logger)."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("maw_bench")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def _cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line_error(res, needle: str, code: int = 2) -> None:
    err = res.stderr if hasattr(res, "stderr") else res.output
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("WARNING", "INFO"))]
    assert res.exit_code == code, (res.exit_code, err[-2000:])
    assert lines and lines[-1].startswith("maw-bench: error: ") and needle in lines[-1], err[-2000:]
    assert "Traceback" not in err


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: what 'nothing was lost' compares."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """A finished two-arm run of the tiny model on a toy folder (and that folder)."""
    from maw_bench.training.run import train_arms

    root = tmp_path_factory.mktemp("trust")
    data = write_toy_beir(root / "toy")
    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, data, "train.max_steps=2"))
    train_arms(cfg, ["standard", "maw"], root / "run")
    return root / "run", data, cfg


# ----------------------------------------------------------------------------------------------- A
def _user_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "thesis.tex").write_text("months of work")
    (root / "figures").mkdir(exist_ok=True)
    (root / "figures" / "fig1.pdf").write_bytes(b"%PDF")
    return root


EXPORT_TARGETS = {  # where a user might point --output; each must be refused with nothing changed
    "a folder of the user's files": lambda run, tmp: _user_folder(tmp / "mine"),
    "the run folder itself": lambda run, tmp: run,
    "an arm folder inside the run": lambda run, tmp: run / "standard",
    "a new folder inside the run": lambda run, tmp: run / "exports" / "x",
    "the folder that holds the run": lambda run, tmp: run.parent,
}


@pytest.mark.parametrize("where", list(EXPORT_TARGETS))
def test_export_never_deletes_or_writes_over_what_it_did_not_write(trained, tmp_path, where):
    run = trained[0]
    target = EXPORT_TARGETS[where](run, tmp_path)
    watched = [run, target] if target.exists() else [run]
    before = {str(w): _tree(w) for w in watched}
    res = _cli("export", run, "--arm", "standard", "--output", target, "--overwrite")
    _one_line_error(res, "--output")
    assert {str(w): _tree(w) for w in watched} == before


def test_export_overwrite_replaces_only_the_files_an_export_wrote(trained, tmp_path):
    run = trained[0]
    out = tmp_path / "exported"
    assert _cli("export", run, "--arm", "maw", "--output", out).exit_code == 0
    (out / "NOTES.md").write_text("my notes")  # a file the user added beside the export
    _one_line_error(_cli("export", run, "--arm", "standard", "--output", out), "--overwrite")
    res = _cli("export", run, "--arm", "standard", "--output", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert (out / "NOTES.md").read_text() == "my notes"
    assert not (out / "modeling_maw.py").exists()  # the maw arm's code went with its export
    record = json.loads((out / "maw_bench_export.json").read_text())
    assert record["provenance"]["arm"] == "standard" and "NOTES.md" not in record["files"]


def test_train_overwrite_replaces_only_what_training_wrote(tiny_model, tmp_path, maw_warnings):
    """`train --overwrite` retrains the arms, and a file the user put inside an arm folder survives it; a
    `run.json` whose arm names point outside the run folder removes nothing there."""
    from maw_bench.training.run import train_arms

    data = write_toy_beir(tmp_path / "toy")
    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, data, "train.max_steps=2"))
    run = tmp_path / "run"
    train_arms(cfg, ["standard", "maw"], run)
    (run / "standard" / "notes.md").write_text("what I saw")
    (run / "standard" / "figures").mkdir()
    (run / "standard" / "figures" / "loss.pdf").write_bytes(b"%PDF")
    first = (run / "maw" / "train_log.jsonl").read_text()
    (run / "maw" / ".model.tmp-4242").mkdir()  # what a save killed mid-write leaves: maw-bench's own
    train_arms(cfg.derive({"train.max_steps": 3}), ["standard", "maw"], run, overwrite=True)
    assert (run / "standard" / "notes.md").read_text() == "what I saw"
    assert (run / "standard" / "figures" / "loss.pdf").read_bytes() == b"%PDF"
    assert (run / "maw" / "train_log.jsonl").read_text() != first  # retrained: 3 steps now
    assert any("kept 2 file(s) maw-bench did not write" in w for w in maw_warnings)
    assert not (run / "maw" / ".model.tmp-4242").exists() and not any("in " + str(run / "maw") in w
                                                                        for w in maw_warnings)
    outside = _user_folder(tmp_path / "mine")
    before = _tree(outside)
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "arms": ["../mine", str(outside), "standard"]}))
    train_arms(cfg, ["standard"], run, overwrite=True)
    assert _tree(outside) == before


@pytest.mark.parametrize("command", ["train", "eval", "study"])
def test_commands_refuse_an_output_folder_of_someone_elses_files(tiny_model, toy_beir, tmp_path, command):
    mine = _user_folder(tmp_path / "mine")
    before = _tree(mine)
    sets = [x for s in tiny_overrides(tiny_model, toy_beir) for x in ("--set", s)]
    extra = {"train": ["--arms", "standard"], "eval": ["--dataset", toy_beir], "study": ["--seeds", "1"]}[command]
    _one_line_error(_cli(command, *extra, *sets, "--output", mine), "did not write")
    assert _tree(mine) == before


# ----------------------------------------------------------------------------------------------- B
class Killed(BaseException):
    """What a SIGKILL leaves: the process stops between two instructions, nothing after it runs."""


def _encode_metrics(tiny_model, data: Path, tmp: Path, cache: Path, shard_docs: int, name: str) -> dict:
    from maw_bench.evaluation.pipeline import run_evaluation

    cfg = BenchmarkConfig.load(overrides=[*tiny_overrides(tiny_model, data), f"eval.shard_docs={shard_docs}",
                                          f"eval.cache_dir={cache}", "eval.batch_size=10"])
    out = run_evaluation(cfg, [], [str(data)], tmp / name, print_table=False)
    return out.results


@pytest.mark.parametrize("kill_at", ["shard boundary", "middle of a shard"])
@pytest.mark.parametrize("rerun_shard_docs", [30, 70])
def test_an_encode_killed_and_rerun_with_another_shard_size_equals_an_uninterrupted_one(
        tiny_model, tmp_path, monkeypatch, kill_at, rerun_shard_docs):
    from maw_bench.evaluation import embeddings
    from maw_bench.modeling.encoder import Encoder

    data = write_toy_beir(tmp_path / "toy", n_docs=200)
    reference = _encode_metrics(tiny_model, data, tmp_path, tmp_path / "ref-cache", 50, "ref")
    cache = tmp_path / "cache"
    if kill_at == "shard boundary":
        real = embeddings.EmbeddingCache.write_shard
        written = []

        def write_then_die(self, index, *args, **kwargs):
            real(self, index, *args, **kwargs)
            written.append(index)
            if len(written) == 3:
                raise Killed

        monkeypatch.setattr(embeddings.EmbeddingCache, "write_shard", write_then_die)
    else:
        real_batches = Encoder.encode_batches
        calls = {"n": 0}

        def die_mid_shard(self, texts, *args, **kwargs):
            for item in real_batches(self, texts, *args, **kwargs):
                calls["n"] += 1
                if calls["n"] == 12:  # shard 2 of 50 documents, batch 2 of 5
                    raise Killed
                yield item

        monkeypatch.setattr(Encoder, "encode_batches", die_mid_shard)
    with pytest.raises(Killed):
        _encode_metrics(tiny_model, data, tmp_path, cache, 50, "killed")
    monkeypatch.undo()
    rerun = _encode_metrics(tiny_model, data, tmp_path, cache, rerun_shard_docs, "rerun")
    assert rerun == reference
    (folder,) = [m.parent for m in cache.rglob("manifest.json")]  # the one cache of this model and corpus
    shards = json.loads((folder / "manifest.json").read_text())["num_shards"]
    held = [i for k in range(shards) for i in json.loads((folder / f"ids_{k:05d}.json").read_text())]
    assert len(held) == len(set(held)) == 200  # every document once: no shard of the old layout mixed in
    again = _encode_metrics(tiny_model, data, tmp_path, cache, 50, "again")  # a complete cache of another layout
    assert again == reference


# ----------------------------------------------------------------------------------------------- C
def _pytrec_means(qrels_tsv: Path, run_file: Path, measures: dict[str, str]) -> dict[str, float]:
    """trec_eval's numbers (through pytrec_eval) on maw-bench's own run file and the qrels file as given."""
    import pytrec_eval

    qrels: dict = {}
    for line in qrels_tsv.read_text().splitlines()[1:]:
        q, d, s = line.split("\t")
        qrels.setdefault(q, {})[d] = int(s)
    run: dict = {}
    for line in run_file.read_text().splitlines():
        q, _, d, _, score, _ = line.split()
        run.setdefault(q, {})[d] = float(score)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, set(measures.values())).evaluate(run)
    return {ours: sum(v[theirs] for v in per_query.values()) / len(per_query) for ours, theirs in measures.items()}


def _judge_missing_queries(folder: Path, n: int) -> None:
    with (folder / "qrels" / "test.tsv").open("a") as f:
        for i in range(n):
            f.write(f"ghost{i}\td{i}\t1\n")


QRELS_CASES = {
    "qrels judge 10 queries the queries file lacks": lambda f: _judge_missing_queries(f, 10),
    "qrels judge 1 such query": lambda f: _judge_missing_queries(f, 1),
    "clean folder": lambda f: None,
}


@pytest.mark.parametrize("case", list(QRELS_CASES))
def test_metrics_equal_trec_evals_on_the_same_run(tiny_model, tmp_path, case):
    from maw_bench.evaluation.pipeline import run_evaluation

    data = write_toy_beir(tmp_path / "toy")
    QRELS_CASES[case](data)
    cfg = BenchmarkConfig.load(overrides=[*tiny_overrides(tiny_model, data), f"eval.cache_dir={tmp_path / 'c'}",
                                          "eval.metrics=[ndcg@10,recall@100,map@1000]", "eval.top_k=1000"])
    out = run_evaluation(cfg, [], [str(data)], tmp_path / "eval", print_table=False)
    ours = next(iter(out.results.values()))["zero-shot"]
    run_file = next((tmp_path / "eval" / "runs").glob("*.trec"))
    theirs = _pytrec_means(data / "qrels" / "test.tsv", run_file,
                           {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "map@1000": "map_cut_1000"})
    for metric, value in theirs.items():
        assert ours[metric] == pytest.approx(value, abs=1e-6), metric
    doc = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    ghosts = doc["skipped"][next(iter(doc["skipped"]))]["judged_queries_without_text"]
    assert ghosts == {"clean folder": 0, "qrels judge 1 such query": 1}.get(case, 10)
    assert next(iter(doc["queries"].values())) == 30  # the scored queries, not the judged ids


@pytest.mark.parametrize("overrides, needle", [
    (["eval.top_k=10", "eval.metrics=[ndcg@10,recall@100]"], "eval.top_k=10 is below the cut-off"),
    (["eval.top_k=100", "eval.metrics=[map@1000]"], "set eval.top_k=1000"),
    (["eval.top_k=5", "eval.metrics=[mrr@10]"], "eval.top_k=5"),
])
def test_a_top_k_below_a_metric_cut_off_is_refused_at_config_load(overrides, needle):
    with pytest.raises(UserError, match=needle):
        BenchmarkConfig.load(overrides=overrides)


def test_no_judged_query_left_is_one_line_before_any_encoding(tiny_model, tmp_path):
    data = write_toy_beir(tmp_path / "toy")
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nghost\td1\t1\n")
    sets = [x for s in tiny_overrides(tiny_model, data) for x in ("--set", s)]
    res = _cli("eval", "--dataset", data, *sets, "--set", f"eval.cache_dir={tmp_path / 'c'}",
               "--output", tmp_path / "eval")
    _one_line_error(res, "no judged query is in its queries file")
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------------------------------------- D
def test_resume_with_other_settings_is_refused_and_run_json_is_kept(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    before = (run / "run.json").read_bytes()
    other = write_toy_beir(tmp_path / "other", seed=5)
    sets = [x for s in tiny_overrides(*map(str, _tiny_and_data(trained)), "train.max_steps=2") for x in ("--set", s)]
    for extra, needle in ((["--set", f"data.train={other}"], "data.train"),
                          (["--set", "maw.depth=2"], "maw.depth (was 4)"),
                          (["--set", "train.lr=0.5"], "train.lr")):
        res = _cli("train", "--arms", "standard,maw", "--resume", "--output", run, *sets, *extra)
        _one_line_error(res, needle)
    res = _cli("train", "--arms", "standard,maw", "--resume", "--output", run, *sets, "--set", "train.max_steps=2")
    assert res.exit_code == 0, res.output
    assert (run / "run.json").read_bytes() == before  # nothing trained: nothing rewritten


def _tiny_and_data(trained) -> tuple[str, Path]:
    return trained[2].model.name, trained[1]


def test_an_exported_model_evaluates_as_fine_tuned_with_its_provenance(trained, tmp_path, maw_warnings):
    from maw_bench.evaluation.pipeline import run_evaluation

    run, data, cfg = trained
    for arm in ("standard", "maw"):
        assert _cli("export", run, "--arm", arm, "--output", tmp_path / arm).exit_code == 0
    ecfg = cfg.with_overrides([f"eval.cache_dir={tmp_path / 'c'}", "data.eval_split=train"])
    out = run_evaluation(ecfg, [str(run), str(tmp_path / "standard"), str(tmp_path / "maw")], [str(data)],
                         tmp_path / "eval", print_table=False)
    doc = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert doc["models"]["standard#1"]["zero_shot"] is False
    assert doc["models"]["maw#1"]["provenance"]["arm"] == "maw"
    scores = next(iter(out.results.values()))
    assert scores["maw#1"] == scores["maw"] and scores["standard#1"] == scores["standard"]  # the same models
    assert sum("fine-tuned on" in w for w in maw_warnings) == 4  # each model, evaluated on the split it trained on


def test_a_run_with_unfinished_arms_names_them(trained, tmp_path, maw_warnings):
    import shutil

    from maw_bench.evaluation.models import resolve_models

    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    shutil.rmtree(run / "maw" / "model")
    refs = resolve_models([str(run)], trained[2])
    assert [r.label for r in refs] == ["standard"] and any("maw" in w and "not finished" in w for w in maw_warnings)
    shutil.rmtree(run / "standard" / "model")
    with pytest.raises(UserError, match="no arm of this run has finished"):
        resolve_models([str(run)], trained[2])


# ----------------------------------------------------------------------------------------------- E
@pytest.mark.parametrize("grid, needle", [
    ("seed: [13, 13]", "grid.seed lists 13 more than once"),
    ("maw.layers: [[-1], [-1]]", "more than once"),
    ("train.lr: [1.0e-3, 0.001]", "more than once"),
    ("train.lr: ['1e-3', 0.001]", "the same experiment twice"),
])
def test_a_sweep_grid_with_a_repeated_value_is_refused(tmp_path, grid, needle):
    from maw_bench.commands.sweep import expand, load_sweep

    path = tmp_path / "sweep.yaml"
    path.write_text(f"grid:\n  {grid}\n")
    with pytest.raises(UserError, match=needle):
        expand(load_sweep(path))


def test_a_study_with_a_repeated_seed_or_arm_is_refused(tmp_path):
    _one_line_error(_cli("study", "--seeds", "13,13", "--output", tmp_path / "s"), "--seeds names 13 more than once")
    _one_line_error(_cli("study", "--arms", "standard,maw,maw", "--output", tmp_path / "s"), "--arms names maw")


# ----------------------------------------------------------------------------------------------- F
def _numeric_keys() -> list[tuple[str, typing.Any]]:
    out = []

    def walk(cls, prefix=""):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{prefix}{f.name}.")
            elif hints[f.name] in (int, float):
                out.append((prefix + f.name, f))

    walk(BenchmarkConfig)
    return out


SPECIAL_RANGES = {"maw.router.init_last_prob"}  # -1 (auto) or [0, 1): checked by hand


def test_every_numeric_key_declares_its_range():
    undeclared = [k for k, f in _numeric_keys() if k not in SPECIAL_RANGES
                  and not any(b in f.metadata for b in ("ge", "gt", "lt", "le"))]
    assert not undeclared


@pytest.mark.parametrize("key", [k for k, _ in _numeric_keys()])
def test_every_numeric_key_out_of_range_is_one_line_at_config_load(key):
    field = dict(_numeric_keys())[key]
    meta = field.metadata
    if key in SPECIAL_RANGES:
        bad = 1.5
    elif "ge" in meta:
        bad = meta["ge"] - 1
    elif "gt" in meta:
        bad = meta["gt"] - 1 if isinstance(field.default, int) else meta["gt"]
    else:
        bad = meta.get("lt", meta.get("le")) + 1
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        BenchmarkConfig.load(overrides=[f"{key}={bad}"])


def test_usage_errors_stay_typers_own_exit_2():
    res = _cli("train", "--no-such-option")
    assert res.exit_code == 2 and "No such option" in res.output and "rerun with --debug" not in res.output


def test_the_last_resort_guard_prints_one_line_and_debug_the_traceback(monkeypatch):
    import maw_bench.cli as cli

    def boom(*args, **kwargs):
        raise RuntimeError("something nobody foresaw\nsecond line")

    monkeypatch.setattr(cli, "load_config", boom)
    res = _cli("train")
    _one_line_error(res, "something nobody foresaw (RuntimeError); rerun with --debug", code=1)
    res = _cli("--debug", "train")
    assert res.exit_code != 0 and isinstance(res.exception, RuntimeError)


# ----------------------------------------------------------------------------------------------- G
def _quirky(folder: Path, quirk: str) -> Path:
    write_toy_beir(folder)
    corpus, queries, qrels = folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / "test.tsv"
    if quirk == "blank lines at the end of corpus.jsonl":
        corpus.write_text(corpus.read_text() + "\n\n")
    elif quirk == "a blank line inside queries.jsonl":
        lines = queries.read_text().splitlines()
        queries.write_text("\n".join(lines[:5] + ["", "   "] + lines[5:]) + "\n")
    elif quirk == "CRLF line ends and a trailing blank line in qrels":
        qrels.write_bytes(qrels.read_text().replace("\n", "\r\n").encode() + b"\r\n")
    elif quirk == "CRLF line ends in corpus.jsonl":
        corpus.write_bytes(corpus.read_text().replace("\n", "\r\n").encode())
    elif quirk == "integer _ids (as pandas writes them)":
        rows = [json.loads(x) for x in corpus.read_text().splitlines()]
        corpus.write_text("".join(json.dumps({**r, "_id": int(r["_id"][1:])}) + "\n" for r in rows))
        lines = qrels.read_text().splitlines()
        qrels.write_text("\n".join([lines[0]] + [x.replace("\td", "\t") for x in lines[1:]]) + "\n")
    elif quirk == '"text": null on some documents':
        rows = [json.loads(x) for x in corpus.read_text().splitlines()]
        rows[100]["text"], rows[101]["text"] = None, None
        corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif quirk == "title on some documents only":
        rows = [json.loads(x) for x in corpus.read_text().splitlines()]
        rows = [{"_id": r["_id"], "text": r["text"], **({"title": "Title"} if i % 3 else {})} for i, r in enumerate(rows)]
        corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif quirk == "a qrels file with only its header":
        qrels.write_text("query-id\tcorpus-id\tscore\n")
    return folder


QUIRKS = ["blank lines at the end of corpus.jsonl", "a blank line inside queries.jsonl",
          "CRLF line ends and a trailing blank line in qrels", "CRLF line ends in corpus.jsonl",
          "integer _ids (as pandas writes them)", '"text": null on some documents', "title on some documents only",
          "a qrels file with only its header"]


@pytest.mark.parametrize("quirk", QUIRKS)
def test_what_datasets_check_passes_the_reader_reads(tmp_path, quirk):
    from maw_bench.data import load_bundle

    folder = _quirky(tmp_path / "toy", quirk)
    res = _cli("datasets", "check", folder, "--split", "test", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    bundle = load_bundle(str(folder), "test")
    docs = list(bundle.docs_iter())
    judged = 0 if "only its header" in quirk else 30  # a split holds the queries its qrels judge
    assert summary["docs"] == len(docs) == 120 and summary["queries"] == len(bundle.queries) == judged
    assert all(isinstance(i, str) for i, _ in docs) and all(isinstance(t, str) for _, t in docs)
    assert summary["judged_queries"] == len(bundle.judged_queries()) == judged
    assert summary["qrels"] == sum(len(d) for d in bundle.qrels.values()) == judged
    if "title" in quirk:
        assert docs[1][1].startswith("Title ") and not docs[0][1].startswith("Title")
    if "null" in quirk:
        assert docs[100][1] == ""


def test_a_corpus_of_empty_documents_is_refused(tmp_path):
    folder = write_toy_beir(tmp_path / "toy")
    rows = [json.loads(x) for x in (folder / "corpus.jsonl").read_text().splitlines()]
    (folder / "corpus.jsonl").write_text("".join(json.dumps({**r, "text": ""}) + "\n" for r in rows))
    _one_line_error(_cli("datasets", "check", folder), "every one of its 120 documents is empty")


# ----------------------------------------------------------------------------------------------- H
def _damage(run: Path, what: str, tmp: Path) -> Path:
    if what == "run.json cut short":
        (run / "run.json").write_text('{"arms": ["standard", "ma')
    elif what == "weights that are not safetensors":
        (run / "standard" / "model" / "model.safetensors").write_bytes(b"not a safetensors file")
        (run / "maw" / "model" / "model.safetensors").write_bytes(b"")
    elif what == "maw_bench.json cut short":
        path = run / "standard" / "model" / "maw_bench.json"
        path.write_text(path.read_text()[:40])
    return run


@pytest.mark.parametrize("what, needle", [
    ("run.json cut short", "run.json is damaged"),
    ("weights that are not safetensors", "does not load as safetensors"),
    ("maw_bench.json cut short", "maw_bench.json cannot be read"),
])
def test_a_damaged_run_folder_is_one_line_and_a_restored_one_evaluates(trained, tmp_path, what, needle):
    import shutil

    run, data, cfg = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    _damage(copy, what, tmp_path)
    sets = [x for s in tiny_overrides(cfg.model.name, data) for x in ("--set", s)]
    args = ["eval", "--model", copy, "--dataset", data, *sets, "--set", f"eval.cache_dir={tmp_path / 'c'}"]
    _one_line_error(_cli(*args, "--output", tmp_path / "e1"), needle)
    shutil.rmtree(copy)
    shutil.copytree(run, copy)  # the cause gone: the same command gives the run's numbers
    assert _cli(*args, "--output", tmp_path / "e2").exit_code == 0


def test_a_metrics_file_cut_short_is_one_line_for_report(tmp_path):
    folder = tmp_path / "eval"
    folder.mkdir()
    (folder / "metrics.json").write_text('{"schema": "maw-bench/metrics/v1", "metr')
    _one_line_error(_cli("report", folder), "metrics.json cannot be read")


def test_training_rows_with_a_line_cut_short_are_one_line(tiny_model, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"query": f"q {i}", "positive": f"protein {i}"}) + "\n" for i in range(20))
                    + '{"query": "cut sh')
    res = _cli("train", "--train-data", rows, "--arms", "standard", "--output", tmp_path / "run",
               "--set", f"model.name={tiny_model}", "--set", "train.max_steps=1", "--set", "train.negatives=0",
               "--set", "model.max_length=32", "--set", "model.query_max_length=16",
               "--set", "data.eval=[]")
    _one_line_error(res, str(rows))


def test_an_unwritable_cache_folder_is_one_line_then_a_writable_one_works(tiny_model, toy_beir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    sets = [x for s in tiny_overrides(tiny_model, toy_beir) for x in ("--set", s)]
    res = _cli("eval", "--dataset", toy_beir, *sets, "--set", f"eval.cache_dir={blocker / 'cache'}",
               "--output", tmp_path / "e1")
    _one_line_error(res, "a_file", code=1)
    res = _cli("eval", "--dataset", toy_beir, *sets, "--set", f"eval.cache_dir={tmp_path / 'cache'}",
               "--output", tmp_path / "e1")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("command, sets, needle", [
    ("train", ["model.max_length=4096"], "longer than the 128 positions"),
    ("eval", ["eval.max_length=4096"], "longer than the 128 positions"),
    ("train", ["train.lora.enabled=true", "train.lora.target_modules=[attn_proj]"], "attn_proj names no module"),
])
def test_values_the_model_refuses_are_one_line(tiny_model, toy_beir, tmp_path, command, sets, needle):
    base = [x for s in [*tiny_overrides(tiny_model, toy_beir, "train.max_steps=1"), *sets] for x in ("--set", s)]
    extra = ["--arms", "standard"] if command == "train" else ["--dataset", toy_beir]
    res = _cli(command, *extra, *base, "--set", f"eval.cache_dir={tmp_path / 'c'}", "--output", tmp_path / "out")
    _one_line_error(res, needle)


def test_wandb_that_cannot_start_is_one_line(monkeypatch, tmp_path):
    import sys
    import types

    from maw_bench.training.reporting import WandbReporter

    def init(**kwargs):
        raise RuntimeError("api_key not configured (no-tty). call wandb.login(key=[your_api_key])")

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    with pytest.raises(UserError, match="wandb login.*WANDB_MODE=offline"):
        WandbReporter(tmp_path, "maw", {})
