"""The multi-task training loop: one plain ``fit`` loop that fires events.

Each optimiser step draws an input group from the task sampler, takes that group's next
length-bucketed batch, runs the shared encoder once, computes every task's loss on it, combines
them with the loss weighting and steps AdamW (separate encoder and head learning rates, linear
warm-up then linear decay). Everything else — evaluation, checkpoints, early stopping, live
plots — is a callback (:mod:`mtl_lib.training.callbacks`).

Reproducibility: the group choice at step ``s`` is a function of (seed, s), each group's batch
order is a function of (seed, group, epoch), and the torch random state (dropout) is part of
:meth:`Trainer.state_dict` — so training N steps, saving, and training N more in a fresh process
gives the same weights as 2N steps in one go. Taught in
``notebooks/04_single_task_training.ipynb`` and ``05_multi_task_training.ipynb``.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data.batching import Collator, length_bucketed_batches
from ..evaluation.evaluate import evaluate
from ..models.devices import autocast_dtype
from .callbacks import Callback, CheckpointCallback, EarlyStopping, EvaluationCallback
from .checkpoint import restore_training, save_training
from .config import TrainerConfig
from .conflict import GradientConflict
from .distributed import DistributedContext
from .history import History
from .loggers import make_loggers
from .sampling import make_sampler
from .weighting import make_weighting

__all__ = ["Trainer", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """A task's loss, or the gradient, became NaN or infinite; the message names the task(s) and step."""


class Trainer:
    """Train a ``MultiTaskModel`` on input groups (see :func:`mtl_lib.experiment.build_groups`).

    Parameters
    ----------
    model : MultiTaskModel
    groups : list of InputGroup
        Encoded ``train`` (and ``dev``) splits; tasks in one group share batches.
    config : TrainerConfig or dict, optional
    callbacks : list of Callback, optional
        Run after the standard ones (evaluation, checkpoints, early stopping), see
        :mod:`mtl_lib.training.callbacks`. A callback may be any object with some of the
        event methods.
    **overrides
        Training options that replace the config's (``max_steps=4``).
    """

    def __init__(self, model, groups, config: TrainerConfig | dict | None = None,
                 callbacks: list | None = None, **overrides) -> None:
        cfg = config if isinstance(config, TrainerConfig) else TrainerConfig.from_dict(dict(config or {}))
        self.config = c = cfg.replace(**overrides) if overrides else cfg
        # a task file's training: section has no output_dir (the CLI's --out adds it); without
        # one `last/` would land in the working directory
        if c.save_every and not c.output_dir:
            raise ValueError("training options: save_every needs output_dir (where to write the checkpoints)")
        if c.report_to and not c.output_dir:
            raise ValueError("training options: report_to needs output_dir (where the logs go)")
        self.model, self.groups = model, [g for g in groups if g.splits.get("train")]
        if not self.groups:
            raise ValueError("no input group has training examples")
        self.tasks = [t for g in self.groups for t in g.tasks]
        self.dist = DistributedContext.from_env(c.device)
        self.device = self.dist.device
        # mixed precision: a float16 autocast needs the gradient scaler; otherwise it passes through
        self.autocast_dtype = autocast_dtype(self.device, c.bf16, c.fp16)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        self.history, self.step, self.should_stop = History(), 0, False
        self._window = _LogWindow()
        self.weighting = make_weighting(c.weighting, [t.name for t in self.tasks],
                                        {t.name: t.loss_weight for t in self.tasks})
        self.collate = Collator.for_tokenizer(model.encoder.tokenizer,
                                              {t.name: model.types[t.name].label_kind for t in self.tasks})
        self._lengths = [[len(f["input_ids"]) for f in g.splits["train"]] for g in self.groups]
        n_batches = [math.ceil(len(n) / c.batch_size) for n in self._lengths]
        self.steps_per_epoch = max(1, math.ceil(sum(n_batches) / c.grad_accum_steps))
        self.total_steps = c.max_steps or max(1, math.ceil(c.epochs * self.steps_per_epoch))
        self.sampler = make_sampler(c.sampler, n_batches, c.seed, self.total_steps * c.grad_accum_steps,
                                    c.temperature)
        self._pos = [[0, 0] for _ in self.groups]  # per group: [epoch, batch position]
        self._batches: dict[tuple[int, int], list[list[int]]] = {}
        self.model.set_class_weights({t.name: model.types[t.name].class_weights(g.splits["train"])
                                      for g in self.groups for t in g.tasks})
        self.model.to(self.device)
        self._train_model = self.dist.wrap(self.model)
        enc_params, head_params = self.model.parameter_groups()
        groups = self._encoder_groups(enc_params) + [{"params": head_params, "lr": c.classifier_lr, "name": "heads"}]
        schedules = [self._lr_factor] * len(groups)
        if list(self.weighting.parameters()):
            # learned loss weights (uncertainty's log-variances) track the losses: no weight decay
            # pulling them to 0, and a constant rate, so they reach their optimum 1/(2L)
            groups.append({"params": list(self.weighting.parameters()), "lr": c.weighting_lr,
                           "weight_decay": 0.0, "name": "weighting"})
            schedules.append(_constant)
        self.optimizer = torch.optim.AdamW(
            groups, weight_decay=c.weight_decay,
            # the fused kernel updates all tensors at once; the default per-tensor loop cost a
            # third of a MiniLM step on CPU (bench/padding.py)
            fused=self.device.type in ("cpu", "cuda"),
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedules)
        self.callbacks: list = [EvaluationCallback(c.eval_every or self.steps_per_epoch)]
        if c.conflict_every:  # before checkpoints save the step; when off, not even added
            self.callbacks.append(GradientConflict(c.conflict_every))
        if c.output_dir:
            self.callbacks.append(CheckpointCallback(c.output_dir, c.save_every))
        if c.early_stopping_patience:
            self.callbacks.append(EarlyStopping(c.early_stopping_patience))
        self.callbacks += make_loggers(c.report_to, c.output_dir) if c.report_to else []
        self.callbacks += list(callbacks or [])

    def _encoder_groups(self, enc_params: list[torch.nn.Parameter]) -> list[dict[str, Any]]:
        """The encoder's optimiser groups: one at ``encoder_lr``, or with ``layer_lr_decay`` < 1
        one per depth, the top layer at ``encoder_lr`` and each one below at ``layer_lr_decay``
        times the rate above it (the embeddings lowest): layers near the input hold the most
        general features, so fine-tuning moves them least."""
        c = self.config
        if c.layer_lr_decay == 1.0:
            return [{"params": enc_params, "lr": c.encoder_lr, "name": "encoder"}]
        by_depth = self.model.encoder.parameters_by_depth()
        top = len(by_depth) - 1
        # the top group first: the log reports param_groups[0]'s rate as the encoder's
        return [{"params": by_depth[d], "lr": c.encoder_lr * c.layer_lr_decay ** (top - d),
                 "name": "encoder" if d == top else f"encoder.depth{d}"} for d in range(top, -1, -1)]

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, resume_from: str | Path | None = None) -> History:
        """Train for ``total_steps`` optimiser steps (or until stopped); return the History."""
        if resume_from is not None:
            restore_training(self, resume_from)
        elif self.step == 0:  # a new run; a resumed or continued one has its random state already
            torch.manual_seed(self.config.seed)  # dropout stream
        self.should_stop = False
        try:
            self.fire("on_fit_start")
            bar = tqdm(total=self.total_steps, initial=self.step, desc="training", unit="step",
                       disable=not self.config.progress or not self.dist.is_main)
            self.model.train()
            with _InterruptFlag() as interrupted:
                while self.step < self.total_steps and not self.should_stop:
                    t0 = time.perf_counter()
                    losses, n_examples = self.train_step()
                    self.step += 1
                    self._window.add(losses, n_examples, time.perf_counter() - t0)
                    if self.step % self.config.log_every == 0 or self.step == self.total_steps:
                        bar.set_postfix({t: f"{v:.3f}" for t, v in self._log().items()})
                    bar.update(1)
                    self.fire("on_batch_end")
                    if interrupted.flag:
                        bar.write(f"interrupted at step {self.step}: saving a resumable checkpoint")
                        self.should_stop = True
            self._log()  # stopped early: the steps since the last row
            bar.close()
            self.fire("on_fit_end", self.history)
        finally:  # also after an error: callbacks release the run directory's lock, close files
            self.fire("on_fit_exit")
        return self.history

    def train_step(self) -> tuple[dict[str, float], int]:
        """One optimiser step (``grad_accum_steps`` micro-batches); each task's mean loss."""
        c, sums, counts, n_examples = self.config, {}, {}, 0
        self.optimizer.zero_grad(set_to_none=True)
        for micro in range(c.grad_accum_steps):
            g = self.sampler.choose(self.step * c.grad_accum_steps + micro)
            tasks = self.groups[g].task_names
            # input_ids, attention_mask (B, T); labels {task: (B,) class | (B, T) token | (B, C) multi}
            batch = self.next_batch(g)
            n_examples += len(batch["input_ids"]) * self.dist.world_size
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                enabled=self.autocast_dtype is not None):
                logits = self._train_model(  # {task: (B, C) or (B, T, C)}
                    batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device),
                    batch["token_type_ids"].to(self.device) if "token_type_ids" in batch else None,
                    tasks=tasks)
            labels = {t: v.to(self.device) for t, v in batch["labels"].items()}
            losses = self.model.compute_losses({t: v.float() for t, v in logits.items()}, labels)  # {task: ()}
            self._check_finite(tasks, losses)
            for t, v in losses.items():
                sums[t] = sums.get(t, 0.0) + v.item()
                counts[t] = counts.get(t, 0) + 1
            self.scaler.scale(self.weighting.combine(losses) / c.grad_accum_steps).backward()
        # DDP averages the model's gradients; a learned weighting (uncertainty) sits outside it
        self.dist.average_gradients(list(self.weighting.parameters()))
        self.scaler.unscale_(self.optimizer)  # fp16: back to true gradients before clipping
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm if c.max_grad_norm else math.inf)
        # A finite loss can still give NaN/inf gradients; stepping them would poison the weights
        # and the next checkpoint, so check before the step (the norm is clipping's by-product).
        # Under fp16 an overflow is routine: the scaler skips that step and lowers its scale.
        if not torch.isfinite(norm) and not self.scaler.is_enabled():
            raise TrainingDiverged(
                f"gradient norm is {norm.item()} at step {self.step + 1} (tasks {', '.join(map(repr, sums))}); "
                "training stopped, the last saved checkpoint is intact (try a lower learning rate)")
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._step_lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used, for the log
        if self.scaler.get_scale() >= scale:  # not a step the fp16 scaler skipped
            self.scheduler.step()
        # each task's mean over the micro-batches it appeared in (with several groups a task may
        # be drawn for only some micro-batches of the step)
        means = {t: v / counts[t] for t, v in sums.items()}
        self.weighting.update(means)
        return means, n_examples

    def _check_finite(self, tasks: list[str], losses: dict[str, torch.Tensor]) -> None:
        bad = {t: v.item() for t, v in losses.items() if not torch.isfinite(v)}
        for t, everywhere in zip(tasks, self.dist.any_each([t in bad for t in tasks])):
            if everywhere:  # on every rank, so that all of them stop at this step
                raise TrainingDiverged(
                    f"loss of task {t!r} is {bad.get(t, 'not finite on another process')} at step "
                    f"{self.step + 1}; training stopped, the last saved checkpoint is intact "
                    "(try a lower learning rate)")

    def _log(self) -> dict[str, float]:
        """One History row per task for the steps since the last row (``log_every`` of them, or
        fewer at the end): each task's mean loss over the steps it was trained in."""
        losses, samples_per_s = self._window.take()
        weights = self.weighting.weights()
        for t, loss in losses.items():
            rec = {"kind": "train", "step": self.step, "epoch": self.step / self.steps_per_epoch,
                   "task": t, "loss": loss, "lr": self._step_lr, "samples_per_s": samples_per_s,
                   "weight": weights.get(t, 1.0)}
            self.history.append(rec)
            self.fire("on_step_end", rec)
        return losses

    def fire(self, event: str, *args) -> None:
        """Call ``event(self, *args)`` on every callback that has it."""
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(self, *args)

    # -- schedule and data ---------------------------------------------------------------------
    def _lr_factor(self, step: int) -> float:
        """Linear warm-up to 1, then linear decay to 0 at ``total_steps`` (or constant)."""
        warm = int(self.config.warmup_ratio * self.total_steps)
        if step < warm:
            return (step + 1) / (warm + 1)
        if self.config.lr_schedule == "constant":
            return 1.0
        return max(0.0, (self.total_steps - step) / max(1, self.total_steps - warm))

    def group_batches(self, g: int, epoch: int) -> list[list[int]]:
        """Group ``g``'s batches (lists of example indices) in epoch ``epoch``, in training order."""
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

    def next_batch(self, g: int) -> dict[str, Any]:
        """Group ``g``'s next training batch, collated (a new epoch of it starts when it runs out)."""
        epoch, pos = self._pos[g]
        batches = self.group_batches(g, epoch)
        if pos >= len(batches):
            epoch, pos = epoch + 1, 0
            batches = self.group_batches(g, epoch)
        self._pos[g] = [epoch, pos + 1]
        idx = self.dist.shard(batches[pos])  # each rank its part of the global batch
        return self.collate([self.groups[g].splits["train"][i] for i in idx])

    # -- evaluation and state ------------------------------------------------------------------
    def evaluate(self, split: str = "dev") -> dict[str, dict[str, float]]:
        """Score every task on ``split``; ``{task: {metric: value}}``."""
        return evaluate(self.model, self.groups, split, self.config.eval_batch_size, self.device)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly, except the model's weights."""
        return {"step": self.step, "positions": [list(p) for p in self._pos],
                "torch_rng": torch.random.get_rng_state(), "scheduler": self.scheduler.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "weighting": {"tensors": self.weighting.state_dict(), "extra": self.weighting.extra_state()},
                "callbacks": {cb.name: cb.state_dict() for cb in self.callbacks if isinstance(cb, Callback)},
                "history": list(self.history.records)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (from this trainer's config and data)."""
        self.optimizer.load_state_dict(state["optimizer"])
        if state["weighting"]["tensors"]:
            self.weighting.load_state_dict(state["weighting"]["tensors"])
        self.weighting.load_extra_state(state["weighting"]["extra"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        torch.random.set_rng_state(state["torch_rng"])
        self.step, self._pos = state["step"], [list(p) for p in state["positions"]]
        for cb in self.callbacks:
            if isinstance(cb, Callback) and cb.name in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][cb.name])
        self.history = History(state["history"])

    def save(self, path: str | Path, resumable: bool = True, **run) -> Path | None:
        """Write a checkpoint to ``path`` (rank 0 only): resumable, or weights and config only.

        ``config.json`` records the step and epoch, and any ``run`` entries (e.g. ``dev_score``).
        """
        self.dist.barrier()
        out = None
        if self.dist.is_main:
            run = {"step": self.step, "epoch": self.step / self.steps_per_epoch} | run
            out = save_training(self, path, run) if resumable else \
                self.model.save_pretrained(path, training=self.config.to_dict(), run=run)
        self.dist.barrier()
        return out


def _constant(step: int) -> float:
    return 1.0


class _LogWindow:
    """Losses, examples and seconds of the steps since the last History row."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}  # task: [loss sum, steps]
        self.examples, self.seconds = 0, 0.0

    def add(self, losses: dict[str, float], examples: int, seconds: float) -> None:
        for t, v in losses.items():
            s = self.sums.setdefault(t, [0.0, 0])
            s[0], s[1] = s[0] + v, s[1] + 1
        self.examples, self.seconds = self.examples + examples, self.seconds + seconds

    def take(self) -> tuple[dict[str, float], float]:
        """({task: mean loss}, samples per second), and start a new window."""
        means = {t: total / n for t, (total, n) in self.sums.items()}
        rate = self.examples / self.seconds if self.seconds > 0 else 0.0
        self.__init__()
        return means, rate


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
