"""Training curves where people look for them: TensorBoard and Weights & Biases, like HF Trainer's ``report_to``.

Every logged step (the record ``train_log.jsonl`` gets) goes to each reporter: loss,
learning rate, examples/s, the router objective's statistics and, per MAW layer, the
share of each depth and a histogram of the choices. Rank 0 only.
"""

from __future__ import annotations

import logging
from pathlib import Path

from maw_bench.errors import UserError

log = logging.getLogger("maw_bench")
REPORTERS = ("tensorboard", "wandb")


def scalars(record: dict) -> dict[str, float]:
    """The scalar curves of one log record, named as TensorBoard groups them (``train/...``, ``router/...``)."""
    out = {f"train/{k}": float(record[k]) for k in ("loss", "lr", "examples_per_s") if k in record}
    for k, v in (record.get("grpo") or {}).items():
        out[f"router/{k}"] = float(v)
    for layer, counts in enumerate(record.get("depth_histogram") or []):
        total = sum(counts) or 1
        for depth, c in enumerate(counts):
            out[f"depth/layer{layer}/d{depth}"] = c / total
    return out


class TensorBoardReporter:
    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("train.report_to has tensorboard, which is not installed; pip install tensorboard.") from None
        self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"))

    def log(self, step: int, record: dict) -> None:
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, step)
        for layer, counts in enumerate(record.get("depth_histogram") or []):
            n = sum(counts)
            if n:
                values = [d for d, c in enumerate(counts) for _ in range(c)]
                self.writer.add_histogram_raw(
                    f"depth/layer{layer}", min=min(values), max=max(values), num=n, sum=float(sum(values)),
                    sum_squares=float(sum(v * v for v in values)),
                    bucket_limits=[d + 0.5 for d in range(len(counts))], bucket_counts=counts, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbReporter:
    def __init__(self, folder: Path, name: str, config: dict) -> None:
        try:
            import wandb
        except ImportError:
            raise UserError("train.report_to has wandb, which is not installed; pip install wandb.") from None
        self.wandb = wandb
        try:
            self.run = wandb.init(project="maw-bench", name=name, dir=str(folder), config=config, reinit=True)
        except Exception as exc:  # noqa: BLE001 - wandb raises its own types for login, network and settings
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"train.report_to has wandb, which could not start ({first}); run `wandb login`, or "
                            "set WANDB_MODE=offline to log to files, or drop wandb from train.report_to.") from exc

    def log(self, step: int, record: dict) -> None:
        self.run.log(scalars(record), step=step)

    def close(self) -> None:
        self.run.finish()


def make_reporters(report_to: list[str], folder: Path, name: str, config: dict) -> list:
    out: list = []
    for kind in report_to:
        if kind == "tensorboard":
            out.append(TensorBoardReporter(folder))
        elif kind == "wandb":
            out.append(WandbReporter(folder, name, config))
    return out
