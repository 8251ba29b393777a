"""From what a user types (an ir_datasets id, a BEIR folder, ``builtin``) to a ``DatasetBundle``."""

from __future__ import annotations

import difflib
from pathlib import Path

from maw_bench.data.bundle import DatasetBundle, is_self_hit_folder
from maw_bench.errors import UserError

MSMARCO_TRAIN = "msmarco-passage/train/triples-small"
MSMARCO_EVAL = [
    "msmarco-passage/dev/small",
    "msmarco-passage/trec-dl-2019/judged",
    "msmarco-passage/trec-dl-2020/judged",
]
MSMARCO_IDS = [MSMARCO_TRAIN, "msmarco-passage/train/judged", *MSMARCO_EVAL]


def beir_ids() -> list[str]:
    """Every ``beir/...`` id ir_datasets knows that has qrels (the evaluable splits)."""
    import ir_datasets

    out = []
    for name in ir_datasets.registry._registered:  # noqa: SLF001 - the registry has no public list
        if name.startswith("beir/"):
            ds = ir_datasets.registry[name]
            if ds.has_qrels():
                out.append(name)
    return sorted(out)


def known_ids() -> list[str]:
    return ["builtin/train", "builtin/test", *MSMARCO_IDS, *beir_ids()]


def beir_shortcut(name: str, split: str = "test") -> str:
    """``scifact -> beir/scifact/test``; ``cqadupstack/android`` has no split suffix."""
    import ir_datasets

    base = name if name.startswith("beir/") else f"beir/{name}"
    for candidate in (f"{base}/{split}", base):
        if candidate in ir_datasets.registry and ir_datasets.registry[candidate].has_qrels():
            return candidate
    raise _unknown(base)


def _unknown(spec: str) -> UserError:
    close = difflib.get_close_matches(spec, known_ids(), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else "; see `maw-bench datasets list`."
    return UserError(f"unknown dataset {spec!r} (not an ir_datasets id, a BEIR folder or builtin){hint}")


def check_named_once(named: list[tuple[str, str]]) -> None:
    """``[(spec, collection id)]`` names each collection once: two names of one (``--beir scifact`` and
    ``--dataset beir/scifact/test``) are one line, since results are keyed by the collection."""
    first: dict[str, str] = {}
    for spec, dataset_id in named:
        if dataset_id in first:
            raise UserError(f"--dataset {spec} and {first[dataset_id]} are the same collection ({dataset_id}); "
                            "name it once.")
        first[dataset_id] = spec


def load_bundle(spec: str, split: str = "test") -> DatasetBundle:
    """Resolve ``spec`` to a lazily loaded bundle.

    ``spec`` is ``builtin`` (with ``split``), ``builtin/<split>``, a local BEIR folder
    (with ``split``) or an ir_datasets id. A bare ``beir/<name>`` with splits picks ``split``.
    """
    import ir_datasets

    from maw_bench.data.builtin import builtin_folder
    from maw_bench.data.local_beir import register_local_beir, warn_about

    if spec == "builtin" or spec.startswith("builtin/"):
        split = spec.split("/", 1)[1] if "/" in spec else split
        if split not in ("train", "test"):
            raise UserError(f"the built-in dataset has splits train and test, not {split!r}.")
        dataset_id, report = register_local_beir(builtin_folder(), split, id_prefix="builtin")
        return DatasetBundle(dataset_id, ir_datasets.load(dataset_id), source_docs=report.docs)
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")):
        if not path.exists():
            raise UserError(f"dataset folder {path} does not exist.")
        dataset_id, report = register_local_beir(path, split)
        warn_about(report, path, split)
        return DatasetBundle(dataset_id, ir_datasets.load(dataset_id), source_docs=report.docs,
                             self_hit_folder=is_self_hit_folder(path))
    if spec not in ir_datasets.registry:
        raise _unknown(spec)
    ds = ir_datasets.load(spec)
    if spec.startswith("beir/") and not ds.has_qrels() and not ds.has_docpairs():
        return load_bundle(beir_shortcut(spec, split))
    return DatasetBundle(spec, ds)


def locally_available(dataset_id: str) -> bool:
    """True when every file the dataset's docs and queries need is on disk (no network)."""
    import ir_datasets
    from ir_datasets.util.download import Download
    from ir_datasets.util.fileio import Cache

    if dataset_id.startswith("builtin"):
        return True
    ds = ir_datasets.registry[dataset_id]
    seen: set[int] = set()

    def ok(obj, depth: int = 0) -> bool:
        if id(obj) in seen or depth > 12:
            return True
        seen.add(id(obj))
        if isinstance(obj, Cache):
            return Path(obj._path).exists() or ok(obj._streamer, depth + 1)  # noqa: SLF001
        if isinstance(obj, Download):
            return obj._cache_path is not None and Path(obj._cache_path).exists()  # noqa: SLF001
        if type(obj).__name__ == "YamlDocumentation":
            return True
        children = list(vars(obj).values()) if hasattr(obj, "__dict__") else []
        children += [c for v in children if isinstance(v, (list, tuple)) for c in v]
        return all(ok(c, depth + 1) for c in children if hasattr(c, "__dict__") and not isinstance(c, (str, Path)))

    handlers = [h for h in getattr(ds, "_constituents", []) if not isinstance(h, str) and hasattr(h, "__dict__")]
    try:
        return bool(handlers) and all(ok(h) for h in handlers)
    except Exception:  # noqa: BLE001 - unknown handler shapes: say "not known to be local"
        return False


def known_sizes(dataset_id: str) -> dict[str, int | None]:
    """Documents, queries and qrels as ir_datasets' shipped metadata gives them (no network, no data)."""
    import ir_datasets

    if dataset_id.startswith("builtin"):
        from maw_bench.data.builtin import generate

        docs, _, qrels = generate()
        table = qrels[dataset_id.rsplit("/", 1)[1]]
        return {"docs": len(docs), "queries": len(table), "qrels": sum(len(j) for j in table.values())}
    ds = ir_datasets.registry[dataset_id]
    out: dict[str, int | None] = {}
    for key, has, meta in (("docs", ds.has_docs, "docs_metadata"), ("queries", ds.has_queries, "queries_metadata"),
                           ("qrels", ds.has_qrels, "qrels_metadata")):
        try:
            out[key] = getattr(ds, meta)().get("count") if has() else None
        except Exception:  # noqa: BLE001 - no metadata shipped for this id
            out[key] = None
    return out
