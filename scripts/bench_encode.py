"""Corpus encoding speed: maw-bench's Encoder.encode against sentence-transformers' encode.

Same model, same max length (256), same machine, one process, fp32 and bf16.

    python scripts/bench_encode.py                      # the SciFact corpus (5,183 documents)
    python scripts/bench_encode.py --limit 1000 --dtypes fp32
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def scifact_texts(limit: int) -> list[str]:
    from maw_bench.data import load_bundle

    here = os.path.dirname(os.path.abspath(__file__))
    folder = os.path.join(here, "..", "..", "shared", "data", "beir", "scifact")
    bundle = load_bundle(folder if os.path.isdir(folder) else "beir/scifact/test", "test")
    texts = [t for _, t in bundle.docs_iter()]
    return texts[:limit] if limit else texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--limit", type=int, default=0, help="Documents (0 = all).")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--rounds", type=int, default=2, help="Alternating rounds; the best of each is reported.")
    args = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    from maw_bench import BenchmarkConfig, build_encoder
    from maw_bench.modeling.encoder import autocast_context
    from maw_bench.modeling.resolve import resolve_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    texts = scifact_texts(args.limit)
    enc = build_encoder(BenchmarkConfig.load(overrides=["model.max_length=256"]), device)
    st = SentenceTransformer(resolve_model("sentence-transformers/all-MiniLM-L6-v2"), device=str(device))
    st.max_seq_length = 256
    print(f"{len(texts)} documents, max length 256, batch {args.batch_size}, device {device}, threads {torch.get_num_threads()}")
    print(f"{'dtype':<6} {'maw-bench docs/s':>17} {'sentence-transformers docs/s':>29} {'ratio':>7}")
    for dtype in args.dtypes.split(","):
        best_ours = best_st = float("inf")
        for _ in range(args.rounds):  # alternate, so a slow spell of the machine hits both
            start = time.perf_counter()
            ours = enc.encode(texts, batch_size=args.batch_size, dtype=dtype)
            best_ours = min(best_ours, time.perf_counter() - start)
            start = time.perf_counter()
            with autocast_context(device, dtype):
                theirs = st.encode(texts, batch_size=args.batch_size, convert_to_tensor=True, normalize_embeddings=True)
            best_st = min(best_st, time.perf_counter() - start)
        cos = torch.nn.functional.cosine_similarity(ours, theirs.float().cpu()).min().item()
        r_ours, r_st = len(texts) / best_ours, len(texts) / best_st
        print(f"{dtype:<6} {r_ours:>17.1f} {r_st:>29.1f} {r_ours / r_st:>6.2f}x   (min cosine {cos:.5f})")


if __name__ == "__main__":
    main()
