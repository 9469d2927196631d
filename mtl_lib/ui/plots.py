"""Static figures of a training run: losses, metrics, per-class scores, confusion matrix, and
the run's internals (learning rate, loss weights, sampler mix, task conflict).

Each function returns a :class:`matplotlib.figure.Figure` built without pyplot: no global state,
works headless, and (``_repr_png_``) shows as an image as the last value of a notebook cell even
if pyplot was never imported. Histories are ``trainer.History`` objects (read via ``.records``)
or plain lists of record dicts; this module never imports the trainer.
Taught in the notebooks on single-task and multi-task training and on metrics.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

__all__ = ["new_figure", "task_colors", "smooth", "plot_losses", "plot_metrics", "plot_per_class",
           "plot_confusion_matrix", "sampler_mix", "plot_sampler_mix", "plot_learning_rate",
           "plot_loss_weights", "plot_task_conflict", "plot_training_internals", "save_figure"]



def _pct() -> PercentFormatter:
    # values stay in [0, 1]; only the display is %. A formatter is bound to one axis: new each time
    # decimals=None picks enough decimals for the axis range (a 98.9-99.1% axis stays readable)
    return PercentFormatter(xmax=1.0, decimals=None)


class _Figure(Figure):
    """A Figure that renders itself as PNG in Jupyter without pyplot's inline backend."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def new_figure(width: float, height: float) -> Figure:
    """A Figure (no pyplot) that shows as PNG in a notebook."""
    return _Figure(figsize=(width, height), layout="constrained")


def _records(obj) -> list[dict]:
    """Records of a History-like object (``.records``) or a plain list of dicts."""
    recs = list(getattr(obj, "records", obj))
    if not all(isinstance(r, dict) for r in recs):
        raise TypeError("history records must be dicts (see trainer.History)")
    return recs


def _rows(recs: list[dict], kind: str) -> list[dict]:
    """Records of one kind sorted by step; hand-made records may omit "kind"."""
    rows = [r for r in recs if (r.get("kind") or ("eval" if "metric" in r else "train")) == kind]
    return sorted(rows, key=lambda r: r["step"])


def _names(x: str | Iterable[str]) -> list[str]:
    return [x] if isinstance(x, str) else list(x)


def _select(all_tasks: list[str], tasks: Iterable[str] | None) -> list[str]:
    tasks = all_tasks if tasks is None else _names(tasks)
    if unknown := [t for t in tasks if t not in all_tasks]:
        raise ValueError(f"unknown task(s) {unknown}; the history has {all_tasks}")
    return tasks


def _empty(fig: Figure, ax, what: str) -> Figure:
    ax.text(0.5, 0.5, f"no {what} yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def task_colors(tasks: Iterable[str]) -> dict[str, tuple]:
    """One colour per task, in the given order (tab10, or tab20 beyond ten tasks).

    The plots call it with the sorted task names of the whole history, so a task keeps its
    colour in every figure even when ``tasks=`` shows only some of them.
    """
    tasks = list(dict.fromkeys(tasks))
    cmap = colormaps["tab10" if len(tasks) <= 10 else "tab20"]
    return {t: cmap(i % cmap.N) for i, t in enumerate(tasks)}


def _history_colors(recs: list[dict]) -> dict[str, tuple]:
    # same colour whatever is shown; task-conflict rows name a pair, not one task
    return task_colors(sorted({r["task"] for r in recs if "task" in r}))


def _is_window(smoothing) -> bool:
    return isinstance(smoothing, (int, np.integer)) and not isinstance(smoothing, bool) \
        and smoothing >= 1


def smooth(values: Sequence[float], smoothing: float | int = 0.9) -> np.ndarray:
    """Smooth a noisy curve.

    Parameters
    ----------
    values : sequence of float, shape (N,)
    smoothing : float in [0, 1) or int >= 1
        A float is the factor ``beta`` of a bias-corrected exponential moving average (as in
        TensorBoard): ``s_t = sum_i beta**(t-i) x_i / sum_i beta**(t-i)``, so the first points
        are not pulled towards zero or towards ``x_0``. An int is the width of a trailing moving
        average (shorter at the start). ``0`` or ``1`` return the values unchanged.

    Returns
    -------
    np.ndarray, shape (N,)
    """
    x = np.asarray(values, dtype=float)
    if _is_window(smoothing):
        c = np.concatenate([[0.0], np.cumsum(x)])
        lo = np.maximum(np.arange(1, len(x) + 1) - smoothing, 0)
        return (c[1:] - c[lo]) / (np.arange(1, len(x) + 1) - lo)
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be an EMA factor in [0, 1) or an int window >= 1, "
                         f"got {smoothing!r}")
    out, num, den = np.empty_like(x), 0.0, 0.0
    for i, v in enumerate(x):
        num, den = smoothing * num + v, smoothing * den + 1.0
        out[i] = num / den
    return out


def _epoch_axis(ax, rows: list[dict]) -> None:
    """Add a top x axis in epochs, from a straight-line fit of epoch against step."""
    steps = np.array([r["step"] for r in rows], dtype=float)
    epochs = np.array([r.get("epoch", np.nan) for r in rows], dtype=float)
    ok = np.isfinite(epochs)
    if ok.sum() < 2 or np.ptp(steps[ok]) == 0:
        return
    a, b = np.polyfit(steps[ok], epochs[ok], 1)
    if a <= 0:
        return
    sec = ax.secondary_xaxis("top", functions=(lambda s: a * s + b, lambda e: (e - b) / a))
    sec.set_xlabel("epoch")


def plot_losses(history, smoothing: float | int = 0.9,
                tasks: Iterable[str] | None = None) -> Figure:
    """Training loss per task: raw (thin, translucent) and smoothed (thick) against step.

    Parameters
    ----------
    history : History or list of dict
    smoothing : float or int
        EMA factor or moving-average window, see :func:`smooth`.
    tasks : iterable of str, optional
        Tasks to show (default: all).
    """
    recs, fig = _records(history), new_figure(8, 4.5)
    ax, colors, train = fig.add_subplot(), _history_colors(recs), _rows(recs, "train")
    if not train:
        return _empty(fig, ax, "training records")
    trained = sorted({r["task"] for r in train})  # eval-only keys (joint scores) have no loss
    for task in _select(trained, tasks):
        rows = [r for r in train if r["task"] == task and np.isfinite(r["loss"])]
        steps, loss = [r["step"] for r in rows], [r["loss"] for r in rows]
        ax.plot(steps, loss, color=colors[task], lw=0.8, alpha=0.3)
        ax.plot(steps, smooth(loss, smoothing), color=colors[task], lw=2.2, label=task)
    how = f"mean of {smoothing}" if _is_window(smoothing) else f"EMA {smoothing}"
    ax.legend(title=f"smoothed ({how}); thin = raw", loc="upper right")
    ax.set(title="Training loss per task", xlabel="step", ylabel="loss")
    ax.grid(alpha=0.3)
    _epoch_axis(ax, train)
    return fig


def plot_metrics(history, tasks: Iterable[str] | None = None,
                 metrics: Iterable[str] | None = None) -> Figure:
    """Evaluation metrics against step, one subplot per task, y axis in %.

    Each curve is drawn in its task's colour, one line style per metric; the legend gives the
    best value reached.
    """
    recs = _records(history)
    evals = _rows(recs, "eval")
    if not evals:
        fig = new_figure(8, 4)
        return _empty(fig, fig.add_subplot(), "evaluation records")
    colors = _history_colors(recs)
    shown = _select(sorted({r["task"] for r in evals}), tasks)
    wanted = None if metrics is None else _names(metrics)
    ncols, nrows = min(len(shown), 3), -(-len(shown) // 3)
    fig = new_figure(4.2 * ncols + 0.6, 3.6 * nrows + 0.4)
    styles = ["-", "--", ":", "-."]
    for i, task in enumerate(shown):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        rows = [r for r in evals if r["task"] == task]
        names = list(dict.fromkeys(r["metric"] for r in rows))
        for j, m in enumerate(n for n in names if wanted is None or n in wanted):
            pts = [r for r in rows if r["metric"] == m]
            y = [r["value"] for r in pts]
            ax.plot([r["step"] for r in pts], y, styles[j % 4], marker="o", ms=4,
                    color=colors[task], label=f"{m} (best {max(y):.1%})")
        ax.yaxis.set_major_formatter(_pct())
        ax.set(title=task if len(shown) > 1 else f"Dev metrics: {task}", xlabel="step",
               ylabel="dev score" if i % ncols == 0 else None)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="best", fontsize="small")  # the emptiest corner: curves may fall
    if len(shown) > 1:
        fig.suptitle("Dev metrics")
    return fig


def plot_per_class(report: list[dict], metric: str | Sequence[str] = "f1", top: int | None = None,
                   sort_by: str | None = "f1", ascending: bool = False) -> Figure:
    """Horizontal bars of per-class scores, as returned by ``metrics.per_class_report``.

    Parameters
    ----------
    report : list of dict
        ``{"label", "precision", "recall", "f1", "support"}`` per class.
    metric : str or list of str
        ``"precision"``, ``"recall"``, ``"f1"``, a list of them, or ``"all"`` (grouped bars).
    top : int, optional
        Show only the first ``top`` classes after sorting (70+ classes stay readable).
    sort_by : str
        A report key (``"f1"``, ``"support"``, ``"label"``...) or ``None`` to keep the order.
    ascending : bool
        Sort ascending, e.g. ``top=10, ascending=True`` shows the ten worst classes.
    """
    metrics = ["precision", "recall", "f1"] if metric == "all" else _names(metric)
    rows = list(report)
    if sort_by is not None:
        rows.sort(key=lambda r: r[sort_by], reverse=not ascending)
    rows = rows[:top] if top else rows
    n, k = len(rows), len(metrics)
    fig = new_figure(8, max(2.5, 1.6 + n * (0.24 + 0.12 * (k - 1))))
    ax = fig.add_subplot()
    if not rows:
        return _empty(fig, ax, "classes")
    pos, h = np.arange(n), 0.8 / k  # k bars share each class's slot
    for j, m in enumerate(metrics):
        vals = [r[m] for r in rows]
        bars = ax.barh(pos + (j - (k - 1) / 2) * h, vals, height=h, label=m, color=f"C{j}")
        if k == 1:  # the value next to each bar; with grouped bars it would be clutter
            ax.bar_label(bars, labels=[f"{v:.0%}" for v in vals], padding=2, fontsize=8)
    ax.set_yticks(pos, [f"{r['label']} (n={r['support']})" for r in rows])
    ax.set_ylim(n - 0.5, -0.5)  # first row at the top, no empty margin on tall figures
    if n > 25:  # tall figure: repeat the score axis on top
        ax.tick_params(axis="x", top=True, labeltop=True)
    ax.set_xlim(0, 1.1)
    ax.xaxis.set_major_formatter(_pct())
    if k == 1:
        macro = float(np.mean([r[metrics[0]] for r in report]))
        ax.axvline(macro, color="0.3", ls="--", lw=1, label=f"macro {metrics[0]} {macro:.1%}")
    fig.legend(loc="outside lower center", ncols=4, fontsize="small")  # never over a bar
    shown = f"{n} of {len(report)} classes" if n < len(report) else f"{n} classes"
    ax.set(title=f"Per-class {', '.join(metrics)} ({shown})", xlabel="score")
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_confusion_matrix(matrix, labels: Sequence[str], normalize: bool = True,
                          max_labels: int = 30) -> Figure:
    """Heatmap of a confusion matrix (rows: true label, columns: predicted label).

    With ``normalize`` each row is divided by its total, so the diagonal is per-class recall.
    Beyond ``max_labels`` classes, the most frequent ``max_labels - 1`` are kept and the rest
    merged into one ``(other)`` row and column, so rows still sum to 1.
    Cells are annotated (percent or count) when at most 20 classes are shown.
    """
    m = np.asarray(matrix, dtype=float)
    labels = [str(x) for x in labels]
    if m.shape != (len(labels), len(labels)):
        raise ValueError(f"matrix shape {m.shape} does not match {len(labels)} labels")
    title, n_all = "Confusion matrix" + (" (row-normalised)" if normalize else ""), len(labels)
    if n_all > max_labels:
        keep = np.sort(np.argsort(-m.sum(axis=1), kind="stable")[: max_labels - 1])
        group = np.full(len(labels), len(keep))  # every other class -> the last group
        group[keep] = np.arange(len(keep))
        proj = np.eye(len(keep) + 1)[group]  # (n, k+1) one-hot class -> group
        m = proj.T @ m @ proj
        labels = [labels[i] for i in keep] + ["(other)"]
        title += f": {len(keep)} most frequent of {n_all} classes + (other)"
    if normalize:
        totals = m.sum(axis=1, keepdims=True)
        m = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    n = len(labels)
    side = max(4.5, 0.42 * n + 2.5)
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1 if normalize else max(m.max(), 1))
    cbar = fig.colorbar(im, ax=ax, shrink=0.8, format=_pct() if normalize else None)
    cbar.set_label("share of true class" if normalize else "count")
    if n <= 20:
        hi = im.norm.vmax * 0.6
        for (i, j), v in np.ndenumerate(m):
            if v:  # blank zeros keep the errors readable
                txt = (f"{v:.0%}" if v >= 0.005 else "<1%") if normalize else f"{v:.0f}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=8 if n > 10 else 9,
                        color="white" if v > hi else "black")
    ax.set_xticks(range(n), labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels)
    ax.tick_params(labelsize=8 if n > 12 else 9)
    ax.set(title=title, xlabel="predicted label", ylabel="true label")
    return fig


def sampler_mix(history) -> tuple[list[int], dict[str, np.ndarray]]:
    """Which input group each training step drew, as a one-hot table.

    Returns ``(steps, {group: (N,) 0/1})``; a group is named by its tasks (``"intent+slots"``:
    a joint batch logs a record per task but is one draw). Shares over time are means of the
    columns: ``np.cumsum(col) / np.arange(1, N + 1)`` is the cumulative mix.
    """
    by_step: dict[int, list[str]] = {}
    for r in _rows(_records(history), "train"):
        by_step.setdefault(r["step"], []).append(r["task"])
    steps = sorted(by_step)
    drawn = ["+".join(dict.fromkeys(by_step[s])) for s in steps]
    return steps, {g: np.array([d == g for d in drawn], dtype=float) for g in sorted(set(drawn))}


def plot_sampler_mix(history, window: int | None = 50) -> Figure:
    """Stacked area: share of each input group among the last ``window`` training steps, or
    since the start (``window=None``, the cumulative mix).

    Shows how the task sampler mixes tasks over time (proportional, temperature, annealed...).
    """
    recs, fig = _records(history), new_figure(8, 4)
    ax, colors, train = fig.add_subplot(), _history_colors(recs), _rows(recs, "train")
    if not train:
        return _empty(fig, ax, "training records")
    steps, onehot = sampler_mix(recs)
    groups = list(onehot)
    own = task_colors(groups)
    gcolors = {g: colors.get(g, own[g]) for g in groups}
    n = np.arange(1, len(steps) + 1)
    share = np.stack([np.cumsum(col) / n if window is None else smooth(col, int(window))
                      for col in onehot.values()])  # (K, N)
    labels = [f"{g} ({col.mean():.0%} overall)" for g, col in onehot.items()]
    ax.stackplot(steps, share, colors=[gcolors[g] for g in groups], labels=labels, alpha=0.85)
    ax.set_ylim(0, 1)
    if train[-1]["step"] > train[0]["step"]:  # no empty margins around the stack
        ax.set_xlim(train[0]["step"], train[-1]["step"])
    ax.yaxis.set_major_formatter(_pct())
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    what = "since the start" if window is None else f"last {window} training steps"
    ax.set(title=f"Task mix of the sampler ({what})", xlabel="step", ylabel="share of steps")
    _epoch_axis(ax, train)
    return fig


def plot_learning_rate(history) -> Figure:
    """Learning rate against step (one point per step), to check warm-up and decay."""
    fig = new_figure(7, 3.5)
    ax, train = fig.add_subplot(), _rows(_records(history), "train")
    if not train:
        return _empty(fig, ax, "training records")
    per_step = {r["step"]: r["lr"] for r in reversed(train)}  # first record of each step wins
    steps = sorted(per_step)
    ax.plot(steps, [per_step[s] for s in steps], color="tab:purple", lw=2)
    # tick labels like 2e-05: matplotlib's shared "1e-5" offset text collides with the epoch axis
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    ax.set(title="Learning rate schedule", xlabel="step", ylabel="learning rate")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _epoch_axis(ax, train)
    return fig


def _draw_weights(ax, recs: list[dict]) -> None:
    colors, train = _history_colors(recs), _rows(recs, "train")
    for task in sorted({r["task"] for r in train if "weight" in r}):
        rows = [r for r in train if r["task"] == task and "weight" in r]
        ax.plot([r["step"] for r in rows], [r["weight"] for r in rows], color=colors[task], lw=2,
                label=task)
    ax.set(title="Loss weight per task", xlabel="step", ylabel="weight")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small", loc="best")


def plot_loss_weights(history) -> Figure:
    """Each task's loss weight against step: constant for static and equal weighting, learned
    (uncertainty) or recomputed every window (DWA) for the adaptive ones."""
    fig = new_figure(7, 3.5)
    ax, recs = fig.add_subplot(), _records(history)
    if not _rows(recs, "train"):
        return _empty(fig, ax, "training records")
    _draw_weights(ax, recs)
    _epoch_axis(ax, _rows(recs, "train"))
    return fig


def _draw_conflict(ax, rows: list[dict]) -> None:
    pairs = list(dict.fromkeys(tuple(r["tasks"]) for r in rows))
    colors = task_colors(" / ".join(p) for p in pairs)
    ax.axhspan(-1.05, 0, color="#c62828", alpha=0.06, lw=0)  # below 0: the tasks conflict
    ax.axhline(0, color="0.4", lw=1)
    for pair in pairs:
        pts = [r for r in rows if tuple(r["tasks"]) == pair]
        name = " / ".join(pair)
        ax.plot([r["step"] for r in pts], [r["cosine"] for r in pts], marker="o" if len(pts) < 40 else None,
                ms=3, lw=1.8, color=colors[name], label=name)
    ax.set_ylim(-1.05, 1.05)
    ax.set(title="Task conflict: cosine of encoder gradients", xlabel="step", ylabel="cosine")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")


def plot_task_conflict(history) -> Figure:
    """Cosine similarity of each pair of tasks' gradients on the shared encoder against step
    (``conflict_every``; Yu et al. 2020). Below 0 (shaded) the tasks pull the encoder in
    opposite directions."""
    fig = new_figure(7, 3.8)
    ax, rows = fig.add_subplot(), _rows(_records(history), "conflict")
    if not rows:
        return _empty(fig, ax, "task-conflict records (set conflict_every)")
    _draw_conflict(ax, rows)
    _epoch_axis(ax, rows)
    return fig


def plot_training_internals(history) -> Figure:
    """The run's internals side by side: learning rate, loss weights, the sampler's cumulative
    mix and, when measured, the task conflict — what the live dashboard shows, after the run."""
    recs = _records(history)
    conflict = _rows(recs, "conflict")
    n = 4 if conflict else 3
    fig = new_figure(4.2 * n, 3.6)
    axes = fig.subplots(1, n)
    train = _rows(recs, "train")
    if not train:
        for ax in axes:
            _empty(fig, ax, "training records")
        return fig
    per_step = {r["step"]: r["lr"] for r in reversed(train) if "lr" in r}
    axes[0].plot(sorted(per_step), [per_step[s] for s in sorted(per_step)], color="tab:purple", lw=2)
    axes[0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    axes[0].set(title="Learning rate (encoder)", xlabel="step")
    axes[0].grid(alpha=0.3)
    _draw_weights(axes[1], recs)
    steps, onehot = sampler_mix(recs)
    own = task_colors(onehot)
    colors = _history_colors(recs)
    for g, col in onehot.items():
        axes[2].plot(steps, np.cumsum(col) / np.arange(1, len(col) + 1), lw=2, color=colors.get(g, own[g]),
                     label=g)
    axes[2].set(title="Sampler mix since the start", xlabel="step", ylim=(0, 1.02))
    axes[2].yaxis.set_major_formatter(_pct())
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize="small", loc="best")
    if conflict:
        _draw_conflict(axes[3], conflict)
        axes[3].set_title("Task conflict (gradient cosine)")
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` (format from the extension), creating parent folders; dpi 120, tight box."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path
