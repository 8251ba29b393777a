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
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.progress import TextColumn

from maw_bench.config import BenchmarkConfig, LoRAConfig
from maw_bench.data.bundle import DatasetBundle
from maw_bench.data.negatives import TrainingExample
from maw_bench.errors import UserError
from maw_bench.maw import PolicySamples
from maw_bench.modeling import Encoder
from maw_bench.modeling.encoder import autocast_context
from maw_bench.modeling.sites import check_lora_targets
from maw_bench.outputs.records import read_log
from maw_bench.runtime.atomic import atomic_open
from maw_bench.runtime.distributed import DistContext, barrier, mean_across_ranks
from maw_bench.runtime.progress import progress_bar
from maw_bench.training.batches import BatchPlan, materialise, total_optimizer_steps
from maw_bench.training.checkpoint import latest_valid, load_checkpoint, save_checkpoint
from maw_bench.training.reporting import make_reporters
from maw_bench.training.schedule import linear_schedule
from maw_bench.training.step import LossSettings, StepOutput, grad_cache_step, train_step

log = logging.getLogger("maw_bench")


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


@dataclass
class Accumulated:
    """What the micro-batches of one optimiser step add up to."""

    loss: float = 0.0
    examples: int = 0
    policy: dict[str, float] = field(default_factory=dict)
    histogram: list[list[int]] | None = None
    policy_samples: list[list[PolicySamples]] = field(default_factory=list)

    def add(self, out: StepOutput, grad_accum: int, batch_size: int) -> None:
        self.loss += out.contrastive / grad_accum
        self.examples += batch_size
        for k, v in out.policy.items():
            self.policy[k] = self.policy.get(k, 0.0) + v / grad_accum
        if out.policy_samples:
            self.policy_samples.append(out.policy_samples)


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    wall_s: float  # training time to the last step, summed over the legs of a resumed run
    examples: int
    wall_s_partial: bool = False  # resumed from a checkpoint that did not record the time before it


def param_groups(encoder: Encoder, lr: float, router_lr: float, weight_decay: float) -> list[dict]:
    """The weights the arm adds to steer attention (``Encoder.added_parameters``, by object) at ``train.router_lr``
    without decay; biases and norms without decay; the rest with it."""
    steering = {id(p) for p in encoder.added_parameters()}
    router, decay, no_decay = [], [], []
    for name, p in encoder.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in steering:
            router.append(p)
        elif p.ndim < 2 or "norm" in name.lower():
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "lr": lr, "weight_decay": weight_decay},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0},
        {"params": router, "lr": router_lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def apply_lora(encoder: Encoder, lc: LoRAConfig) -> None:
    """Wrap the backbone with peft LoRA; the weights the arm adds (routers, gates, second maps) and appended blocks
    stay fully trainable, chosen by object (peft freezes every weight it does not wrap)."""
    from peft import LoraConfig, get_peft_model

    check_lora_targets(encoder.backbone, lc.target_modules)
    targets = list(lc.target_modules)
    names = {name.rsplit(".", 1)[-1] for name, _ in encoder.backbone.named_modules()}
    targets += [t for t in ("query_depth", "key_depth") if t in names and t not in targets]  # the full variant's
    frozen_by_choice = {id(p) for p in encoder.added_parameters() if not p.requires_grad}  # attention.freeze_added
    encoder.backbone = get_peft_model(
        encoder.backbone,
        LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=targets),
    )
    for p in [*encoder.added_parameters(), *encoder.blocks.parameters()]:
        if id(p) not in frozen_by_choice:
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
        self.optimizer = torch.optim.AdamW(param_groups(encoder, t.lr, t.router_lr, t.weight_decay), lr=t.lr,
                                           weight_decay=t.weight_decay)
        self.scheduler = linear_schedule(self.optimizer, self.total_steps, t.warmup_ratio)
        self.scaler = torch.amp.GradScaler("cuda") if (t.dtype == "fp16" and device.type == "cuda") else None
        if t.dtype == "fp16" and device.type != "cuda":
            raise UserError("train.dtype=fp16 needs a CUDA device; use bf16 or fp32 on the CPU.")
        self.loss = LossSettings(t.temperature, t.symmetric, cfg.maw.reward)
        self.strategy = encoder.strategy
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
        chunk = self.cfg.train.grad_cache.chunk_size
        # routing noise of its own, a function of (seed, micro-batch, rank): the dropout stream stays the standard arm's
        routing_seed = (self.cfg.seed * 1_000_003 + micro_index) * 131 + self.rank
        with autocast_context(self.device, self.cfg.train.dtype):
            if chunk:
                return grad_cache_step(enc, self.model, q_feats, d_feats, self.loss, chunk, exclude, self.dist, sync_ctx,
                                       routing_seed)
            return train_step(enc, self.model, q_feats, d_feats, self.loss, exclude, self.dist, routing_seed)

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
        """The loop: accumulate micro-batches, step the optimiser, further policy updates, log, checkpoint."""
        step = self._start(resume)
        self.reporters = (make_reporters(self.cfg.train.report_to, self.folder, self.folder.name, self.cfg.to_dict())
                          if self.rank == 0 else [])
        self.model.train()
        begin, last_loss = time.perf_counter(), float("nan")
        self._begin = begin
        columns = [TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[eps]:.1f} ex/s")]
        bar = progress_bar(*columns) if self.rank == 0 else contextlib.nullcontext()
        with bar as progress:
            task = progress.add_task(f"train {self.folder.name}", total=self.total_steps, completed=step, loss=0.0,
                                     eps=0.0) if progress else None
            while step < self.total_steps and (self.stop_after is None or step < self.stop_after):
                tick = time.perf_counter()
                acc = self._accumulate(step)
                lr = self._optimizer_step()
                acc.policy.update(self._policy_iterations(acc.policy_samples))
                step += 1
                self._refresh_reference(step)
                last_loss = acc.loss
                eps = acc.examples / max(time.perf_counter() - tick, 1e-9)
                self._log_step(step, acc, lr, eps)
                if progress:
                    progress.update(task, advance=1, loss=acc.loss, eps=eps)
                self._checkpoint(step)
        for r in self.reporters:
            r.close()
        return TrainResult(step, last_loss, self._prior_s + time.perf_counter() - begin, len(self.plan.examples),
                           self._prior_s_missing)

    def _start(self, resume: bool) -> int:
        """The step to start from: a checkpoint's (on resume) or 0 (a fresh log)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        start = 0
        self._prior_s, self._prior_s_missing = 0.0, False
        if resume and (ckpt := latest_valid(self.ckpt_dir)) is not None:
            state = load_checkpoint(ckpt, self.encoder, self.optimizer, self.scheduler, self.scaler)
            start = state["step"]
            self._prior_s = float(state.get("train_s", 0.0))  # the legs before this one (0 at step 0)
            self._prior_s_missing = start > 0 and "train_s" not in state
            self._truncate_log(start)
            log.info("resumed %s from %s (step %d of %d)", self.folder.name, ckpt.name, start, self.total_steps)
        elif self.rank == 0:
            (self.folder / "train_log.jsonl").unlink(missing_ok=True)
        if self.cfg.train.gradient_checkpointing:
            self.encoder.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return start

    def _accumulate(self, step: int) -> Accumulated:
        """Forward and backward of every micro-batch of one optimiser step (DDP reduces on the last only)."""
        t = self.cfg.train
        acc = Accumulated()
        for micro in range(t.grad_accum):
            last_micro = micro == t.grad_accum - 1
            with self._no_sync(not last_micro):
                out = self._micro_step(step * t.grad_accum + micro, self._no_sync if last_micro else None)
                if not torch.isfinite(out.loss.detach()):
                    good = latest_valid(self.ckpt_dir)
                    raise TrainingDiverged(
                        f"loss became {float(out.loss.detach())} at step {step + 1}; the last good checkpoint is "
                        f"{good or 'none'}; lower train.lr or use train.dtype=fp32, then rerun with --resume."
                    )
                if not out.backward_done:
                    loss = out.loss / t.grad_accum
                    (self.scaler.scale(loss) if self.scaler else loss).backward()
            acc.add(out, t.grad_accum, self.plan.batch_size)
            acc.histogram = self._histogram(out.choices, acc.histogram)
        acc.policy = self._mean_across_ranks(acc.policy)
        return acc

    def _optimizer_step(self) -> float:
        """Unscale, clip, step and schedule; returns the learning rate the step used."""
        t = self.cfg.train
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
        return lr

    def _policy_iterations(self, groups: list[list[PolicySamples]]) -> dict[str, float]:
        """GRPO's further updates (``maw.grpo.iterations - 1``) of the routers on the groups just sampled.

        Only router parameters get gradients (detached states), so AdamW leaves the
        encoder alone; under DDP the router gradients are averaged by hand.
        """
        if self.strategy is None or not groups or self.strategy.policy_iterations < 2:
            return {}
        t = self.cfg.train
        routers = [p for m in self.encoder.maw_modules() if m.router is not None for p in m.router.parameters()]
        stats: dict[str, float] = {}
        for _ in range(self.strategy.policy_iterations - 1):
            stats = {}
            for samples in groups:
                loss, st = self.strategy.policy_loss(samples, first_iteration=False)
                (loss / len(groups)).backward()
                for k, v in st.items():
                    stats[k] = stats.get(k, 0.0) + v / len(groups)
            if self.world_size > 1:
                import torch.distributed as dist

                for p in routers:
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= self.world_size
            if t.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(routers, t.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return {f"last_iteration_{k}": v for k, v in self._mean_across_ranks(stats).items() if k in ("loss", "clip_fraction")}

    def _refresh_reference(self, step: int) -> None:
        every = self.cfg.maw.grpo.ref_update_every
        if self.strategy is not None and self.strategy.trains_policy and every and step % every == 0:
            for m in self.encoder.maw_modules():
                if m.router is not None:
                    m.router.sync_reference()

    def _log_step(self, step: int, acc: Accumulated, lr: float, eps: float) -> None:
        if not (step % self.cfg.train.log_every == 0 or step == self.total_steps):
            return
        record = {"step": step, "loss": round(acc.loss, 6), "lr": lr, "examples_per_s": round(eps, 2)}
        if acc.policy:
            record["grpo"] = {k: round(v, 6) for k, v in acc.policy.items()}
        if acc.histogram is not None:
            record["depth_histogram"] = acc.histogram
        self._log(record)
        for r in getattr(self, "reporters", []):
            r.log(step, record)

    def _checkpoint(self, step: int) -> None:
        t = self.cfg.train
        if self.rank == 0 and ((t.save_every and step % t.save_every == 0) or step == self.total_steps):
            save_checkpoint(self.ckpt_dir, step, self.encoder, self.optimizer, self.scheduler, self.scaler,
                            {"micro_batches": step * t.grad_accum, "total_steps": self.total_steps,
                             "train_s": self._prior_s + time.perf_counter() - self._begin})
        self._barrier()

    def _barrier(self) -> None:
        barrier(self.world_size)

    def _mean_across_ranks(self, stats: dict[str, float]) -> dict[str, float]:
        return mean_across_ranks(stats, self.world_size)

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
        keep = [r for r in read_log(self.folder) if r.get("step", step + 1) <= step]
        with atomic_open(path, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in keep))
