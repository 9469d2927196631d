"""Run comparison: runs read back from their directories, the table against the histories by
hand, names by what changed, the overlay figure and ``mtl-lib compare``."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest

from mtl_lib.cli import main
from mtl_lib.models.multitask import MultiTaskModel
from mtl_lib.training.comparison import (
    Run,
    comparison_table,
    describe_changes,
    format_comparison,
    name_runs,
    read_run,
    run_from_trainer,
)
from mtl_lib.training.trainer import Trainer
from mtl_lib.ui.compare import RunComparison, compare_runs
from mtl_lib.ui.plots import smooth

PNG = b"\x89PNG\r\n\x1a\n"
BASE = dict(max_steps=8, batch_size=16, eval_every=2, classifier_lr=5e-3, progress=False)


@pytest.fixture(scope="module")
def two_runs(tiny_snips, tmp_path_factory):
    """Two tiny SNIPS runs that differ in the loss weighting: (dirs, trainers)."""
    enc, groups = tiny_snips
    dirs, trainers = [], []
    for weighting in ("static", "dwa"):
        model = MultiTaskModel.from_tasks(copy.deepcopy(enc), [t for g in groups for t in g.tasks])
        out = tmp_path_factory.mktemp(weighting)
        trainer = Trainer(model, groups, weighting=weighting, output_dir=str(out), **BASE)
        trainer.weighting.window = 2  # DWA moves its weights within these 8 steps
        trainer.fit()
        dirs.append(out)
        trainers.append(trainer)
    return dirs, trainers


def test_read_run_gets_history_settings_and_best_step(two_runs):
    dirs, trainers = two_runs
    for d, tr in zip(dirs, trainers):
        run = read_run(d)
        assert run.records == json.loads(json.dumps(tr.history.records))
        saved = json.loads((d / "best" / "config.json").read_text())
        assert run.best_step == saved["run"]["step"]
        assert run.settings["weighting"] == tr.config.weighting and run.settings["encoder"] == "tiny-bert"
        assert run.settings["tasks"] == "intent+slots" and run.settings["slots.tag_decoding"] == "bio"
        assert "output_dir" not in run.settings and "progress" not in run.settings
        assert run.primary == {"intent": "classification_accuracy", "slots": "seqeval_f1_score"}
        # a checkpoint of the run reads as the run; an in-memory trainer picks the same best step
        assert read_run(d / "best").records == run.records
        assert run_from_trainer(tr).best_step == run.best_step


def test_best_step_follows_the_checkpoint_rule():
    def ev(step, acc, f1):
        return [{"kind": "eval", "step": step, "epoch": step / 10, "split": "dev", "task": "a",
                 "metric": "acc", "value": acc},
                {"kind": "eval", "step": step, "epoch": step / 10, "split": "dev", "task": "b",
                 "metric": "f1", "value": f1},
                {"kind": "eval", "step": step, "epoch": step / 10, "split": "dev", "task": "a",
                 "metric": "other", "value": 1.0 - acc}]  # not a first metric: ignored
    config = {"tasks": [{"name": "a", "metrics": ["acc", "other"]}, {"name": "b", "metrics": ["f1"]}]}
    from mtl_lib.training.comparison import _run

    records = ev(2, 0.5, 0.5) + ev(4, 0.9, 0.3) + ev(6, 0.4, 0.8) + ev(8, 0.7, 0.5)
    assert _run("x", records, config).best_step == 6  # means .5, .6, .6, .6: the first of the ties
    assert _run("x", [], config).best_step is None


def test_table_by_hand(two_runs):
    dirs, _ = two_runs
    runs = [read_run(d) for d in dirs]
    rows = comparison_table(runs)
    by_key = {(r["task"], r["metric"], r["run"]): r for r in rows}
    for run in runs:
        evals = [r for r in run.records if r["kind"] == "eval"]
        for task, metric in {(r["task"], r["metric"]) for r in evals}:
            mine = [r for r in evals if (r["task"], r["metric"]) == (task, metric)]
            row = by_key[(task, metric, run.name)]
            assert row["last"] == mine[-1]["value"] and row["last_step"] == mine[-1]["step"] == 8
            assert row["best"] == next(r["value"] for r in mine if r["step"] == run.best_step)
            assert row["best_step"] == run.best_step
    for r in rows:
        base = by_key[(r["task"], r["metric"], runs[0].name)]
        if r["run"] == runs[0].name:
            assert r["best_diff"] is None and r["last_diff"] is None
        else:
            assert r["best_diff"] == pytest.approx(r["best"] - base["best"])
            assert r["last_diff"] == pytest.approx(r["last"] - base["last"])
    assert [(r["task"], r["metric"]) for r in rows[:2]] == [("intent", "classification_accuracy")] * 2
    assert {r["task"] for r in rows} == {"intent", "slots", "intent+slots"}


def test_a_metric_one_run_lacks_is_none():
    a = Run("a", [{"kind": "eval", "step": 1, "epoch": 1, "task": "t", "metric": "m", "value": 0.5}], best_step=1)
    b = Run("b", [{"kind": "eval", "step": 1, "epoch": 1, "task": "u", "metric": "m", "value": 0.7}], best_step=1)
    rows = comparison_table([a, b])
    assert [(r["task"], r["run"], r["best"], r["best_diff"]) for r in rows] == [
        ("t", "a", 0.5, None), ("t", "b", None, None), ("u", "a", None, None), ("u", "b", 0.7, None)]
    assert "-" in format_comparison(rows)


def _runs(*settings):
    return [Run("", [], s) for s in settings]


def test_names_say_what_changed():
    base = {"encoder": "minilm", "weighting": "static", "intent.max_examples": 500,
            "slots.max_examples": 500, "slots.tag_decoding": "bio", "intent.tag_decoding": "bio"}
    assert describe_changes(_runs(base, base | {"weighting": "uncertainty"})) == \
        ["weighting=static", "weighting=uncertainty"]
    # a task field changed for every task alike is named once; for one task, with the task
    assert describe_changes(_runs(base, base | {"intent.max_examples": 0, "slots.max_examples": 0})) == \
        ["max_examples=500", "max_examples=0"]
    assert describe_changes(_runs(base, base | {"slots.tag_decoding": "argmax"})) == \
        ["slots.tag_decoding=bio", "slots.tag_decoding=argmax"]
    assert describe_changes(_runs(base, base)) == ["same settings", "same settings"]
    # a task one run does not have: its fields are left out of that run's name
    ner = base | {"tasks": "intent+slots+ner", "ner.max_examples": 500}
    assert describe_changes(_runs(base | {"tasks": "intent+slots"}, ner)) == \
        ["tasks=intent+slots", "tasks=intent+slots+ner, ner.max_examples=500"]
    many = base | {"weighting": "dwa", "encoder": "x", "encoder_lr": 1e-4, "seed": 3}
    assert describe_changes(_runs(base, many), most=2)[1] == "encoder=x, weighting=dwa, ..."
    assert describe_changes(_runs(base | {"encoder_lr": 5e-05}, base | {"encoder_lr": 2e-4})) == \
        ["encoder_lr=5e-05", "encoder_lr=0.0002"]
    runs = name_runs(_runs(base, base, base | {"seed": 1}))
    assert [r.name for r in runs] == ["same settings", "same settings #2", "seed=1"]


def test_compare_runs_table_and_overlay(two_runs):
    dirs, _ = two_runs
    result = compare_runs(dirs)
    assert isinstance(result, RunComparison)
    table, fig = result
    assert table == comparison_table([read_run(d) for d in dirs])
    assert str(result) == format_comparison(table, result.runs)
    html = result._repr_html_()
    assert "<table" in html and "data:image/png;base64," in html and " pp<" in html
    # columns intent, slots, intent+slots; top row losses, bottom row first metrics
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles[:2] == ["intent: training loss", "slots: training loss"]
    assert "intent: classification_accuracy" in titles and "intent+slots: sentence_accuracy" in titles
    loss_ax = next(ax for ax in fig.axes if ax.get_title() == "slots: training loss")
    assert len(loss_ax.lines) == 2  # one per run
    for line, run in zip(loss_ax.lines, result.runs):
        rows = [r for r in run.records if r["kind"] == "train" and r["task"] == "slots"]
        np.testing.assert_allclose(line.get_xdata(), [r["epoch"] for r in rows])
        np.testing.assert_allclose(line.get_ydata(), smooth([r["loss"] for r in rows], 0.9))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [f"{dirs[0]} (weighting=static)", f"{dirs[1]} (weighting=dwa)"]
    assert fig._repr_png_().startswith(PNG)
    with pytest.raises(ValueError, match="no runs"):
        compare_runs([])


def test_cli_compare_prints_the_table_and_saves_the_figure(two_runs, tmp_path, capsys):
    dirs, _ = two_runs
    png = tmp_path / "figs" / "compare.png"
    assert main(["compare", str(dirs[0]), str(dirs[1]), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    runs = [read_run(d) for d in dirs]
    assert out.startswith(format_comparison(comparison_table(runs), runs))
    assert re.search(rf"^{dirs[0]} +weighting=static$", out, re.M)
    assert re.search(rf"^{dirs[1]} +weighting=dwa$", out, re.M)
    assert png.read_bytes().startswith(PNG)


def test_cli_compare_bad_directory_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run directory" in err
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err
