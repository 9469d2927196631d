"""Notebook widgets: encoder picker, live dashboard, per-class explorer, experiment panel.

Each widget is an ipywidgets 8 object whose state notebooks and tests drive directly (set
``.value``, call ``.click()``). Figures come from :mod:`mtl_lib.plots` (no pyplot) and are shown
as PNG bytes in a ``widgets.Image``: replacing the image's value redraws in place, without the
flicker (and the wiped cell) of ``clear_output``. Errors are caught and shown inside the
widget as a red box, never raised into the kernel.
"""

from __future__ import annotations

import html
import io
import threading
import time
from collections import Counter

import ipywidgets as W
import numpy as np
from matplotlib.ticker import PercentFormatter

from .encoders import ENCODER_TABLE, Encoder, list_encoders
from .evaluation import collect_predictions
from .experiment import build_experiment, resolve_encoder, snips_tasks
from .metrics import confusion_matrix, per_class_report, per_entity_report
from .plots import _figure, plot_confusion_matrix, plot_per_class, task_colors
from .sampling import SAMPLERS
from .tasks import TaskSpec
from .trainer import Trainer, TrainerConfig
from .weighting import WEIGHTINGS

__all__ = ["EncoderPicker", "LiveDashboard", "ClassMetricsExplorer", "ExperimentPanel",
           "task_choices", "png_bytes"]

_CELL = "padding:2px 8px;border:1px solid #ddd;"
# Pastel backgrounds: the pieces of one word share a colour, neighbouring words differ.
_PALETTE = ["#e3f2fd", "#fff3e0", "#e8f5e9", "#fce4ec", "#ede7f6", "#e0f7fa"]


def png_bytes(fig, dpi: int = 80) -> bytes:
    """Render a matplotlib Figure to PNG bytes (for ``widgets.Image``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _image() -> W.Image:
    return W.Image(format="png", layout=W.Layout(max_width="100%"))  # shrinks in narrow cells


def _error_html(err: BaseException) -> str:
    return ('<div style="border:1px solid #c62828;background:#ffebee;color:#7f0000;'
            f'padding:6px 10px;border-radius:4px"><b>{type(err).__name__}</b>'
            f'<pre style="white-space:pre-wrap;margin:4px 0 0">{html.escape(str(err))}</pre></div>')


def _table(rows: list[dict], cols: list[str], highlight=None, key: str = "label") -> str:
    """An HTML table: floats as %, numbers right-aligned, the row with ``key == highlight`` shaded."""
    def cell(v) -> str:
        align = "right" if isinstance(v, int | float) else "left"
        text = f"{v:.1%}" if isinstance(v, float) else html.escape(str(v))
        return f'<td style="{_CELL}text-align:{align}">{text}</td>'
    head = "".join(f'<th style="{_CELL}background:#f5f5f5">{c}</th>' for c in cols)
    body = "".join('<tr style="background:{}">{}</tr>'.format(
        "#fff59d" if highlight is not None and r.get(key) == highlight else "white",
        "".join(cell(r[c]) for c in cols)) for r in rows)
    return f'<table style="border-collapse:collapse;font-size:13px">{head}{body}</table>'


def _encoder_names(family: str) -> list[str]:
    """A family's configs: the bundled default (BERT), the seed table, a tiny random one."""
    return ["minilm"] * (family == "BERT") + ENCODER_TABLE[family] + [f"tiny-{family.lower()}"]


def _family_of(name: str) -> str:
    families = [f for f in ENCODER_TABLE if name in _encoder_names(f)]
    if not families:
        raise ValueError(f"unknown encoder {name!r}; e.g. 'minilm', 'bert-base-cased', 'tiny-bert'")
    return families[0]


class EncoderPicker(W.VBox):
    """Pick an encoder by family and config; see availability, size and tokenisation.

    Taught in ``notebooks/01_encoders.ipynb``. ``.value`` is the chosen name (settable),
    ``.encoder`` the loaded :class:`~mtl_lib.encoders.Encoder` (None until loaded) and
    ``.error`` the last loading error, also shown in the widget (``EncoderNotAvailable`` says
    how to provide the weights).

    Parameters
    ----------
    value : str
        Initial encoder, e.g. ``"minilm"`` or ``"tiny-roberta"``.
    sample : str
        Sentence whose tokenisation is shown (editable in the widget).
    auto_load : bool
        Load on selection (tiny ones and weights on this machine load in about a second;
        missing weights fail at once); otherwise only the "Load" button loads.
    """

    def __init__(self, value: str = "minilm", auto_load: bool = True,
                 sample: str = "Book a table at Gallagher's steakhouse for 7pm") -> None:
        self._infos = {i.name: i for i in list_encoders()}
        self._cache: dict[str, Encoder] = {}
        self.encoder: Encoder | None = None
        self.error: Exception | None = None
        self.auto_load, self._quiet = auto_load, False
        self.family = W.Dropdown(options=list(ENCODER_TABLE), value="BERT", description="family")
        self.config = W.Dropdown(options=self._options("BERT"), description="config")
        self.load_button = W.Button(description="Load", icon="download")
        self.sample = W.Text(sample, description="sentence", layout=W.Layout(width="90%"))
        self.info, self.tokens = W.HTML(), W.HTML()
        super().__init__([W.HBox([self.family, self.config, self.load_button]), self.info,
                          self.sample, self.tokens])
        self.family.observe(self._on_family, "value")
        self.config.observe(lambda c: self._quiet or self._select(c["new"]), "value")
        self.load_button.on_click(lambda _: self.load())
        self.sample.observe(lambda _: self._show(), "value")
        self.value = value

    def _options(self, family: str) -> list[tuple[str, str]]:
        return [(n + (" (random weights)" if n.startswith("tiny-") else
                      "" if self._infos[n].available else " (no weights here)"), n)
                for n in _encoder_names(family)]

    @property
    def value(self) -> str:
        return self.config.value

    @value.setter
    def value(self, name: str) -> None:
        family, self._quiet = _family_of(name), True  # no loading on the way...
        self.family.value = family
        self.config.value = name
        self._quiet = False
        self._select(name)  # ...only here, even if the value did not change

    def _on_family(self, change) -> None:
        quiet, self._quiet = self._quiet, True
        self.config.options = self._options(change["new"])  # selects the first config
        self._quiet = quiet
        if not quiet:
            self._select(self.config.value)

    def _select(self, name: str) -> None:
        self.encoder, self.error = self._cache.get(name), None
        if self.encoder is None and self.auto_load:
            self.load()
        else:
            self._show()

    def load(self) -> Encoder | None:
        """Load the selected encoder (once per name); None, and ``.error`` set, on failure."""
        name = self.value
        try:
            self.encoder = self._cache.get(name) or resolve_encoder(name)
            self._cache[name], self.error = self.encoder, None
        except Exception as err:  # shown, never raised
            self.encoder, self.error = None, err
        self._show()
        return self.encoder

    def _show(self) -> None:
        name, enc = self.value, self.encoder
        info = self._infos.get(name)
        where = ("random init, built here (for tests and fast runs)" if info is None else
                 f"yes: {info.location}" if info.available else "no weights on this machine")
        rows = [("family", self.family.value), ("weights here", where),
                ("pooling", enc.pooling if enc else info.pooling if info else "first"),
                ("parameters", f"{enc.num_parameters():,}" if enc else "load to count"),
                ("hidden size", enc.hidden_size if enc else "load to see"),
                ("vocabulary", f"{len(enc.tokenizer):,} tokens" if enc else "load to see")]
        self.info.value = (f"<b>{html.escape(name)}</b>" + _table(
            [{"what": k, "value": str(v)} for k, v in rows], ["what", "value"])
            + (_error_html(self.error) if self.error else ""))
        self.tokens.value = "" if enc is None else self._tokens_html(enc)

    def _tokens_html(self, enc: Encoder) -> str:
        """Tokens as chips over their ids and ``word_ids`` (the word each piece belongs to)."""
        words = self.sample.value.split()
        batch = enc.tokenize([words], is_split_into_words=True)  # as the data pipeline does
        ids, word_ids = batch["input_ids"][0], batch.word_ids(0)
        chips = ['<span style="padding:1px 5px;border-radius:8px;font-family:monospace;'
                 f'background:{"#e0e0e0" if w is None else _PALETTE[w % len(_PALETTE)]}">'
                 f"{html.escape(p)}</span>"
                 for p, w in zip(enc.tokenizer.convert_ids_to_tokens(ids), word_ids)]
        cols = [(c, i, "special" if w is None else f"{w}: {html.escape(words[w])}")
                for c, i, w in zip(chips, ids, word_ids)]
        rows = "".join(f'<tr><th style="{_CELL}">{name}</th>' + "".join(
            f'<td style="{_CELL}text-align:center">{c[j]}</td>' for c in cols) + "</tr>"
            for j, name in enumerate(["token", "id", "word_id"]))
        return (f"{len(words)} words &rarr; {len(ids)} tokens (special tokens grey; the pieces "
                'of one word share a colour)<div style="overflow-x:auto"><table style='
                f'"border-collapse:collapse;font-size:12px">{rows}</table></div>')


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
        self.image, self.status = _image(), W.HTML("waiting for training to start")
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
        fig = _figure(*self.size)
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


_SORT_KEYS = {"f1": "f1", "precision": "precision", "recall": "recall", "support": "support",
              "name": "label"}


class ClassMetricsExplorer(W.VBox):
    """Per-class (or per-entity) scores of each task: sortable table, bars, confusion matrix.

    Taught in ``notebooks/03_metrics.ipynb``. Classification tasks get a per-class report,
    bars (``plots.plot_per_class``), a confusion matrix and, for the selected class, what it
    is confused with; tagging tasks an entity-level report (seqeval). Sorting puts the best
    first (names A to Z); "flip order" reverses that.

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
        self.bars, self.confusion = _image(), _image()
        super().__init__([W.HTML(_error_html(self.error) if self.error else ""),
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

    def _show_class(self) -> None:
        chosen, task = self.class_select.value, self.task_dropdown.value
        self.table.value = _table(self.rows, ["label", "precision", "recall", "f1", "support"],
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


def task_choices(max_examples: int | None = None) -> dict[str, TaskSpec]:
    """The panel's tasks: SNIPS intent and slots, CoNLL-2003 NER, MRPC paraphrase."""
    intent, slots = snips_tasks(max_examples)
    pair_metrics = ["classification_accuracy", "classification_f1_score"]
    return {"SNIPS intent": intent, "SNIPS slots": slots,
            "CoNLL NER": TaskSpec(name="ner", task_type="tagging", format="conll",
                                  path="conll2003", max_examples=max_examples,
                                  metrics=["seqeval_f1_score", "seqeval_precision", "seqeval_recall"]),
            "MRPC paraphrase": TaskSpec(   # the file has a BOM and bare quotes; no dev file
                name="paraphrase", task_type="pair_classification", format="tsv",
                path="mrpc/msr_paraphrase_train.txt", encoding="utf-8-sig", quoting="none",
                text_column="#1 String", text_pair_column="#2 String", label_field="Quality",
                max_examples=max_examples, metrics=pair_metrics)}


class ExperimentPanel(W.VBox):
    """Choose encoder, tasks, sampler, weighting, learning rates and steps; Run and Stop.

    Taught in ``notebooks/05_multi_task_training.ipynb``. Run trains in a background thread
    (so Stop works) with a :class:`LiveDashboard`; afterwards ``.trainer``, ``.history``,
    ``.model`` and ``.groups`` hold the result and a table shows the dev metrics. Any error
    (missing weights, bad data, bad options) appears in the panel and in ``.error``.

    Parameters
    ----------
    encoder : str
        Initial encoder (``"tiny-bert"`` etc. train in seconds, with random weights).
    tasks : tuple of str
        Keys of :func:`task_choices` ticked at the start.
    max_examples : int
        Training examples per dataset (dev: a fifth); 0 means all.
    """

    def __init__(self, encoder: str = "minilm", tasks=("SNIPS intent", "SNIPS slots"),
                 max_examples: int = 500, steps: int = 100, batch_size: int = 16) -> None:
        self.trainer = self.history = self.model = self.groups = self.error = None
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        names = [(i.name + ("" if i.available else " (no weights here)"), i.name)
                 for i in list_encoders()]
        names += [(f"tiny-{f.lower()} (random weights)", f"tiny-{f.lower()}") for f in ENCODER_TABLE]
        self.encoder = W.Dropdown(options=names, value=encoder, description="encoder")
        self.task_boxes = {k: W.Checkbox(k in tasks, description=k, indent=False)
                           for k in task_choices()}
        self.max_examples = W.BoundedIntText(max_examples, min=0, max=10**7, description="examples")
        self.sampler = W.Dropdown(options=list(SAMPLERS), description="sampler")
        self.weighting = W.Dropdown(options=list(WEIGHTINGS), description="weighting")
        self.encoder_lr = W.FloatLogSlider(1e-4, min=-6, max=-2, description="encoder lr",
                                           readout_format=".0e")
        self.classifier_lr = W.FloatLogSlider(1e-3, min=-5, max=-1, description="head lr",
                                              readout_format=".0e")
        self.steps = W.BoundedIntText(steps, min=1, max=10**7, description="steps")
        self.batch_size = W.BoundedIntText(batch_size, min=1, max=4096, description="batch")
        self.run_button = W.Button(description="Run", button_style="success", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop",
                                    disabled=True)
        self.status, self.error_box, self.results = W.HTML("ready"), W.HTML(), W.HTML()
        self.dashboard = LiveDashboard()
        self.run_button.on_click(lambda _: self.run(blocking=False))
        self.stop_button.on_click(lambda _: self.stop())
        super().__init__([
            W.HBox([self.encoder, self.max_examples]), W.HBox(list(self.task_boxes.values())),
            W.HBox([self.sampler, self.weighting]), W.HBox([self.encoder_lr, self.classifier_lr]),
            W.HBox([self.steps, self.batch_size, self.run_button, self.stop_button]),
            self.status, self.error_box, self.dashboard, self.results])

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def run(self, blocking: bool = True):
        """Train with the current settings; the History, or None (error, or already running)."""
        if self.running:
            self.status.value = "already running: press Stop first"
            return None
        self.trainer = self.history = self.model = self.groups = self.error = None
        self.error_box.value = self.results.value = ""
        self._stop.clear()
        self.run_button.disabled, self.stop_button.disabled = True, False
        self.thread = threading.Thread(target=self._train, name="mtl-experiment", daemon=True)
        self.thread.start()
        if blocking:
            try:
                self.thread.join()
            except KeyboardInterrupt:  # interrupting the cell stops training cleanly
                self.stop()
                self.thread.join()
        return self.history

    def stop(self) -> None:
        """Ask training to end after the current step."""
        self._stop.set()
        if self.trainer is not None:
            self.trainer.should_stop = True
        self.status.value = "stopping after this step…"

    def on_step_end(self, trainer, record=None) -> None:  # as a Trainer callback: honour Stop
        if self._stop.is_set():
            trainer.should_stop = True

    on_fit_start = on_step_end  # fit() resets should_stop: a Stop while loading counts here

    def _train(self) -> None:
        try:
            chosen = [k for k, box in self.task_boxes.items() if box.value]
            if not chosen:
                raise ValueError("tick at least one task")
            specs = [task_choices(self.max_examples.value or None)[k] for k in chosen]
            self.status.value = f"loading {self.encoder.value} and the data of {len(specs)} task(s)…"
            self.model, self.groups = build_experiment(specs, encoder=self.encoder.value)
            config = TrainerConfig(
                max_steps=self.steps.value, batch_size=self.batch_size.value,
                encoder_lr=self.encoder_lr.value, classifier_lr=self.classifier_lr.value,
                sampler=self.sampler.value, weighting=self.weighting.value,
                eval_every=max(1, self.steps.value // 5), progress=False)
            self.trainer = Trainer(self.model, self.groups, config, callbacks=[self, self.dashboard])
            self.status.value = "training…"
            self.history, tr = self.trainer.fit(), self.trainer
            evals = self.history.eval_rows()
            metrics = (self.history.last_metrics() if evals and evals[-1]["step"] == tr.step
                       else tr.evaluate())  # stopped between evaluations: score it as it is
            self.status.value = f"finished {tr.step} / {tr.total_steps} steps" + \
                (" (stopped)" if tr.step < tr.total_steps else "")
            rows = [{"task": t, "metric": m, "value": v} for t, ms in metrics.items()
                    for m, v in ms.items()]
            self.results.value = f"<b>Dev metrics at step {tr.step}</b>" + \
                _table(rows, ["task", "metric", "value"])
        except Exception as err:  # shown in the panel; the kernel carries on
            self.error = err
            self.error_box.value = _error_html(err)
            self.status.value = "failed (see the message below)"
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True

    def explorer(self, split: str = "dev") -> ClassMetricsExplorer:
        """A :class:`ClassMetricsExplorer` over the trained model's predictions."""
        return ClassMetricsExplorer(self.model, self.groups, split)
