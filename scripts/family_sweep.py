"""Every arm at init on many transformers families: what a user of each family meets (docs/families.md).

For each family a tiny random model (2 layers, hidden 32, 4 heads; no weights to download) is built from its
config, and for each placement and arm maw-bench first checks the config as every command does, then builds
the arm and encodes a few texts. A cell says what came out:

- ``=``: the arm's embedding equals the unmodified ``AutoModel``'s to 1e-5 (mean pooling): the init law;
- ``runs``: MAW split, which is not the pretrained attention at init by design, encoded without error;
- ``Δ x``: the init law failed by ``x`` (a bug: none is expected);
- ``refused``: the one-line refusal at config check (its reason, shortened, is listed under the table);
- ``error: ...``: anything else (a bug).

    python scripts/family_sweep.py                      # every family below, a markdown table on stdout
    python scripts/family_sweep.py --families llama,t5  # some of them
    python scripts/family_sweep.py --write docs/families.md   # rewrite the table in that file

Offline, on CPU, about a second per family and arm.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ARMS: dict[str, list[str]] = {
    "standard": [], "maw-nested": ["maw.enabled=true", "maw.variant=nested", "maw.depth=2", "maw.selection=grpo"],
    "maw": ["maw.enabled=true", "maw.depth=2"], "gated": ["attention.mechanism=gated"],
    "diff": ["attention.mechanism=diff"]}
PLACEMENTS = ("replace", "append")
_DEC = {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}  # token ids inside the tiny vocabulary
# model_type -> what its tiny config needs beyond hidden 32, 2 layers, 4 heads (names differ per family)
FAMILIES: dict[str, dict] = {
    "bert": {}, "roberta": {"pad_token_id": 0}, "xlm-roberta": {"pad_token_id": 0}, "camembert": {"pad_token_id": 0},
    "electra": {"embedding_size": 32}, "data2vec-text": {"pad_token_id": 0}, "ernie": {},
    "roberta-prelayernorm": {"pad_token_id": 0}, "xlm-roberta-xl": {"pad_token_id": 0},
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64, "pad_token_id": 0},
    "mobilebert": {"true_hidden_size": 16, "embedding_size": 16, "intra_bottleneck_size": 16, "pad_token_id": 0},
    "modernbert": {**_DEC, "cls_token_id": 2, "sep_token_id": 3, "global_attn_every_n_layers": 1,
                   "local_attention": 16},
    "esm": {"pad_token_id": 0, "mask_token_id": 4, "position_embedding_type": "rotary"},
    "nomic_bert": {"pad_token_id": 0, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1},
    "gte": {"pad_token_id": 0}, "jina_embeddings_v3": {"pad_token_id": 0}, "eurobert": {**_DEC, "mask_token_id": 4},
    "qwen3": {**_DEC, "num_key_value_heads": 2, "head_dim": 8}, "qwen2": {**_DEC, "num_key_value_heads": 2},
    "llama": {**_DEC, "num_key_value_heads": 2, "head_dim": 8}, "mistral": {**_DEC, "num_key_value_heads": 2},
    "gemma": {**_DEC, "num_key_value_heads": 2, "head_dim": 8},
    "gemma3_text": {**_DEC, "num_key_value_heads": 2, "head_dim": 8, "sliding_window": 4},
    "phi3": {**_DEC, "num_key_value_heads": 2}, "olmo2": {**_DEC, "num_key_value_heads": 2},
    "stablelm": {**_DEC, "num_key_value_heads": 2}, "phi": {**_DEC, "partial_rotary_factor": 0.5},
    "gpt_neox": {**_DEC, "rotary_pct": 0.25}, "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 4, "pad_token_id": 0},
    "cohere": {**_DEC, "num_key_value_heads": 2}, "glm": {**_DEC, "num_key_value_heads": 2, "head_dim": 8},
    "mpnet": {"pad_token_id": 0}, "deberta-v2": {"pad_token_id": 0}, "albert": {"embedding_size": 16},
    "megatron-bert": {"pad_token_id": 0}, "roformer": {"pad_token_id": 0, "embedding_size": 32},
    "longformer": {"pad_token_id": 0, "attention_window": 8}, "big_bird": {"attention_type": "original_full"},
    "gemma4_text": {**_DEC, "num_key_value_heads": 2, "head_dim": 8},
    "gemma2": {**_DEC, "num_key_value_heads": 2, "head_dim": 8},
    "vaultgemma": {**_DEC, "num_key_value_heads": 2, "head_dim": 8},
    "granite_swa": {**_DEC, "num_key_value_heads": 2},
    "gpt_oss": {**_DEC, "num_key_value_heads": 2, "head_dim": 8, "num_local_experts": 4, "num_experts_per_tok": 2},
    "t5": {"d_model": 32, "num_layers": 2, "num_heads": 4, "d_kv": 8, "d_ff": 64, "pad_token_id": 0},
}
TEXTS = ["protein folding in the cell", "a study of heart disease risk", "the model of the world",
         "gene expression in cancer cells and the immune response of patients"]


def tiny_family(folder: Path, family: str) -> str:
    """A random 2-layer ``family`` model with a small WordPiece tokenizer, saved as a folder."""
    import torch
    from transformers import AutoConfig, AutoModel, BertTokenizerFast

    words = sorted({w for t in TEXTS for w in t.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *(f"w{i}" for i in range(64))]
    folder.mkdir(parents=True, exist_ok=True)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(folder)
    base = {"vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 64, "max_position_embeddings": 128}
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.for_model(family, **{**base, **FAMILIES[family]})).save_pretrained(folder)
    return str(folder)


def plain_embeddings(folder: str):
    """The unmodified AutoModel's mean-pooled, normalised embeddings of :data:`TEXTS`, fed every tokenizer output
    its forward takes, as sentence-transformers feeds it."""
    import inspect

    import torch
    from transformers import AutoModel, AutoTokenizer

    model, tok = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    feats = tok(TEXTS, padding=True, return_tensors="pt")
    takes = inspect.signature(model.forward).parameters
    with torch.inference_mode():
        hidden = model(**{k: v for k, v in feats.items() if k in takes}).last_hidden_state
    m = feats["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)


def cell(folder: str, arm: str, placement: str, plain) -> tuple[str, str | None]:
    """What a user of this family meets with this arm: the cell text, and a refusal's reason if refused."""
    from maw_bench import BenchmarkConfig, build_encoder
    from maw_bench.errors import UserError
    from maw_bench.modeling.encoder import check_model_fits

    cfg = BenchmarkConfig.load(overrides=[f"model.name={folder}", "model.pooling=mean", "model.similarity=cosine",
                                          "model.prompts=none", "model.max_length=32", "model.query_max_length=16",
                                          *ARMS[arm], f"maw.placement={placement}"])
    try:
        check_model_fits(cfg)
    except UserError as exc:
        return "refused", str(exc)
    try:
        emb = build_encoder(cfg).eval().encode(TEXTS)
    except UserError as exc:
        return "error: refused late", str(exc)
    except Exception as exc:  # noqa: BLE001 - a sweep reports every failure as a cell
        return f"error: {type(exc).__name__}", None
    if plain is None:
        return "error: no plain embedding", None
    if arm == "maw" and placement == "replace":
        return "runs", None
    gap = float((emb - plain).abs().max())
    return ("=" if gap <= 1e-5 else f"Δ {gap:.1e}"), None


def sweep(families: list[str], root: Path) -> tuple[list[list[str]], dict[str, str]]:
    """Rows of the table (family, then one cell per placement and arm) and the refusal reasons by family."""
    from maw_bench.modeling.loading import quiet_transformers

    rows, reasons = [], {}
    for family in families:
        with quiet_transformers():
            folder = tiny_family(root / family, family)
            try:
                plain = plain_embeddings(folder)
            except Exception:  # noqa: BLE001 - an AutoModel that cannot encode alone (an encoder-decoder)
                plain = None
            row = [family]
            for placement in PLACEMENTS:
                for arm in ARMS:
                    text, reason = cell(folder, arm, placement, plain)
                    row.append(text)
                    if reason:
                        reasons.setdefault(family, short_reason(reason))
        rows.append(row)
    return rows, reasons


def short_reason(message: str) -> str:
    """A refusal without its advice and path: what is different about the family."""
    message = re.sub(r"model /\S+ ", "model ", message)
    message = message.split("; use ")[0]
    return message.split(", and ", 1)[-1] if "needs attention that calls" in message else message


def markdown(rows: list[list[str]], reasons: dict[str, str]) -> str:
    head = ["family", *(f"{p} {a}" for p in PLACEMENTS for a in ARMS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "Refusals (first one per family):", ""]
    lines += [f"- `{family}`: {reason}" for family, reason in reasons.items()]
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- family_sweep: begin -->", "<!-- family_sweep: end -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated model types")
    parser.add_argument("--write", type=Path, help="rewrite the table between the markers in this file")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"no tiny config for {', '.join(unknown)}; add one to FAMILIES")
    with tempfile.TemporaryDirectory() as tmp:
        table = markdown(*sweep(families, Path(tmp)))
    if args.write is None:
        sys.stdout.write(table)
        return 0
    text = args.write.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    args.write.write_text(text[:start] + "\n" + table + text[end:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
