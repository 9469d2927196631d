"""Run directories: one run per directory, one writer at a time, the user's files never deleted;
resuming refuses a checkpoint whose tasks differ. (Issue "Reliability, round two", items 1, 3,
5, 9, 11 and 12.)"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mtl_lib.cli import main
from mtl_lib.data import data_root
from mtl_lib.evaluation.evaluate import collect_predictions, evaluate
from mtl_lib.evaluation.predict import Predictor, split_words
from mtl_lib.experiment import build_experiment, build_groups, load_task_file
from mtl_lib.models.multitask import MultiTaskModel, load_model, save_model
from mtl_lib.models.safe_files import CheckpointError, run_id_of
from mtl_lib.training.history import History
from mtl_lib.training.run_dir import RunDirectoryError, RunLock
from mtl_lib.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TASK_FILE = """\
intent:
  task_type: classification
  format: jointbert
  path: {data}
  label_field: intent
  label_map_or_file: {data}/intent_label.txt
slots:
  task_type: tagging
  format: jointbert
  path: {data}
  label_field: slots
  label_map_or_file: snips/slot_label.txt
training:
  batch_size: 8
  progress: false
"""
TRAIN = ["--encoder", "tiny-bert", "--set", "max_steps=4"]


def write_task_file(folder: Path) -> Path:
    """``folder/tasks.yml`` over ``folder/snips``: 40 SNIPS utterances per split (spread over
    the files, which are sorted by intent) and the intent label file, copied there so that
    tests can change them."""
    data = folder / "snips"
    if not data.exists():
        for split in ("train", "dev"):
            (data / split).mkdir(parents=True)
            for name in ("seq.in", "seq.out", "label"):
                lines = (data_root() / "snips" / split / name).read_text(encoding="utf-8").splitlines()
                lines = lines[::len(lines) // 40][:40]
                (data / split / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        shutil.copy(data_root() / "snips" / "intent_label.txt", data / "intent_label.txt")
    (folder / "tasks.yml").write_text(TASK_FILE.format(data=data))
    return folder / "tasks.yml"


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(capsys, command: str = "train") -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"mtl-lib {command}: error: "), err
    return err


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A 4-step run (tiny BERT, 40 SNIPS utterances) in ``<tmp>/run``, its task file beside it."""
    tmp = tmp_path_factory.mktemp("base")
    assert main(["train", str(write_task_file(tmp)), "--out", str(tmp / "run"), *TRAIN]) == 0
    return tmp


@pytest.fixture
def run(base_run, tmp_path) -> Path:
    """A copy of the base run (``tmp_path/run``) with its task file and label file, to change."""
    shutil.copytree(base_run / "run", tmp_path / "run")
    shutil.copytree(base_run / "snips", tmp_path / "snips")
    write_task_file(tmp_path)
    return tmp_path / "run"


# --------------------------------------------------------------------------- item 1: task schema
def _swap(path: Path, a: str, b: str) -> None:
    lines = path.read_text().splitlines()
    i, j = lines.index(a), lines.index(b)
    lines[i], lines[j] = lines[j], lines[i]
    path.write_text("\n".join(lines) + "\n")


def _rename(data: Path, old: str, new: str) -> None:
    """Rename an intent in the label file and in the data."""
    for path in (data / "intent_label.txt", data / "train" / "label", data / "dev" / "label"):
        path.write_text("".join(f"{new if ln == old else ln}\n" for ln in path.read_text().splitlines()))


LABELS = "snips/intent_label.txt"


@pytest.mark.parametrize("change,extra,message", [
    (lambda d: _swap(d / LABELS, "PlayMusic", "RateBook"), [],
     "task 'intent': label 3 is 'PlayMusic' in the checkpoint, 'RateBook' now"),
    (lambda d: _rename(d / "snips", "RateBook", "RateABook"), [],
     "task 'intent': label 4 is 'RateBook' in the checkpoint, 'RateABook' now"),
    (lambda d: (d / LABELS).write_text((d / LABELS).read_text() + "OrderPizza\n"), [],
     "task 'intent': 7 labels in the checkpoint, 8 now (new 'OrderPizza')"),
    (lambda d: (d / "tasks.yml").write_text((d / "tasks.yml").read_text().split("slots:")[0] + "training:\n"
                                            "  batch_size: 8\n  progress: false\n"), [],
     "task 'slots' is in the checkpoint, not in this model"),
    (lambda d: None, ["--set", "max_length=16"], "max_length is 128 in the checkpoint, 16 now"),
], ids=["reordered", "renamed", "added", "task-removed", "max-length"])
def test_resume_refuses_a_changed_task_schema_saying_what_differs(change, extra, message, run, capsys):
    change(run.parent)
    before = digest(run)
    argv = ["train", str(run.parent / "tasks.yml"), "--out", str(run), "--encoder", "tiny-bert",
            "--resume", "--set", "max_steps=6", *extra]
    assert main(argv) == 2
    err = one_error_line(capsys)
    assert message in err and "cannot resume" in err, err
    assert digest(run) == before  # nothing trained, nothing written


def test_fit_resume_from_refuses_reordered_labels_before_changing_the_trainer(run):
    _swap(run.parent / LABELS, "PlayMusic", "RateBook")
    model, groups = build_experiment(load_task_file(run.parent / "tasks.yml"), "tiny-bert")
    trainer = Trainer(model, groups, max_steps=6, batch_size=8, progress=False, output_dir=str(run))
    weights = copy.deepcopy(model.state_dict())
    with pytest.raises(CheckpointError, match="label 3 is 'PlayMusic' in the checkpoint, 'RateBook' now"):
        trainer.fit(resume_from=run / "last")
    assert trainer.step == 0 and len(trainer.history) == 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    # the same labels in the checkpoint's order resume fine
    _swap(run.parent / LABELS, "PlayMusic", "RateBook")
    model, groups = build_experiment(load_task_file(run.parent / "tasks.yml"), "tiny-bert")
    assert Trainer(model, groups, max_steps=6, batch_size=8, progress=False,
                   output_dir=str(run)).fit(resume_from=run / "last").train_rows()[-1]["step"] == 6


def test_schema_differences_compare_names_types_labels_and_max_length(base_run):
    model = load_model(base_run / "run")
    config = model.config(model.training_config)
    assert model.schema_differences(config, 128) == []
    for t in config["tasks"]:  # a type given by its multi-task-NLP alias is the same type
        t["task_type"] = {"classification": "SingleSenClassification", "tagging": "NER"}[t["task_type"]]
    assert model.schema_differences(config, 128) == []
    config["tasks"][0]["task_type"] = "multilabel"
    config["tasks"][1]["labels"] = config["tasks"][1]["labels"][:-1]
    config["tasks"][1]["use_crf"] = True
    gone = model.tasks["slots"].labels[-1]
    assert model.schema_differences(config, 64) == [
        "task 'intent': type 'multilabel' in the checkpoint, 'classification' now",
        f"task 'slots': {len(model.tasks['slots'].labels) - 1} labels in the checkpoint, "
        f"{len(model.tasks['slots'].labels)} now (new {gone!r})",
        "task 'slots': use_crf is true in the checkpoint, false now",
        "max_length is 128 in the checkpoint, 64 now"]
    del config["tasks"][1]["use_crf"]  # a checkpoint that does not say has no CRF
    assert not any("use_crf" in d for d in model.schema_differences(config, 128))


# --------------------------------------------------------------------------- item 3: user files
def test_save_model_refuses_a_folder_holding_other_files(base_run, tmp_path):
    model = load_model(base_run / "run")
    thesis = tmp_path / "thesis"
    (thesis / "figures").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("chapter 1")
    (thesis / "figures" / "a.png").write_bytes(b"png")
    before = digest(thesis)
    with pytest.raises(CheckpointError, match=r"thesis: refusing to replace this folder: it holds figures/, "
                                              r"thesis\.tex, which are not files of an mtl_lib checkpoint"):
        save_model(model, thesis)
    assert digest(thesis) == before
    assert [p.name for p in tmp_path.iterdir()] == ["thesis"]  # no temporary copy left behind
    # a run directory is not a checkpoint folder either: saving into it would delete the run
    with pytest.raises(CheckpointError, match="it holds best/, last/, loss.png"):
        save_model(model, base_run / "run")
    # a file of ours under a name of ours, with a stranger inside encoder/, is not ours either
    save_model(model, tmp_path / "mine")
    (tmp_path / "mine" / "encoder" / "NOTES.md").write_text("mine")
    with pytest.raises(CheckpointError, match="encoder/NOTES.md"):
        save_model(model, tmp_path / "mine")


def test_save_model_replaces_its_own_checkpoint_and_fills_an_empty_folder(base_run, tmp_path):
    model = load_model(base_run / "run")
    (tmp_path / "empty").mkdir()
    save_model(model, tmp_path / "empty")
    save_model(model, tmp_path / "empty")  # a checkpoint of ours is replaced
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["config.json", "encoder", "model.safetensors"]
    last = tmp_path / "last"
    shutil.copytree(base_run / "run" / "last", last)  # a resumable checkpoint: optimizer, state, history
    save_model(model, last)
    assert not (last / "optimizer.safetensors").exists()


def test_overwrite_refuses_unrelated_files_inside_best_or_last_and_keeps_those_beside_them(run, capsys):
    tasks = run.parent / "tasks.yml"
    (run / "best" / "NOTES.md").write_text("what I found out about this model")
    (run / "notes.txt").write_text("my notes on the run")
    before = digest(run)
    assert main(["train", str(tasks), "--out", str(run), *TRAIN, "--overwrite"]) == 2
    err = one_error_line(capsys)
    assert f"{run / 'best'}: holds NOTES.md, which mtl_lib did not write" in err and "nothing was deleted" in err
    assert digest(run) == before
    (run / "best" / "NOTES.md").unlink()
    assert main(["train", str(tasks), "--out", str(run), *TRAIN, "--overwrite"]) == 0
    assert (run / "notes.txt").read_text() == "my notes on the run"  # not a file of the run: kept


@pytest.mark.slow
def test_demo_does_not_replace_a_run_without_overwrite(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--encoder", "tiny-bert", "--max-examples", "64", "--max-steps", "2"]
    assert main(argv) == 0
    before = digest(out)
    capsys.readouterr()
    assert main(argv) == 2
    err = one_error_line(capsys, "demo")
    assert "already holds a run" in err and "--overwrite" in err and "--resume" not in err
    assert digest(out) == before
    old = run_id_of(out / "run.json")
    assert main(argv + ["--overwrite"]) == 0
    assert run_id_of(out / "best") == run_id_of(out / "last") == run_id_of(out / "run.json") != old


# --------------------------------------------------------------------------- item 5: one run
class Crash:
    """Raise at the end of step ``at`` (a crash in the middle of a run)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_batch_end(self, trainer) -> None:
        if trainer.step == self.at:
            raise RuntimeError("crash")


def test_a_new_run_removes_the_old_runs_files_before_its_first_step(run):
    old = run_id_of(run / "best")
    assert old and run_id_of(run / "last") == old == run_id_of(run / "run.json")
    model, groups = build_experiment(load_task_file(run.parent / "tasks.yml"), "tiny-bert")
    trainer = Trainer(model, groups, max_steps=50, batch_size=8, progress=False, eval_every=100,
                      output_dir=str(run), callbacks=[Crash(2)])
    with pytest.raises(RuntimeError, match="crash"):
        trainer.fit()
    # the crash came before the new run saved anything: none of the old run's files are left
    # to be mistaken for the new run's
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]
    assert run_id_of(run / "run.json") not in (None, old)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_model(run)
    assert not (run / ".lock").exists()  # fit released the directory despite the crash


def test_resuming_keeps_the_runs_id_and_its_best(run, capsys):
    rid = run_id_of(run / "run.json")
    argv = ["train", str(run.parent / "tasks.yml"), "--out", str(run), "--encoder", "tiny-bert", "--resume",
            "--set", "max_steps=6", "--set", "eval_every=100"]
    assert main(argv) == 0
    assert run_id_of(run / "last") == run_id_of(run / "best") == run_id_of(run / "run.json") == rid
    # resumed again, and crashed before its next evaluation: this run's best/ is still there
    best = digest(run / "best")
    model, groups = build_experiment(load_task_file(run.parent / "tasks.yml"), "tiny-bert")
    trainer = Trainer(model, groups, max_steps=10, batch_size=8, progress=False, eval_every=100,
                      output_dir=str(run), callbacks=[Crash(7)])
    with pytest.raises(RuntimeError, match="crash"):
        trainer.fit(resume_from=run / "last")
    assert digest(run / "best") == best and run_id_of(run / "run.json") == rid


def test_a_directory_mixing_two_runs_is_refused_by_evaluate_and_predict(base_run, run, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["train", str(run.parent / "tasks.yml"), "--out", str(other), *TRAIN]) == 0
    shutil.rmtree(run / "best")
    shutil.copytree(other / "best", run / "best")  # best/ of another run next to this run's last/
    capsys.readouterr()
    for argv in (["evaluate", str(run)], ["predict", str(run), "-i", os.devnull]):
        assert main(argv) == 2
        err = one_error_line(capsys, argv[0])
        assert "mixes two runs" in err and f"best/ from run {run_id_of(other / 'run.json')}" in err, err
    with pytest.raises(CheckpointError, match="mixes two runs"):
        load_model(run)
    load_model(run / "best")  # naming the checkpoint is a clear choice
    load_model(run / "last")


def _start_train(out: Path, tasks: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mtl_lib.cli", "train", str(tasks), "--out", str(out),
                             "--encoder", "tiny-bert", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _read(path: Path) -> dict:
    """A JSON file of a checkpoint being replaced, or {} at the moment it is not there."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_second_train_into_the_same_out_fails_at_once(run, tmp_path):
    """Two real processes: the second ``train`` is refused while the first runs, and the first
    is undisturbed; after the first ends (even by SIGKILL), the directory is free again."""
    tasks = run.parent / "tasks.yml"
    first = _start_train(run, tasks, "--overwrite", "--set", "max_steps=100000", "--set", "save_every=1",
                         "--set", "eval_every=100000")
    try:
        _wait_for(lambda: _read(run / "last" / "config.json").get("training", {}).get("max_steps") == 100000,
                  first)
        for flags in (["--overwrite"], ["--resume"]):
            t0 = time.monotonic()
            second = subprocess.run([sys.executable, "-m", "mtl_lib.cli", "train", str(tasks), "--out", str(run),
                                     "--encoder", "tiny-bert", *flags], capture_output=True, text=True,
                                    env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
            assert second.returncode == 2, second.stderr
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1 and f"another process (pid {first.pid}) is writing to this run directory" \
                in lines[0], second.stderr
            # refused before the heavy imports and the data: well under the first's start-up
            assert time.monotonic() - t0 < 60
        assert first.poll() is None  # the first run goes on
        first.send_signal(signal.SIGINT)  # Ctrl-C: it saves last/ and exits
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    assert not (run / ".lock").exists()
    step = _read(run / "last" / "trainer_state.json")["step"]
    # SIGKILL leaves no stale lock: the kernel drops a flock with its process
    third = _start_train(run, tasks, "--resume", "--set", "max_steps=100000", "--set", "save_every=1",
                         "--set", "eval_every=100000")
    _wait_for(lambda: _read(run / "last" / "trainer_state.json").get("step", 0) > step, third)
    third.kill()
    third.wait()
    assert (run / ".lock").exists()  # left behind, but not locked by anyone
    last = _read(run / "last" / "trainer_state.json")["step"]
    assert main(["train", str(tasks), "--out", str(run), "--encoder", "tiny-bert", "--resume",
                 "--set", f"max_steps={last + 1}"]) == 0
    assert not (run / ".lock").exists()


def test_the_lock_dies_with_its_process_and_names_the_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from mtl_lib.training.run_dir import RunLock; "
         f"RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        lock = RunLock(tmp_path)
        with pytest.raises(RunDirectoryError, match=f"another process \\(pid {holder.pid}\\) is writing"):
            lock.acquire()
        assert not lock.held
    finally:
        holder.kill()
        holder.wait()
    lock.acquire()  # nothing stale: the dead holder's lock went with it
    again = RunLock(tmp_path)
    again.acquire()  # re-entrant within a process (the CLI and the trainer's callback share it)
    again.release()
    assert (tmp_path / ".lock").exists()
    lock.release()
    assert not (tmp_path / ".lock").exists()


# --------------------------------------------------------------------------- item 9: max_length
def test_evaluate_and_predictor_use_the_checkpoints_max_length(tmp_path, capsys):
    """Trained at max_length 6: ``mtl-lib evaluate`` scores what the trainer scored (at 6), and
    the Predictor predicts what evaluation at 6 predicts; at 128 the model scores differently."""
    tasks = write_task_file(tmp_path)
    out = tmp_path / "run"
    assert main(["train", str(tasks), "--out", str(out), "--encoder", "tiny-bert", "--set", "max_length=6",
                 "--set", "max_steps=200", "--set", "eval_every=1000", "--set", "classifier_lr=0.01",
                 "--set", "encoder_lr=0.003"]) == 0
    final = History.from_json(out / "history.json").last_metrics()  # one evaluation, at the end
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == final
    model = load_model(out)
    groups = {n: build_groups(list(model.tasks.values()), model.encoder.tokenizer, n, splits=("dev",))
              for n in (6, 128)}
    assert evaluate(model, groups[6], "dev") == final
    assert evaluate(model, groups[128], "dev") != final  # so the check above can fail
    expected = collect_predictions(model, groups[6][0], "dev")
    texts = [" ".join(r["words"]) for r in groups[6][0].records["dev"]]
    # the Predictor splits punctuation off words ("call:" -> "call", ":"): compare the utterances
    # it reads as the data wrote them
    records = groups[6][0].records["dev"]
    same = [i for i, (t, r) in enumerate(zip(texts, records)) if [w for w, _, _ in split_words(t)] == r["words"]]
    assert len(same) >= 0.8 * len(texts)
    with pytest.warns(UserWarning, match="truncated"):
        got = Predictor(model).predict([texts[i] for i in same])
    assert [r["intent"]["label"] for r in got] == [expected["intent"]["pred"][i] for i in same]
    assert [r["slots"]["tags"] for r in got] == [expected["slots"]["pred"][i] for i in same]


# --------------------------------------------------------------------------- items 11, 12
@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write into, root included (chmod for users, chattr +i for root)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):  # root ignores permissions: make it immutable instead
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(ro)]).returncode != 0:
            pytest.skip("no way to make a folder read-only for this user here")
    try:
        yield ro
    finally:
        if shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(ro)], capture_output=True)
        ro.chmod(0o755)


@pytest.mark.parametrize("where", ["ro/run", "ro"])
def test_an_unwritable_out_is_reported_before_any_work(where, read_only_dir, tmp_path, capsys, monkeypatch):
    import mtl_lib.experiment

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the output directory was checked")

    monkeypatch.setattr(mtl_lib.experiment, "build_experiment", no_data)
    tasks = write_task_file(tmp_path)
    assert main(["train", str(tasks), "--out", str(tmp_path / where), *TRAIN]) == 2
    err = one_error_line(capsys)
    assert "not writable" in err and str(read_only_dir) in err, err


def test_history_and_plots_of_another_run_are_not_overwritten(run, tmp_path, capsys):
    out = tmp_path / "records"
    out.mkdir()
    for name in ("history.json", "loss.png"):
        shutil.copy(run / name, out / name)
    before = digest(out)
    argv = ["train", str(run.parent / "tasks.yml"), "--out", str(out), *TRAIN]
    assert main(argv) == 2
    err = one_error_line(capsys)
    assert "already holds a run (history.json, loss.png)" in err
    assert digest(out) == before
    assert main(argv + ["--overwrite"]) == 0
    assert digest(out)["history.json"] != before["history.json"]
    assert run_id_of(out / "run.json") == run_id_of(out / "last")


def test_save_pretrained_into_a_new_folder_still_works(base_run, tmp_path):
    model = load_model(base_run / "run")
    path = model.save_pretrained(tmp_path / "a" / "b")
    assert isinstance(MultiTaskModel.from_pretrained(path), MultiTaskModel)
