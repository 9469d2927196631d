"""``ClassMetricsExplorer``: per-class scores of each task — table, bars, confusion matrix."""

from __future__ import annotations

import html
from collections import Counter

import numpy as np

from ..evaluation.evaluate import collect_predictions
from ..evaluation.metrics import confusion_matrix, per_class_report, per_entity_report
from .plots import plot_confusion_matrix, plot_per_class
from .widget_utils import StaticSnapshot, W, error_html, html_table, image, png_bytes, stack_pngs

__all__ = ["ClassMetricsExplorer"]


_SORT_KEYS = {"f1": "f1", "precision": "precision", "recall": "recall", "support": "support",
              "name": "label"}


class ClassMetricsExplorer(StaticSnapshot, W.VBox):
    """Per-class (or per-entity) scores of each task: sortable table, bars, confusion matrix.

    Taught in ``notebooks/03_metrics.ipynb``. Classification tasks get a per-class report,
    bars (``plots.plot_per_class``), a confusion matrix and, for the selected class, what it
    is confused with; tagging tasks an entity-level report (seqeval). Sorting puts the best
    first (names A to Z); "flip order" reverses that. A saved notebook keeps the bars and the
    confusion matrix on show as a static PNG.

    Parameters
    ----------
    model, groups : MultiTaskModel and its input groups
        Predictions are collected on ``split``. Or use :meth:`from_predictions`.
    predictions : dict, optional
        ``{task: {"true": [...], "pred": [...]}}`` as ``evaluation.collect_predictions``
        returns; multi-label tasks are left out.
    labels : dict, optional
        ``{task: label order}`` for the confusion matrix (default: labels seen, sorted).
    top : int
        Most classes drawn as bars (the table shows all).
    """

    def __init__(self, model=None, groups=None, split: str = "dev", predictions=None,
                 labels: dict[str, list[str]] | None = None, top: int = 30) -> None:
        self.labels, self.top, self.error = dict(labels or {}), top, None
        self.predictions: dict[str, dict] = {}
        self._reports: dict[str, list[dict]] = {}
        try:
            if predictions is None:
                predictions = {}
                for g in groups or []:
                    predictions |= collect_predictions(model, g, split)
                    self.labels = {t.name: list(t.labels) for t in g.tasks} | self.labels
            for task, p in predictions.items():  # multi-label rows are lists of 0/1 ints
                first = p["true"][0] if p["true"] else None
                if first is not None and not (isinstance(first, list) and first
                                              and not isinstance(first[0], str)):
                    self.predictions[task] = p
        except Exception as err:  # e.g. a split the groups do not have
            self.error = err
        self.task_dropdown = W.Dropdown(options=list(self.predictions), description="task")
        self.sort_dropdown = W.Dropdown(options=list(_SORT_KEYS), description="sort by")
        self.flip = W.Checkbox(False, description="flip order", indent=False)
        self.class_select = W.Dropdown(description="class")
        self.summary, self.table, self.detail = W.HTML(), W.HTML(), W.HTML()
        self.bars, self.confusion = image(), image()
        super().__init__([W.HTML(error_html(self.error) if self.error else ""),
                          W.HBox([self.task_dropdown, self.sort_dropdown, self.flip]),
                          self.summary, W.HBox([self.table, self.bars]),
                          W.HBox([self.class_select, self.detail]), self.confusion])
        self.task_dropdown.observe(lambda _: self._show_task(), "value")
        self.sort_dropdown.observe(lambda _: self._show_sorted(), "value")
        self.flip.observe(lambda _: self._show_sorted(), "value")
        self.class_select.observe(lambda _: self._show_class(), "value")
        if self.predictions:
            self._show_task()

    @classmethod
    def from_predictions(cls, predictions: dict, labels: dict | None = None, **kw):
        """An explorer over ``{task: {"true": [...], "pred": [...]}}``."""
        return cls(predictions=predictions, labels=labels, **kw)

    def is_tagging(self, task: str) -> bool:
        true = self.predictions[task]["true"]
        return bool(true) and isinstance(true[0], list)

    def report(self, task: str) -> list[dict]:
        """Per-class (classification) or per-entity-type (tagging) report of ``task``."""
        if task not in self._reports:
            p = self.predictions[task]
            self._reports[task] = (per_entity_report(p["true"], p["pred"]) if self.is_tagging(task)
                                   else per_class_report(p["true"], p["pred"], self._labels(task)))
        return self._reports[task]

    def _labels(self, task: str) -> list:
        """The task's labels that occur in gold or predictions, in the task's label order."""
        seen = set(self.predictions[task]["true"]) | set(self.predictions[task]["pred"])
        return [x for x in self.labels.get(task) or sorted(seen, key=str) if x in seen]

    @property
    def rows(self) -> list[dict]:
        """The current task's report in table order (ties by name)."""
        key = _SORT_KEYS[self.sort_dropdown.value]
        rows = sorted(self.report(self.task_dropdown.value), key=lambda r: str(r["label"]))
        return sorted(rows, key=lambda r: r[key], reverse=(key != "label") != self.flip.value)

    def _show_task(self) -> None:
        task = self.task_dropdown.value
        true, pred = self.predictions[task]["true"], self.predictions[task]["pred"]
        if self.is_tagging(task):  # no confusion matrix: it needs one label per example
            self.summary.value = (f"<b>{task}</b>: entity-level scores (seqeval) on {len(true)} "
                                  "sentences; support = true entities of the type")
            self.confusion.value, self.confusion.layout.display = b"", "none"
        else:
            acc = np.mean([t == q for t, q in zip(true, pred)])
            self.summary.value = f"<b>{task}</b>: {len(true)} examples, accuracy {acc:.1%}"
            labels = self._labels(task)
            self.confusion.value = png_bytes(plot_confusion_matrix(
                confusion_matrix(true, pred, labels), labels))
            self.confusion.layout.display = None
        self._show_sorted()

    def _show_sorted(self) -> None:
        rows, key = self.rows, _SORT_KEYS[self.sort_dropdown.value]
        metric = key if key in ("precision", "recall", "f1") else "f1"
        self.bars.value = png_bytes(plot_per_class(rows, metric=metric, top=self.top, sort_by=None))
        keep = self.class_select.value
        self.class_select.options = [r["label"] for r in rows]  # selects the first class...
        if keep in self.class_select.options:
            self.class_select.value = keep  # ...so keep the chosen one when it is still there
        self._show_class()
        self.refresh_snapshot()

    def snapshot(self) -> bytes | None:
        """The bars and (classification) the confusion matrix on show, as one PNG."""
        return stack_pngs([bytes(self.bars.value), bytes(self.confusion.value)])

    def _show_class(self) -> None:
        chosen, task = self.class_select.value, self.task_dropdown.value
        self.table.value = html_table(self.rows, ["label", "precision", "recall", "f1", "support"],
                                  highlight=chosen)
        self.detail.value = ""
        if chosen is not None and not self.is_tagging(task):
            pairs = list(zip(self.predictions[task]["true"], self.predictions[task]["pred"]))

            def top3(values) -> str:
                return ", ".join(f"{html.escape(str(v))} ({n})"
                                 for v, n in Counter(values).most_common(3)) or "none"
            self.detail.value = (
                f"true {html.escape(str(chosen))} predicted as: "
                f"{top3([q for t, q in pairs if t == chosen and q != chosen])}<br>"
                f"predicted {html.escape(str(chosen))}, really: "
                f"{top3([t for t, q in pairs if q == chosen and t != chosen])}")


