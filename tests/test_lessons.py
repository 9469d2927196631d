"""The lessons' run cache (mtl_lib.lessons): one runs file, runs trained once, loaded after.

Runs here use tiny encoders and a few steps on a small runs file of their own, in a
temporary cache; the real ``notebooks/lesson_runs.yml`` is only read and checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mtl_lib.experiment import load_task_file
from mtl_lib.lessons import FAST_NOTE, LessonRun, cached_run, fast_mode_note, lesson_run, lesson_runs
from mtl_lib.tasks.spec import TaskFileError

ROOT = Path(__file__).resolve().parents[1]
SNIPS = ROOT / "examples" / "tasks" / "snips.yml"
LESSON_RUNS = ROOT / "notebooks" / "lesson_runs.yml"

RUNS = f"""
cache: cache
defaults:
  encoder: tiny-bert
  max_examples: 60
  training: {{batch_size: 8, encoder_lr: 1.0e-3, classifier_lr: 3.0e-3}}
runs:
  intent:
    task_file: {SNIPS}
    tasks: [intent]
    training: {{max_steps: 4, eval_every: 2}}
    checkpoints: true
    fast: {{training: {{max_steps: 3}}}}
  joint:
    task_file: {SNIPS}
    seeds: [1, 2]
    training: {{max_steps: 3}}
"""


@pytest.fixture
def runs_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MTL_LIB_LESSON_CACHE", raising=False)
    path = tmp_path / "lesson_runs.yml"
    path.write_text(RUNS)
    return path


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_run_is_trained_once_then_loaded(runs_file, capsys):
    run = lesson_run("intent", fast=False, runs_file=runs_file)
    assert run.directory == runs_file.parent / "cache" / "full" / "intent"
    model, history = cached_run(run)
    assert "training it now" in capsys.readouterr().out
    assert {p.name for p in run.directory.iterdir()} == {"run.json", "model", "history.json", "checkpoints"}
    assert {p.name for p in (run.directory / "checkpoints").iterdir()} == {"best", "last", "run.json"}
    assert max(r["step"] for r in history.train_rows()) == 4

    calls = []
    loaded, loaded_history = cached_run(run, callbacks=[type("Spy", (), {
        "on_step_end": lambda self, trainer, record: calls.append(record)})()])
    out = capsys.readouterr().out
    assert "loaded from" in out and "training" not in out.split("loaded from")[0]
    assert calls == []  # nothing was trained
    assert _same_weights(model, loaded)  # the model at the end of training, not best/
    assert loaded_history.records == json.loads(json.dumps(history.records))
    # the same run by name, read from the file again
    again, _ = cached_run("intent", fast=False, runs_file=runs_file)
    assert _same_weights(model, again)


def test_a_loaded_run_is_replayed_on_a_live_dashboard(runs_file):
    from mtl_lib.ui.live_dashboard import LiveDashboard

    run = lesson_run("intent", fast=False, runs_file=runs_file)
    watched = LiveDashboard(every_n=1, min_interval=0)
    cached_run(run, callbacks=[watched])  # trained here: the dashboard watched it
    loaded = LiveDashboard(every_n=1, min_interval=0)
    _, history = cached_run(run, callbacks=[loaded])  # loaded: not trained, but shown
    assert loaded.loss_points == watched.loss_points and loaded.loss_points["intent"]
    assert loaded.metric_points == watched.metric_points and len(loaded.metric_points["intent"]) == 2
    assert "loaded: 4 / 4 steps" in loaded.status.value


def test_a_changed_setting_trains_the_run_again(runs_file, capsys):
    cached_run(lesson_run("intent", fast=False, runs_file=runs_file))
    runs_file.write_text(RUNS.replace("max_steps: 4, eval_every: 2", "max_steps: 5, eval_every: 2"))
    run = lesson_run("intent", fast=False, runs_file=runs_file)
    capsys.readouterr()
    _, history = cached_run(run)
    assert "trained with other settings (training): training it again" in capsys.readouterr().out
    assert max(r["step"] for r in history.train_rows()) == 5
    assert json.loads((run.directory / "run.json").read_text())["settings"]["training"]["max_steps"] == 5


def test_fast_and_full_settings_are_kept_apart(runs_file):
    fast, full = (lesson_run("intent", fast=f, runs_file=runs_file) for f in (True, False))
    assert (fast.config().max_steps, full.config().max_steps) == (3, 4)
    assert fast.directory.parent.name == "fast" and full.directory.parent.name == "full"
    # fast: defaults, then the run, then the run's fast part; the task file's training section below
    assert fast.config().batch_size == 8 and fast.config().warmup_ratio == 0.1
    assert fast.config().encoder_lr == 1e-3  # the task file says 2e-4; the run's defaults win


def test_a_run_stopped_early_is_not_stored(runs_file, capsys):
    class StopAtOne:
        def on_step_end(self, trainer, record):
            trainer.should_stop = True

    run = lesson_run("intent", fast=False, runs_file=runs_file)
    cached_run(run, callbacks=[StopAtOne()])
    assert "not stored" in capsys.readouterr().out
    assert not run.directory.exists()
    assert list(run.directory.parent.iterdir()) == []  # no partial directory left behind


def test_seeds_make_one_run_each(runs_file):
    runs = lesson_runs(runs_file, fast=False)
    assert sorted(runs) == ["intent", "joint-seed1", "joint-seed2"]
    assert runs["joint-seed2"].config().seed == 2 and runs["joint-seed2"].seed == 2
    assert runs["joint-seed1"].settings() != runs["joint-seed2"].settings()


def test_the_cache_directory_can_be_moved(runs_file, tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_LIB_LESSON_CACHE", str(tmp_path / "elsewhere"))
    assert lesson_run("intent", fast=True, runs_file=runs_file).directory == tmp_path / "elsewhere" / "fast" / "intent"


@pytest.mark.parametrize("text, message", [
    ("runs:\n  a:\n    task_file: x.yml\n    max_step: 3\n", "run 'a': unknown key 'max_step'"),
    ("runs:\n  a:\n    task_file: x.yml\n    training: {max_stepz: 3}\n",
     "run 'a': unknown training option 'max_stepz'"),
    ("runs:\n  a:\n    task_file: x.yml\n    kind: svm\n", "run 'a': kind must be one of trainer, db_linear"),
    ("runs:\n  a:\n    encoder: minilm\n", "run 'a': missing key 'task_file'"),
    ("cache: c\nrun: {}\n", "expected a mapping with a 'runs:' section"),
    ("runs:\n  a: {task_file: x.yml}\n  a: {task_file: y.yml}\n", "duplicated key 'a'"),
])
def test_a_bad_runs_file_names_the_file_and_the_run(tmp_path, text, message):
    path = tmp_path / "runs.yml"
    path.write_text(text)
    with pytest.raises(TaskFileError) as err:
        lesson_runs(path, fast=False)
    assert str(path) in str(err.value) and message in str(err.value)


def test_an_unknown_run_lists_the_known_ones(runs_file):
    with pytest.raises(KeyError, match="no run 'intnet' .*known: intent, joint-seed1, joint-seed2"):
        lesson_run("intnet", fast=False, runs_file=runs_file)


def test_fast_mode_note_is_one_line_in_fast_mode_only(capsys):
    fast_mode_note(False)
    assert capsys.readouterr().out == ""
    fast_mode_note(True)
    out = capsys.readouterr().out
    assert out == FAST_NOTE + "\n" and "meaningless" in out and out.count("\n") == 1


def test_the_lessons_runs_file_is_valid_in_both_modes():
    comparison = {f"05_{kind}-seed{s}" for kind in ("joint", "intent_only", "slots_only") for s in (1, 2, 3)}
    for fast in (True, False):
        runs = lesson_runs(LESSON_RUNS, fast=fast)
        assert {"snips_joint", "04_intent", "06_static", "06_uncertainty", "06_dwa",
                "07_db_linear"} | comparison <= set(runs)
        for run in runs.values():
            assert isinstance(run, LessonRun) and run.task_file.is_file(), run.name
            assert run.encoder.startswith("tiny-") == fast, run.name
            run.settings()  # reads the task file and checks every training option


def _training(run: LessonRun, *leave_out: str) -> dict:
    return {k: v for k, v in run.settings()["training"].items() if k not in ("seed", *leave_out)}


@pytest.mark.parametrize("fast", [False, True])
def test_the_lessons_comparisons_differ_only_in_what_they_compare(fast):
    runs = lesson_runs(LESSON_RUNS, fast=fast)
    for s in (1, 2, 3):  # lesson 05: joint vs single-task, same data, steps, rates and seed
        joint, intent, slots = (runs[f"05_{k}-seed{s}"] for k in ("joint", "intent_only", "slots_only"))
        assert [t["name"] for t in joint.settings()["tasks"]] == ["intent", "slots"]
        assert [t["name"] for t in intent.settings()["tasks"]] == ["intent"]
        assert [t["name"] for t in slots.settings()["tasks"]] == ["slots"]
        assert joint.settings()["tasks"] == intent.settings()["tasks"] + slots.settings()["tasks"]
        assert _training(joint) == _training(intent) == _training(slots)
        assert joint.seed == intent.seed == slots.seed == s
    static, uncertainty, dwa = (runs[f"06_{w}"] for w in ("static", "uncertainty", "dwa"))
    assert [r.config().weighting for r in (static, uncertainty, dwa)] == ["static", "uncertainty", "dwa"]
    assert static.config().conflict_every  # lesson 06 plots the static run's task conflict
    # weighting_lr is read by the uncertainty weighting only (its run raises it to reach 1/(2L) in 240 steps)
    differ = ("weighting", "conflict_every", "weighting_lr")
    assert _training(static, *differ) == _training(uncertainty, *differ) == _training(dwa, *differ)
    assert static.settings()["tasks"] == uncertainty.settings()["tasks"] == dwa.settings()["tasks"]


def test_the_lessons_full_runs_take_their_task_files_learning_rates():
    """One recommendation: the task file's rates (chosen on dev), not a second set in the lessons."""
    for run in lesson_runs(LESSON_RUNS, fast=False).values():
        if run.kind != "trainer":
            continue
        from_file = load_task_file(run.task_file).training
        config = run.config()
        assert (config.encoder_lr, config.classifier_lr) == (from_file["encoder_lr"], from_file["classifier_lr"]), \
            run.name
    snips = lesson_run("snips_joint", fast=False, runs_file=LESSON_RUNS).config()
    assert (snips.encoder_lr, snips.classifier_lr) == (2e-4, 5e-3)  # examples/tasks/snips.yml
    trec = lesson_run("07_db_linear", fast=False, runs_file=LESSON_RUNS)
    recipe = load_task_file(trec.task_file).training
    assert {k: trec.db_linear[k] for k in ("encoder_lr", "classifier_lr", "lr_schedule")} == \
        {k: recipe[k] for k in ("encoder_lr", "classifier_lr", "lr_schedule")}


@pytest.mark.slow
def test_a_db_linear_run_is_trained_once_then_loaded(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MTL_LIB_LESSON_CACHE", raising=False)
    path = tmp_path / "runs.yml"
    path.write_text(f"""
runs:
  trec:
    kind: db_linear
    task_file: {ROOT / "examples" / "tasks" / "hierarchical.yml"}
    tasks: [trec]
    encoder: tiny-bert
    max_examples: 150
    db_linear: {{epochs: 1, batch_size: 16, max_length: 32, encoder_lr: 1.0e-3}}
""")
    run = lesson_run("trec", fast=False, runs_file=path)
    model, rows = cached_run(run)
    train, dev, hierarchy = run.hierarchy_data()
    assert len(train) == 150 and len(rows) == 1 and hierarchy.n_leaves > 40  # every TREC leaf
    loaded, loaded_rows = cached_run(run)
    assert "loaded from" in capsys.readouterr().out
    assert loaded_rows == json.loads(json.dumps(rows))
    assert loaded.test(dev) == model.test(dev)
