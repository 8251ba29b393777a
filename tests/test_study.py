"""Studies: arms x seeds x controls, and the statistics over seeds and queries."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import tiny_overrides

from maw_bench.config import BenchmarkConfig
from maw_bench.errors import UserError
from maw_bench.evaluation.seed_stats import compare_over_seeds, pigeonhole_bootstrap


def _scores(matrix: np.ndarray) -> dict[int, dict[str, float]]:
    return {s: {f"q{q}": float(matrix[s, q]) for q in range(matrix.shape[1])} for s in range(matrix.shape[0])}


def test_pigeonhole_standard_error_matches_the_crossed_design_formula():
    """d = seed effect + query effect + noise: var(mean) = s_a^2/S + s_b^2/Q + s_e^2/(SQ) (to bootstrap accuracy)."""
    rng = np.random.default_rng(0)
    s, q = 30, 200
    a, b, e = rng.normal(0, 0.02, (s, 1)), rng.normal(0, 0.1, (1, q)), rng.normal(0, 0.05, (s, q))
    d = a + b + e
    boot = pigeonhole_bootstrap(d, 4000, seed=1)
    # the pigeonhole bootstrap counts the residual twice more (Owen 2007): var ~ s_a^2/S + s_b^2/Q + 3 s_e^2/(SQ)
    expected = math.sqrt(a.var(ddof=1) / s + b.var(ddof=1) / q + 3 * e.var(ddof=1) / (s * q))
    assert boot.std(ddof=1) == pytest.approx(expected, rel=0.15)


def test_seed_variance_widens_the_interval_a_query_test_would_miss():
    rng = np.random.default_rng(3)
    ref = rng.uniform(0, 1, (3, 300))
    shift = np.array([[0.03], [-0.02], [0.01]])  # the seeds disagree; the queries agree within a seed
    arm = ref + shift + rng.normal(0, 0.01, ref.shape)
    c = compare_over_seeds(_scores(arm), _scores(ref), "maw", "standard", "ndcg@10")
    within_seed_se = float((arm - ref).std(ddof=1) / math.sqrt(arm.size))
    assert c.se > 5 * within_seed_se and c.ci95_low < 0 < c.ci95_high and c.p_value > 0.05
    assert c.min_detectable == pytest.approx(2.8016 * c.se, rel=1e-3)
    assert c.per_seed_diff == pytest.approx([0.03, -0.02, 0.01], abs=0.005)


def test_a_consistent_difference_is_significant_and_identical_arms_are_not():
    rng = np.random.default_rng(4)
    ref = rng.uniform(0, 1, (3, 300))
    same = compare_over_seeds(_scores(ref), _scores(ref), "maw", "standard", "ndcg@10")
    assert (same.mean_diff, same.p_value, same.min_detectable) == (0.0, 1.0, 0.0)
    better = compare_over_seeds(_scores(ref + 0.05 + rng.normal(0, 0.02, ref.shape)), _scores(ref), "maw",
                                "standard", "ndcg@10")
    assert better.p_value < 1e-3 and better.ci95_low > 0.03


def test_study_trains_every_arm_per_seed_controls_once_and_resumes(tiny_model, toy_beir, tmp_path, monkeypatch):
    from maw_bench.commands.study import run_study
    from maw_bench.training import run as run_mod

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "train.max_steps=3", "maw.depth=2",
                                                        f"eval.cache_dir={tmp_path / 'cache'}",
                                                        "eval.metrics=[ndcg@10,mrr@10]"))
    run_study(cfg, ["maw"], [1, 2], ["maw"], tmp_path / "study")
    doc = json.loads((tmp_path / "study" / "summary.json").read_text())
    arms = {r["arm"]: len(r["seeds"]) for r in doc["rows"]}
    assert arms == {"standard": 2, "maw": 2, "maw-uniform": 1, "maw-fixed0": 1, "maw-fixed1": 1}
    comp = next(c for c in doc["comparisons"] if c["arm"] == "maw" and c["metric"] == "ndcg@10")
    assert comp["seeds"] == 2 and comp["ci95_low"] <= comp["mean_diff"] <= comp["ci95_high"]
    assert (tmp_path / "study" / "summary.md").read_text().count("(control)") == 3
    metrics = json.loads((tmp_path / "study" / "seed-1" / "eval" / "metrics.json").read_text())
    routing = next(iter(metrics["routing"].values()))
    assert set(routing) == {"maw", "maw-fixed0", "maw-fixed1"}  # uniform: an even mixture chooses no depth
    assert routing["maw-fixed1"]["documents"]["layer 1"][0] == 0 < routing["maw-fixed1"]["documents"]["layer 1"][1]
    logs = {arm: [json.loads(line) for line in (tmp_path / "study" / "seed-1" / "run" / arm / "train_log.jsonl")
                  .read_text().splitlines()] for arm in ("maw-uniform", "maw-fixed1")}
    assert not any("depth_histogram" in r for r in logs["maw-uniform"])  # training logs say the same
    assert all(r["depth_histogram"][0][0] == 0 < r["depth_histogram"][0][1] for r in logs["maw-fixed1"])
    assert list((tmp_path / "study" / "seed-1" / "eval").glob("per_query_delta__*.png"))
    assert list((tmp_path / "study" / "seed-1" / "eval").glob("depth_choices__*.png"))

    calls = []
    monkeypatch.setattr(run_mod.Trainer, "train", lambda self, resume=False: calls.append(1))
    record = tmp_path / "study" / "seed-1" / "run" / "run.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "created": "2000-01-01T00:00:00"}))
    run_study(cfg, ["maw"], [1, 2], ["maw"], tmp_path / "study")  # everything finished: nothing retrains
    assert calls == []
    after = json.loads(record.read_text())
    assert after["created"] == "2000-01-01T00:00:00" and "resumed" in after  # a resume keeps when the run began
    assert after["arms"] == ["standard", "maw", "maw-uniform", "maw-fixed0", "maw-fixed1"]
    # a study written before a key existed resumes (the key takes its default); a changed setting does not
    spec_path = tmp_path / "study" / "study.json"
    spec = json.loads(spec_path.read_text())
    del spec["config"]["train"]["report_to"]
    spec_path.write_text(json.dumps(spec))
    run_study(cfg, ["maw"], [1, 2], ["maw"], tmp_path / "study")
    assert calls == []
    # a recipe that since gained arms, or spells out a default in one, resumes: arms compare resolved
    spec = json.loads(spec_path.read_text())
    spec["config"]["arms"] = {"standard": ["maw.enabled=false"], "maw": spec["config"]["arms"]["maw"]}
    spec_path.write_text(json.dumps(spec))
    run_study(cfg, ["maw"], [1, 2], ["maw"], tmp_path / "study")
    assert calls == []
    spec["config"]["arms"]["maw"] = [*spec["config"]["arms"]["maw"], "maw.init_noise=0.5"]
    spec_path.write_text(json.dumps(spec))  # the arm itself changed: its seeds are not this study's
    with pytest.raises(UserError, match="another config"):
        run_study(cfg, ["maw"], [1, 2], ["maw"], tmp_path / "study")
    spec["config"]["arms"]["maw"] = spec["config"]["arms"]["maw"][:-1]
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(UserError, match="another config"):
        run_study(cfg.with_overrides(["train.lr=0.5"]), ["maw"], [1, 2], ["maw"], tmp_path / "study")


def test_report_rebuilds_a_study_from_its_per_query_file_byte_for_byte(tiny_model, toy_beir, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from maw_bench.cli import app
    from maw_bench.commands.study import run_study

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "train.max_steps=2", "maw.depth=2",
                                                        f"eval.cache_dir={tmp_path / 'cache'}",
                                                        "eval.metrics=[ndcg@10,mrr@10]"))
    run_study(cfg, ["maw"], [1, 2, 3], [], tmp_path / "study")
    kept = tmp_path / "kept"
    shutil.copytree(tmp_path / "study", kept)
    for seed in (1, 2, 3):  # what a committed study keeps: no models, no per-seed per-query files
        (kept / f"seed-{seed}" / "eval" / "per_query.csv").unlink()
        for arm in ("standard", "maw"):
            shutil.rmtree(kept / f"seed-{seed}" / "run" / arm / "model")
    (kept / "summary.json").unlink()
    res = CliRunner().invoke(app, ["report", str(kept)])
    assert res.exit_code == 0, res.output
    for name in ("summary.json", "summary.md", "per_query.csv.gz"):
        assert (kept / name).read_bytes() == (tmp_path / "study" / name).read_bytes(), name
    doc = json.loads((kept / "summary.json").read_text())
    comp = next(c for c in doc["comparisons"] if c["metric"] == "ndcg@10")
    assert comp["method"].startswith("crossed") and "p_holm" in comp and comp["seeds"] == 3
    assert {f["seed"] for f in doc["routing"]} == {1, 2, 3}
    res = CliRunner().invoke(app, ["plan", str(kept), "--delta", "0.05"])
    assert res.exit_code == 0 and "seeds" in res.output, res.output
    wall = doc["wall_s"]  # its laws, whatever the machine's speed, are in test_wall_times_*
    assert set(wall["per_seed"]["maw"]) == {"1", "2", "3"} and set(wall["ratio_to_reference"]) == {"standard", "maw"}
    # a seed still training (its arms' manifests written, no evaluation yet) is in neither wall time nor routing
    spec = json.loads((kept / "study.json").read_text())
    (kept / "study.json").write_text(json.dumps({**spec, "seeds": [1, 2, 3, 4]}))
    shutil.copytree(kept / "seed-1" / "run", kept / "seed-4" / "run")
    assert CliRunner().invoke(app, ["report", str(kept)]).exit_code == 0
    again = json.loads((kept / "summary.json").read_text())
    assert "4" not in again["wall_s"]["per_seed"]["maw"] and {f["seed"] for f in again["routing"]} == {1, 2, 3}


def _manifests(folder, times: dict[str, dict[int, float]], partial: tuple[str, ...] = ()) -> dict:
    """Arm manifests with the given training times under a study folder; returns the study's spec."""
    for arm, per_seed in times.items():
        for seed, wall in per_seed.items():
            path = folder / f"seed-{seed}" / "run" / arm / "manifest.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"wall_s": wall, **({"wall_s_partial": True} if f"{arm}@{seed}" in partial
                                                           else {})}))
    return {"seeds": sorted({s for per in times.values() for s in per}), "arms": list(times), "controls": []}


@pytest.mark.parametrize("ref_times, expect", [
    ({1: 0.0, 2: 0.0, 3: 0.0}, None),  # a fast CPU: every reference time 0 -> no ratio, said, not a missing key
    ({1: 0.0, 2: 2e-4, 3: 0.0}, [2.0, 2.0, 1]),  # only the seed with a time above 0 forms a ratio
    ({1: 1e-4, 2: 2e-4, 3: 4e-4}, [1.0, 4.0, 3]),  # near-zero times keep their precision (no rounding to 0.1 s)
])
def test_wall_times_keep_their_precision_and_say_no_ratio_where_none_can_be_formed(tmp_path, ref_times, expect):
    from maw_bench.commands.study import _wall_times
    from maw_bench.outputs.tables import study_markdown

    spec = _manifests(tmp_path, {"standard": ref_times, "maw": {1: 4e-4, 2: 4e-4, 3: 4e-4}})
    wall = _wall_times(tmp_path, spec)
    assert wall["per_seed"]["maw"] == {"1": 4e-4, "2": 4e-4, "3": 4e-4}
    assert wall["ratio_range"]["maw"] == expect and set(wall["ratio_to_reference"]) == {"standard", "maw"}
    if expect is None:
        assert wall["ratio_to_reference"]["maw"] is None and "0 s" in wall["no_ratio"]["maw"]
    else:
        assert expect[0] <= wall["ratio_to_reference"]["maw"] <= expect[1] and "maw" not in wall["no_ratio"]
    doc = {"reference": "standard", "rows": [], "comparisons": [], "metrics": [], "method": "crossed", "wall_s": wall}
    text = study_markdown(doc)
    assert ("maw: no ratio (standard's training time is 0 s" in text) == (expect is None)


def test_wall_times_leave_out_resumed_legs_of_unknown_time_and_say_so(tmp_path):
    from maw_bench.commands.study import _wall_times

    spec = _manifests(tmp_path, {"standard": {1: 2.0, 2: 2.0}, "maw": {1: 3.0, 2: 5.0}}, partial=("maw@2",))
    wall = _wall_times(tmp_path, spec)
    assert wall["ratio_to_reference"]["maw"] == 1.5 and wall["partial"] == ["maw@2"]
    spec = _manifests(tmp_path, {"standard": {1: 2.0, 2: 2.0}, "maw": {1: 3.0, 2: 5.0}}, partial=("maw@1", "maw@2"))
    wall = _wall_times(tmp_path, spec)
    assert wall["ratio_to_reference"]["maw"] is None and "resume" in wall["no_ratio"]["maw"]


def test_diff_seeds_trained_before_and_after_its_second_map_moved_to_router_lr_are_not_mixed(tmp_path):
    """diff's second query/key trained at train.lr before manifests recorded router_lr_params: a study of such seeds
    rebuilds as it was, but is not extended with new diff seeds nor summarised beside them."""
    from maw_bench.commands.study import check_roles

    for seed in (1, 2):
        for arm, extra in (("diff", {"attention": "diff"}), ("maw", {"attention": "maw"})):
            path = tmp_path / f"seed-{seed}" / "run" / arm / "manifest.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(extra))
    spec = {"arms": ["diff", "maw"], "controls": [], "seeds": [1, 2]}
    check_roles(tmp_path, spec)  # the committed study: every diff seed trained alike
    check_roles(tmp_path, spec, {1: ["diff", "maw"], 2: ["diff", "maw"]})  # a resume that trains nothing new
    check_roles(tmp_path, {**spec, "arms": ["maw"], "seeds": [1, 2, 3]}, {3: ["maw"]})  # maw's roles did not change
    with pytest.raises(UserError, match="arm diff at seeds 1, 2 was trained when diff's second query/key learned at "
                                        "train.lr.*seeds 3 would be another experiment"):
        check_roles(tmp_path, {**spec, "seeds": [1, 2, 3]}, {3: ["diff", "maw"]})
    path = tmp_path / "seed-3" / "run" / "diff" / "manifest.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"attention": "diff", "router_lr_params": 1200}))
    with pytest.raises(UserError, match="arm diff at seeds 1, 2"):
        check_roles(tmp_path, {**spec, "seeds": [1, 2, 3]})


def test_a_study_scored_on_cranfields_raw_codes_continues_only_on_them(tmp_path):
    """Seeds evaluated before relevance scales were recorded scored Cranfield's raw codes: continuing the study on
    the defined scale is refused before any seed trains, and seeds on two scales are never averaged."""
    from maw_bench.commands.study import _scales, check_scales
    from maw_bench.data.relevance import RAW, gain_scale

    for seed, doc in ((1, {}), (2, {"relevance_scale": {"cranfield": RAW}})):
        path = tmp_path / f"seed-{seed}" / "eval" / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"results": {"cranfield": {}, "beir/scifact/test": {}}, **doc}))
    spec = {"seeds": [1, 2, 3]}
    assert _scales(tmp_path, spec)["cranfield"] == RAW
    raw = BenchmarkConfig.load(overrides=["eval.relevance_scale=raw"])
    check_scales(tmp_path, spec, raw, {"cranfield", "beir/scifact/test"})
    with pytest.raises(UserError, match="set eval.relevance_scale=raw to continue it"):
        check_scales(tmp_path, spec, BenchmarkConfig.load(), {"cranfield"})
    check_scales(tmp_path, spec, BenchmarkConfig.load(), {"beir/scifact/test"})  # SciFact grades upwards anyway
    path = tmp_path / "seed-3" / "eval" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"results": {"cranfield": {}}, "relevance_scale": {"cranfield": gain_scale("cranfield").name}}))
    with pytest.raises(UserError, match="different relevance scales"):
        _scales(tmp_path, spec)


def test_a_query_missing_from_one_seed_is_an_error_naming_it(tmp_path):
    from maw_bench.outputs.study_summary import difference_table

    ref = {1: {"q1": 0.5, "q2": 0.1}, 2: {"q1": 0.4, "q2": 0.2}}
    arm = {1: {"q1": 0.6, "q2": 0.1}, 2: {"q1": 0.4}}
    with pytest.raises(UserError, match="seed 2 does not score the same queries .query 'q2'"):
        difference_table(arm, ref, "maw", "standard", "x")
    with pytest.raises(UserError, match="not scored at the same seeds"):
        difference_table({1: arm[1]}, ref, "maw", "standard", "x")


def test_a_capped_study_evaluates_the_same_queries_at_every_seed(tiny_model, tmp_path):
    import gzip

    from conftest import write_toy_beir

    from maw_bench.commands.study import run_study

    data = write_toy_beir(tmp_path / "toy", n_docs=200, n_queries=120)
    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, data, "train.max_steps=1", "data.max_queries=20",
                                                        "data.max_docs=100", f"eval.cache_dir={tmp_path / 'cache'}",
                                                        "eval.metrics=[ndcg@10]"))
    run_study(cfg, ["maw"], [1, 2, 3], [], tmp_path / "study")
    with gzip.open(tmp_path / "study" / "per_query.csv.gz", "rt") as f:
        rows = [line.split(",") for line in f.read().splitlines()[1:]]
    per_seed = {s: {r[3] for r in rows if r[1] == s and r[2] == "standard"} for s in ("1", "2", "3")}
    assert len(per_seed["1"]) == 20 and per_seed["1"] == per_seed["2"] == per_seed["3"]
    (dataset,) = json.loads((tmp_path / "study" / "summary.json").read_text())["sample"]  # and the summary says so
    assert f"{dataset}: scored on a sample, 100 of 200 documents" in (tmp_path / "study" / "summary.md").read_text()


@pytest.mark.slow
def test_report_rebuilds_the_committed_study_byte_for_byte(tmp_path):
    """The study README quotes: its summary is what `maw-bench report` derives from the committed folder alone."""
    import shutil
    import subprocess
    from pathlib import Path

    committed = Path(__file__).resolve().parents[1] / "results" / "study-scifact-cranfield"
    tracked = subprocess.run(["git", "ls-files", "."], cwd=committed, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    copy = tmp_path / "study"
    for name in tracked:  # exactly what a clone holds: no models, no per-seed per-query files
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(committed / name, copy / name)
    (copy / "summary.json").unlink()
    (copy / "summary.md").unlink()
    from typer.testing import CliRunner

    from maw_bench.cli import app

    res = CliRunner().invoke(app, ["report", str(copy)])
    assert res.exit_code == 0, res.output
    for name in ("summary.json", "summary.md", "per_query.csv.gz"):
        assert (copy / name).read_bytes() == (committed / name).read_bytes(), name


def test_a_study_continued_in_a_fresh_clone_trains_and_scores_only_what_it_lacks(tiny_model, toy_beir, tmp_path,
                                                                                 monkeypatch):
    """A clone keeps no models and no per-seed per-query files: adding a seed and the controls trains exactly
    those, the kept arms' scores stay what they were, and the study's per-query table keeps the first seed."""
    import shutil

    from maw_bench.commands.study import run_study
    from maw_bench.outputs.study_summary import PER_QUERY_FILE, read_per_query
    from maw_bench.training import run as run_mod

    cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "train.max_steps=2", "maw.depth=2",
                                                        f"eval.cache_dir={tmp_path / 'cache'}",
                                                        "eval.metrics=[ndcg@10,mrr@10]"))
    study = tmp_path / "study"
    run_study(cfg, ["maw"], [1], [], study)
    before = json.loads((study / "seed-1" / "eval" / "metrics.json").read_text())
    (study / "seed-1" / "eval" / "per_query.csv").unlink()
    for arm in ("standard", "maw"):
        shutil.rmtree(study / "seed-1" / "run" / arm / "model")
    trained = []
    real = run_mod.train_one_arm
    monkeypatch.setattr(run_mod, "train_one_arm", lambda cfg, acfg, folder, *a: trained.append(
        f"{folder.parent.parent.name}/{folder.name}") or real(cfg, acfg, folder, *a))
    run_study(cfg, ["maw"], [1, 2], ["maw"], study)
    assert trained == ["seed-2/standard", "seed-2/maw", "seed-1/maw-uniform", "seed-1/maw-fixed0", "seed-1/maw-fixed1"]
    after = json.loads((study / "seed-1" / "eval" / "metrics.json").read_text())
    ds = next(iter(before["results"]))
    assert {m: after["results"][ds][m] for m in ("standard", "maw")} == before["results"][ds]
    assert list(after["results"][ds]) == ["standard", "maw", "maw-uniform", "maw-fixed0", "maw-fixed1"]  # kept first
    assert after["reference"] == "standard" and {c["model"] for c in after["comparisons"]} == set(
        after["results"][ds]) - {"standard"}
    rows = read_per_query(study / PER_QUERY_FILE)
    assert {(r[1], r[2]) for r in rows} >= {(1, "standard"), (1, "maw"), (2, "standard"), (1, "maw-fixed1")}
    trained.clear()
    run_study(cfg, ["maw"], [1, 2], ["maw"], study)  # nothing lacks: nothing trains, nothing is scored
    assert trained == []
    # a seed evaluated whose scores are nowhere is named, not left out of the study
    (study / "seed-2" / "eval" / "per_query.csv").unlink()
    (study / PER_QUERY_FILE).unlink()
    with pytest.raises(UserError, match="seed 2 was evaluated"):
        run_study(cfg, ["maw"], [1, 2], ["maw"], study)


def test_an_evaluation_joins_another_only_when_they_could_be_one():
    from maw_bench.evaluation.merge import KeptEvaluation, check_joinable

    scores = {"d": {"standard": {"ndcg@10": {"q1": 0.5}}}}
    doc = {"metrics": ["ndcg@10"], "dtype": "bf16", "queries": {"d": 1}, "results": {"d": {"standard": {}}}}
    check_joinable(KeptEvaluation(doc, scores, "E"), ["ndcg@10"], "bf16", {"d": 1})
    for metrics, dtype, queries, kept_scores, match in (
            (["mrr@10"], "bf16", {"d": 1}, scores, "metrics"), (["ndcg@10"], "fp32", {"d": 1}, scores, "eval.dtype=bf16"),
            (["ndcg@10"], "bf16", {"d": 2}, scores, "not the same sample"),
            (["ndcg@10"], "bf16", {"d": 1}, {}, "per-query scores of standard")):
        with pytest.raises(UserError, match=match):
            check_joinable(KeptEvaluation(doc, kept_scores, "E"), metrics, dtype, queries)
    scored = {"self_hits": {"d": "drop"}, "relevance_level": {"d": 1}}
    check_joinable(KeptEvaluation(doc, scores, "E"), ["ndcg@10"], "bf16", {"d": 1}, scored)  # older: no keys
    same = {"self_hits": {"d": "keep"}, "relevance_level": {"d": 2}}
    ranked = KeptEvaluation({**doc, **same}, scores, "E")
    check_joinable(ranked, ["ndcg@10"], "bf16", {"d": 1}, same)
    for key, value, match in (("self_hits", "drop", "self_hits keep.*eval.self_hits=keep"),
                              ("relevance_level", 1, "relevance_level 2.*eval.relevance_level=2")):
        with pytest.raises(UserError, match=match):
            check_joinable(ranked, ["ndcg@10"], "bf16", {"d": 1}, {**same, key: {"d": value}})
    sampled = {"queries": 1, "queries_total": 9, "docs": 50, "docs_total": 900, "eval_seed": 13}
    capped = KeptEvaluation({**doc, "sample": {"d": sampled}}, scores, "E")
    check_joinable(capped, ["ndcg@10"], "bf16", {"d": 1}, None, {"d": dict(sampled)})
    for other in (None, {**sampled, "docs": 60}, {**sampled, "eval_seed": 14}):
        with pytest.raises(UserError, match="not the same sample"):
            check_joinable(capped, ["ndcg@10"], "bf16", {"d": 1}, None, {"d": other})
    check_joinable(KeptEvaluation(doc, scores, "E"), ["ndcg@10"], "bf16", {"d": 1}, None, {"d": sampled})  # older


def test_plan_says_when_the_current_seeds_already_detect_the_difference(tmp_path):
    """The summary's SE uses the seed mean square as measured, which can fall below what REML's components (seed 0)
    imply; planning uses the components. Where the two disagree, plan says both instead of asking for more seeds
    than the table shows are needed."""
    from typer.testing import CliRunner

    from maw_bench.cli import app

    comp = {"dataset": "d", "arm": "maw", "metric": "ndcg@10", "seeds": 2, "queries": 225, "var_seed": 0.0,
            "var_query": 0.0006**2, "var_resid": 0.0162**2, "min_detectable": 0.0022}
    (tmp_path / "summary.json").write_text(json.dumps({"metrics": ["ndcg@10"], "comparisons": [comp]}))
    res = CliRunner().invoke(app, ["plan", str(tmp_path), "--delta", "0.005"])
    assert res.exit_code == 0 and "detectable now" in res.output and "expected mean squares" in res.output, res.output
    comp["min_detectable"] = 0.02
    (tmp_path / "summary.json").write_text(json.dumps({"metrics": ["ndcg@10"], "comparisons": [comp]}))
    res = CliRunner().invoke(app, ["plan", str(tmp_path), "--delta", "0.005"])
    assert "detectable now" not in res.output and " seeds (now 2 seeds" in res.output, res.output
    assert "equivalence" not in res.output  # a summary without a margin, and none asked for
    res = CliRunner().invoke(app, ["plan", str(tmp_path), "--equivalence-margin", "0.01"])
    assert res.exit_code == 0 and "equivalence ±0.01: 2 seeds" in " ".join(res.output.split()), res.output
    res = CliRunner().invoke(app, ["plan", str(tmp_path), "--equivalence-margin", "-1"])
    assert res.exit_code == 2 and "must be positive" in " ".join(res.output.split()), res.output


def test_a_study_over_several_collections_reports_their_average_and_agreement():
    """The average over collections is the mean of the collections' Δ, with an interval from the shared seeds;
    an arm not scored at the same seeds everywhere says so instead of a number; one collection gives none."""
    from maw_bench.outputs.study_summary import across_collections

    rng = np.random.default_rng(3)

    def scores(shift: float, seeds: list[int], n: int) -> dict:
        return {s: {f"q{i}": 0.5 + shift + 0.01 * s + 0.05 * rng.standard_normal() for i in range(n)} for s in seeds}

    table = {"a": {"standard": {"m": scores(0.0, [1, 2, 3], 40)}, "x": {"m": scores(0.02, [1, 2, 3], 40)}},
             "b": {"standard": {"m": scores(0.0, [1, 2, 3], 30)}, "x": {"m": scores(-0.02, [1, 2, 3], 30)}}}
    comps = []
    for ds in ("a", "b"):
        d = np.array([[table[ds]["x"]["m"][s][q] - table[ds]["standard"]["m"][s][q]
                       for q in sorted(table[ds]["standard"]["m"][1])] for s in (1, 2, 3)])
        comps.append({"dataset": ds, "arm": "x", "metric": "m", "mean_diff": float(d.mean()), "se": 0.01})
    out = across_collections(table, ["standard", "x"], "standard", "m", comps, 0.01)
    (x,) = out["arms"]
    assert x["mean_diff"] == pytest.approx(np.mean([c["mean_diff"] for c in comps]), abs=1e-12)
    assert x["ci95_low"] < x["mean_diff"] < x["ci95_high"] and x["collections"] == ["a", "b"]
    assert x["q_p"] < 0.05 and x["i2"] > 0.5  # +0.02 on one, -0.02 on the other: they disagree
    assert "not estimable from 2 collections" in x["random_effects"]
    table["b"]["x"]["m"].pop(3)
    table["b"]["standard"]["m"].pop(3)
    out = across_collections(table, ["standard", "x"], "standard", "m", comps, 0.01)
    assert "not scored at the same" in out["arms"][0]["not_computed"]
    assert across_collections({"a": table["a"]}, ["standard", "x"], "standard", "m", comps, 0.01) is None


def test_the_committed_study_has_its_cross_collection_average_and_forest_plot():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "results" / "study-scifact-cranfield"
    doc = json.loads((folder / "summary.json").read_text())
    comp = {(c["dataset"], c["arm"]): c for c in doc["comparisons"] if c["metric"] == "ndcg@10"}
    assert doc["across"]["collections"] == ["beir/scifact/test", "cranfield"]
    for r in doc["across"]["arms"]:
        assert r["mean_diff"] == pytest.approx(np.mean([comp[(ds, r["arm"])]["mean_diff"] for ds in r["collections"]]))
    assert (folder / "across_collections__ndcg@10.png").stat().st_size > 10_000


def test_a_study_keeps_its_rankings_and_report_rescores_them_as_a_fresh_evaluation(tiny_model, toy_beir, tmp_path):
    """Each seed's evaluation keeps its rankings (runs/*.trec.gz, cut at the deepest rank the metrics read). The
    laws: re-scoring with the same config gives the same summary bytes; re-scoring with other metrics gives what a
    study run from scratch with those metrics gives. A study without its rankings is refused in one line."""
    import gzip
    import shutil

    from typer.testing import CliRunner

    from maw_bench.cli import app
    from maw_bench.commands.study import run_study

    def study(folder, metrics: str):
        cfg = BenchmarkConfig.load(overrides=tiny_overrides(tiny_model, toy_beir, "train.max_steps=2", "maw.depth=2",
                                                            f"eval.cache_dir={tmp_path / 'cache'}", f"eval.metrics={metrics}"))
        run_study(cfg, ["maw"], [1, 2], [], folder)

    study(tmp_path / "a", "[ndcg@10,mrr@10]")
    runs = sorted((tmp_path / "a" / "seed-1" / "eval" / "runs").glob("*.trec.gz"))
    assert [p.name.split("__")[0] for p in runs] == ["maw", "standard"]
    with gzip.open(runs[0], "rt") as f:
        ranks = [int(line.split()[3]) for line in f]
    assert max(ranks) == 10  # the deepest cut-off of ndcg@10 and mrr@10, not eval.top_k
    before = {n: (tmp_path / "a" / n).read_bytes() for n in ("summary.json", "summary.md", "per_query.csv.gz")}
    res = CliRunner().invoke(app, ["report", str(tmp_path / "a"), "--rescore"])
    assert res.exit_code == 0, res.output
    assert {n: (tmp_path / "a" / n).read_bytes() for n in before} == before
    res = CliRunner().invoke(app, ["report", str(tmp_path / "a"), "--rescore", "--set", "eval.metrics=[recall@5,ndcg@10]"])
    assert res.exit_code == 0, res.output
    study(tmp_path / "b", "[recall@5,ndcg@10]")
    assert (tmp_path / "a" / "per_query.csv.gz").read_bytes() == (tmp_path / "b" / "per_query.csv.gz").read_bytes()
    a, b = (json.loads((tmp_path / x / "summary.json").read_text()) for x in ("a", "b"))
    assert {k: v for k, v in a.items() if k != "wall_s"} == {k: v for k, v in b.items() if k != "wall_s"}  # timing aside
    res = CliRunner().invoke(app, ["report", str(tmp_path / "a"), "--rescore", "--set", "eval.metrics=[recall@100]"])
    assert res.exit_code == 2 and "kept to depth 10" in " ".join(res.output.split()), res.output
    shutil.rmtree(tmp_path / "b" / "seed-2" / "eval" / "runs")
    seed1 = (tmp_path / "b" / "seed-1" / "eval" / "metrics.json").read_bytes()
    res = CliRunner().invoke(app, ["report", str(tmp_path / "b"), "--rescore", "--set", "eval.metrics=[ndcg@5]"])
    assert res.exit_code == 2 and "no kept ranking for" in " ".join(res.output.split()), res.output
    assert (tmp_path / "b" / "seed-1" / "eval" / "metrics.json").read_bytes() == seed1  # refused before any rewrite
