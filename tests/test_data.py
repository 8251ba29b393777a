"""Data: exact counts on SciFact, the MS MARCO layout, caps, negatives, leakage, builtin, offline errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from maw_bench.data import apply_caps, build_examples, check_leakage, load_bundle
from maw_bench.data.builtin import generate
from maw_bench.errors import UserError

SCIFACT_COUNTS = {"docs": 5183, "queries": 300, "judged_queries": 300, "qrels": 339, "missing_judged_docs": 0}


def test_scifact_through_ir_datasets(irds_home):
    test = load_bundle("beir/scifact/test")
    assert test.summary() == SCIFACT_COUNTS
    train = load_bundle("beir/scifact", split="train")
    assert train.id == "beir/scifact/train"
    assert len(train.judged_queries()) == 809
    first = next(train.docs_iter())
    assert first[0] == "4983" and first[1].startswith("Microstructural development of human newborn")


def test_scifact_through_a_local_folder(irds_home, scifact_dir):
    bundle = load_bundle(str(scifact_dir), split="test")
    assert bundle.id.startswith("local/scifact-") and bundle.id.endswith("/test")
    assert bundle.summary() == SCIFACT_COUNTS
    train = load_bundle(str(scifact_dir), split="train")
    assert len(train.judged_queries()) == 809
    # same texts as the ir_datasets copy
    ref = load_bundle("beir/scifact/test")
    assert bundle.doc_texts(["4983"]) == ref.doc_texts(["4983"])


def _write_msmarco(home: Path) -> None:
    base = home / "msmarco-passage"
    (base / "train").mkdir(parents=True, exist_ok=True)
    (base / "dev" / "small").mkdir(parents=True, exist_ok=True)
    (base / "irds_version.txt").write_text("v2")
    passages = [f"passage number {i} about topic {i % 7}" for i in range(30)]
    (base / "collection.tsv").write_text("".join(f"{i}\t{t}\n" for i, t in enumerate(passages)))
    (base / "train" / "queries.tsv").write_text("".join(f"{100 + q}\twhat is topic {q}\n" for q in range(6)))
    (base / "train" / "qrels").write_text("".join(f"{100 + q} 0 {q} 1\n" for q in range(6)))
    (base / "train" / "small.triples.qidpid.tsv").write_text("".join(f"{100 + q}\t{q}\t{q + 10}\n" for q in range(6)))
    (base / "dev" / "small" / "queries.tsv").write_text("".join(f"{200 + q}\ttell me about passage {q + 20}\n" for q in range(3)))
    (base / "dev" / "small" / "qrels").write_text("".join(f"{200 + q}\t0\t{q + 20}\t1\n" for q in range(3)))


def test_msmarco_layout_in_a_temporary_home():
    from conftest import SESSION_IRDS

    _write_msmarco(SESSION_IRDS)
    train = load_bundle("msmarco-passage/train/triples-small")
    assert list(train.docpairs_iter())[:2] == [("100", "0", "10"), ("101", "1", "11")]
    examples = build_examples(train, "triples", 1, (10, 100), seed=1)
    assert len(examples) == 6 and examples[0].negative_ids == ("10",)
    assert train.doc_texts(["10"]) == {"10": "passage number 10 about topic 3"}
    dev = load_bundle("msmarco-passage/dev/small")
    assert dev.summary() == {"docs": 30, "queries": 3, "judged_queries": 3, "qrels": 3, "missing_judged_docs": 0}
    assert check_leakage(train, [dev])[0].count == 0


def test_bm25_negatives_never_include_a_judged_positive(irds_home):
    bundle = load_bundle("beir/scifact/train")
    apply_caps(bundle, max_queries=60, seed=3)
    examples = build_examples(bundle, "bm25", 3, (0, 30), seed=5)
    assert examples and all(len(e.negative_ids) == 3 for e in examples)
    for e in examples:
        assert not set(e.negative_ids) & bundle.positives(e.query_id)
        assert e.positive_id in bundle.positives(e.query_id)
    again = build_examples(bundle, "bm25", 3, (0, 30), seed=5)
    assert again == examples  # deterministic by seed


def test_random_negatives_avoid_positives():
    bundle = load_bundle("builtin/train")
    apply_caps(bundle, max_queries=40, seed=1)
    examples = build_examples(bundle, "random", 4, (10, 100), seed=2)
    assert all(not set(e.negative_ids) & bundle.positives(e.query_id) for e in examples)


def test_caps_keep_every_judged_document_of_kept_queries():
    bundle = load_bundle("builtin/test")
    apply_caps(bundle, max_queries=20, max_docs=300, seed=7)
    assert len(bundle.judged_queries()) == 20
    judged = {d for docs in bundle.qrels.values() for d in docs}
    kept = set(bundle.doc_ids_iter())
    assert judged <= kept and len(kept) == 300
    other = load_bundle("builtin/test")
    apply_caps(other, max_queries=20, max_docs=300, seed=7)
    assert set(other.doc_ids_iter()) == kept and other.keep_queries == bundle.keep_queries


def test_leakage_check_catches_a_planted_overlap():
    train, test = load_bundle("builtin/train"), load_bundle("builtin/test")
    assert check_leakage(train, [test])[0].count == 0
    qid, text = next(iter(test.queries.items()))
    train.queries[f"planted-{qid}"] = text.upper() + "!"  # same text after normalisation
    with pytest.raises(UserError, match="also appear in training data"):
        check_leakage(train, [test])
    reports = check_leakage(train, [test], allow=True)
    assert reports[0].text_overlap == [qid] and reports[0].train_ids == {f"planted-{qid}"}
    from maw_bench.data.leakage import drop_leaked

    assert drop_leaked(train, reports) == 1 and f"planted-{qid}" not in train.queries


def test_scifact_has_two_test_claims_repeated_in_train(irds_home):
    train, test = load_bundle("beir/scifact/train"), load_bundle("beir/scifact/test")
    with pytest.raises(UserError, match="2 evaluation queries of beir/scifact/test also appear"):
        check_leakage(train, [test])
    (report,) = check_leakage(train, [test], allow=True)
    assert sorted(report.text_overlap) == ["1292", "870"] and report.train_ids == {"871", "1291"}


# The bytes every machine must produce: a generator that depended on hash seeds, dict order or the platform's
# float formatting would still equal itself within one process, so the digest is pinned.
BUILTIN_DIGEST = "a607bb47ae43b768c5ff8bf745d7eddef1871b4fb650c07596fe4a07641ba95e"


def test_builtin_is_deterministic_and_splits_share_no_query():
    import hashlib
    import json

    a = generate()
    assert hashlib.sha256(json.dumps(list(a), sort_keys=True).encode()).hexdigest() == BUILTIN_DIGEST
    docs, queries, qrels = a
    assert len(docs) >= 2000 and len(qrels["test"]) >= 200
    assert not set(qrels["train"]) & set(qrels["test"])
    test_texts = {queries[q].lower() for q in qrels["test"]}
    assert not any(queries[q].lower() in test_texts for q in qrels["train"])
    grades = {r for judged in qrels["test"].values() for r in judged.values()}
    assert grades == {1, 2}


def test_unknown_dataset_id_suggests_the_closest():
    with pytest.raises(UserError, match="did you mean beir/scifact/test"):
        load_bundle("beir/scifakt/test")


def test_missing_dataset_offline_is_one_line_without_a_download_attempt(tmp_path):
    """Offline, a collection that is not there is the one line that says where to put it, not a download attempt
    (a proxy that refuses every connection would turn an attempt into another error; the timeout guards a hang)."""
    env = {"IR_DATASETS_HOME": str(tmp_path), "MAW_BENCH_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    proc = subprocess.run(
        [sys.executable, "-m", "maw_bench", "datasets", "check", "beir/nfcorpus/test"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "beir/nfcorpus/test" in lines[0] and "IR_DATASETS_HOME" in lines[0] and "curl" in lines[0]
    assert "Traceback" not in proc.stderr


def test_bm25_on_a_corpus_with_nothing_to_index_is_one_clear_error():
    """bm25s alone fails with "max() arg is an empty sequence" when no token survives its tokenizer."""
    from maw_bench.data.bm25 import bm25_top_k
    from maw_bench.errors import UserError

    with pytest.raises(UserError, match="nothing to index; check the collection's texts"):
        bm25_top_k(["a b", "the of and", "x"], ["a"], 2, "toy")
    positions, _ = bm25_top_k(["a b", "protein binding"], ["protein"], 2)
    assert positions[0, 0] == 1
