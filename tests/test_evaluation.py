"""Evaluation: run files agree with an independent scorer, the cache cannot go stale, significance, search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_overrides

from maw_bench.config import BenchmarkConfig
from maw_bench.data import load_bundle
from maw_bench.errors import UserError
from maw_bench.evaluation.embeddings import encode_corpus
from maw_bench.evaluation.pipeline import run_evaluation
from maw_bench.evaluation.runfiles import read_trec
from maw_bench.evaluation.search import exact_search, faiss_search
from maw_bench.evaluation.significance import compare, holm
from maw_bench.modeling import build_encoder


def _cfg(tiny_model, toy_beir, *extra):
    return BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, *extra))


def test_trec_run_scored_independently_matches_metrics_json(tiny_model, toy_beir, tmp_path):
    import ir_measures
    from ir_measures import RR, nDCG

    cfg = _cfg(tiny_model, toy_beir, f"eval.cache_dir={tmp_path / 'cache'}")
    out = tmp_path / "eval"
    run_evaluation(cfg, [], [str(toy_beir)], out, bm25=True, print_table=False)
    metrics = json.loads((out / "metrics.json").read_text())
    (dataset,) = metrics["results"]
    bundle = load_bundle(str(toy_beir), "test")
    qrels = [ir_measures.Qrel(q, d, r) for q, docs in bundle.qrels.items() for d, r in docs.items()]
    for label in ("zero-shot", "bm25"):
        run_file = next((out / "runs").glob(f"{label}__*.trec"))
        lines = run_file.read_text().splitlines()
        assert all(len(line.split()) == 6 and line.split()[1] == "Q0" for line in lines)
        run = [ir_measures.ScoredDoc(q, d, s) for q, docs in read_trec(run_file).items() for d, s in docs.items()]
        agg = ir_measures.calc_aggregate([nDCG @ 10, RR @ 10], qrels, run)
        assert abs(agg[nDCG @ 10] - metrics["results"][dataset][label]["ndcg@10"]) < 1e-4
        assert abs(agg[RR @ 10] - metrics["results"][dataset][label]["mrr@10"]) < 1e-4
    for name in ("per_query.csv", "report.md", "report.tex"):
        assert (out / name).stat().st_size > 0


def test_tied_scores_rank_as_trec_eval_ranks_them_in_metrics_and_run_files(tmp_path):
    """Ties go by document id descending, as trec_eval's; ranx alone leaves them to its sort."""
    from ir_measures import AP, RR, P, Qrel, R, ScoredDoc, nDCG
    from ir_measures import pytrec_eval as trec

    from maw_bench.evaluation.metrics import score_run
    from maw_bench.evaluation.runfiles import write_trec

    rng = np.random.default_rng(3)
    qrels = {f"q{i}": {f"d{j}": int(rng.integers(1, 4)) for j in rng.choice(60, 5, replace=False)} for i in range(30)}
    hits = {q: {f"d{j}": float(rng.integers(0, 4)) / 4 for j in rng.choice(60, 40, replace=False)} for q in qrels}
    pairs = {"ndcg@10": nDCG @ 10, "map@100": AP @ 100, "recall@20": R @ 20, "precision@5": P @ 5, "mrr": RR}  # trec_eval has no RR cut-off
    _, ours = score_run(qrels, hits, list(pairs))
    write_trec(tmp_path / "run.trec", hits, "tied")
    theirs_qrels = [Qrel(q, d, r) for q, docs in qrels.items() for d, r in docs.items()]
    for run in (hits, read_trec(tmp_path / "run.trec")):
        scored = [ScoredDoc(q, d, s) for q, docs in run.items() for d, s in docs.items()]
        theirs = {(m.query_id, str(m.measure)): m.value for m in trec.iter_calc(list(pairs.values()), theirs_qrels, scored)}
        for name, measure in pairs.items():
            for q in qrels:
                assert ours[name][q] == pytest.approx(theirs[(q, str(measure))], abs=1e-9), (name, q)


def test_binary_metrics_at_a_relevance_level_are_trec_eval_l(tmp_path):
    """At level 2 (TREC DL's passage convention) binary metrics equal trec_eval -l 2 query by query, nDCG keeps
    its grades (trec_eval's -l leaves it as it is), and the collection decides the level unless the config does."""
    import pytrec_eval

    from maw_bench.data.bundle import DatasetBundle
    from maw_bench.evaluation.metrics import score_run

    rng = np.random.default_rng(4)
    qrels = {f"q{i}": {f"d{j}": int(rng.integers(0, 4)) for j in rng.choice(60, 8, replace=False)} for i in range(40)}
    hits = {q: {f"d{j}": float(60 - k) for k, j in enumerate(rng.permutation(60)[:30])} for q in qrels}
    pairs = {"ndcg@10": "ndcg_cut_10", "map@100": "map_cut_100", "recall@20": "recall_20", "precision@5": "P_5"}
    for level in (1, 2):
        means, ours = score_run(qrels, hits, list(pairs), relevance_level=level)
        theirs = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map_cut.100", "recall.20", "P.5"},
                                                relevance_level=level).evaluate(hits)
        for name, key in pairs.items():
            for q in qrels:
                assert ours[name][q] == pytest.approx(theirs[q][key], abs=1e-9), (level, name, q)
    plain, _ = score_run(qrels, hits, list(pairs))
    assert means["ndcg@10"] == plain["ndcg@10"] and means["recall@20"] < plain["recall@20"]
    assert DatasetBundle("msmarco-passage/trec-dl-2019/judged", None).relevance_level() == 2
    assert DatasetBundle("msmarco-passage/dev/small", None).relevance_level() == 1
    assert DatasetBundle("beir/trec-covid", None).relevance_level() == 1
    assert DatasetBundle("msmarco-passage/trec-dl-2020", None).relevance_level(1) == 1  # eval.relevance_level wins


def _cache(tiny_model, toy_beir, tmp_path, enc=None, max_length=32, bundle=None):
    cfg = _cfg(tiny_model, toy_beir)
    enc = enc or build_encoder(cfg)
    bundle = bundle or load_bundle(str(toy_beir), "test")
    return encode_corpus(enc, bundle, tmp_path / "cache", 16, max_length, "fp32", 50_000), enc


def test_a_score_on_a_sample_says_so(tiny_model, toy_beir, tmp_path, caplog):
    """A capped corpus has fewer distractors, so it scores higher than the collection: metrics.json records what
    was kept of how much, report.md and the log say it, and a whole-collection evaluation has no sample."""
    import logging

    out = tmp_path / "capped"
    cfg = _cfg(tiny_model, toy_beir, f"eval.cache_dir={tmp_path / 'cache'}", "data.max_docs=80", "data.max_queries=20")
    with caplog.at_level(logging.WARNING, logger="maw_bench"):
        run_evaluation(cfg, [], [str(toy_beir)], out, bm25=True, print_table=False)
    doc = json.loads((out / "metrics.json").read_text())
    (dataset,) = doc["results"]
    assert doc["sample"] == {dataset: {"queries": 20, "queries_total": 30, "docs": 80, "docs_total": 120,
                                       "eval_seed": cfg.data.eval_seed}}
    line = f"{dataset}: scored on a sample, 80 of 120 documents (data.max_docs) and 20 of 30 judged queries"
    assert line in (out / "report.md").read_text() and line in caplog.text
    whole = tmp_path / "whole"
    run_evaluation(_cfg(tiny_model, toy_beir, f"eval.cache_dir={tmp_path / 'cache'}"), [], [str(toy_beir)], whole,
                   bm25=True, print_table=False)
    assert json.loads((whole / "metrics.json").read_text())["sample"] == {}
    assert "scored on a sample" not in (whole / "report.md").read_text()


def test_cache_hits_and_misses(tiny_model, toy_beir, tmp_path):
    first, enc = _cache(tiny_model, toy_beir, tmp_path)
    again, _ = _cache(tiny_model, toy_beir, tmp_path, enc=enc)
    assert again.folder == first.folder  # re-used
    shorter, _ = _cache(tiny_model, toy_beir, tmp_path, enc=enc, max_length=16)
    assert shorter.folder != first.folder  # max length changes the key
    with torch.no_grad():
        enc.backbone.embeddings.word_embeddings.weight[5, 0] += 1.0
    changed, _ = _cache(tiny_model, toy_beir, tmp_path, enc=enc)
    assert changed.folder != first.folder  # weights change the key
    capped = load_bundle(str(toy_beir), "test")
    from maw_bench.data import apply_caps

    apply_caps(capped, max_docs=80, seed=1)
    fewer, _ = _cache(tiny_model, toy_beir, tmp_path, enc=enc, bundle=capped)
    assert fewer.folder != changed.folder  # the document set changes the key


def test_a_mechanisms_settings_key_the_cache_beside_its_weights(tiny_model, toy_beir, tmp_path, monkeypatch):
    """Two arms whose weights hash alike but whose mechanism settings differ never share corpus vectors; the
    standard arm's key is what it was before mechanisms existed (its caches stay valid)."""
    from maw_bench.evaluation import embeddings

    monkeypatch.setattr(embeddings, "weights_hash", lambda encoder: "same")
    bundle = load_bundle(str(toy_beir), "test")
    keys = {spec: embeddings.fingerprint(build_encoder(_cfg(tiny_model, toy_beir, *spec)), bundle, 32, "fp32")
            for spec in [(), ("attention.mechanism=gated",), ("attention.mechanism=gated",
                                                               "attention.gated.granularity=channel")]}
    assert len(set(keys.values())) == 3
    unused = build_encoder(_cfg(tiny_model, toy_beir, "attention.gated.granularity=channel"))  # standard: no gate
    assert embeddings.fingerprint(unused, bundle, 32, "fp32") == keys[()]


def test_truncated_cache_is_rebuilt_not_read(tiny_model, toy_beir, tmp_path):
    cache, enc = _cache(tiny_model, toy_beir, tmp_path)
    good = [e.copy() for _, e in cache.shards()]
    shard = cache.folder / "shard_00000.npy"
    shard.write_bytes(shard.read_bytes()[:100])
    assert not cache.complete()
    rebuilt, _ = _cache(tiny_model, toy_beir, tmp_path, enc=enc)
    assert rebuilt.folder == cache.folder and rebuilt.complete()
    assert all(np.array_equal(a, e) for a, (_, e) in zip(good, rebuilt.shards()))


def test_significance_large_difference_and_identical_runs():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.5, 80)
    per_query = {"d": {
        "standard": {"ndcg@10": {f"q{i}": v for i, v in enumerate(base)}},
        "better": {"ndcg@10": {f"q{i}": v + 0.4 for i, v in enumerate(base)}},
        "same": {"ndcg@10": {f"q{i}": v for i, v in enumerate(base)}},
    }}
    comps = {c.model: c for c in compare(per_query, "standard", ["ndcg@10"])}
    assert comps["better"].p_student_holm < 1e-6 and comps["better"].p_fisher_holm < 0.01
    assert comps["better"].ci95_low > 0.39 and abs(comps["better"].mean_diff - 0.4) < 1e-9
    assert comps["same"].p_student_holm == 1.0 and comps["same"].p_fisher_holm == 1.0


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def _search_case():
    """57 unit vectors in two shards; the first five are also the queries (their own best hit)."""
    torch.manual_seed(0)
    docs = torch.nn.functional.normalize(torch.randn(57, 8), dim=-1)
    ids = [f"d{i}" for i in range(57)]
    return docs, docs[:5].clone(), ids, [(ids[:30], docs[:30].numpy()), (ids[30:], docs[30:].numpy())]


QIDS = ["d0", "d1", "d2", "d3", "d4"]


@pytest.mark.parametrize("query_block", [2048, 2])
def test_exact_search_equals_brute_force_and_drops_self_hits(query_block):
    docs, queries, ids, shards = _search_case()
    hits = exact_search(queries, QIDS, shards, top_k=7, chunk_size=11, query_block=query_block)
    brute = (queries @ docs.T).topk(7, dim=1)
    for row, qid in enumerate(QIDS):
        assert list(hits[qid]) == [ids[j] for j in brute.indices[row].tolist()]
        assert np.allclose(list(hits[qid].values()), brute.values[row].numpy(), atol=1e-6)
    no_self = exact_search(queries, QIDS, shards, top_k=7, chunk_size=11, drop_self=True)
    assert all(q not in h and len(h) == 7 for q, h in no_self.items())


def test_faiss_flat_search_equals_exact_search():
    pytest.importorskip("faiss")  # an optional extra: without it this test skips, the rest runs
    _, queries, _, shards = _search_case()
    hits = exact_search(queries, QIDS, shards, top_k=7, chunk_size=11)
    flat = faiss_search("Flat", queries, QIDS, shards, top_k=7)
    assert {q: list(h) for q, h in flat.items()} == {q: list(h) for q, h in hits.items()}


def test_eval_of_a_training_run_expands_to_both_arms(tiny_model, toy_beir, tmp_path):
    from maw_bench.training.run import train_arms

    cfg = _cfg(tiny_model, toy_beir, "train.max_steps=3", f"eval.cache_dir={tmp_path / 'cache'}")
    train_arms(cfg, ["standard", "maw"], tmp_path / "run")
    out = run_evaluation(cfg, [str(tmp_path / "run")], [str(toy_beir)], tmp_path / "eval", print_table=False)
    (dataset,) = out.results
    assert set(out.results[dataset]) == {"standard", "maw"}
    assert out.reference == "standard"
    assert {c["model"] for c in out.comparisons} == {"maw"}
    # beside trained arms, an untrained one is init/<arm>, never under the trained arm's name; at init the
    # standard arm is the base encoder itself
    both = run_evaluation(cfg, [str(tmp_path / "run"), tiny_model], [str(toy_beir)], tmp_path / "eval2",
                          print_table=False, arms=["standard"])
    assert set(both.results[dataset]) == {"standard", "maw", "zero-shot", "init/standard"}
    assert both.results[dataset]["standard"] == out.results[dataset]["standard"]
    assert both.results[dataset]["init/standard"] == both.results[dataset]["zero-shot"]


def test_a_collection_or_an_arm_named_twice_is_one_line(tiny_model, toy_beir, tmp_path):
    from maw_bench.errors import UserError
    from maw_bench.evaluation.pipeline import load_eval_bundles

    cfg = _cfg(tiny_model, toy_beir)
    with pytest.raises(UserError, match="are the same collection"):
        load_eval_bundles(cfg, [str(toy_beir), str(toy_beir / ".." / "toy")])
    from maw_bench.evaluation.pipeline import check_file_names

    check_file_names(["standard", "maw", "run/standard", "bm25"])
    with pytest.raises(UserError, match="the same run file"):
        check_file_names(["a/standard", "a_standard"])
    with pytest.raises(UserError, match="names an arm twice"):
        run_evaluation(cfg, [], [str(toy_beir)], tmp_path / "eval", print_table=False, arms=["maw", "maw"])


def _long_query_collection(folder: Path) -> Path:
    """A BEIR folder whose queries are whole paragraphs (ArguAna-style): far longer than 64 tokens."""
    import random

    from conftest import WORDS

    rng = random.Random(11)
    (folder / "qrels").mkdir(parents=True)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 80))) for _ in range(150)]
    with (folder / "corpus.jsonl").open("w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": d}) + "\n")
    with (folder / "queries.jsonl").open("w") as f, (folder / "qrels" / "test.tsv").open("w") as q:
        q.write("query-id\tcorpus-id\tscore\n")
        for i in range(40):  # the relevant words come last, past token 64
            noise = " ".join(rng.choice(WORDS) for _ in range(90))
            f.write(json.dumps({"_id": f"q{i}", "text": noise + " " + docs[i][:200]}) + "\n")
            q.write(f"q{i}\td{i}\t1\n")
    return folder


def test_long_queries_score_as_sentence_transformers_and_ranx_do(minilm_path, tmp_path):
    """Queries are encoded with the published length (256), not the training length (64), as ST and MTEB do."""
    from ranx import Qrels, Run, evaluate
    from sentence_transformers import SentenceTransformer

    from maw_bench.data import load_bundle
    from maw_bench.evaluation.pipeline import run_evaluation

    folder = _long_query_collection(tmp_path / "long")
    cfg = BenchmarkConfig.load(overrides=[f"model.name={minilm_path}", f"eval.cache_dir={tmp_path / 'cache'}",
                                          "eval.metrics=[ndcg@10,mrr@10]"])
    out = run_evaluation(cfg, [], [str(folder)], tmp_path / "eval", print_table=False)
    ours = next(iter(out.results.values()))["zero-shot"]
    doc = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert doc["max_lengths"]["zero-shot"] == {"query": 256, "document": 256}

    bundle = load_bundle(str(folder), "test")
    st = SentenceTransformer(minilm_path, device="cpu")
    ids, texts = zip(*bundle.docs_iter())
    qids = list(bundle.judged_queries())
    d = st.encode(list(texts), convert_to_tensor=True, normalize_embeddings=True)
    q = st.encode([bundle.queries[x] for x in qids], convert_to_tensor=True, normalize_embeddings=True)
    scores = (q @ d.T).tolist()
    run = Run.from_dict({qid: {ids[j]: float(s) for j, s in enumerate(row)} for qid, row in zip(qids, scores)})
    theirs = evaluate(Qrels.from_dict(bundle.qrels), run, ["ndcg@10", "mrr@10"])
    for m in ("ndcg@10", "mrr@10"):
        assert abs(ours[m] - theirs[m]) <= 1e-4, (m, ours[m], theirs[m])


def test_a_shard_truncated_after_writing_is_re_encoded_with_a_visible_warning(tiny_model, toy_beir, tmp_path, caplog):
    cache, enc = _cache(tiny_model, toy_beir, tmp_path)
    shard = next(cache.folder.glob("shard_*.npy"))
    before = shard.read_bytes()
    shard.write_bytes(before[: len(before) // 2])
    with caplog.at_level("WARNING", logger="maw_bench"):
        again, _ = _cache(tiny_model, toy_beir, tmp_path, enc=enc)
    assert "corrupt, truncated or swapped; re-encoding it" in caplog.text
    assert not again.reused and shard.read_bytes() == before


def test_a_cache_hit_reads_no_document_and_hashes_only_shard_ends(tiny_model, toy_beir, tmp_path, monkeypatch):
    """At MS MARCO size a hit must not re-read 8.8M passages nor re-hash every shard (issue 15)."""
    from maw_bench.data.bundle import DatasetBundle
    from maw_bench.evaluation import embeddings as emb_mod

    enc = build_encoder(_cfg(tiny_model, toy_beir))
    root = tmp_path / "cache"
    first = encode_corpus(enc, load_bundle(str(toy_beir), "test"), root, 16, 32, "fp32", 40)  # 3 shards of 40

    def boom(*args, **kwargs):
        raise AssertionError("a cache hit read the corpus or hashed a whole shard")

    with monkeypatch.context() as m:
        m.setattr(DatasetBundle, "docs_iter", boom)
        m.setattr(emb_mod, "sha256_file", boom)
        hit = encode_corpus(enc, load_bundle(str(toy_beir), "test"), root, 16, 32, "fp32", 40)
    assert hit.reused and hit.folder == first.folder

    a, b = first.folder / "shard_00000.npy", first.folder / "shard_00001.npy"
    da, db = a.read_bytes(), b.read_bytes()
    assert len(da) == len(db)
    a.write_bytes(db), b.write_bytes(da)  # swapped: same sizes, other content
    assert not first.complete()
    a.write_bytes(da), b.write_bytes(db)
    assert first.complete()

    hashed = []
    real = emb_mod.sha256_file
    monkeypatch.setattr(emb_mod, "sha256_file", lambda p: hashed.append(p) or real(p))
    verified = encode_corpus(enc, load_bundle(str(toy_beir), "test"), root, 16, 32, "fp32", 40, verify=True)
    assert verified.reused and len(hashed) == 6  # --verify-cache: every shard and id file in full

    corpus = toy_beir / "corpus.jsonl"  # the same size, one letter changed: the corpus hash must change
    text = corpus.read_text()
    i = text.index('"text": "') + len('"text": "')
    corpus.write_text(text[:i] + ("x" if text[i] != "x" else "y") + text[i + 1:])
    changed = encode_corpus(enc, load_bundle(str(toy_beir), "test"), root, 16, 32, "fp32", 40)
    assert changed.folder != first.folder and not changed.reused


def _self_hit_collection(folder: Path) -> Path:
    """Quora-like: every query is also a document under its own id; the judged document is another one."""
    import random

    from conftest import WORDS

    rng = random.Random(5)
    (folder / "qrels").mkdir(parents=True)
    texts = [[rng.choice(WORDS) for _ in range(6)] for _ in range(30)]
    with (folder / "corpus.jsonl").open("w") as f:
        for i, words in enumerate(texts):
            f.write(json.dumps({"_id": f"d{i}", "text": " ".join(words)}) + "\n")
            f.write(json.dumps({"_id": f"p{i}", "text": " ".join(words[::-1] + [rng.choice(WORDS)])}) + "\n")
    with (folder / "queries.jsonl").open("w") as f:
        for i, words in enumerate(texts):
            f.write(json.dumps({"_id": f"d{i}", "text": " ".join(words)}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                                + "".join(f"d{i}\tp{i}\t1\n" for i in range(30)))
    return folder


def test_self_hits_dropped_where_beir_and_mteb_drop_them_and_warned_elsewhere(tiny_model, tmp_path, caplog):
    """A local copy of Quora drops them as `beir/quora` does; the same collection under another name keeps them
    (scored as trec_eval would) with a warning that says how to match BEIR; `drop` there equals the Quora copy."""
    import logging
    import shutil

    quora = _self_hit_collection(tmp_path / "quora")
    pairs = shutil.copytree(quora, tmp_path / "pairs")

    def run(folder, *extra):
        cfg = _cfg(tiny_model, folder, f"eval.cache_dir={tmp_path / 'cache'}", *extra)
        out = tmp_path / f"eval-{folder.name}-{len(extra)}-{'-'.join(extra)}"
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            run_evaluation(cfg, [], [str(folder)], out, bm25=True, print_table=False)
        doc = json.loads((out / "metrics.json").read_text())
        (dataset,) = doc["results"]
        runs = {p.name.split("__")[0]: read_trec(p) for p in (out / "runs").glob("*.trec")}
        warned = [r.message for r in caplog.records if "their own id" in r.message]
        return doc["results"][dataset], doc["self_hits"][dataset], runs, warned

    dropped, policy, runs, warned = run(quora)
    assert policy == "drop" and not warned
    assert all(q not in hits for r in runs.values() for q, hits in r.items())
    assert run(pairs, "eval.self_hits=drop")[:2] == (dropped, "drop")
    kept, policy, runs, warned = run(pairs)
    assert policy == "keep" and len(warned) == 1 and "eval.self_hits=drop" in warned[0]
    assert all(q in hits for r in runs.values() for q, hits in r.items())
    assert kept["bm25"]["mrr@10"] < dropped["bm25"]["mrr@10"]  # the query itself took rank 1
    assert run(pairs, "eval.self_hits=keep")[0] == kept and not run(pairs, "eval.self_hits=keep")[3]


def test_a_vector_beyond_float16_is_refused_not_cached_as_inf(tmp_path):
    from maw_bench.errors import UserError
    from maw_bench.evaluation.embeddings import EmbeddingCache

    cache = EmbeddingCache(tmp_path / "cache")
    cache.write_shard(0, ["a", "b"], np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32))
    with pytest.raises(UserError, match="exceeds the float16 range"):
        cache.write_shard(1, ["c"], np.array([[7e4, 0.0]], dtype=np.float32))
    assert not (tmp_path / "cache" / "shard_00001.npy").exists()


def test_cranfield_is_scored_on_cleverdons_scale_as_trec_eval_scores_the_remapped_qrels(tiny_model, irds_home,
                                                                                       tmp_path):
    """Cranfield's files carry Cleverdon's codes, 1 = a complete answer ... 4 = minimum interest, -1 = none, and
    ir_datasets yields them as they are. Scored on the defined scale (gain 5 - code, 0 for -1), nDCG@10 equals
    trec_eval's on the remapped qrels query by query; eval.relevance_scale=raw reproduces the raw-code figure;
    binary metrics are the same either way; metrics.json and report.md say which; a raw evaluation does not join a
    defined one."""
    import ir_datasets
    import pytrec_eval

    from maw_bench.data.relevance import RAW, as_gains, gain_scale
    from maw_bench.evaluation.merge import KeptEvaluation

    raw_qrels: dict[str, dict[str, int]] = {}
    for q in ir_datasets.load("cranfield").qrels_iter():
        raw_qrels.setdefault(q.query_id, {})[q.doc_id] = q.relevance
    assert {g for j in raw_qrels.values() for g in j.values()} == {-1, 1, 2, 3, 4}
    docs = {}
    for scale in ("defined", "raw"):
        cfg = BenchmarkConfig.load(overrides=[f"model.name={tiny_model}", f"eval.cache_dir={tmp_path / 'c'}",
                                              "eval.metrics=[ndcg@10,recall@100]", f"eval.relevance_scale={scale}",
                                              "model.max_length=64", "model.query_max_length=32",
                                              "data.max_queries=60"])
        run_evaluation(cfg, [], ["cranfield"], tmp_path / scale, print_table=False)
        docs[scale] = json.loads((tmp_path / scale / "metrics.json").read_text())
        (run_file,) = (tmp_path / scale / "runs").glob("*.trec")
        run = read_trec(run_file)
        qrels = {q: j for q, j in (as_gains(raw_qrels, "cranfield", scale)).items() if q in run}
        theirs = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
        ours = {}
        for line in (tmp_path / scale / "per_query.csv").read_text().splitlines()[1:]:
            _, _, q, metric, value = line.split(",")
            ours.setdefault(metric, {})[q] = float(value)
        assert len(theirs) == 60
        for q, values in theirs.items():
            assert ours["ndcg@10"][q] == pytest.approx(values["ndcg_cut_10"], abs=1e-5), (scale, q)
    assert docs["defined"]["relevance_scale"]["cranfield"] == gain_scale("cranfield").name
    assert docs["raw"]["relevance_scale"]["cranfield"] == RAW
    defined, raw = (docs[s]["results"]["cranfield"]["zero-shot"] for s in ("defined", "raw"))
    assert defined["recall@100"] == raw["recall@100"] and defined["ndcg@10"] != raw["ndcg@10"]
    assert "5 - code" in (tmp_path / "defined" / "report.md").read_text()
    with pytest.raises(UserError, match="set eval.relevance_scale=raw"):
        run_evaluation(cfg.derive({"eval.relevance_scale": "defined"}), [], ["cranfield"], tmp_path / "raw",
                       print_table=False, keep=KeptEvaluation(docs["raw"], {}, "the raw evaluation"))
    with pytest.raises(UserError, match=r"relevance code\(s\) \[7\]"):
        as_gains({"q": {"d": 7}}, "cranfield", "defined")
    assert as_gains({"q": {"d": 2}}, "beir/scifact/test", "defined") == {"q": {"d": 2}}
