"""The multi-task training loop: one plain ``fit`` loop that fires events.

Each optimiser step draws an input group from the task sampler, takes that group's next
length-bucketed batch, runs the shared encoder once, computes every task's loss on it, combines
them with the loss weighting and steps AdamW (separate encoder and head learning rates, linear
warm-up then linear decay). Evaluation, checkpoints, early stopping and live plots hang on the
loop through callbacks and a few config switches.

Reproducibility: the group choice at step ``s`` is a function of (seed, s), each group's batch
order is a function of (seed, group, epoch), and the torch random state (dropout) is saved in
every checkpoint — so training N steps, saving, and training N more in a fresh process gives
the same weights as 2N steps in one go. Taught in ``notebooks/04_single_task_training.ipynb``
and ``05_multi_task_training.ipynb``.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .data import Collator, length_bucketed_batches
from .distributed import DistributedContext
from .evaluation import evaluate
from .history import History
from .sampling import SAMPLERS, make_sampler
from .weighting import WEIGHTINGS, make_weighting

__all__ = ["Trainer", "TrainerConfig", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """A task's loss, or the gradient, became NaN or infinite; the message names the task(s) and step."""


_OPTION_TYPES = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,)}


@dataclass
class TrainerConfig:
    """Training options; every field is saved with each checkpoint.

    Defaults suit a small pretrained encoder (MiniLM-L6) on a CPU: heads learn much faster
    than the encoder, hence ``classifier_lr`` 20x ``encoder_lr``.
    """

    encoder_lr: float = 5e-5
    classifier_lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs when set (optimiser steps)
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    grad_accum_steps: int = 1
    max_length: int = 128
    sampler: str = "proportional"
    temperature: float = 2.0  # for sampler "temperature"
    weighting: str = "static"
    bucketing: bool = True  # length-bucketed batches: much less padding than random batches
    eval_every: int | None = None  # steps between evaluations; None = once per epoch
    eval_batch_size: int = 64
    early_stopping_patience: int | None = None  # evaluations without improvement
    seed: int = 42
    bf16: bool | None = None  # None = bf16 autocast on CUDA only
    output_dir: str | None = None  # where best/ and last/ checkpoints go
    save_every: int | None = None  # steps between `last` checkpoints (plus one at the end)
    log_every: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):  # types first: "8.5" or "abc" from a task file must name the key
            v, (kind, _, optional) = getattr(self, f.name), str(f.type).partition(" | ")
            if v is None and optional == "None":
                continue
            if kind == "float" and isinstance(v, str):  # YAML reads 1e-4 (no dot) as a string
                try:
                    v = float(v)
                    setattr(self, f.name, v)
                except ValueError:
                    pass
            ok = isinstance(v, _OPTION_TYPES[kind]) and (kind == "bool" or not isinstance(v, bool))
            if not ok:
                what = {"float": "a number", "int": "an integer", "bool": "true or false"}.get(kind, "a string")
                raise ValueError(f"training option {f.name} must be {what}, got {v!r}")
        positive = ("encoder_lr", "classifier_lr", "batch_size", "epochs", "grad_accum_steps",
                    "max_length", "temperature", "eval_batch_size", "log_every")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"training option {f.name} must be finite, got {v}")
            if f.name in positive and v is not None and not v > 0:
                raise ValueError(f"training option {f.name} must be > 0, got {v}")
        for name in ("weight_decay", "warmup_ratio", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise ValueError(f"training option {name} must be >= 0, got {getattr(self, name)}")
        if not self.warmup_ratio < 1:
            raise ValueError(f"training option warmup_ratio must be < 1, got {self.warmup_ratio}")
        for name in ("max_steps", "eval_every", "early_stopping_patience", "save_every"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"training option {name} must be a positive integer, got {v!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}; choose one of {', '.join(WEIGHTINGS)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training option {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**d)


class Trainer:
    """Train a ``MultiTaskModel`` on input groups (see ``task_data.build_groups``).

    Parameters
    ----------
    model : MultiTaskModel
    groups : list of InputGroup
        Encoded ``train`` (and ``dev``) splits; tasks in one group share batches.
    config : TrainerConfig or dict, optional
    callbacks : list, optional
        Objects with any of ``on_fit_start(trainer)``, ``on_step_end(trainer, record)``,
        ``on_evaluate(trainer, metrics)``, ``on_fit_end(trainer, history)``. Setting
        ``trainer.should_stop = True`` from a callback ends training cleanly.
    """

    def __init__(self, model, groups, config: TrainerConfig | dict | None = None,
                 callbacks: list | None = None, **overrides) -> None:
        cfg = config if isinstance(config, TrainerConfig) else TrainerConfig.from_dict(dict(config or {}))
        self.config = TrainerConfig.from_dict({**asdict(cfg), **overrides}) if overrides else cfg
        # checked here, not in TrainerConfig: a task file's training: section has no output_dir
        # (the CLI's --out adds it); without one `last/` would land in the working directory
        if self.config.save_every and not self.config.output_dir:
            raise ValueError("training option save_every needs output_dir (where to write the checkpoints)")
        self.model, self.groups = model, [g for g in groups if g.splits.get("train")]
        if not self.groups:
            raise ValueError("no input group has training examples")
        self.callbacks = list(callbacks or [])
        self.history = History()
        self.dist = DistributedContext.from_env()
        self.device = self.dist.device
        self.should_stop = False
        self.step = 0
        c = self.config
        static = {t.name: t.loss_weight for g in self.groups for t in g.tasks}
        self.weighting = make_weighting(c.weighting, list(static), static)
        self._collate = Collator(pad_token_id=model.encoder.tokenizer.pad_token_id or 0,
                                 padding_side=model.encoder.tokenizer.padding_side)
        self._lengths = [[len(f["input_ids"]) for f in g.splits["train"]] for g in self.groups]
        n_batches = [math.ceil(len(n) / c.batch_size) for n in self._lengths]
        self.steps_per_epoch = max(1, math.ceil(sum(n_batches) / c.grad_accum_steps))
        self.total_steps = c.max_steps or max(1, math.ceil(c.epochs * self.steps_per_epoch))
        self.sampler = make_sampler(c.sampler, n_batches, c.seed, self.total_steps * c.grad_accum_steps,
                                    c.temperature)
        self._pos = [[0, 0] for _ in self.groups]  # per group: [epoch, batch position]
        self._batches: dict[tuple[int, int], list[list[int]]] = {}
        self.best_score: float | None = None
        self._bad_evals = 0
        self.model.to(self.device)
        self._train_model = self.dist.wrap(self.model)
        enc_params, head_params = self.model.parameter_groups()
        self.optimizer = torch.optim.AdamW(
            [{"params": enc_params, "lr": c.encoder_lr, "name": "encoder"},
             {"params": head_params + list(self.weighting.parameters()), "lr": c.classifier_lr,
              "name": "heads"}],
            weight_decay=c.weight_decay,
            # the fused kernel updates all tensors at once; the default per-tensor loop cost a
            # third of a MiniLM step on CPU (bench/padding.py)
            fused=self.device.type in ("cpu", "cuda"),
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)

    # -- schedule and data ---------------------------------------------------------------
    def _lr_factor(self, step: int) -> float:
        """Linear warm-up to 1, then linear decay to 0 at ``total_steps``."""
        warm = int(self.config.warmup_ratio * self.total_steps)
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (self.total_steps - step) / max(1, self.total_steps - warm))

    def _group_batches(self, g: int, epoch: int) -> list[list[int]]:
        key = (g, epoch)
        if key not in self._batches:
            gen = torch.Generator().manual_seed(self.config.seed * 100_003 + g * 1009 + epoch)
            lengths, bs = self._lengths[g], self.config.batch_size
            if self.config.bucketing:
                batches = length_bucketed_batches(lengths, bs, gen)
            else:
                perm = torch.randperm(len(lengths), generator=gen).tolist()
                batches = [perm[i:i + bs] for i in range(0, len(perm), bs)]
            self._batches = {k: v for k, v in self._batches.items() if k[0] != g}
            self._batches[key] = batches
        return self._batches[key]

    def _next_batch(self, g: int) -> dict[str, Any]:
        epoch, pos = self._pos[g]
        batches = self._group_batches(g, epoch)
        if pos >= len(batches):
            epoch, pos = epoch + 1, 0
            batches = self._group_batches(g, epoch)
        self._pos[g] = [epoch, pos + 1]
        idx = self.dist.shard(batches[pos])  # each rank its part of the global batch
        return self._collate([self.groups[g].splits["train"][i] for i in idx])

    # -- the loop --------------------------------------------------------------------------
    def fit(self, resume_from: str | Path | None = None) -> History:
        """Train for ``total_steps`` optimiser steps (or until stopped); return the History."""
        from .checkpoint_io import restore_training

        if resume_from is not None:
            restore_training(self, resume_from)
        else:
            torch.manual_seed(self.config.seed)  # dropout stream; a resume restores its state
        c = self.config
        self.should_stop = False
        eval_every = c.eval_every or self.steps_per_epoch
        self._fire("on_fit_start", self)
        interrupted = _InterruptFlag()
        bar = tqdm(total=self.total_steps, initial=self.step, desc="training", unit="step",
                   disable=not c.progress or not self.dist.is_main)
        use_bf16 = c.bf16 if c.bf16 is not None else self.device.type == "cuda"
        self.model.train()
        with interrupted:
            while self.step < self.total_steps and not self.should_stop:
                t0 = time.perf_counter()
                task_losses, n_examples = self._train_step(use_bf16)
                dt = time.perf_counter() - t0
                self.step += 1
                bar.update(1)
                bar.set_postfix({t: f"{v:.3f}" for t, v in task_losses.items()})
                self._log(task_losses, n_examples / dt)
                if self.step % eval_every == 0 or self.step == self.total_steps:
                    self.evaluate_and_checkpoint()
                if c.save_every and self.step % c.save_every == 0:
                    self.save("last")
                if interrupted.flag:
                    bar.write(f"interrupted at step {self.step}: saving a resumable checkpoint")
                    self.should_stop = True
        bar.close()
        if c.output_dir:
            self.save("last")
        self._fire("on_fit_end", self, self.history)
        return self.history

    def _train_step(self, use_bf16: bool) -> tuple[dict[str, float], int]:
        c, sums, counts, n_examples = self.config, {}, {}, 0
        self.optimizer.zero_grad(set_to_none=True)
        for micro in range(c.grad_accum_steps):
            g = self.sampler.choose(self.step * c.grad_accum_steps + micro)
            batch = self._next_batch(g)
            tasks = self.groups[g].task_names
            n_examples += len(batch["input_ids"]) * self.dist.world_size
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = self._train_model(
                    batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device),
                    batch["token_type_ids"].to(self.device) if "token_type_ids" in batch else None,
                    tasks=tasks)
            labels = {t: v.to(self.device) for t, v in batch["labels"].items()}
            losses = self.model.compute_losses({t: v.float() for t, v in logits.items()}, labels)
            bad = {t: v.item() for t, v in losses.items() if not torch.isfinite(v)}
            for t, everywhere in zip(tasks, self.dist.any_each([t in bad for t in tasks])):
                if everywhere:  # on every rank, so that all of them stop at this step
                    raise TrainingDiverged(
                        f"loss of task {t!r} is {bad.get(t, 'not finite on another process')} at step "
                        f"{self.step + 1}; training stopped, the last saved checkpoint is intact "
                        "(try a lower learning rate)")
            for t, v in losses.items():
                sums[t] = sums.get(t, 0.0) + v.item()
                counts[t] = counts.get(t, 0) + 1
            (self.weighting.combine(losses) / c.grad_accum_steps).backward()
        # DDP averages the model's gradients; a learned weighting (uncertainty) sits outside it
        self.dist.average_gradients(list(self.weighting.parameters()))
        # A finite loss can still give NaN/inf gradients; stepping them would poison the weights
        # and the next checkpoint, so check before the step (the norm is clipping's by-product).
        params = [p for p in self.model.parameters() if p.grad is not None]
        if c.max_grad_norm:
            norm = torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm)
        else:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])) \
                if params else torch.zeros(())
        if not torch.isfinite(norm):
            raise TrainingDiverged(
                f"gradient norm is {norm.item()} at step {self.step + 1} (tasks {', '.join(map(repr, sums))}); "
                "training stopped, the last saved checkpoint is intact (try a lower learning rate)")
        self.optimizer.step()
        self._step_lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used, for the log
        self.scheduler.step()
        # each task's mean over the micro-batches it appeared in (not over all of them: with
        # several groups a task may be drawn for only some micro-batches of the step)
        means = {t: v / counts[t] for t, v in sums.items()}
        self.weighting.update(means)
        return means, n_examples

    def _log(self, task_losses: dict[str, float], samples_per_s: float) -> None:
        lr = self._step_lr  # not param_groups' value: the scheduler has already moved on to the next step
        for t, loss in task_losses.items():
            rec = {"kind": "train", "step": self.step, "epoch": self.step / self.steps_per_epoch,
                   "task": t, "loss": loss, "lr": lr, "samples_per_s": samples_per_s,
                   "weight": self.weighting.weights().get(t, 1.0)}
            self.history.append(rec)
            self._fire("on_step_end", self, rec)

    def evaluate(self, split: str = "dev") -> dict[str, dict[str, float]]:
        """Score every task on ``split``; ``{task: {metric: value}}``."""
        return evaluate(self.model, self.groups, split, self.config.eval_batch_size, self.device)

    def evaluate_and_checkpoint(self) -> dict[str, dict[str, float]]:
        metrics = self.evaluate("dev")
        if not metrics:
            return metrics
        for task, ms in metrics.items():
            for m, v in ms.items():
                self.history.append({"kind": "eval", "step": self.step, "split": "dev",
                                     "epoch": self.step / self.steps_per_epoch,
                                     "task": task, "metric": m, "value": v})
        score = primary_score(metrics, self.groups)
        if self.best_score is None or score > self.best_score:
            self.best_score, self._bad_evals = score, 0
            if self.config.output_dir:
                self.save("best")
        else:
            self._bad_evals += 1
            if self.config.early_stopping_patience and self._bad_evals >= self.config.early_stopping_patience:
                self.should_stop = True
        self._fire("on_evaluate", self, metrics)
        return metrics

    def save(self, name: str = "last", path: str | Path | None = None) -> Path | None:
        """Write a checkpoint to ``path`` or ``output_dir/name`` (rank 0 only)."""
        from .checkpoint_io import save_training

        target = Path(path) if path else Path(self.config.output_dir or ".") / name
        self.dist.barrier()
        out = save_training(self, target) if self.dist.is_main else None
        self.dist.barrier()
        return out

    def _fire(self, event: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(*args)


def primary_score(metrics: dict[str, dict[str, float]], groups) -> float:
    """Mean over tasks of each task's first metric: what "best" means for checkpoints."""
    vals = [metrics[t.name][t.metrics[0]] for g in groups for t in g.tasks
            if t.name in metrics and t.metrics[0] in metrics[t.name]]
    return sum(vals) / len(vals) if vals else float("-inf")


class _InterruptFlag:
    """During ``fit``, Ctrl-C / a kernel interrupt sets a flag: the loop finishes its step,
    saves and stops. A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.flag = False
        self._old = None

    def _handler(self, signum, frame) -> None:
        if self.flag:
            raise KeyboardInterrupt
        self.flag = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
