"""``compare_runs``: several training runs in one table and one figure.

The table is :func:`mtl_lib.training.comparison.comparison_table` (each task metric, best and
last, the difference to the first run); the figure overlays the runs' training losses and
dev scores on one epoch axis, one colour per run, like TensorBoard's run overlay. The
experiment panel shows the same for the runs of a session; ``mtl-lib compare`` prints the
table.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from ..training.comparison import Run, comparison_table, describe_changes, format_comparison, read_run
from .plots import new_figure, smooth
from .widget_utils import CELL_STYLE, png_bytes

__all__ = ["RunComparison", "compare_runs", "plot_run_comparison"]


def _as_runs(runs: Iterable[str | Path | Run]) -> list[Run]:
    out = [r if isinstance(r, Run) else read_run(r) for r in runs]
    if not out:
        raise ValueError("no runs to compare")
    return out


def plot_run_comparison(runs: Iterable[str | Path | Run], smoothing: float = 0.9) -> Figure:
    """Each run's training loss (top row) and first dev metric (bottom row), one column per
    task, on one epoch axis; one colour per run, named in a legend below.

    Parameters
    ----------
    runs : run directories or :class:`~mtl_lib.training.comparison.Run` objects
    smoothing : float
        EMA factor of the loss curves (see :func:`mtl_lib.ui.plots.smooth`).
    """
    runs = _as_runs(runs)
    metric_of: dict[str, str] = {}  # task (or group) -> the metric shown: its first one
    for r in runs:
        for x in r.records:
            if x.get("kind") == "eval":
                metric_of.setdefault(x["task"], r.primary.get(x["task"], x["metric"]))
    # trained tasks in order of appearance, then joint scores of a group ("intent+slots")
    tasks = list(dict.fromkeys([x["task"] for r in runs for x in r.records if x.get("kind") == "train"]
                               + list(metric_of)))
    fig = new_figure(3.9 * max(len(tasks), 1) + 0.4, 6.4)
    axes = np.asarray(fig.subplots(2, max(len(tasks), 1), sharex=True, squeeze=False))
    cmap = colormaps["tab10"]
    labels = [f"{r.name} ({c})" if c != "same settings" and c != r.name else r.name
              for r, c in zip(runs, describe_changes(runs))]
    for j, task in enumerate(tasks):
        ax_loss, ax_dev = axes[0, j], axes[1, j]
        for i, r in enumerate(runs):
            rows = sorted((x for x in r.records if x.get("kind") == "train" and x["task"] == task),
                          key=lambda x: x["step"])
            if rows:
                ax_loss.plot([x["epoch"] for x in rows], smooth([x["loss"] for x in rows], smoothing),
                             color=cmap(i % 10), lw=1.8, label=labels[i])
            pts = sorted((x for x in r.records if x.get("kind") == "eval" and x["task"] == task
                          and x["metric"] == metric_of.get(task)), key=lambda x: x["step"])
            if pts:
                ax_dev.plot([x["epoch"] for x in pts], [x["value"] for x in pts], "-o", ms=3,
                            color=cmap(i % 10), label=labels[i])
        ax_loss.set(title=f"{task}: training loss", ylabel="loss" if j == 0 else None)
        ax_dev.set(title=f"{task}: {metric_of.get(task, 'no metric')}", xlabel="epoch",
                   ylabel="dev score" if j == 0 else None)
        ax_dev.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
        for ax in (ax_loss, ax_dev):
            ax.grid(alpha=0.3)
            if not ax.lines:
                ax.text(0.5, 0.5, "not trained" if ax is ax_loss else "not evaluated", ha="center",
                        va="center", transform=ax.transAxes, color="0.5")
        if not ax_loss.lines and ax_dev.lines:  # a group's joint score: nothing to train
            ax_loss.set_visible(False)
    handles = [Line2D([], [], color=cmap(i % 10), lw=2, label=lab) for i, lab in enumerate(labels)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(runs), 3), fontsize="small")
    fig.suptitle(f"{len(runs)} runs compared (loss smoothed, EMA {smoothing})")
    return fig


class RunComparison:
    """What :func:`compare_runs` returns: ``table`` (list of dict), ``figure`` and ``runs``.

    Unpacks as ``table, figure = compare_runs(...)``; ``str()`` is the text table, and in a
    notebook it shows as an HTML table with the figure below.
    """

    def __init__(self, runs: list[Run], table: list[dict], figure: Figure) -> None:
        self.runs, self.table, self.figure = runs, table, figure

    def __iter__(self):
        return iter((self.table, self.figure))

    def __str__(self) -> str:
        return format_comparison(self.table, self.runs)

    def html(self) -> str:
        """The table as HTML: values in %, differences to the first run in percentage points."""
        cols = ["task", "metric", "run", "best", "vs 1st", "at step", "last", "vs 1st "]

        def cell(v, align="right") -> str:
            return f'<td style="{CELL_STYLE}text-align:{align}">{html.escape(str(v))}</td>'

        def diff(v) -> str:
            colour = "" if v is None or abs(v) < 5e-5 else ("color:#2e7d32;" if v > 0 else "color:#c62828;")
            text = "" if v is None else f"{100 * v:+.2f} pp"
            return f'<td style="{CELL_STYLE}text-align:right;{colour}">{text}</td>'

        pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
        body = "".join(
            "<tr>" + cell(r["task"], "left") + cell(r["metric"], "left") + cell(r["run"], "left")
            + cell(pct(r["best"])) + diff(r["best_diff"]) + cell("-" if r["best_step"] is None else r["best_step"])
            + cell(pct(r["last"])) + diff(r["last_diff"]) + "</tr>" for r in self.table)
        head = "".join(f'<th style="{CELL_STYLE}background:#f5f5f5">{c}</th>' for c in cols)
        return f'<table style="border-collapse:collapse;font-size:13px">{head}{body}</table>'

    def _repr_html_(self) -> str:
        png = base64.b64encode(png_bytes(self.figure)).decode()
        return self.html() + f'<img src="data:image/png;base64,{png}" style="max-width:100%">'


def compare_runs(runs: Iterable[str | Path | Run], smoothing: float = 0.9) -> RunComparison:
    """Compare training runs: a table of every task metric and a figure of their curves.

    Parameters
    ----------
    runs : run directories (``mtl-lib train --out``) or :class:`~mtl_lib.training.comparison.Run`
        The first is the baseline the differences are taken to.

    Returns
    -------
    RunComparison
        ``.table``: one dict per (task, metric, run) with ``best`` (at the best checkpoint),
        ``last``, their steps and ``best_diff`` / ``last_diff`` to the first run;
        ``.figure``: :func:`plot_run_comparison`.

    Examples
    --------
    >>> table, fig = compare_runs(["runs/bio", "runs/argmax"])  # doctest: +SKIP
    """
    runs = _as_runs(runs)
    return RunComparison(runs, comparison_table(runs), plot_run_comparison(runs, smoothing))
