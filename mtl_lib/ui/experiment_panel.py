"""``ExperimentPanel``: choose encoder, tasks, sampler, weighting and steps; Run and Stop;
every run of the session compared in one table and one figure."""

from __future__ import annotations

import dataclasses
import threading

from ..experiment import build_experiment, snips_tasks
from ..models.encoders import ENCODER_TABLE, list_encoders
from ..tasks.spec import TaskSpec
from ..training.comparison import Run, name_runs, run_from_trainer
from ..training.config import TrainerConfig
from ..training.sampling import SAMPLERS
from ..training.trainer import Trainer
from ..training.weighting import WEIGHTINGS
from .class_metrics import ClassMetricsExplorer
from .compare import RunComparison, compare_runs
from .live_dashboard import LiveDashboard
from .widget_utils import StaticSnapshot, W, error_html, html_table, image, png_bytes, stack_pngs

__all__ = ["ExperimentPanel", "task_choices"]


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


class ExperimentPanel(StaticSnapshot, W.VBox):
    """Choose encoder, tasks, sampler, weighting, learning rates and steps; Run and Stop.

    Taught in ``notebooks/05_multi_task_training.ipynb``. Run trains in a background thread
    (so Stop works) with a :class:`LiveDashboard`; afterwards ``.trainer``, ``.history``,
    ``.model`` and ``.groups`` hold the result and a table shows the dev metrics. Any error
    (missing weights, bad data, bad options) appears in the panel and in ``.error``.

    Every finished (or stopped) run of the session is kept in ``.runs`` and named by what
    changed between the runs (``"weighting=uncertainty"``); from the second run on, a table
    compares their dev metrics (best and last, the difference to the first run) and a figure
    overlays their curves on one epoch axis (:func:`~mtl_lib.ui.compare.compare_runs`).
    "Forget runs" starts the comparison afresh. When a run ends, the cell output also keeps
    a static PNG of the dashboard and the comparison.

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
        self.runs: list[Run] = []  # every run of the session, in order
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
        self.forget_button = W.Button(description="Forget runs", icon="trash", disabled=True)
        self.comparison_table, self.comparison_image = W.HTML(), image()
        self.comparison_box = W.VBox([W.HBox([W.HTML("<b>Runs of this session</b>"), self.forget_button]),
                                      self.comparison_table, self.comparison_image],
                                     layout=W.Layout(display="none"))
        self.run_button.on_click(lambda _: self.run(blocking=False))
        self.stop_button.on_click(lambda _: self.stop())
        self.forget_button.on_click(lambda _: self.forget_runs())
        super().__init__([
            W.HBox([self.encoder, self.max_examples]), W.HBox(list(self.task_boxes.values())),
            W.HBox([self.sampler, self.weighting]), W.HBox([self.encoder_lr, self.classifier_lr]),
            W.HBox([self.steps, self.batch_size, self.run_button, self.stop_button]),
            self.status, self.error_box, self.dashboard, self.results, self.comparison_box])

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
                html_table(rows, ["task", "metric", "value"])
            self.runs.append(run_from_trainer(tr))
            self._show_comparison()
        except Exception as err:  # shown in the panel; the kernel carries on
            self.error = err
            self.error_box.value = error_html(err)
            self.status.value = "failed (see the message below)"
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True
            self.refresh_snapshot()

    def comparison(self) -> RunComparison | None:
        """The session's runs compared (None before two runs): ``.table``, ``.figure``."""
        if len(self.runs) < 2:
            return None
        return compare_runs(name_runs([dataclasses.replace(r, name="") for r in self.runs]))

    def forget_runs(self) -> None:
        """Start the comparison afresh (the current model and history stay)."""
        self.runs = []
        self._show_comparison()

    def _show_comparison(self) -> None:
        found = self.comparison()
        self.forget_button.disabled = not self.runs
        self.comparison_box.layout.display = None if found else "none"
        self.comparison_table.value = found.html() if found else ""
        self.comparison_image.value = png_bytes(found.figure) if found else b""

    def snapshot(self) -> bytes | None:
        """The dashboard and, from the second run on, the comparison figure."""
        return stack_pngs([bytes(self.dashboard.image.value), bytes(self.comparison_image.value)])

    def explorer(self, split: str = "dev") -> ClassMetricsExplorer:
        """A :class:`ClassMetricsExplorer` over the trained model's predictions."""
        return ClassMetricsExplorer(self.model, self.groups, split)

