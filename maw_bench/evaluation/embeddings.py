"""Corpus encoding into float16 shards on disk, under a cache key that cannot go stale.

The key is a fingerprint of everything that changes the vectors: the encoder's
weights and configuration (MAW included), pooling, max length, prefix, dtype, the
dataset id, its document count and a hash of its content. Each shard is written
atomically and listed with its checksum in ``manifest.json``; a missing, truncated
or corrupt shard is re-encoded, and an interrupted encode resumes shard by shard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from maw_bench.data.bundle import DatasetBundle
from maw_bench.errors import UserError
from maw_bench.modeling import Encoder
from maw_bench.runtime.atomic import atomic_open, sha256_ends, sha256_file, write_json
from maw_bench.runtime.progress import progress_bar, step

log = logging.getLogger("maw_bench")


def weights_hash(encoder: Encoder) -> str:
    """sha256 over every tensor of the encoder (names, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(encoder.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def fingerprint(encoder: Encoder, bundle: DatasetBundle, max_length: int, dtype: str) -> str:
    parts = {
        "weights": weights_hash(encoder),
        "maw": dataclasses.asdict(encoder.maw_cfg),
        "pooling": encoder.model_cfg.pooling,
        **({"similarity": "dot"} if encoder.model_cfg.similarity == "dot" else {}),  # cosine: the keys of before
        # a mechanism's settings, beside its weights (standard: the keys of before)
        **({"attention": dataclasses.asdict(encoder.attention_cfg)} if encoder.attention_cfg.mechanism != "standard"
           else {}),
        "doc_prefix": encoder.model_cfg.doc_prefix,
        "max_length": max_length,
        "dtype": dtype,
        "dataset": bundle.id,
        "docs": bundle.docs_count(),
        "content": bundle.content_hash(),
        "format": 2,  # 2: every shard records the range and a digest of the ids it holds
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


@dataclass
class EmbeddingCache:
    """A folder of shards ``shard_00000.npy`` (float16) + ``ids_00000.json`` + ``manifest.json``."""

    folder: Path
    reused: bool = False  # True when a complete cache was found and nothing was encoded
    verify: bool = False  # full sha256 of every shard (eval.verify_cache); else sizes and the ends' hash

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    def manifest(self) -> dict:
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return {}

    def entry(self, index: int) -> dict | None:
        try:
            return json.loads((self.folder / f"meta_{index:05d}.json").read_text())
        except (OSError, ValueError):
            return None

    def shard_valid(self, index: int, start: int | None = None, ids: list[str] | None = None) -> bool:
        """The shard is there and is the one written: sizes and the hash of both files' ends by default
        (cheap: about 4 MiB read per shard, whatever its size), full sha256 with ``verify``.

        With ``start`` and ``ids`` (the documents this shard should hold in the current
        layout) it must also hold exactly those: a shard written with another
        ``eval.shard_docs`` covers other documents and is re-encoded, never mixed in.
        """
        entry = self.entry(index)
        if entry is None or "start" not in entry:
            return False
        if ids is not None and (entry["start"] != start or entry["rows"] != len(ids)
                                or entry.get("ids_digest") != ids_digest(ids)):
            return False
        emb, ids = self.folder / entry["file"], self.folder / entry["ids"]
        if not (emb.is_file() and ids.is_file()):
            return False
        full = self.verify or "ends_sha256" not in entry  # caches written before the ends' hash existed
        if emb.stat().st_size != entry["bytes"] or (
            (sha256_file(emb) != entry["sha256"] or sha256_file(ids) != entry["ids_sha256"]) if full
            else (sha256_ends(emb) != entry["ends_sha256"] or sha256_ends(ids) != entry["ids_ends_sha256"])
        ):
            log.warning("embedding cache shard %s is corrupt, truncated or swapped; re-encoding it", emb)
            return False
        return True

    def complete(self) -> bool:
        m = self.manifest()
        if not m.get("complete"):
            return False
        covered = 0
        with step(f"check cached embeddings{' (full sha256)' if self.verify else ''}", total=m["num_shards"]) as advance:
            for i in range(m["num_shards"]):
                entry = self.entry(i)
                if not self.shard_valid(i) or entry["start"] != covered:  # the shards tile the corpus in order
                    return False
                covered += entry["rows"]
                advance(1)
        return covered == m.get("docs")

    def usage(self) -> dict:
        """What the encoder reported about its routing while encoding (summed over shards; ``{}`` for none)."""
        total: dict = {}
        for i in range(self.manifest().get("num_shards", 0)):
            total = add_counts(total, (self.entry(i) or {}).get("usage") or {})
        return total

    def write_shard(self, index: int, ids: list[str], emb: np.ndarray, usage: dict | None = None,
                    start: int = 0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        emb_name, ids_name = f"shard_{index:05d}.npy", f"ids_{index:05d}.json"
        with np.errstate(over="ignore"):  # an overflow is refused just below, in one line
            half = emb.astype(np.float16)
        if not np.isfinite(half).all():  # only a dot model's large components can overflow float16's 65504
            raise UserError(f"an embedding component ({float(np.abs(emb).max()):.3g}) exceeds the float16 range the "
                            "cache stores; this model's unnormalised vectors cannot be cached: use "
                            "model.similarity=cosine.")
        with atomic_open(self.folder / emb_name, "wb") as f:
            np.save(f, half)
        with atomic_open(self.folder / ids_name, "w") as f:
            json.dump(ids, f)
        entry = {
            "file": emb_name,
            "ids": ids_name,
            "rows": len(ids),
            "start": start,  # position of the shard's first document in the corpus
            "ids_digest": ids_digest(ids),
            "bytes": (self.folder / emb_name).stat().st_size,
            "sha256": sha256_file(self.folder / emb_name),
            "ids_sha256": sha256_file(self.folder / ids_name),
            "ends_sha256": sha256_ends(self.folder / emb_name),
            "ids_ends_sha256": sha256_ends(self.folder / ids_name),
            "usage": usage or {},
        }
        write_json(self.folder / f"meta_{index:05d}.json", entry)  # one file a shard: ranks never race

    def mark_complete(self, num_shards: int, meta: dict) -> None:
        write_json(self.manifest_path, {**meta, "num_shards": num_shards, "complete": True})

    def shards(self) -> Iterator[tuple[list[str], np.ndarray]]:
        """``(doc_ids, float16 embeddings)`` shard by shard: memory bounded by one shard."""
        for i in range(self.manifest()["num_shards"]):
            entry = self.entry(i)
            ids = json.loads((self.folder / entry["ids"]).read_text())
            yield ids, np.load(self.folder / entry["file"])


def ids_digest(ids: list[str]) -> str:
    """sha256 of a shard's document ids in order: what proves which documents a shard holds."""
    h = hashlib.sha256()
    for doc_id in ids:
        h.update(doc_id.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def add_counts(a, b):
    """Element-wise sum of two nested count structures (dicts of lists of ints, any depth)."""
    if isinstance(a, dict) or isinstance(b, dict):
        a, b = a or {}, b or {}
        return {k: add_counts(a.get(k), b.get(k)) for k in {**a, **b}}
    if isinstance(a, list) or isinstance(b, list):
        if a is None or b is None:
            return a if b is None else b
        return [add_counts(x, y) for x, y in zip(a, b)]
    return (a or 0) + (b or 0)


def _doc_blocks(bundle: DatasetBundle, size: int) -> Iterator[tuple[list[str], list[str]]]:
    ids, texts = [], []
    for doc_id, text in bundle.docs_iter():
        ids.append(doc_id)
        texts.append(text)
        if len(ids) == size:
            yield ids, texts
            ids, texts = [], []
    if ids:
        yield ids, texts


def encode_corpus(
    encoder: Encoder,
    bundle: DatasetBundle,
    cache_root: Path,
    batch_size: int,
    max_length: int,
    dtype: str,
    shard_docs: int,
    rank: int = 0,
    world_size: int = 1,
    label: str = "",
    verify: bool = False,
) -> EmbeddingCache:
    """Encode ``bundle``'s corpus into the cache (re-using valid shards) and return it.

    With ``world_size > 1`` each rank encodes shards ``i % world_size == rank``; the
    caller merges (marks complete) once every rank is done.
    """
    key = fingerprint(encoder, bundle, max_length, dtype)
    cache = EmbeddingCache(cache_root / key, verify=verify)
    if cache.complete():
        log.info("%s: re-using cached embeddings %s", bundle.id, cache.folder)
        cache.reused = True
        return cache
    total = bundle.docs_count()
    num_shards = (total + shard_docs - 1) // shard_docs
    with progress_bar() as bar:
        task = bar.add_task(f"encode {label or 'corpus'} {bundle.id}", total=total)
        start = 0
        for index, (ids, texts) in enumerate(_doc_blocks(bundle, shard_docs)):
            first, start = start, start + len(ids)
            if index % world_size != rank or cache.shard_valid(index, first, ids):
                bar.advance(task, len(ids))
                continue
            emb = np.empty((len(ids), encoder.dim), dtype=np.float32)
            usage: dict = {}
            for pos, vecs in encoder.encode_batches(texts, batch_size, "doc", max_length, dtype, usage=usage):
                emb[pos] = vecs.numpy()
                bar.advance(task, len(pos))
            cache.write_shard(index, ids, emb, usage, start=first)
    if world_size == 1:
        cache.mark_complete(num_shards, {"dataset": bundle.id, "docs": total, "dim": encoder.dim})
    return cache


def finish_sharded(cache: EmbeddingCache, bundle: DatasetBundle, dim: int, shard_docs: int) -> None:
    """After all ranks wrote their shards: check and mark the cache complete (one rank only)."""
    total = bundle.docs_count()
    num_shards = (total + shard_docs - 1) // shard_docs
    missing = [i for i in range(num_shards) if not cache.shard_valid(i)]
    if missing:
        raise RuntimeError(f"embedding shards {missing} are missing after the sharded encode")
    cache.mark_complete(num_shards, {"dataset": bundle.id, "docs": total, "dim": dim})
    if not cache.complete():
        raise RuntimeError(f"the shards in {cache.folder} do not cover the corpus in order after the sharded encode")
