"""``ErrorBrowser``: the examples a model gets wrong, worst first, for every kind of task.

The data are :func:`mtl_lib.evaluation.errors.error_records`; this module draws them. Like
fastai's ``plot_top_losses`` / ``most_confused`` the list is sorted by loss and filtered by
gold or predicted class; a tagger's sentences show gold and predicted spans coloured by type
with each error named (missed, spurious, wrong type, wrong boundary), a hierarchy's paths show
the level where the prediction first goes wrong, a multi-label prediction its missed and
spurious labels. :func:`plot_error_summary` is the same summary as a static figure.
"""

from __future__ import annotations

import html
import math
from collections import Counter

import ipywidgets as W
import numpy as np
from matplotlib.colors import to_hex

from ..evaluation.errors import error_counts, error_records, filter_records, most_confused
from .plots import new_figure, task_colors
from .widget_utils import CELL_STYLE, StaticSnapshot, error_html, image, png_bytes

__all__ = ["ErrorBrowser", "plot_error_summary"]

ANY = "(any)"
_KIND_COLORS = {"missed": "#ef6c00", "spurious": "#6a1b9a", "wrong_type": "#c62828",
                "wrong_boundary": "#1565c0", "wrong_label": "#c62828"}


def _entity(e: dict) -> str | None:
    """The entity type an error is about (gold side first); None for non-span errors."""
    side = e.get("gold") if isinstance(e.get("gold"), dict) else e.get("pred")
    return side["type"] if isinstance(side, dict) else None


def plot_error_summary(records: list[dict], task: str | None = None, top: int = 12):
    """Errors of one task at a glance: counts by kind, by class (a tagger's entity types, or
    the most confused pairs of classes) and the model's confidence on right vs wrong examples.
    """
    rows = filter_records(records, task)
    task = task or (rows[0]["task"] if rows else "")
    fig = new_figure(13, 3.8)
    ax_kind, ax_class, ax_conf = fig.subplots(1, 3)
    counts = error_counts(rows)
    names = list(counts)[::-1]
    ax_kind.barh(names, [counts[k] for k in names], color=[_KIND_COLORS.get(k, "0.45") for k in names])
    ax_kind.set(title=f"{task}: errors by kind", xlabel="errors")
    by_type: dict[str, Counter] = {}
    for r in rows:
        for e in r["errors"]:
            if (ty := _entity(e)) is not None:
                by_type.setdefault(ty, Counter())[e["kind"]] += 1
    if by_type:  # stacked bars: each entity type's errors by kind
        types = sorted(by_type, key=lambda t: -sum(by_type[t].values()))[:top][::-1]
        left = np.zeros(len(types))
        for kind in counts:
            vals = np.array([by_type[t][kind] for t in types], dtype=float)
            ax_class.barh(types, vals, left=left, color=_KIND_COLORS.get(kind, "0.45"), label=kind)
            left += vals
        ax_class.legend(fontsize="small", loc="lower right")
        ax_class.set(title="errors by entity type", xlabel="errors")
    else:
        pairs = most_confused(rows)[:top][::-1]
        ax_class.barh([f"{g} → {p}" for g, p, _ in pairs], [n for _, _, n in pairs], color="#c62828")
        ax_class.set(title="most confused (gold → predicted)", xlabel="examples")
    ax_class.tick_params(axis="y", labelsize=8)
    right = [r["confidence"] for r in rows if r["correct"]]
    wrong = [r["confidence"] for r in rows if not r["correct"]]
    bins = np.linspace(0, 1, 11)
    ax_conf.hist([right, wrong], bins=bins, color=["#2e7d32", "#c62828"], label=[
        f"right ({len(right)})", f"wrong ({len(wrong)})"])
    ax_conf.set(title="confidence of the prediction", xlabel="probability", ylabel="examples")
    ax_conf.legend(fontsize="small", loc="upper left")
    for ax in (ax_kind, ax_class):
        if not ax.patches:
            ax.text(0.5, 0.5, "no errors", ha="center", va="center", transform=ax.transAxes, color="0.5")
        ax.grid(axis="x", alpha=0.3)
    return fig


def _spans_html(words: list[str], spans: list[dict], colors: dict[str, str], wrong: set) -> str:
    """The sentence with ``spans`` shaded by type; spans in ``wrong`` get a red outline."""
    out, at = [], 0
    for s in spans:
        out += [html.escape(w) for w in words[at:s["start"]]]
        edge = "outline:2px solid #c62828;" if (s["type"], s["start"], s["end"]) in wrong else ""
        out.append(f'<span style="background:{colors.get(s["type"], "#eee")};{edge}border-radius:3px;'
                   f'padding:0 3px">{html.escape(" ".join(words[s["start"]:s["end"]]))}'
                   f'<sub style="font-size:9px;color:#333"> {html.escape(s["type"])}</sub></span>')
        at = s["end"]
    return " ".join(out + [html.escape(w) for w in words[at:]])


def _path_html(gold: tuple, pred: tuple, level: int | None) -> str:
    parts = [html.escape(p) if level is None or i < level else
             f'<b style="color:#c62828">{html.escape(p)}</b>' for i, p in enumerate(pred)]
    where = "" if level is None else f' <i style="color:#c62828">wrong from level {level + 1}</i>'
    return " &gt; ".join(parts) + where


def _chips(r: dict) -> str:
    def chip(kind: str, extra: str = "") -> str:
        return (f'<span style="background:{_KIND_COLORS.get(kind, "#555")};color:white;border-radius:8px;'
                f'padding:0 6px;margin-right:3px;font-size:11px">{html.escape(kind.replace("_", " "))}'
                f'{html.escape(extra)}</span>')
    return "".join(chip(e["kind"], f" {e['label']}" if "label" in e else
                        f" {_entity(e)}" if _entity(e) else "") for e in r["errors"])


def _bar(p: float) -> str:
    return (f'<div style="width:60px;background:#eee;display:inline-block"><div style="width:{100 * p:.0f}%;'
            f'background:#42a5f5;height:8px"></div></div> {p:.0%}')


class ErrorBrowser(StaticSnapshot, W.VBox):
    """The examples of a split a model gets wrong, worst (highest loss) first.

    Taught in ``notebooks/03_metrics.ipynb``. Choose a task; filter by gold or predicted
    class (a tagger's entity types) and by kind of error; "all" also lists the right
    predictions (the barely right ones rank high). A summary figure
    (:func:`plot_error_summary`) shows the errors by kind and class and the confidence on
    right vs wrong examples; it is also the static PNG a saved notebook keeps.

    Parameters
    ----------
    model, groups : MultiTaskModel and its input groups
        Records are collected on ``split`` (:func:`~mtl_lib.evaluation.errors.error_records`).
    records : list of dict, optional
        Records already collected (then ``model`` and ``groups`` are not needed).
    top : int
        Examples listed at once.
    """

    def __init__(self, model=None, groups=None, split: str = "dev", records: list[dict] | None = None,
                 top: int = 15) -> None:
        self.error, self._quiet, self._colors = None, False, {}
        try:
            self.records = records if records is not None else error_records(model, groups, split)
        except Exception as err:  # e.g. a split the groups do not have
            self.error, self.records = err, []
        tasks = list(dict.fromkeys(r["task"] for r in self.records))
        self.task_dropdown = W.Dropdown(options=tasks, description="task")
        self.show = W.ToggleButtons(options=["errors", "all"], value="errors", description="show",
                                    style={"button_width": "70px"})
        self.gold_filter = W.Dropdown(description="gold")
        self.pred_filter = W.Dropdown(description="predicted")
        self.kind_filter = W.Dropdown(description="error")
        self.top = W.BoundedIntText(top, min=1, max=10_000, description="show top",
                                    layout=W.Layout(width="160px"))
        self.summary, self.listing, self.picture = W.HTML(), W.HTML(), image()
        super().__init__([W.HTML(error_html(self.error) if self.error else ""),
                          W.HBox([self.task_dropdown, self.show, self.top]),
                          W.HBox([self.gold_filter, self.pred_filter, self.kind_filter]),
                          self.summary, self.picture, self.listing])
        self.task_dropdown.observe(lambda _: self._show_task(), "value")
        for w in (self.show, self.gold_filter, self.pred_filter, self.kind_filter, self.top):
            w.observe(lambda _: self._show_rows(), "value")
        if tasks:
            self._show_task()

    @property
    def task_records(self) -> list[dict]:
        return filter_records(self.records, self.task_dropdown.value)

    @property
    def rows(self) -> list[dict]:
        """The current task's records under the filters, highest loss first."""
        pick = lambda w: None if w.value in (ANY, None) else w.value  # noqa: E731
        return filter_records(self.task_records, gold=pick(self.gold_filter), pred=pick(self.pred_filter),
                              kind=pick(self.kind_filter), only_errors=self.show.value == "errors")

    def _show_task(self) -> None:
        recs = self.task_records
        classes = sorted({c for r in recs for c in r["gold_shown"] + r["pred_shown"]})
        kinds = list(error_counts(recs))
        self._colors = {c: to_hex(tuple(0.65 + 0.35 * np.array(rgba[:3])))
                        for c, rgba in task_colors(classes).items()}  # pastel backgrounds
        self._quiet = True  # one listing for the new task, not one per reset filter
        try:
            for w, options in ((self.gold_filter, classes), (self.pred_filter, classes), (self.kind_filter, kinds)):
                w.options, w.value = [ANY, *options], ANY
        finally:
            self._quiet = False
        wrong = sum(not r["correct"] for r in recs)
        counts = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in error_counts(recs).items()) or "none"
        self.summary.value = (f"<b>{html.escape(self.task_dropdown.value)}</b>: {wrong} of {len(recs)} "
                              f"examples wrong ({wrong / max(len(recs), 1):.1%}); errors by kind: {counts}")
        self.picture.value = png_bytes(plot_error_summary(self.records, self.task_dropdown.value))
        self._show_rows()
        self.refresh_snapshot()

    def _show_rows(self) -> None:
        if self._quiet:
            return
        rows = self.rows
        shown = rows[:self.top.value]
        head = (f"<p>{len(rows)} example(s) match; the {len(shown)} of highest loss (the model's "
                "loss on the gold label) first.</p>")
        cells = "".join(self._row_html(r) for r in shown)
        th = "".join(f'<th style="{CELL_STYLE}background:#f5f5f5">{c}</th>'
                     for c in ("#", "loss", "confidence", "example", "errors"))
        self.listing.value = head + f'<table style="border-collapse:collapse;font-size:13px">{th}{cells}</table>'

    def _row_html(self, r: dict) -> str:
        words = r["words"]
        if "spans" in r:  # a tagger: both sentences with their spans
            wrong = {(s["type"], s["start"], s["end"]) for e in r["errors"] for s in (e["gold"], e["pred"]) if s}
            body = (f"gold: {_spans_html(words, r['spans']['gold'], self._colors, wrong)}<br>"
                    f"pred: {_spans_html(words, r['spans']['pred'], self._colors, wrong)}")
        else:
            text = html.escape(" ".join(words))
            if r.get("words_b"):
                text += f'<br><span style="color:#555">{html.escape(" ".join(r["words_b"]))}</span>'
            if "first_wrong_level" in r:
                pred = _path_html(r["gold"], r["pred"], r["first_wrong_level"])
            else:
                pred = html.escape(r["pred_text"])
            colour = "#2e7d32" if r["correct"] else "#c62828"
            body = (f"{text}<br>gold: <b>{html.escape(r['gold_text'])}</b> &middot; predicted: "
                    f'<span style="color:{colour}">{pred}</span>')
        loss = "inf" if math.isinf(r["loss"]) else f"{r['loss']:.3f}"
        return (f'<tr><td style="{CELL_STYLE}">{r["index"]}</td><td style="{CELL_STYLE}text-align:right">{loss}</td>'
                f'<td style="{CELL_STYLE}white-space:nowrap">{_bar(r["confidence"])}</td>'
                f'<td style="{CELL_STYLE}">{body}</td>'
                f'<td style="{CELL_STYLE}">{_chips(r) or "right"}</td></tr>')

    def snapshot(self) -> bytes | None:
        return bytes(self.picture.value) or None
