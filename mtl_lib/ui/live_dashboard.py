"""``LiveDashboard``: live loss and dev-score curves, a Trainer callback that is also a widget."""

from __future__ import annotations

import time

import numpy as np
from matplotlib.ticker import PercentFormatter

from .plots import new_figure, task_colors
from .widget_utils import W, image, png_bytes

__all__ = ["LiveDashboard"]


class LiveDashboard(W.VBox):
    """Live loss and dev-score curves: a Trainer callback that is also a widget.

    Taught in ``notebooks/05_multi_task_training.ipynb``. Like d2l's progress board it
    buffers each task's losses and plots their mean every ``every_n`` records; losses and dev
    scores share one fractional-epoch axis. A redraw replaces the PNG of its own
    ``widgets.Image``, at most once per ``min_interval`` seconds (and ``redraw_every`` steps,
    if given); ``on_fit_end`` draws the final state. :meth:`figure` is the static fallback.

    Examples
    --------
    >>> board = LiveDashboard(every_n=5)  # doctest: +SKIP
    >>> display(board); Trainer(model, groups, callbacks=[board]).fit()  # doctest: +SKIP
    """

    def __init__(self, every_n: int = 5, min_interval: float = 0.5,
                 redraw_every: int | None = None, size: tuple[float, float] = (10, 3.6)):
        self.every_n, self.min_interval, self.redraw_every = every_n, min_interval, redraw_every
        self.size, self.redraws = size, 0
        self.image, self.status = image(), W.HTML("waiting for training to start")
        super().__init__([self.status, self.image])
        self._reset(None)

    def _reset(self, max_epoch: float | None) -> None:
        self._buf: dict[str, list[tuple[float, float]]] = {}  # task -> (epoch, loss) to average
        self.loss_points: dict[str, list[tuple[float, float]]] = {}  # task -> (epoch, mean loss)
        self.metric_points: dict[str, list[tuple[float, float]]] = {}  # task -> (epoch, score)
        self.metric_names: dict[str, str] = {}
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
        self._maybe_redraw(trainer)

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
        if not (self._dirty and (force or due)):
            return
        self.image.value = png_bytes(self.figure())
        self.redraws, self._dirty, self._last_step = self.redraws + 1, False, trainer.step
        self._last = time.monotonic()
        self._cost = self._last - start
        losses = ", ".join(f"{t} {p[-1][1]:.3f}" for t, p in self.loss_points.items())
        self.status.value = (f"step {trainer.step} / {trainer.total_steps} &middot; epoch "
                             f"{trainer.step / trainer.steps_per_epoch:.2f} &middot; {losses}")

    def figure(self):
        """The current curves as a Figure (shows as PNG in a notebook, no widgets needed)."""
        fig = new_figure(*self.size)
        ax_loss, ax_dev = fig.subplots(1, 2, sharex=True)
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
        if self.max_epoch:
            ax_loss.set_xlim(0, self.max_epoch)  # a fixed axis: curves grow, never rescale
        for ax, what in ((ax_loss, "training loss"), (ax_dev, "dev evaluation")):
            ax.grid(alpha=0.3)
            if ax.lines:  # below the axes: never over a curve
                ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2),
                          ncols=2, frameon=False)
            else:
                ax.text(0.5, 0.5, f"no {what} yet", ha="center", va="center",
                        transform=ax.transAxes, color="0.5")
        return fig


