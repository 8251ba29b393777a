"""Run as a script: load exported model folders with maw_bench unimportable, as a user without maw-bench would.

``python load_exported.py TEXTS.json OUT.npz FOLDER...``: for each folder, the
embeddings of ``AutoModel.from_pretrained(trust_remote_code=True)`` mean-pooled by
hand, of ``SentenceTransformer(...).encode_document`` and ``encode_query``.
"""

import importlib.abc
import json
import sys


class _NoMawBench(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "maw_bench" or name.startswith("maw_bench."):
            raise ImportError(f"{name} is blocked: the exported folder must load without maw-bench")
        return None


sys.meta_path.insert(0, _NoMawBench())

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402


def main() -> None:
    texts = json.loads(open(sys.argv[1]).read())
    out = {}
    for i, folder in enumerate(sys.argv[3:]):
        st = SentenceTransformer(folder, trust_remote_code=True, device="cpu")
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        with torch.inference_mode():
            batch = tok(texts, padding=True, truncation=True, max_length=st.max_seq_length, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            auto = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        out[f"auto{i}"] = auto.numpy()
        out[f"doc{i}"] = st.encode_document(texts, convert_to_numpy=True)
        out[f"query{i}"] = st.encode_query(texts, convert_to_numpy=True)
        out[f"class{i}"] = np.array(type(model).__name__)
    assert not any(m.startswith("maw_bench") for m in sys.modules)
    np.savez(sys.argv[2], **out)


if __name__ == "__main__":
    main()
