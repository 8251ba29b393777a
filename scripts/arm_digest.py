"""Digests of every arm of the committed study at seed 13: its initial weights, and one train-mode forward
(dropout on, GRPO's group drawn) with its gradients.

Run it at two commits on the same model folder; equal digests mean a refactor of how arms are built cannot
move the committed study's numbers when it is retrained (the trainer consumes exactly these).

    python scripts/arm_digest.py MODEL_DIR OUT.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from maw_bench import BenchmarkConfig, build_encoder

STUDY = Path(__file__).resolve().parents[1] / "results" / "study-scifact-cranfield" / "study.json"
TEXTS = ["vitamin d lowers blood pressure in adults", "the heart pumps blood", "a short one",
         "graded relevance scales of the cranfield collection run upside down in some tools"]


def digest(cfg: BenchmarkConfig) -> list:
    """[initial weights, forward and gradients, params_added] of the arm ``cfg`` describes."""
    enc = build_encoder(cfg)
    weights = hashlib.sha256()
    for name, value in sorted(enc.state_dict().items()):
        weights.update(name.encode())
        weights.update(value.detach().float().numpy().tobytes())
    enc.train()
    torch.manual_seed(0)
    out = enc(**enc.tokenize(TEXTS), samples=cfg.maw.grpo.group_size if cfg.maw.enabled else 1,
              generator=torch.Generator().manual_seed(1))
    out.embeddings.square().sum().backward()
    step = hashlib.sha256(out.embeddings.detach().numpy().tobytes())
    for name, p in sorted(enc.named_parameters()):
        if p.grad is not None:
            step.update(name.encode())
            step.update(p.grad.numpy().tobytes())
    return [weights.hexdigest()[:16], step.hexdigest()[:16], enc.params_added]


def main(model: str, out_file: str) -> None:
    study = json.loads(STUDY.read_text())
    raw = study["config"]
    raw["model"]["name"] = model
    base = BenchmarkConfig.from_dict(raw).derive({"seed": 13})
    result = {arm: digest(base.arm(arm)) for arm in study["arms"] + study["controls"]}
    for arm, values in result.items():
        print(arm, *values)
    Path(out_file).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
