"""An evaluation's ``report.md``, from its ``metrics.json`` alone: what ``eval`` writes and ``report`` rebuilds."""

from __future__ import annotations

from maw_bench.data.relevance import AS_JUDGED
from maw_bench.data.sampling import sample_note
from maw_bench.outputs.tables import markdown_table


def report_markdown(doc: dict) -> str:
    """The table, then a line for each thing that qualifies its numbers (skipped queries, missing documents, the
    relevance level, a sample), so that a rebuilt report says what the first one said."""
    skipped = doc.get("skipped") or {}
    notes = "".join(
        f"\n{ds}: {n} queries without judgements were skipped.\n"
        for ds in skipped if (n := skipped[ds].get("queries_without_judgements"))
    ) + "".join(
        f"\n{ds}: {n} judged query ids have no query text; they are left out of every mean.\n"
        for ds in skipped if (n := skipped[ds].get("judged_queries_without_text"))
    ) + "".join(
        f"\n{ds}: {n} judged documents are not in the corpus (they count as unretrieved).\n"
        for ds in skipped if (n := skipped[ds].get("judged_docs_missing_from_corpus"))
    ) + "".join(
        f"\n{ds}: binary metrics (recall, MAP, MRR, precision) count grades >= {level} as relevant "
        "(eval.relevance_level); nDCG uses the grades.\n"
        for ds, level in (doc.get("relevance_level") or {}).items() if level != 1
    ) + "".join(
        f"\n{ds}: nDCG's gains are {scale}.\n"
        for ds, scale in (doc.get("relevance_scale") or {}).items() if scale != AS_JUDGED
    ) + "".join(f"\n{sample_note(ds, sample)}\n" for ds, sample in (doc.get("sample") or {}).items())
    return ("# maw-bench evaluation\n\n"
            + markdown_table(doc["results"], doc["metrics"], doc["comparisons"], doc["reference"]) + notes)
