"""The built-in dataset: a deterministic biomedical-claims collection made by this code.

It exists so ``maw-bench smoke`` and a first run need no network and no downloads.
Documents report a (fictional) drug's effect on an outcome in a population with a
condition; queries ask about such an effect in other words (synonyms, another
sentence shape). Graded qrels: 2 for documents that match the query's condition,
outcome, population and direction of effect; 1 for the same condition and outcome
otherwise. Distractors differ only in the direction of the effect or the
population, so a zero-shot encoder is far from perfect but well above random.

A private SplitMix64 generator (not ``random``) keeps the output identical on every
machine and Python version. Written once as a BEIR folder under the cache and read
through the same ir_datasets path as any local BEIR folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from maw_bench.runtime.paths import cache_root

VERSION = "1"
NUM_DOCS = 2400
NUM_TEST_QUERIES = 250
NUM_TRAIN_QUERIES = 700


class SplitMix64:
    """A tiny, portable PRNG: the same sequence everywhere."""

    def __init__(self, seed: int) -> None:
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next() % n

    def pick(self, seq):
        return seq[self.below(len(seq))]


# (form used in documents, form used in queries)
CONDITIONS = [
    ("hypertension", "high blood pressure"), ("type 2 diabetes", "adult-onset diabetes"),
    ("heart failure", "cardiac failure"), ("asthma", "chronic airway inflammation"),
    ("chronic kidney disease", "renal insufficiency"), ("major depression", "clinical depression"),
    ("rheumatoid arthritis", "inflammatory joint disease"), ("osteoporosis", "low bone density"),
    ("atrial fibrillation", "irregular heartbeat"), ("COPD", "chronic obstructive lung disease"),
    ("migraine", "recurrent severe headache"), ("obesity", "excess body weight"),
    ("Alzheimer's disease", "dementia of the Alzheimer type"), ("Parkinson's disease", "parkinsonism"),
    ("psoriasis", "scaly skin plaques"), ("sepsis", "bloodstream infection"),
    ("stroke", "cerebrovascular accident"), ("anemia", "low hemoglobin"),
    ("hepatitis C", "HCV infection"), ("HIV infection", "human immunodeficiency virus"),
    ("breast cancer", "mammary carcinoma"), ("prostate cancer", "prostatic carcinoma"),
    ("colorectal cancer", "bowel cancer"), ("epilepsy", "seizure disorder"),
    ("insomnia", "chronic sleeplessness"), ("gout", "uric acid arthritis"),
    ("multiple sclerosis", "demyelinating disease"), ("pneumonia", "lung infection"),
    ("tuberculosis", "TB infection"), ("glaucoma", "raised intraocular pressure"),
]
OUTCOMES = [
    ("all-cause mortality", "risk of death"), ("hospital admissions", "hospitalisation rates"),
    ("systolic blood pressure", "blood pressure readings"), ("HbA1c levels", "long-term blood sugar"),
    ("hip fractures", "broken hips"), ("cognitive decline", "loss of memory and thinking"),
    ("pain scores", "reported pain"), ("quality of life", "wellbeing"),
    ("relapse rates", "disease recurrence"), ("body weight", "weight"),
    ("LDL cholesterol", "bad cholesterol"), ("exacerbations", "flare-ups"),
    ("tumour size", "tumour growth"), ("viral load", "amount of virus in the blood"),
    ("seizure frequency", "number of seizures"), ("sleep duration", "hours of sleep"),
    ("heart attacks", "myocardial infarction"), ("kidney function decline", "loss of renal function"),
    ("inflammation markers", "C-reactive protein"), ("length of hospital stay", "days in hospital"),
]
POPULATIONS = [
    ("older adults", "elderly people"), ("children", "paediatric patients"), ("women", "female patients"),
    ("men", "male patients"), ("pregnant women", "expectant mothers"), ("smokers", "people who smoke"),
    ("adolescents", "teenagers"), ("nursing home residents", "people in long-term care"),
    ("veterans", "former military personnel"), ("obese adults", "overweight adults"),
    ("athletes", "competitive sportspeople"), ("outpatients", "patients treated in clinics"),
]
EFFECTS = [
    ("significantly reduced", "lower", "decrease"),
    ("significantly increased", "raise", "increase"),
    ("had no measurable effect on", "not change", "leave unchanged"),
]
CLASSES = [
    "beta blocker", "statin", "SGLT2 inhibitor", "ACE inhibitor", "monoclonal antibody", "antiviral",
    "anticoagulant", "bisphosphonate", "SSRI", "corticosteroid", "kinase inhibitor", "vitamin supplement",
    "probiotic", "anticonvulsant", "GLP-1 agonist",
]
DESIGNS = ["randomised controlled trial", "prospective cohort study", "meta-analysis", "case-control study",
           "double-blind crossover trial", "registry study"]
SYLLABLES = ["zor", "va", "tin", "mel", "pra", "dex", "lo", "quin", "ta", "mab", "cor", "vi", "ral", "sen",
             "to", "fen", "bri", "xa", "nol", "rin"]
MECHANISMS = [
    "acts on the {x} pathway", "blocks {x} receptors", "lowers {x} activity", "modulates {x} signalling",
    "inhibits the {x} enzyme",
]
TARGETS = ["mTOR", "NF-kB", "JAK", "dopamine", "serotonin", "angiotensin", "insulin", "IL-6", "TNF", "GABA"]
QUERY_SHAPES = [
    "Does {cls} therapy {eff} {out} in {pop} with {cond}?",
    "{Cls} treatment and {out} among {pop} who have {cond}",
    "Can a {cls} {eff} {out} for {pop} suffering from {cond}?",
    "effect of {drug} on {out} in {pop} with {cond}",
]


def _drug_names(rng: SplitMix64, n: int) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        name = "".join(rng.pick(SYLLABLES) for _ in range(2 + rng.below(2))).capitalize()
        if name not in names:
            names.append(name)
    return names


def generate() -> tuple[list[dict], dict[str, str], dict[str, dict[str, dict[str, int]]]]:
    """Corpus records, queries and qrels per split; the same on every machine."""
    rng = SplitMix64(20261128)
    drugs = _drug_names(rng, 160)
    drug_class = {d: rng.pick(CLASSES) for d in drugs}
    docs, facts = [], []
    for i in range(NUM_DOCS):
        d, c, o, p, e = (rng.pick(drugs), rng.below(len(CONDITIONS)), rng.below(len(OUTCOMES)),
                         rng.below(len(POPULATIONS)), rng.below(len(EFFECTS)))
        n, months = 40 + rng.below(4000), 3 + rng.below(60)
        mech = rng.pick(MECHANISMS).format(x=rng.pick(TARGETS))
        text = (
            f"{d} is a {drug_class[d]} that {mech}. In a {rng.pick(DESIGNS)} of {n} {POPULATIONS[p][0]} with "
            f"{CONDITIONS[c][0]} followed for {months} months, {d} {EFFECTS[e][0]} {OUTCOMES[o][0]} "
            f"compared with placebo."
        )
        title = f"{d} and {OUTCOMES[o][0]} in {CONDITIONS[c][0]}"
        docs.append({"_id": f"D{i:05d}", "title": title, "text": text})
        facts.append((d, c, o, p, e))

    by_pair: dict[tuple[int, int], list[int]] = {}
    for i, (_, c, o, _, _) in enumerate(facts):
        by_pair.setdefault((c, o), []).append(i)

    order = list(range(NUM_DOCS))
    for i in range(NUM_DOCS - 1, 0, -1):  # Fisher-Yates with the portable generator
        j = rng.below(i + 1)
        order[i], order[j] = order[j], order[i]

    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, dict[str, int]]] = {"train": {}, "test": {}}
    seen: set[str] = set()
    wanted = {"test": NUM_TEST_QUERIES, "train": NUM_TRAIN_QUERIES}
    split = "test"
    for target in order:
        if len(qrels[split]) >= wanted[split]:
            if split == "train":
                break
            split = "train"
        d, c, o, p, e = facts[target]
        shape = rng.pick(QUERY_SHAPES)
        cls = drug_class[d]
        text = shape.format(
            cls=cls, Cls=cls[0].upper() + cls[1:], eff=EFFECTS[e][1], out=OUTCOMES[o][1], pop=POPULATIONS[p][1],
            cond=CONDITIONS[c][1], drug=d,
        )
        if "{" in text or text.lower() in seen:
            continue
        seen.add(text.lower())
        names_drug = "{drug}" in shape
        judged = {}
        for j in by_pair[(c, o)]:
            dj, _, _, pj, ej = facts[j]
            exact = pj == p and ej == e and (dj == d if names_drug else drug_class[dj] == cls)
            judged[docs[j]["_id"]] = 2 if exact else 1
        qid = f"Q{len(queries):04d}"
        queries[qid] = text
        qrels[split][qid] = judged
    return docs, queries, qrels


def _write_jsonl(path: Path, rows) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def builtin_folder() -> Path:
    """The BEIR folder of the built-in dataset, written on first use (atomically)."""
    folder = cache_root() / f"builtin-v{VERSION}"
    if (folder / "DONE").is_file():
        return folder
    docs, queries, qrels = generate()
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "qrels").mkdir(parents=True)
    _write_jsonl(tmp / "corpus.jsonl", docs)
    _write_jsonl(tmp / "queries.jsonl", ({"_id": q, "text": t} for q, t in queries.items()))
    for split, table in qrels.items():
        with (tmp / "qrels" / f"{split}.tsv").open("w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for q, judged in table.items():
                for d, r in judged.items():
                    f.write(f"{q}\t{d}\t{r}\n")
    digest = hashlib.sha256((tmp / "corpus.jsonl").read_bytes()).hexdigest()
    (tmp / "DONE").write_text(digest + "\n")
    try:
        tmp.rename(folder)
    except OSError:  # another process won the race: its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
