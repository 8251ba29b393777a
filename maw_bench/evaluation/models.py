"""What ``--model`` names: a training run (expands to its arms), a saved encoder, or a HF model (zero-shot)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from maw_bench.config import BenchmarkConfig
from maw_bench.modeling import Encoder, build_encoder, is_saved_encoder, load_encoder
from maw_bench.results.folders import RUN_FILE


@dataclass
class ModelRef:
    label: str
    source: str  # a saved-encoder folder, or a HF id/folder for zero-shot
    zero_shot: bool

    def load(self, cfg: BenchmarkConfig, device=None) -> Encoder:
        if self.zero_shot:
            zcfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name=self.source),
                                       maw=dataclasses.replace(cfg.maw, enabled=False, placement="replace"))
            return build_encoder(zcfg, device)
        return load_encoder(self.source, device)


def _arm_model(folder: Path) -> Path | None:
    if is_saved_encoder(folder / "model"):
        return folder / "model"
    return None


def resolve_models(specs: list[str], cfg: BenchmarkConfig) -> list[ModelRef]:
    """Expand ``--model`` values; no value means the zero-shot base encoder of ``cfg``."""
    refs: list[ModelRef] = []
    runs = [s for s in specs if (Path(s).expanduser() / RUN_FILE).is_file()]
    for spec in specs or [cfg.model.name]:
        path = Path(spec).expanduser()
        prefix = path.name if len(runs) > 1 else ""
        if (path / RUN_FILE).is_file():
            arms = json.loads((path / RUN_FILE).read_text())["arms"]
            for arm in arms:
                model = _arm_model(path / arm)
                if model is not None:
                    refs.append(ModelRef(f"{prefix}/{arm}" if prefix else arm, str(model), False))
        elif _arm_model(path) is not None:
            refs.append(ModelRef(path.name, str(path / "model"), False))
        elif is_saved_encoder(path):
            refs.append(ModelRef(path.name, str(path), False))
        else:
            refs.append(ModelRef("zero-shot", spec, True))
    seen: dict[str, int] = {}
    for r in refs:  # unique labels
        if r.label in seen:
            seen[r.label] += 1
            r.label = f"{r.label}#{seen[r.label]}"
        else:
            seen[r.label] = 0
    return refs
