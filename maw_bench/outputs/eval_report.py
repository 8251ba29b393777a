"""An evaluation's ``report.md``, from its ``metrics.json`` alone: what ``eval`` writes and ``report`` rebuilds."""

from __future__ import annotations

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
    ) + "".join(f"\n{sample_note(ds, sample)}\n" for ds, sample in (doc.get("sample") or {}).items())
    return ("# maw-bench evaluation\n\n"
            + markdown_table(doc["results"], doc["metrics"], doc["comparisons"], doc["reference"]) + notes)


def sample_note(dataset: str, sample: dict) -> str:
    """One sentence saying that a collection was scored on a sample, of how much, and what that does."""
    docs_capped = bool(sample.get("docs_total")) and sample["docs"] < sample["docs_total"]
    kept = [f"{sample['docs']:,} of {sample['docs_total']:,} documents (data.max_docs)"] if docs_capped else []
    if sample["queries"] < sample["queries_total"]:
        kept.append(f"{sample['queries']:,} of {sample['queries_total']:,} judged queries (data.max_queries)")
    effect = ("fewer distractors score higher than the whole corpus does, so these are not the published numbers"
              if docs_capped else "the mean of a sample of the queries, not of the published set")
    return (f"{dataset}: scored on a sample, {' and '.join(kept)}, eval seed {sample['eval_seed']}: {effect}; "
            "set both caps to 0 for the whole collection.")
