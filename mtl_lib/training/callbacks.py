"""Callbacks: what happens around the training loop — evaluation, checkpoints, early stopping.

The :class:`~mtl_lib.training.trainer.Trainer` only trains; it *fires events* and callbacks do
the rest. The events, in order::

    on_fit_start(trainer)
    on_step_end(trainer, record)     # once per task trained in the step (its loss record)
    on_batch_end(trainer)            # once per optimiser step, after the records
    on_evaluate(trainer, metrics)    # after an evaluation: {task: {metric: value}}
    on_fit_end(trainer, history)
    on_fit_exit(trainer)             # always, last: also when fit raised (release resources)

The trainer builds the three standard callbacks from its config (``eval_every``,
``output_dir``/``save_every``, ``early_stopping_patience``) and adds the user's after them; the
live dashboard (:class:`~mtl_lib.ui.live_dashboard.LiveDashboard`) is one such user callback.
Setting ``trainer.should_stop = True`` from any callback ends training after the current step.
A callback with state (the best score so far) gives it in ``state_dict()``, so resuming a run
restores it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .run_dir import RunLock, claim, new_run_id

__all__ = ["Callback", "CheckpointCallback", "EarlyStopping", "EvaluationCallback", "primary_score"]


class Callback:
    """Base class: every event does nothing; override the ones you need."""

    name = "callback"

    def on_fit_start(self, trainer) -> None: ...

    def on_step_end(self, trainer, record: dict) -> None: ...

    def on_batch_end(self, trainer) -> None: ...

    def on_evaluate(self, trainer, metrics: dict[str, dict[str, float]]) -> None: ...

    def on_fit_end(self, trainer, history) -> None: ...

    def on_fit_exit(self, trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def primary_score(metrics: dict[str, dict[str, float]], tasks) -> float:
    """Mean over tasks of each task's first metric: what "best" means for checkpoints."""
    vals = [metrics[t.name][t.metrics[0]] for t in tasks
            if t.name in metrics and t.metrics and t.metrics[0] in metrics[t.name]]
    return sum(vals) / len(vals) if vals else float("-inf")


class EvaluationCallback(Callback):
    """Score dev every ``every`` steps and at the last step; log it and fire ``on_evaluate``."""

    name = "evaluation"

    def __init__(self, every: int) -> None:
        self.every = every

    def on_batch_end(self, trainer) -> None:
        if trainer.step % self.every == 0 or trainer.step == trainer.total_steps:
            metrics = trainer.evaluate("dev")
            if metrics:
                trainer.history.log_evaluation(trainer.step, trainer.step / trainer.steps_per_epoch,
                                               "dev", metrics)
                trainer.fire("on_evaluate", metrics)


class CheckpointCallback(Callback):
    """Keep ``best/`` (weights and config, at the best dev score) and ``last/`` (resumable:
    weights, optimiser and trainer state) in ``output_dir``.

    ``last/`` is written every ``save_every`` steps (if given), when training ends and when it
    is interrupted; only ``last/`` carries optimiser state, so ``best/`` stays small.

    ``output_dir`` is a run directory (:mod:`mtl_lib.training.run_dir`): while ``fit`` runs this
    callback holds its lock, and when training starts it claims it for this run — the files of
    another run there are removed (only files mtl_lib wrote; anything else is refused). Every
    checkpoint's ``config.json`` names the run (``"run": {"run_id": ...}``); a resumed run keeps
    its id, and its ``best/``.
    """

    name = "checkpoint"

    def __init__(self, output_dir: str | Path, save_every: int | None = None) -> None:
        self.output_dir, self.save_every = Path(output_dir), save_every
        self.best_score: float | None = None
        self.run_id: str | None = None
        self._restored = False  # from a checkpoint: its run continues
        self._lock = RunLock(self.output_dir)

    def on_fit_start(self, trainer) -> None:
        if not trainer.dist.is_main:  # only rank 0 writes
            return
        self._lock.acquire()
        adopt = self.run_id is None and self._restored  # a run saved before run ids existed
        self.run_id = self.run_id or new_run_id()
        claim(self.output_dir, self.run_id, adopt_unmarked=adopt)

    def on_evaluate(self, trainer, metrics) -> None:
        score = primary_score(metrics, trainer.tasks)
        if self.best_score is None or score > self.best_score:
            self.best_score = score
            trainer.save(self.output_dir / "best", resumable=False, dev_score=score, run_id=self.run_id)

    def on_batch_end(self, trainer) -> None:
        if self.save_every and trainer.step % self.save_every == 0:
            trainer.save(self.output_dir / "last", run_id=self.run_id)

    def on_fit_end(self, trainer, history) -> None:
        trainer.save(self.output_dir / "last", run_id=self.run_id)

    def on_fit_exit(self, trainer) -> None:
        self._lock.release()

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best = state.get("best_score")
        self.best_score = None if best is None else float(best)
        run_id = state.get("run_id")
        self.run_id = run_id if isinstance(run_id, str) else None
        self._restored = True


class EarlyStopping(Callback):
    """Stop after ``patience`` evaluations in a row without a better primary dev score."""

    name = "early_stopping"

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_score: float | None = None
        self.bad_evals = 0

    def on_evaluate(self, trainer, metrics) -> None:
        score = primary_score(metrics, trainer.tasks)
        if self.best_score is None or score > self.best_score:
            self.best_score, self.bad_evals = score, 0
        else:
            self.bad_evals += 1
            if self.bad_evals >= self.patience:
                trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best = state.get("best_score")
        self.best_score = None if best is None else float(best)
        self.bad_evals = int(state.get("bad_evals", 0))
