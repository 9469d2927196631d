"""``LiveDashboard``: live loss and dev-score curves and the run's internals (learning rate,
loss weights, sampler mix, task conflict); a Trainer callback that is also a widget."""

from __future__ import annotations

import time
from itertools import groupby
from types import SimpleNamespace

import numpy as np
from matplotlib.ticker import FuncFormatter, PercentFormatter

from ..training.history import History
from .plots import new_figure, task_colors
from .widget_utils import StaticSnapshot, W, image, png_bytes

__all__ = ["LiveDashboard"]


class LiveDashboard(StaticSnapshot, W.VBox):
    """Live loss and dev-score curves: a Trainer callback that is also a widget.

    Taught in ``notebooks/05_multi_task_training.ipynb``. Like d2l's progress board it
    buffers each task's losses and plots their mean every ``every_n`` records; losses and dev
    scores share one fractional-epoch axis. A second row shows the training internals the
    records carry: the learning rate, each task's loss weight (static, uncertainty, DWA), the
    sampler's cumulative mix of input groups and, with ``conflict_every``, the cosine between
    the tasks' encoder gradients. A redraw replaces the PNG of its own ``widgets.Image``, at
    most once per ``min_interval`` seconds (and ``redraw_every`` steps, if given);
    ``on_fit_end`` draws the final state and leaves it as a static PNG in the cell output.
    :meth:`figure` is the static fallback (and :func:`~mtl_lib.ui.plots.plot_training_internals`
    draws the internals from a saved ``history.json``). :meth:`replay` shows a finished run's
    stored history the same way (a run loaded instead of trained: ``cached_run`` calls it).

    Examples
    --------
    >>> board = LiveDashboard(every_n=5)  # doctest: +SKIP
    >>> display(board); Trainer(model, groups, callbacks=[board]).fit()  # doctest: +SKIP
    """

    def __init__(self, every_n: int = 5, min_interval: float = 0.5,
                 redraw_every: int | None = None, size: tuple[float, float] = (10, 3.6)):
        self.every_n, self.min_interval, self.redraw_every = every_n, min_interval, redraw_every
        self.size, self.redraws, self._replaying = size, 0, False
        self.image, self.status = image(), W.HTML("waiting for training to start")
        super().__init__([self.status, self.image])
        self._reset(None)

    def _reset(self, max_epoch: float | None) -> None:
        self._buf: dict[str, list[tuple[float, float]]] = {}  # task -> (epoch, loss) to average
        self.loss_points: dict[str, list[tuple[float, float]]] = {}  # task -> (epoch, mean loss)
        self.metric_points: dict[str, list[tuple[float, float]]] = {}  # task -> (epoch, score)
        self.metric_names: dict[str, str] = {}
        self.lr_points: list[tuple[float, float]] = []  # (epoch, encoder learning rate), per step
        self.weight_points: dict[str, list[tuple[float, float]]] = {}  # task -> (epoch, weight)
        self.mix_points: dict[str, list[tuple[float, float]]] = {}  # group -> (epoch, share so far)
        self.conflict_points: dict[str, list[tuple[float, float]]] = {}  # "a / b" -> (epoch, cos)
        self._step_tasks: list[str] = []  # tasks logged in the current step: its input group
        self._draws: dict[str, int] = {}
        self._seen = 0  # history records already scanned for conflict rows
        self.max_epoch, self._dirty, self._last, self._last_step, self._cost = \
            max_epoch, False, 0.0, 0, 0.0

    def on_fit_start(self, trainer) -> None:
        self._reset(trainer.total_steps / trainer.steps_per_epoch)
        self.status.value = f"training: 0 / {trainer.total_steps} steps"

    def on_step_end(self, trainer, record: dict) -> None:
        buf = self._buf.setdefault(record["task"], [])
        buf.append((record["epoch"], record["loss"]))
        if len(buf) >= self.every_n:
            self._flush(record["task"])
        if "lr" in record and (not self.lr_points or self.lr_points[-1][0] != record["epoch"]):
            self.lr_points.append((record["epoch"], record["lr"]))
        if "weight" in record:
            self.weight_points.setdefault(record["task"], []).append((record["epoch"], record["weight"]))
        self._step_tasks.append(record["task"])
        self._maybe_redraw(trainer)

    def on_batch_end(self, trainer) -> None:
        """After each step: the sampler's mix so far, and any new task-conflict rows."""
        epoch = trainer.step / trainer.steps_per_epoch
        if self._step_tasks:  # a joint batch logs each of its tasks: one draw of "intent+slots"
            group = "+".join(dict.fromkeys(self._step_tasks))
            self._draws[group] = self._draws.get(group, 0) + 1
            total = sum(self._draws.values())
            for g, n in self._draws.items():
                self.mix_points.setdefault(g, []).append((epoch, n / total))
            self._step_tasks = []
        records = trainer.history.records
        self._seen = min(self._seen, len(records))  # a resumed trainer has a new History
        for r in records[self._seen:]:
            if r.get("kind") == "conflict":
                self.conflict_points.setdefault(" / ".join(r["tasks"]), []).append((r["epoch"], r["cosine"]))
                self._dirty = True
        self._seen = len(records)

    def on_evaluate(self, trainer, metrics: dict[str, dict[str, float]]) -> None:
        for task, scores in metrics.items():
            if scores:  # a task's first metric is its primary one (checkpoint selection)
                self.metric_names[task], value = next(iter(scores.items()))
                self.metric_points.setdefault(task, []).append(
                    (trainer.step / trainer.steps_per_epoch, float(value)))
                self._dirty = True
        self._maybe_redraw(trainer)

    def on_fit_end(self, trainer, history=None) -> None:
        for task in list(self._buf):
            self._flush(task)
        self._maybe_redraw(trainer, force=True)
        stopped = " (stopped early)" if trainer.step < trainer.total_steps else ""
        self.status.value = f"done: {trainer.step} / {trainer.total_steps} steps{stopped}"
        self.refresh_snapshot()

    def replay(self, history) -> None:
        """Show a finished run from its stored history, as if it had been watched live.

        A run loaded from disk (``History.from_json``, or the lessons' cache) was never
        trained here, so no callback fired. This feeds the history's records, step by step,
        through the same callbacks training would have called (train rows to
        :meth:`on_step_end`, each evaluation's rows to :meth:`on_evaluate`, then
        :meth:`on_batch_end`, which reads the task-conflict rows), and draws the result once.

        Parameters
        ----------
        history : History or list of dict
            The records of a run (``kind`` train / eval / conflict rows with ``step`` and
            ``epoch``); the run is taken to have ended at its last training step.
        """
        records = [r for r in getattr(history, "records", history) if "step" in r]
        train = [r for r in records if r.get("kind") == "train"]
        if not train:
            self.status.value = "nothing to show: the history has no training rows"
            return
        total = max(r["step"] for r in train)
        # steps per epoch, from any row whose epoch is known (every row has step / spe)
        spe = next((r["step"] / r["epoch"] for r in records if r.get("epoch")), float(total))
        run = SimpleNamespace(step=0, total_steps=total, steps_per_epoch=spe, history=History())
        self._replaying = True  # no redraw per step: one drawing at the end
        try:
            self.on_fit_start(run)
            for step, rows in groupby(records, key=lambda r: r["step"]):
                run.step = step
                metrics: dict[str, dict[str, float]] = {}
                for r in rows:
                    run.history.append(r)
                    if r.get("kind") == "train":
                        self.on_step_end(run, r)
                    elif r.get("kind") == "eval" and r.get("split", "dev") == "dev":
                        metrics.setdefault(r["task"], {})[r["metric"]] = r["value"]
                if metrics:
                    self.on_evaluate(run, metrics)
                self.on_batch_end(run)
            for task in list(self._buf):
                self._flush(task)
        finally:
            self._replaying = False
        self._maybe_redraw(run, force=True)
        self.status.value = (f"loaded: {total} / {total} steps (a stored run, trained earlier; "
                             "its history drawn as it would have been live)")
        self.refresh_snapshot()

    def snapshot(self) -> bytes | None:
        """The PNG on show (the static picture a saved notebook keeps)."""
        return bytes(self.image.value) or None

    def _flush(self, task: str) -> None:
        epoch, loss = np.mean(self._buf.pop(task), axis=0)
        self.loss_points.setdefault(task, []).append((float(epoch), float(loss)))
        self._dirty = True

    def _maybe_redraw(self, trainer, force: bool = False) -> None:
        # Throttled: at most once per min_interval (and redraw_every steps), and drawing
        # (~0.2-0.5 s on a busy CPU) never takes more than a third of the training time.
        start = time.monotonic()
        due = start - self._last >= max(self.min_interval, 2 * self._cost) and \
            (self.redraw_every is None or trainer.step - self._last_step >= self.redraw_every)
        if self._replaying or not (self._dirty and (force or due)):
            return
        self.image.value = png_bytes(self.figure())
        self.redraws, self._dirty, self._last_step = self.redraws + 1, False, trainer.step
        self._last = time.monotonic()
        self._cost = self._last - start
        losses = ", ".join(f"{t} {p[-1][1]:.3f}" for t, p in self.loss_points.items())
        lr = f" &middot; lr {self.lr_points[-1][1]:.2g}" if self.lr_points else ""
        self.status.value = (f"step {trainer.step} / {trainer.total_steps} &middot; epoch "
                             f"{trainer.step / trainer.steps_per_epoch:.2f} &middot; {losses}{lr}")

    def figure(self):
        """The current curves as a Figure (shows as PNG in a notebook, no widgets needed).

        Top: losses and dev scores; below, when the records carry them, the internals.
        """
        fig = new_figure(*self.size) if not self.lr_points else \
            new_figure(self.size[0], 2 * self.size[1] + 0.3)
        top, bottom = (fig, None) if not self.lr_points else fig.subfigures(2, 1, hspace=0.04)
        ax_loss, ax_dev = top.subplots(1, 2, sharex=True)
        colors = task_colors(sorted(set(self.loss_points) | set(self.metric_points)))
        for task, pts in sorted(self.loss_points.items()):
            ax_loss.plot(*zip(*pts), marker="." if len(pts) < 40 else None, color=colors[task],
                         label=task)
        for task, pts in sorted(self.metric_points.items()):
            ax_dev.plot(*zip(*pts), "--o", ms=4, color=colors[task],
                        label=f"{task}: {self.metric_names[task]}")
        ax_loss.set(title=f"Training loss (mean of every {self.every_n} steps)", xlabel="epoch",
                    ylabel="loss")
        ax_dev.set(title="Dev score (each task's first metric)", xlabel="epoch", ylim=(0, 1.02))
        ax_dev.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        axes = [(ax_loss, "training loss"), (ax_dev, "dev evaluation")]
        if bottom is not None:
            axes += self._draw_internals(bottom, colors)
        for ax, what in axes:
            if self.max_epoch:
                ax.set_xlim(0, self.max_epoch)  # a fixed axis: curves grow, never rescale
            ax.grid(alpha=0.3)
            if ax.lines:  # below the axes: never over a curve
                ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2),
                          ncols=2, frameon=False)
            else:
                ax.text(0.5, 0.5, f"no {what} yet", ha="center", va="center",
                        transform=ax.transAxes, color="0.5")
        return fig

    def _draw_internals(self, sub, colors: dict) -> list:
        """Learning rate, loss weights, cumulative sampler mix (and task conflict) in ``sub``."""
        axs = sub.subplots(1, 4 if self.conflict_points else 3)
        axs[0].plot(*zip(*self.lr_points), color="tab:purple", lw=2, label="encoder")
        axs[0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
        axs[0].set(title="Learning rate (encoder)", xlabel="epoch")
        own = task_colors(sorted(set(self.weight_points) | set(self.mix_points)))
        for task, pts in sorted(self.weight_points.items()):
            axs[1].plot(*zip(*pts), color=colors.get(task, own[task]), lw=2, label=task)
        axs[1].set(title="Loss weight per task", xlabel="epoch")
        axs[1].set_ylim(bottom=0)
        for group, pts in sorted(self.mix_points.items()):
            axs[2].plot(*zip(*pts), color=colors.get(group, own[group]), lw=2, label=group)
        axs[2].set(title="Sampler mix so far", xlabel="epoch", ylim=(0, 1.02))
        axs[2].yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        out = [(axs[0], "learning rate"), (axs[1], "loss weights"), (axs[2], "sampler mix")]
        if self.conflict_points:
            pair_colors = task_colors(self.conflict_points)
            axs[3].axhline(0, color="0.4", lw=1)
            for pair, pts in self.conflict_points.items():
                axs[3].plot(*zip(*pts), "-o", ms=3, color=pair_colors[pair], label=pair)
            axs[3].set(title="Task conflict (gradient cosine)", xlabel="epoch", ylim=(-1.05, 1.05))
            out.append((axs[3], "task conflict"))
        return out
