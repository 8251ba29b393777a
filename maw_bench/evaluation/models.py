"""What ``--model`` names: a training run (expands to its arms), a saved encoder, or a HF model (zero-shot)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from maw_bench.config import BenchmarkConfig
from maw_bench.errors import UserError
from maw_bench.modeling import Encoder, build_encoder, is_saved_encoder, load_encoder
from maw_bench.modeling.export import is_export, read_export_record
from maw_bench.outputs.layout import RUN_FILE

log = logging.getLogger("maw_bench")


@dataclass
class ModelRef:
    label: str
    source: str  # a saved-encoder folder, or a HF id/folder for zero-shot
    zero_shot: bool
    exported: bool = False  # a folder `maw-bench export` wrote: fine-tuned, rebuilt from its own record
    trained_on: str | None = None  # the dataset id it was fine-tuned on, where its folder says
    arm: str | None = None  # a named arm scored as built, untrained (eval --arms)

    def load(self, cfg: BenchmarkConfig, device=None) -> Encoder:
        if self.arm is not None:
            import torch

            with torch.random.fork_rng(devices=[]):
                return build_encoder(cfg.derive({"model.name": self.source}).arm(self.arm), device)
        if self.exported:
            from maw_bench.modeling.export import load_exported

            return load_exported(self.source, device)
        if self.zero_shot:
            # the base encoder itself: no MAW, no other mechanism, nothing appended
            return build_encoder(cfg.derive({"model.name": self.source, "maw.enabled": False,
                                             "maw.placement": "replace", "attention.mechanism": "standard"}), device)
        return load_encoder(self.source, device)


def read_run_arms(run: Path) -> list[str]:
    """The arms ``run.json`` lists; a damaged file is one line that says what to do."""
    try:
        arms = json.loads((run / RUN_FILE).read_text())["arms"]
        if not isinstance(arms, list):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{run / RUN_FILE} is damaged (not the JSON maw-bench wrote); rerun the training with "
                        "--resume to rewrite it, or pass the arm folders' model/ to --model.") from None
    return [str(a) for a in arms]


def _trained_on(arm: Path) -> str | None:
    try:
        return json.loads((arm / "manifest.json").read_text())["datasets"]["train"]["id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
            arms = read_run_arms(path)
            unfinished = [arm for arm in arms if _arm_model(path / arm) is None]
            if len(unfinished) == len(arms):
                raise UserError(f"{path}: no arm of this run has finished training ({', '.join(arms)}); resume it "
                                f"with `maw-bench train --resume --output {path} ...` first.")
            if unfinished:
                log.warning("%s: arm(s) %s have not finished training and are not evaluated; resume the run to "
                            "include them", path, ", ".join(unfinished))
            for arm in arms:
                model = _arm_model(path / arm)
                if model is not None:
                    refs.append(ModelRef(f"{prefix}/{arm}" if prefix else arm, str(model), False,
                                         trained_on=_trained_on(path / arm)))
        elif _arm_model(path) is not None:
            refs.append(ModelRef(path.name, str(path / "model"), False, trained_on=_trained_on(path)))
        elif is_saved_encoder(path):
            refs.append(ModelRef(path.name, str(path), False))
        elif is_export(path):
            provenance = (read_export_record(path) or {}).get("provenance") or {}
            refs.append(ModelRef(path.name, str(path), False, exported=True, trained_on=provenance.get("train_data")))
        else:
            refs.append(ModelRef("zero-shot", spec, True))
    return unique_labels(refs)


def unique_labels(refs: list[ModelRef]) -> list[ModelRef]:
    """Every model its own label (``name#1`` for a repeat): results are keyed by label, so two models under
    one label would leave one model's scores under the other's name."""
    seen: dict[str, int] = {}
    for r in refs:
        if r.label in seen:
            seen[r.label] += 1
            r.label = f"{r.label}#{seen[r.label]}"
        else:
            seen[r.label] = 0
    return refs


def arm_base(refs: list[ModelRef], cfg: BenchmarkConfig) -> str:
    """The model ``eval --arms`` builds its arms on: the one plain (zero-shot) model named with ``--model``, else
    ``cfg.model.name``. Two plain models leave it ambiguous: one line, before any model loads (before, the arms
    were built on ``cfg.model.name`` whatever ``--model`` said, and scored beside the named model with exit 0)."""
    plain = [r.source for r in refs if r.zero_shot and r.arm is None]
    if len(plain) > 1:
        raise UserError(f"--arms builds its arms on one model, and --model names {len(plain)} plain ones "
                        f"({', '.join(plain)}); give one --model with --arms, or evaluate each model on its own.")
    if plain:
        return plain[0]
    bases = sorted({b for r in refs if not r.zero_shot and (b := _trained_base(r)) is not None})
    if len(bases) > 1:
        raise UserError(f"--arms builds its arms on one model, and the trained models named start from "
                        f"{len(bases)} ({', '.join(bases)}); evaluate them with --arms one base at a time.")
    return bases[0] if bases else cfg.model.name  # a run's arms at init: on the model the run fine-tuned


def _trained_base(ref: ModelRef) -> str | None:
    """The pretrained model a saved maw-bench encoder was fine-tuned from (its maw_bench.json), if it says."""
    import json
    from pathlib import Path

    from maw_bench.modeling.saving import META_FILE

    try:
        name = json.loads((Path(ref.source) / META_FILE).read_text())["model"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) and name else None


def untrained_arms(arms: list[str], base: str, cfg: BenchmarkConfig, prefix: str = "") -> list[ModelRef]:
    """Named arms as built on ``base`` (``arm_base``), before any training: what an arm costs or gives at init.
    ``prefix`` (``init/``) tells them from trained arms of the same name scored beside them."""
    if len(set(arms)) != len(arms):
        raise UserError(f"--arms {','.join(arms)} names an arm twice; each arm is scored once.")
    from maw_bench.modeling.encoder import check_model_fits

    for arm in arms:
        check_model_fits(cfg.derive({"model.name": base}).arm(arm))  # an unknown or unfitting arm: before any load
    return [ModelRef(f"{prefix}{arm}", base, True, arm=arm) for arm in arms]
