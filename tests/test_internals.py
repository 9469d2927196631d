"""Training internals: learning rate, loss weights, sampler mix and task conflict — in the
history (and so in history.json), in the live dashboard, and in the static plots."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from mtl_lib.experiment import build_groups
from mtl_lib.models.multitask import MultiTaskModel
from mtl_lib.tasks.spec import TaskSpec
from mtl_lib.training.history import History
from mtl_lib.training.trainer import Trainer
from mtl_lib.ui import plots
from mtl_lib.ui.live_dashboard import LiveDashboard


@pytest.fixture(scope="module")
def run(tiny_snips, tmp_path_factory):
    """SNIPS (intent + slots) and CoNLL NER, DWA weighting, conflict every 3 steps, a dashboard."""
    enc, (snips,) = tiny_snips
    ner = TaskSpec(name="ner", task_type="tagging", format="conll", path="conll2003", max_examples=40)
    (ner_group,) = build_groups([ner], enc.tokenizer)
    groups = [snips, ner_group]
    model = MultiTaskModel.from_tasks(copy.deepcopy(enc), [t for g in groups for t in g.tasks])
    board = LiveDashboard(every_n=2, min_interval=0)
    out = tmp_path_factory.mktemp("internals")
    trainer = Trainer(model, groups, max_steps=12, batch_size=8, weighting="dwa", conflict_every=3,
                      eval_every=6, output_dir=str(out), progress=False, callbacks=[board])
    trainer.weighting.window = 2  # weights move within 12 steps
    history = trainer.fit()
    return SimpleNamespace(trainer=trainer, history=history, board=board, out=out)


def test_history_json_holds_every_internal(run):
    saved = History.from_json(run.out / "last" / "history.json")
    assert saved.records == run.history.records
    train = saved.train_rows()
    assert all({"lr", "weight"} <= set(r) for r in train)
    assert len({r["weight"] for r in train}) > 1  # DWA moved the weights
    rows = saved.conflict_rows()
    assert [r["step"] for r in rows] == [3, 3, 3, 6, 6, 6, 9, 9, 9, 12, 12, 12]
    # the sampler mix is in the train rows: which tasks each step trained
    steps, onehot = plots.sampler_mix(saved)
    assert steps == list(range(1, 13)) and set(onehot) == {"intent+slots", "ner"}
    assert (onehot["intent+slots"] + onehot["ner"] == 1).all()
    for s, a in zip(steps, onehot["ner"]):
        assert a == any(r["task"] == "ner" for r in train if r["step"] == s)


def test_dashboard_follows_the_internals(run):
    board, history = run.board, run.history
    lr = {r["step"]: r["lr"] for r in history.train_rows()}
    spe = run.trainer.steps_per_epoch
    assert board.lr_points == [(s / spe, lr[s]) for s in sorted(lr)]
    for task in ("intent", "slots", "ner"):
        assert board.weight_points[task] == [(r["epoch"], r["weight"]) for r in history.train_rows(task)]
    steps, onehot = plots.sampler_mix(history)
    for group, col in onehot.items():  # cumulative share after each step (0 before the first draw)
        shares = np.cumsum(col) / np.arange(1, len(col) + 1)
        first = int(np.argmax(col))
        np.testing.assert_allclose([v for _, v in board.mix_points[group]], shares[first:])
    for pair in ("intent / slots", "intent / ner", "slots / ner"):
        a, b = pair.split(" / ")
        assert board.conflict_points[pair] == [(r["epoch"], r["cosine"]) for r in history.conflict_rows()
                                               if r["tasks"] == [a, b]]
    fig = board.figure()
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[2:] == ["Learning rate (encoder)", "Loss weight per task", "Sampler mix so far",
                          "Task conflict (gradient cosine)"]
    assert "lr " in board.status.value or "done" in board.status.value


def test_a_replayed_history_draws_what_the_live_dashboard_drew(run):
    """A run loaded from disk (the lessons' cache) shows the same curves as when it was watched."""
    live = run.board
    saved = History.from_json(run.out / "last" / "history.json")  # as a loaded run has it
    board = LiveDashboard(every_n=2, min_interval=0)
    board.replay(saved)
    for points in ("loss_points", "metric_points", "metric_names", "lr_points", "weight_points",
                   "mix_points", "conflict_points"):
        assert getattr(board, points) == getattr(live, points), points
    assert board.max_epoch == pytest.approx(live.max_epoch)
    assert board.redraws == 1 and bytes(board.image.value).startswith(b"\x89PNG")  # drawn once
    assert "loaded: 12 / 12 steps" in board.status.value
    assert [ax.get_title() for ax in board.figure().axes] == [ax.get_title() for ax in live.figure().axes]


def test_replaying_nothing_says_so():
    board = LiveDashboard()
    board.replay(History())
    assert board.redraws == 0 and "no training rows" in board.status.value


def test_dashboard_without_internals_keeps_two_panels():
    board = LiveDashboard(every_n=1, min_interval=0)
    trainer = SimpleNamespace(step=1, total_steps=2, steps_per_epoch=2, history=History())
    board.on_fit_start(trainer)
    board.on_step_end(trainer, {"task": "a", "epoch": 0.5, "loss": 1.0})  # no lr / weight
    board.on_batch_end(trainer)
    assert len(board.figure().axes) == 2 and board.mix_points == {"a": [(0.5, 1.0)]}


def test_static_plots_of_the_internals(run):
    history = run.history
    fig = plots.plot_loss_weights(history)
    lines = {ln.get_label(): ln for ln in fig.axes[0].lines}
    assert set(lines) == {"intent", "slots", "ner"}
    rows = history.train_rows("ner")
    assert list(lines["ner"].get_xdata()) == [r["step"] for r in rows]
    assert list(lines["ner"].get_ydata()) == [r["weight"] for r in rows]
    fig = plots.plot_sampler_mix(history, window=None)
    steps, onehot = plots.sampler_mix(history)
    ax = fig.axes[0]
    assert "since the start" in ax.get_title()
    top = ax.collections[0].get_paths()[0].vertices  # the first group's band, from 0 to its share
    np.testing.assert_allclose(sorted(top[:, 1])[-1], max(np.cumsum(onehot["intent+slots"])
                                                          / np.arange(1, len(steps) + 1)))
    full = plots.plot_training_internals(history)
    assert [a.get_title() for a in full.axes][:4] == ["Learning rate (encoder)", "Loss weight per task",
                                                      "Sampler mix since the start",
                                                      "Task conflict (gradient cosine)"]
    no_conflict = [r for r in history.records if r["kind"] != "conflict"]
    assert len(plots.plot_training_internals(no_conflict).axes) == 3
    assert len(plots.plot_training_internals([]).axes) == 3
    # conflict rows have no "task": the other plots still draw a history that holds them
    assert plots.plot_losses(history)._repr_png_() and plots.plot_metrics(history)._repr_png_()
