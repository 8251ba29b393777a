"""Every number in the tables of README, docs/results.md and docs/statistics.md is the data's: generated tables, checked against the files they come from."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EARLIER = (ROOT / "docs" / "results.md").read_text()


def _block(name: str, text: str = README) -> list[list[str]]:
    """The body rows of the table between ``<!-- name: ... -->`` and ``<!-- /name -->``, as cells."""
    m = re.search(rf"<!-- {name}:.*?-->\n(.*?)<!-- /{name} -->", text, re.S)
    assert m, f"no {name} block"
    lines = [x for x in m.group(1).splitlines() if x.startswith("|")][2:]
    return [[c.strip() for c in x.strip("|").split("|")] for x in lines]


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+|[-+]?\d+", text.replace("±", ""))]


def test_the_study_table_is_the_committed_summary():
    doc = json.loads((ROOT / "results" / "study-scifact" / "summary.json").read_text())
    rows = {r["arm"]: r for r in doc["rows"]}
    comps = {c["arm"]: c for c in doc["comparisons"] if c["metric"] == "ndcg@10"}
    table = _block("study-table", EARLIER)
    assert len(table) == len(rows)
    for arm_cell, seeds, mean, per_seed, delta, p, mde in table:
        arm = arm_cell.replace(" (control)", "")
        r = rows[arm]
        assert _numbers(seeds) == [len(r["seeds"]), *r["seeds"]], arm
        assert _numbers(mean)[0] == pytest.approx(r["ndcg@10"], abs=5e-5), arm
        if len(r["seeds"]) > 1:
            assert _numbers(mean)[1] == pytest.approx(r["ndcg@10_std"], abs=5e-5), arm
        assert _numbers(per_seed) == pytest.approx(r["ndcg@10_per_seed"], abs=5e-5), arm
        if arm == "standard":
            continue
        c = comps[arm]
        assert _numbers(delta) == pytest.approx([c["mean_diff"], c["ci95_low"], c["ci95_high"]], abs=5e-5), arm
        assert float(p) == pytest.approx(c["p_value"], rel=0.05, abs=0.005), arm
        assert _numbers(mde)[0] == pytest.approx(c["min_detectable"], abs=5e-5), arm


def test_the_routing_table_is_what_the_logs_say():
    from maw_bench.outputs.study_summary import routing_facts

    out = ROOT / "results" / "study-scifact"
    spec = json.loads((out / "study.json").read_text())
    facts = routing_facts(out, spec, [a for a in spec["arms"] + spec["controls"] if a != "standard"])
    table = _block("routing-table", EARLIER)
    assert len(table) == len(facts)
    for (arm, seed, depth, settled, entropy), f in zip(table, facts):
        assert (arm, int(seed)) == (f["arm"], f["seed"])
        assert _numbers(depth) == pytest.approx([f["inference_depth"], 100 * f["inference_share"]], abs=0.05)
        assert settled == ("never" if f["settled_from_step"] is None else str(f["settled_from_step"]))
        assert float(entropy) == pytest.approx(f["final_entropy"], abs=5e-4)


def test_the_calibration_table_is_the_committed_calibration_run():
    doc = json.loads((ROOT / "results" / "calibration.json").read_text())
    text = (ROOT / "docs" / "statistics.md").read_text()
    m = re.search(r"\| S \| regime.*?\n\|---.*?\n((?:\|.*\n)+)", text)
    assert m
    lines = [[c.strip() for c in x.strip("|").split("|")] for x in m.group(1).splitlines()]
    assert len(lines) == len(doc["rows"])
    keys = ["crossed", "crossed-plain-df", "crossed-reml-boundary", "crossed-pool-0.25", "bootstrap-normal", "seed-t",
            "power_at_min_detectable"]
    for cells, r in zip(lines, doc["rows"]):
        assert int(cells[0]) == r["seeds"] and cells[1].startswith(r["regime"])
        assert [float(x) for x in cells[2:]] == pytest.approx([r[k] for k in keys], abs=5.01e-4)  # 3 decimals
    m = re.search(r"\| S \| Q \| regimes.*?\n\|---.*?\n((?:\|.*\n)+)", text)
    assert m
    lines = [[c.strip() for c in x.strip("|").split("|")] for x in m.group(1).splitlines()]
    assert len(lines) == len(doc["grid_summary"])
    for cells, g in zip(lines, doc["grid_summary"]):
        assert [int(x) for x in cells[:3]] == [g["seeds"], g["queries"], g["regimes"]]
        ranges = [[float(v) for v in c.split("-")] for c in cells[3:7]]
        assert ranges == [pytest.approx([g[k]["min"], g[k]["max"]], abs=5.01e-4) for k in keys[:4]]
        assert cells[7] == g["crossed"]["max_regime"]
    worst = max(doc["grid"], key=lambda r: r["crossed"])
    low = min(r["crossed"] for r in doc["grid"])
    said = re.search(r"Over all (\d+) grid regimes the primary method rejects ([\d.]+)-([\d.]+)%", text)
    assert said and int(said.group(1)) == len(doc["grid"])
    assert [float(said.group(2)), float(said.group(3))] == pytest.approx([100 * low, 100 * worst["crossed"]], abs=0.051)
    assert all(0.025 <= r["crossed"] <= 0.075 for r in doc["grid"] + doc["rows"])


def test_the_init_table_is_the_committed_evaluation():
    doc = json.loads((ROOT / "results" / "init-arms-scifact" / "metrics.json").read_text())
    res = doc["results"]["beir/scifact/test"]
    comps = {c["model"]: c for c in doc["comparisons"] if c["metric"] == "ndcg@10"}
    table = _block("init-table")
    assert [r[0] for r in table] == list(res)
    for arm, ndcg, delta, p, recall in table:
        assert float(ndcg) == pytest.approx(res[arm]["ndcg@10"], abs=5e-5)
        assert float(recall) == pytest.approx(res[arm]["recall@100"], abs=5e-5)
        if arm != "standard":
            c = comps[arm]
            assert _numbers(delta) == pytest.approx([c["mean_diff"], c["ci95_low"], c["ci95_high"]], abs=5e-5)
            assert float(p) == pytest.approx(c["p_student_holm"], rel=0.05)


def test_the_five_seed_study_table_is_its_committed_summary():
    doc = json.loads((ROOT / "results" / "study-scifact-cranfield" / "summary.json").read_text())
    rows = {(r["dataset"], r["arm"]): r for r in doc["rows"]}
    comps = {(c["dataset"], c["arm"]): c for c in doc["comparisons"] if c["metric"] == "ndcg@10"}
    table = _block("study5-table")
    assert len(table) == len(rows)
    for dataset, label, seeds, ndcg, delta, p, holm, mde in table:
        arm = label.removesuffix(" (control)")
        r = rows[(dataset, arm)]
        assert (label != arm) == bool(r.get("control"))
        assert int(seeds) == len(r["seeds"]) and float(ndcg) == pytest.approx(r["ndcg@10"], abs=5e-5)
        if (dataset, arm) in comps:
            c = comps[(dataset, arm)]
            assert _numbers(delta) == pytest.approx([c["mean_diff"], c["ci95_low"], c["ci95_high"]], abs=5e-5)
            assert float(p) == pytest.approx(c["p_value"], rel=0.05)
            # a control is outside the Holm family (the study's arms against standard): its cell says so
            assert (holm == "-") if r.get("control") else float(holm) == pytest.approx(c["p_holm"], rel=0.05)
            assert _numbers(mde)[0] == pytest.approx(c["min_detectable"], abs=5e-5)
    heading = re.search(r"### The five-seed SciFact \+ Cranfield study \((?:under way: )?seeds? ([\d-]+)(?: of 13-17 so "
                        r"far)?\)", README)
    assert heading, "README's study heading says which seeds are done"
    first, _, last = heading.group(1).partition("-")
    assert doc_seeds_done(doc) == list(range(int(first), int(last or first) + 1))


def doc_seeds_done(doc: dict) -> list[int]:
    return sorted({s for r in doc["rows"] for s in r["seeds"]})


def _bench_rows(path: Path) -> dict[str, tuple[float, str]]:
    """``{arm: (x standard, distinct per sequence)}`` from a ``bench_maw.py --grpo-regimes`` output."""
    rows = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s+(\S+)\s+\d+ms\s+([\d.]+)x\s+(\S+)", line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), m.group(3))
    return rows


def test_the_grpo_cost_table_is_the_committed_benchmark_output():
    fp32, bf16 = (_bench_rows(ROOT / "results" / "bench-grpo-regimes" / f"{d}.txt") for d in ("fp32", "bf16"))
    assert "cpu: Intel(R) Xeon(R) Processor" in (ROOT / "results" / "bench-grpo-regimes" / "fp32.txt").read_text()
    table = _block("grpo-table")
    assert len(table) == 4
    for group, f_init, f_settled, b_init, b_settled, distinct in table:
        g = group.split(",")[0]
        suffix = "-rerun" if "re-run" in group else ""
        expect = [fp32[f"grpo-g{g}-init{suffix}"][0], fp32[f"grpo-g{g}-settled{suffix}"][0],
                  bf16[f"grpo-g{g}-init{suffix}"][0], bf16[f"grpo-g{g}-settled{suffix}"][0]]
        assert [float(x.rstrip("x")) for x in (f_init, f_settled, b_init, b_settled)] == expect, group
        if not suffix:
            assert distinct == f"{fp32[f'grpo-g{g}-init'][1]} / {fp32[f'grpo-g{g}-settled'][1]}"
    wall = json.loads((ROOT / "results" / "study-scifact-cranfield" / "summary.json").read_text())["wall_s"]
    m = re.search(r"training wall time ([\d.]+)x standard's for `maw` \(([\d.]+)-([\d.]+)\) and ([\d.]+)x for "
                  r"`maw-nested` \(([\d.]+)-([\d.]+)\) over seeds ([\d ,and]+) \(", " ".join(README.split()))
    assert m, "README's wall-time sentence"
    expect = [v for a in ("maw", "maw-nested") for v in (wall["ratio_to_reference"][a], *wall["ratio_range"][a][:2])]
    assert [float(x) for x in m.groups()[:6]] == expect
    used = [s for s in wall["per_seed"]["standard"] if f"standard@{s}" not in wall["partial"]]
    assert [int(x) for x in re.findall(r"\d+", m.group(7))] == [int(s) for s in used]


def test_the_five_seed_table_is_what_the_generator_writes_from_the_summary():
    """README's study table is generated (scripts/readme_tables.py), not typed: rerun the script after the study."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    doc = json.loads((ROOT / "results" / "study-scifact-cranfield" / "summary.json").read_text())
    assert mod.rewrite(README, "study5-table", mod.study5_table(doc)) == README
    assert mod.rewrite(README, "routing5-table", mod.routing5_table(doc)) == README


def test_the_five_seed_routing_table_is_what_the_logs_say():
    """Rebuilt from the committed logs and evaluations, not from the summary the generator read."""
    from maw_bench.outputs.study_summary import routing_facts

    out = ROOT / "results" / "study-scifact-cranfield"
    spec = json.loads((out / "study.json").read_text())
    done = doc_seeds_done(json.loads((out / "summary.json").read_text()))  # a seed still running is not in it
    facts = [f for f in routing_facts(out, spec, [a for a in spec["arms"] + spec["controls"] if a != "standard"])
             if f["seed"] in done]
    rows = _block("routing5-table")
    assert [r[0] for r in rows] == list(dict.fromkeys(f["arm"] for f in sorted(facts, key=lambda f: f["seed"])))
    for arm, seeds, depth, settled, entropy in rows:
        mine = sorted((f for f in facts if f["arm"] == arm), key=lambda f: f["seed"])
        assert _numbers(seeds) == [f["seed"] for f in mine]
        assert [int(d.split("(")[0]) for d in depth.split(", ")] == [f["inference_depth"] for f in mine]
        assert settled.split(", ") == ["never" if f["settled_from_step"] is None else str(f["settled_from_step"])
                                       for f in mine]
        assert _numbers(entropy) == pytest.approx([f["final_entropy"] for f in mine], abs=5e-4)


def test_the_equivalence_sentence_is_the_committed_summary():
    """README's equivalence figures (TOST within the study's margin, Holm, smallest equivalent margins) are those of
    summary.json: rebuild with `maw-bench report results/study-scifact-cranfield` and rewrite the sentence."""
    doc = json.loads((ROOT / "results" / "study-scifact-cranfield" / "summary.json").read_text())
    comp = {(c["dataset"], c["arm"]): c for c in doc["comparisons"] if c["metric"] == "ndcg@10" and "tost_p_holm" in c}
    text = " ".join(README.split())
    m = re.search(r"arms are equivalent to standard within ±([\d.]+) nDCG@10 on both collections .*?every Holm p <= "
                  r"([\d.e-]+)\); the smallest margins within which each is equivalent at 5% are ±([\d.]+), ±([\d.]+) and "
                  r"±([\d.]+) on SciFact and ±([\d.]+), ±([\d.]+) and ±([\d.]+) on Cranfield.*?equivalent on neither "
                  r"\(only within ±([\d.]+) and ±([\d.]+) on SciFact\)", text)
    assert m, "README's equivalence sentence"
    assert float(m.group(1)) == doc["equivalence_margin"]
    quiet = [comp[(d, a)] for d in ("beir/scifact/test", "cranfield") for a in ("maw-nested", "gated", "diff")]
    assert m.group(2) == f"{max(c['tost_p_holm'] for c in quiet):.2g}"
    assert [float(x) for x in m.groups()[2:8]] == [round(c["equivalent_within"], 4) for c in quiet]
    assert [float(x) for x in m.groups()[8:]] == [round(comp[("beir/scifact/test", a)]["equivalent_within"], 4)
                                                 for a in ("maw", "maw-uniform")]
    assert all(comp[("beir/scifact/test", a)]["tost_p_holm"] > 0.05 and comp[("cranfield", a)]["tost_p_holm"] > 0.05
               for a in ("maw", "maw-uniform"))


def test_the_routing_sentence_is_what_the_summary_says():
    """README's sentence on when routers settled is counted from summary.json's routing facts and the manifests."""
    folder = ROOT / "results" / "study-scifact-cranfield"
    facts = json.loads((folder / "summary.json").read_text())["routing"]
    steps = json.loads((folder / "seed-13" / "run" / "maw" / "manifest.json").read_text())["steps"]
    text = " ".join(README.split())
    m = re.search(r"as every `maw-nested` router was by step (\d+) of (\d+) and (\w+) of the (\w+) `maw` routers were "
                  r"\(steps ([\d ,and]+); (\w+) settled at the last step, (\d+), and (\w+) never did", text)
    assert m, "README's routing sentence"
    words = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "no": 0}
    nested = [f["settled_from_step"] for f in facts if f["arm"] == "maw-nested"]
    maw = [f["settled_from_step"] for f in facts if f["arm"] == "maw"]
    early = [s for s in maw if s is not None and s < steps]
    assert None not in nested and int(m.group(1)) == max(nested) and int(m.group(2)) == steps == int(m.group(7))
    assert words[m.group(3)] == len(early) and words[m.group(4)] == len(maw)
    assert [int(x) for x in re.findall(r"\d+", m.group(5))] == early
    assert words[m.group(6)] == maw.count(steps) and words[m.group(8)] == maw.count(None)


def test_the_plan_sentence_is_what_plan_answers_for_the_committed_study():
    """README's seeds for detecting 0.005 and for equivalence within the study's margin are plan's answers."""
    from maw_bench.evaluation.crossed import seeds_for_equivalence, seeds_needed

    doc = json.loads((ROOT / "results" / "study-scifact-cranfield" / "summary.json").read_text())
    comp = {(c["dataset"], c["arm"]): c for c in doc["comparisons"] if c["metric"] == "ndcg@10"}
    text = " ".join(README.split())
    assert "equivalence within ±0.01 if the arms are the same" in text and doc["equivalence_margin"] == 0.01

    def answers(dataset: str, arm: str) -> list:
        c = comp[(dataset, arm)]
        v = (c["var_seed"], c["var_query"], c["var_resid"], c["queries"])
        return [seeds_needed(*v, 0.005), seeds_for_equivalence(*v, doc["equivalence_margin"])]

    for arm in ("diff", "maw-nested", "gated"):
        m = re.search(rf"`{arm}` (\d+) and (\d+)(?: seeds)? on SciFact, (\d+) and (\d+) on Cranfield", text)
        assert m, arm
        said = [int(x) for x in m.groups()]
        assert said == answers("beir/scifact/test", arm) + answers("cranfield", arm), arm
    assert "`maw` and `maw-uniform` more than 1000 for either, on both" in text
    assert all(x is None for d in ("beir/scifact/test", "cranfield") for a in ("maw", "maw-uniform")
               for x in answers(d, a))


def test_the_readme_calibration_range_and_split_arm_holm_ps_are_the_committed_data():
    doc = json.loads((ROOT / "results" / "calibration.json").read_text())
    text = " ".join(README.split())
    m = re.search(r"calibrated ([\d.]+)-([\d.]+)% at 5% over a grid of null studies", text)
    rates = [r["crossed"] for r in doc["grid"]]
    assert m and [float(m.group(1)), float(m.group(2))] == pytest.approx([100 * min(rates), 100 * max(rates)], abs=0.051)
    summary = json.loads((ROOT / "results" / "study-scifact-cranfield" / "summary.json").read_text())
    comp = {(c["dataset"], c["arm"]): c for c in summary["comparisons"] if c["metric"] == "ndcg@10"}
    m = re.search(r"lose ([\d.]+) and ([\d.]+) nDCG@10 on Cranfield against standard \(Holm p ([\d.e-]+) and ([\d.e-]+), "
                  r"at every seed\), where on SciFact test they are ([-+\d.]+) and ([-+\d.]+) \(Holm p ([\d.e-]+) and "
                  r"([\d.e-]+)\)", text)
    assert m, "README's split/uniform sentence"
    for (ds, arm), loss, holm_p in zip([("cranfield", "maw"), ("cranfield", "maw-uniform")], m.groups()[:2],
                                       m.groups()[2:4]):
        assert float(loss) == pytest.approx(-comp[(ds, arm)]["mean_diff"], abs=5e-4)
        assert holm_p == f"{comp[(ds, arm)]['p_holm']:.2g}"
        assert comp[(ds, arm)]["seed_t"]["seeds_behind"] == 5
    for arm, diff, holm_p in zip(("maw", "maw-uniform"), m.groups()[4:6], m.groups()[6:8]):
        assert float(diff) == pytest.approx(comp[("beir/scifact/test", arm)]["mean_diff"], abs=5e-4)
        assert holm_p == f"{comp[('beir/scifact/test', arm)]['p_holm']:.2g}"


def test_the_cross_collection_sentence_is_the_committed_summary():
    doc = json.loads((ROOT / "results" / "study-scifact-cranfield" / "summary.json").read_text())
    arms = {r["arm"]: r for r in doc["across"]["arms"]}
    text = " ".join(README.split())
    num = r"([-+][\d.]+)"
    m = re.search(rf"`maw` loses {num} \[{num}, {num}\] and `maw-uniform` {num} \[{num}, {num}\] nDCG@10, but the "
                  r"collections disagree for both \(Cochran's Q p ([\d.e-]+) and ([\d.e-]+), I² (\d+)% and (\d+)%\); "
                  rf"`maw-nested`, `gated` and `diff` average {num}, {num} and {num}\.", text)
    assert m, "README's cross-collection sentence"
    g = m.groups()
    for i, arm in enumerate(("maw", "maw-uniform")):
        r = arms[arm]
        assert [float(x) for x in g[3 * i:3 * i + 3]] == pytest.approx([r["mean_diff"], r["ci95_low"], r["ci95_high"]],
                                                                       abs=5e-5)
        assert g[6 + i] == f"{r['q_p']:.2g}" and int(g[8 + i]) == round(100 * r["i2"])
    assert [float(x) for x in g[10:]] == pytest.approx([arms[a]["mean_diff"] for a in ("maw-nested", "gated", "diff")],
                                                       abs=5e-5)
    assert all(isinstance(r["random_effects"], str) for r in arms.values())
    assert "not estimable from fewer than 5" in text
    from maw_bench.evaluation.across import MIN_COLLECTIONS_RANDOM_EFFECTS

    assert MIN_COLLECTIONS_RANDOM_EFFECTS == 5 and "below 5 collections (`MIN_COLLECTIONS_RANDOM_EFFECTS`" in " ".join(
        (ROOT / "docs" / "statistics.md").read_text().split())
