"""Relevance grades as gains, as each collection's own definition says.

A graded metric (nDCG) weighs a judged document by its grade, so a scale that runs the other way round gives
the most weight to the least relevant documents and still yields a plausible number. ir_datasets yields each
collection's codes as its files carry them. For Cranfield those are Cleverdon's codes (``cranqrel.readme``, shipped
with the qrels): 1 = a complete answer, 2 = a high degree of relevance, 3 = useful, 4 = of minimum interest, and -1
for references of no interest; ir_datasets' own ``qrels_defs`` describes 4 as the complete answer, but passes the
raw code through as the relevance. ``eval.relevance_scale: defined`` maps such codes to gains that grow with
relevance (Cranfield: 5 - code for 1-4, 0 for -1); ``raw`` keeps the codes, to compare with other tools that score
them as they come. Binary metrics count the same documents either way (every code 1-4 is a gain of at least 1, and
-1 is below any relevance level). Every other collection maw-bench names grades upwards already (BEIR 0-2, TREC DL
0-3, MS MARCO 1).
"""

from __future__ import annotations

from dataclasses import dataclass

RELEVANCE_SCALES = ("defined", "raw")


@dataclass(frozen=True)
class GainScale:
    name: str  # what metrics.json records
    gains: dict[int, int]  # code in the qrels file -> gain
    source: str  # where the definition is written


CRANFIELD = GainScale("Cleverdon's codes as gains that grow with relevance: 5 - code for 1-4 (1 = a complete answer), "
                      "0 for -1 (no interest)",
                      {1: 4, 2: 3, 3: 2, 4: 1, -1: 0}, "cranqrel.readme, Cleverdon's relevance codes")

# ir_datasets ids (and their subsets) whose codes run against relevance
SCALES: dict[str, GainScale] = {"cranfield": CRANFIELD}

AS_JUDGED = "as judged (grades grow with relevance)"
RAW = "its raw relevance codes, as ir_datasets yields them (eval.relevance_scale=raw)"


def gain_scale(dataset_id: str) -> GainScale | None:
    """The collection's mapping of codes to gains, where its codes do not already grow with relevance."""
    for prefix, scale in SCALES.items():
        if dataset_id == prefix or dataset_id.startswith(prefix + "/"):
            return scale
    return None


def scale_name(dataset_id: str, setting: str) -> str:
    """What ``metrics.json`` records as the collection's relevance scale under ``eval.relevance_scale``."""
    scale = gain_scale(dataset_id)
    if scale is None:
        return AS_JUDGED
    return scale.name if setting == "defined" else RAW


def as_gains(qrels: dict[str, dict[str, int]], dataset_id: str, setting: str) -> dict[str, dict[str, int]]:
    """``qrels`` with each code replaced by its gain (unchanged where the codes already are gains, or ``raw``).
    A code the definition does not name is an error: guessing its gain would score a plausible wrong number."""
    scale = gain_scale(dataset_id)
    if scale is None or setting == "raw":
        return qrels
    unknown = sorted({g for judged in qrels.values() for g in judged.values()} - set(scale.gains))
    if unknown:
        from maw_bench.errors import UserError

        raise UserError(f"{dataset_id}: relevance code(s) {unknown} are not in its definition ({scale.source}); "
                        "score it with eval.relevance_scale=raw or fix the qrels.")
    return {q: {d: scale.gains[g] for d, g in judged.items()} for q, judged in qrels.items()}


def recorded_scale(doc: dict, dataset_id: str) -> str:
    """The scale an evaluation's ``metrics.json`` scored ``dataset_id`` with; one written before scales were
    recorded scored the codes as ir_datasets yields them."""
    return (doc.get("relevance_scale") or {}).get(dataset_id) or (RAW if gain_scale(dataset_id) else AS_JUDGED)


def setting_of(name: str) -> str:
    """The ``eval.relevance_scale`` value that records ``name``."""
    return "raw" if name == RAW else "defined"
