"""The contrastive training loop for one arm: AdamW, schedule, accumulation, AMP, checkpoints, resume.

Everything that decides the outcome is a function of the config and seed: the data
order (``BatchPlan``), initialisation (``build_encoder``) and every RNG state, which
checkpoints carry, so a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import TextColumn

from maw_bench.atomic import atomic_open
from maw_bench.config import BenchmarkConfig
from maw_bench.data.bundle import DatasetBundle
from maw_bench.data.negatives import TrainingExample
from maw_bench.errors import UserError
from maw_bench.modeling import Encoder
from maw_bench.modeling.encoder import autocast_context
from maw_bench.progress import progress_bar
from maw_bench.training.batches import BatchPlan, materialise, total_optimizer_steps
from maw_bench.training.checkpoint import latest_valid, load_checkpoint, save_checkpoint
from maw_bench.training.schedule import linear_schedule
from maw_bench.training.step import DistContext, StepOutput, contrastive_step, grad_cache_step, grpo_step

log = logging.getLogger("maw_bench")


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    wall_s: float
    examples: int


def param_groups(model: torch.nn.Module, cfg: BenchmarkConfig) -> list[dict]:
    """Routers at ``train.router_lr`` without decay; biases and norms without decay."""
    router, decay, no_decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if ".router." in f".{name}":
            router.append(p)
        elif p.ndim < 2 or "norm" in name.lower():
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "lr": cfg.train.lr, "weight_decay": cfg.train.weight_decay},
        {"params": no_decay, "lr": cfg.train.lr, "weight_decay": 0.0},
        {"params": router, "lr": cfg.train.router_lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def apply_lora(encoder: Encoder, cfg: BenchmarkConfig) -> None:
    """Wrap the backbone with peft LoRA; MAW routers and appended blocks stay fully trainable."""
    from peft import LoraConfig, get_peft_model

    lc = cfg.train.lora
    encoder.backbone = get_peft_model(
        encoder.backbone,
        LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=list(lc.target_modules)),
    )
    for name, p in encoder.named_parameters():
        if ".router." in f".{name}" or name.startswith("blocks."):
            p.requires_grad_(True)


def merge_lora(encoder: Encoder) -> None:
    if hasattr(encoder.backbone, "merge_and_unload"):
        encoder.backbone = encoder.backbone.merge_and_unload()


class Trainer:
    """Train ``encoder`` on ``examples`` drawn from ``bundle``; write into ``folder``."""

    def __init__(
        self,
        encoder: Encoder,
        bundle: DatasetBundle,
        examples: list[TrainingExample],
        cfg: BenchmarkConfig,
        folder: Path,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        ddp_model: torch.nn.Module | None = None,
        stop_after: int | None = None,
    ) -> None:
        self.encoder = encoder
        self.model = ddp_model or encoder  # what forward runs through (DDP wrapper or the encoder)
        self.bundle = bundle
        self.cfg = cfg
        self.folder = folder
        self.device = device
        self.rank, self.world_size = rank, world_size
        self.dist = DistContext(rank, world_size) if world_size > 1 else None
        self.stop_after = stop_after
        t = cfg.train
        self.plan = BatchPlan(examples, t.batch_size * world_size, cfg.seed, drop_last=world_size > 1)
        self.total_steps = total_optimizer_steps(len(examples), t.batch_size * world_size, t.grad_accum, t.epochs, t.max_steps)
        self.optimizer = torch.optim.AdamW(param_groups(encoder, cfg), lr=t.lr, weight_decay=t.weight_decay)
        self.scheduler = linear_schedule(self.optimizer, self.total_steps, t.warmup_ratio)
        self.scaler = torch.amp.GradScaler("cuda") if (t.dtype == "fp16" and device.type == "cuda") else None
        if t.dtype == "fp16" and device.type != "cuda":
            raise UserError("train.dtype=fp16 needs a CUDA device; use bf16 or fp32 on the CPU.")
        self.use_grpo = cfg.maw.enabled and cfg.maw.selection == "grpo" and bool(encoder.maw_modules())
        if t.grad_cache.chunk_size and self.use_grpo:
            raise UserError("train.grad_cache works with the standard arm and maw.selection gumbel/soft/uniform/fixed, not grpo.")
        for m in encoder.maw_modules():
            m.want_focus = cfg.maw.reward == "focus"
        self.positives = {q: bundle.positives(q) for q in {e.query_id for e in examples}}

    # ------------------------------------------------------------------ helpers
    @property
    def ckpt_dir(self) -> Path:
        return self.folder / "checkpoints"

    def _local_slice(self, examples: list[TrainingExample]) -> list[TrainingExample]:
        """This rank's share of a global batch (the plan is the same on every rank)."""
        if self.world_size == 1:
            return examples
        per = len(examples) // self.world_size
        return examples[self.rank * per : (self.rank + 1) * per]

    def _no_sync(self, active: bool = True):
        """DDP's ``no_sync`` (skip the gradient all-reduce) when ``active``; otherwise nothing."""
        if active and hasattr(self.model, "no_sync"):
            return self.model.no_sync()
        return contextlib.nullcontext()

    def _micro_step(self, micro_index: int, sync_ctx=None) -> StepOutput:
        global_examples = self.plan.examples_at(micro_index)
        batch = materialise(self._local_slice(global_examples), self.bundle)
        enc = self.encoder
        q_feats = {k: v.to(self.device) for k, v in enc.tokenize(batch.queries, "query").items()}
        d_feats = {k: v.to(self.device) for k, v in enc.tokenize(batch.docs, "doc").items()}
        exclude = self._exclude(global_examples if self.world_size > 1 else batch.examples)
        with autocast_context(self.device, self.cfg.train.dtype):
            if self.cfg.train.grad_cache.chunk_size:
                return grad_cache_step(enc, self.model, q_feats, d_feats, self.cfg, exclude, self.dist, sync_ctx)
            step = grpo_step if self.use_grpo else contrastive_step
            return step(enc, self.model, q_feats, d_feats, self.cfg, exclude, self.dist)

    def _exclude(self, examples: list[TrainingExample]) -> torch.Tensor:
        """``True`` where document ``j`` is a positive of query ``i`` other than its own column.

        Columns follow the loss' layout: every positive (one per query), then every negative.
        """
        doc_ids = [e.positive_id for e in examples] + [n for e in examples for n in e.negative_ids]
        columns: dict[str, list[int]] = {}
        for j, d in enumerate(doc_ids):
            columns.setdefault(d, []).append(j)
        mask = torch.zeros(len(examples), len(doc_ids), dtype=torch.bool)
        for i, e in enumerate(examples):  # O(batch x positives), not O(batch x documents)
            for d in self.positives.get(e.query_id, set()) | {e.positive_id}:
                for j in columns.get(d, ()):
                    mask[i, j] = j != i
        return mask.to(self.device)

    def _log(self, record: dict) -> None:
        if self.rank != 0:
            return
        path = self.folder / "train_log.jsonl"
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # --------------------------------------------------------------------- loop
    def train(self, resume: bool = False) -> TrainResult:
        cfg, t = self.cfg, self.cfg.train
        self.folder.mkdir(parents=True, exist_ok=True)
        start_step = 0
        if resume and (ckpt := latest_valid(self.ckpt_dir)) is not None:
            state = load_checkpoint(ckpt, self.encoder, self.optimizer, self.scheduler, self.scaler)
            start_step = state["step"]
            self._truncate_log(start_step)
            log.info("resumed %s from %s (step %d of %d)", self.folder.name, ckpt.name, start_step, self.total_steps)
        elif self.rank == 0:
            (self.folder / "train_log.jsonl").unlink(missing_ok=True)
        if t.gradient_checkpointing:
            self.encoder.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model.train()
        begin = time.perf_counter()
        last_loss = float("nan")
        step = start_step
        grpo_ref_every = cfg.maw.grpo.ref_update_every
        columns = [TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[eps]:.1f} ex/s")]
        bar = progress_bar(*columns) if self.rank == 0 else contextlib.nullcontext()
        with bar as progress:
            task = progress.add_task(f"train {self.folder.name}", total=self.total_steps, completed=start_step, loss=0.0, eps=0.0) if progress else None
            while step < self.total_steps:
                if self.stop_after is not None and step >= self.stop_after:
                    break
                tick = time.perf_counter()
                total, n_ex, grpo_stats, hist = 0.0, 0, {}, None
                for micro in range(t.grad_accum):
                    last_micro = micro == t.grad_accum - 1
                    with self._no_sync(not last_micro):  # DDP reduces gradients once per optimiser step
                        out = self._micro_step(step * t.grad_accum + micro, self._no_sync if last_micro else None)
                        loss = out.loss / t.grad_accum
                        if not torch.isfinite(out.loss.detach()):
                            good = latest_valid(self.ckpt_dir)
                            raise TrainingDiverged(
                                f"loss became {float(out.loss.detach())} at step {step + 1}; the last good checkpoint is "
                                f"{good or 'none'}; lower train.lr or use train.dtype=fp32, then rerun with --resume."
                            )
                        if not out.backward_done:
                            (self.scaler.scale(loss) if self.scaler else loss).backward()
                    total += out.contrastive / t.grad_accum
                    n_ex += self.plan.batch_size
                    for k, v in out.grpo.items():
                        grpo_stats[k] = grpo_stats.get(k, 0.0) + v / t.grad_accum
                    hist = self._histogram(out.choices, hist)
                grpo_stats = self._mean_across_ranks(grpo_stats)
                lr = self.scheduler.get_last_lr()[0]
                if self.scaler:
                    self.scaler.unscale_(self.optimizer)
                if t.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(self.encoder.parameters(), t.max_grad_norm)
                if self.scaler:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                step += 1
                if grpo_ref_every and step % grpo_ref_every == 0:
                    for m in self.encoder.maw_modules():
                        if m.router is not None:
                            m.router.sync_reference()
                last_loss = total
                eps = n_ex / max(time.perf_counter() - tick, 1e-9)
                if step % t.log_every == 0 or step == self.total_steps:
                    record = {"step": step, "loss": round(total, 6), "lr": lr, "examples_per_s": round(eps, 2)}
                    if grpo_stats:
                        record["grpo"] = {k: round(v, 6) for k, v in grpo_stats.items()}
                    if hist is not None:
                        record["depth_histogram"] = hist
                    self._log(record)
                if progress:
                    progress.update(task, advance=1, loss=total, eps=eps)
                if self.rank == 0 and ((t.save_every and step % t.save_every == 0) or step == self.total_steps):
                    save_checkpoint(self.ckpt_dir, step, self.encoder, self.optimizer, self.scheduler, self.scaler,
                                    {"micro_batches": step * t.grad_accum, "total_steps": self.total_steps})
                self._barrier()
        return TrainResult(step, last_loss, time.perf_counter() - begin, len(self.plan.examples))

    def _barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def _mean_across_ranks(self, stats: dict[str, float]) -> dict[str, float]:
        """GRPO statistics averaged over ranks (every rank calls this, so the log is global)."""
        if self.world_size == 1 or not stats:
            return stats
        import torch.distributed as dist

        keys = sorted(stats)
        t = torch.tensor([stats[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist())}

    def _histogram(self, choices: list[torch.Tensor], hist: list[list[int]] | None) -> list[list[int]] | None:
        if not choices:
            return hist
        depth = self.cfg.maw.depth
        counts = [torch.bincount(c, minlength=depth).tolist() for c in choices]
        if self.world_size > 1:
            import torch.distributed as dist

            t = torch.tensor(counts, dtype=torch.long)
            dist.all_reduce(t)
            counts = t.tolist()
        if hist is None:
            return counts
        return [[a + b for a, b in zip(h, c)] for h, c in zip(hist, counts)]

    def _truncate_log(self, step: int) -> None:
        """Drop log lines past the checkpoint we resumed from (they will be written again)."""
        path = self.folder / "train_log.jsonl"
        if self.rank != 0 or not path.is_file():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line)
            except (ValueError, KeyError):  # a line cut short by a kill
                continue
        with atomic_open(path, "w") as f:
            f.write("".join(line + "\n" for line in keep))
