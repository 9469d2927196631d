"""The ``mtl-lib`` command: encoders, train, evaluate, predict, and one-line user errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mtl_lib.cli import main
from mtl_lib.data import data_root
from mtl_lib.evaluation.evaluate import evaluate
from mtl_lib.evaluation.predict import Predictor
from mtl_lib.experiment import build_groups
from mtl_lib.models.encoders import ENCODER_TABLE
from mtl_lib.models.multitask import load_model
from mtl_lib.training.history import History

TASK_FILE = """\
intent:
  task_type: SingleSenClassification
  format: jointbert
  path: snips
  label_field: intent
  label_map_or_file: snips/intent_label.txt
  class_num: 7
  max_examples: 40
  config_name: minilm
slots:
  task_type: NER
  format: jointbert
  path: snips
  label_field: slots
  label_map_or_file: snips/slot_label.txt
  max_examples: 40
  config_name: minilm
training:
  batch_size: 8
  epochs: 3
"""


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """``mtl-lib train`` on a 40-utterance SNIPS task file with a tiny encoder, 4 steps."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "tasks.yml").write_text(TASK_FILE)
    out = tmp / "run"
    rc = main(["train", str(tmp / "tasks.yml"), "--out", str(out), "--encoder", "tiny-bert",
               "--set", "max_steps=4", "--set", "progress=false"])
    return rc, out


def test_encoders_lists_the_whole_registry(capsys):
    assert main(["encoders"]) == 0
    out = capsys.readouterr().out
    names = [n for family in ENCODER_TABLE.values() for n in family] + ["minilm"]
    assert len(names) == 19  # the seed table's 18 config names and the embedded default
    table, _, known = out.partition("\n\n")
    listed = {line.split()[1] for line in table.splitlines()[1:]}
    assert listed == set(names)
    # then the "known good" notes on architectures beyond the table
    assert "google/electra-small-discriminator" in known and "FacebookAI/xlm-roberta-base" in known
    minilm = next(line for line in out.splitlines() if line.split()[1] == "minilm")
    assert "yes" in minilm  # the embedded default is always available


def test_train_writes_checkpoints_history_and_plots(cli_run, capsys):
    rc, out = cli_run
    assert rc == 0
    for name in ("best/model.safetensors", "last/model.safetensors", "history.json", "loss.png", "metrics.png"):
        assert (out / name).is_file(), name
    state = json.loads((out / "last" / "trainer_state.json").read_text())
    config = json.loads((out / "last" / "config.json").read_text())
    assert state["step"] == 4
    assert config["encoder"]["name"] == "tiny-bert"  # --encoder overrode the task file's minilm
    assert config["training"]["batch_size"] == 8 and config["training"]["max_steps"] == 4


def test_evaluate_json_equals_the_trainers_final_evaluation(cli_run, capsys):
    _, out = cli_run
    final = History.from_json(out / "history.json").last_metrics()
    assert set(final) == {"intent", "slots", "intent+slots"}
    for target in (out, out / "last"):
        capsys.readouterr()
        assert main(["evaluate", str(target), "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == final


def test_evaluate_table(cli_run, capsys):
    _, out = cli_run
    assert main(["evaluate", str(out)]) == 0
    text = capsys.readouterr().out
    assert "classification_accuracy" in text and "seqeval_f1_score" in text and "%" in text


def test_evaluate_tag_decoding_switch(cli_run, capsys):
    """--tag-decoding argmax scores the per-word argmax, as the library does with that setting."""
    _, out = cli_run
    assert main(["evaluate", str(out), "--json", "--tag-decoding", "argmax"]) == 0
    got = json.loads(capsys.readouterr().out)
    model = load_model(out)
    for t in model.tasks.values():
        t.tag_decoding = "argmax"
    groups = build_groups(list(model.tasks.values()), model.encoder.tokenizer, splits=("dev",))
    assert got == json.loads(json.dumps(evaluate(model, groups, "dev")))


def test_predicted_tags_are_valid_bio(cli_run):
    """A barely trained tagger still returns tags that obey BIO (no I-x after O or B-y)."""
    _, out = cli_run
    lines = (data_root() / "snips" / "dev" / "seq.in").read_text(encoding="utf-8").splitlines()[:60]
    n_inside = 0
    for r in Predictor.from_checkpoint(out).predict(lines):
        prev = "O"
        for tag in r["slots"]["tags"]:
            if tag.startswith("I-"):
                n_inside += 1
                assert prev[2:] == tag[2:], r["slots"]["tags"]
            prev = tag
    assert n_inside > 0  # the check saw inside tags at all


def _jointbert_folder(folder: Path, n: int, intents: list[str]) -> None:
    """The first ``n`` SNIPS dev utterances with the given intents (a folder of our own)."""
    folder.mkdir()
    dev = data_root() / "snips" / "dev"
    for name in ("seq.in", "seq.out"):
        lines = (dev / name).read_text(encoding="utf-8").splitlines()[:n]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "label").write_text("\n".join(intents) + "\n", encoding="utf-8")


def test_evaluate_on_another_jointbert_folder_uses_all_of_it(cli_run, tmp_path, capsys):
    _, out = cli_run
    model = load_model(out)
    n = 10
    words = (data_root() / "snips" / "dev" / "seq.in").read_text(encoding="utf-8").splitlines()[:n]
    predicted = [r["intent"]["label"] for r in Predictor(model).predict(words)]
    labels = model.tasks["intent"].labels
    # 7 right, 3 wrong by construction: intent accuracy is exactly 0.7 on all 10 lines (and
    # cannot be 0.7 on any subset, e.g. the checkpoint's max_examples-sized dev sample)
    intents = predicted[:7] + [next(x for x in labels if x != p) for p in predicted[7:]]
    _jointbert_folder(tmp_path / "mine", n, intents)
    assert main(["evaluate", str(out), "--data", str(tmp_path / "mine"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["intent"]["classification_accuracy"] == pytest.approx(0.7)

    reference = load_model(out)  # the same evaluation by hand: every line of the folder
    tasks = list(reference.tasks.values())
    for t in tasks:
        t.path, t.splits, t.max_examples = str(tmp_path / "mine"), {"dev": "."}, None
    groups = build_groups(tasks, reference.encoder.tokenizer, splits=("dev",))
    assert len(groups[0].splits["dev"]) == n
    assert metrics == evaluate(reference, groups, "dev")


def test_predict_writes_jsonl(cli_run, tmp_path, capsys):
    _, out = cli_run
    texts = ["play some jazz", "what will the weather be in berlin", "book a table for 4"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["predict", str(out), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == texts
    assert rows == json.loads(json.dumps(Predictor.from_checkpoint(out).predict(texts)))
    for r in rows:
        assert len(r["slots"]["tags"]) == len(r["words"]) and "label" in r["intent"]
    capsys.readouterr()
    assert main(["predict", str(out), "--input", str(tmp_path / "in.txt")]) == 0
    stdout = capsys.readouterr().out
    assert [json.loads(line) for line in stdout.splitlines()] == rows  # stdout holds JSONL only


@pytest.mark.parametrize("argv,message", [
    (["train", "{tmp}/missing.yml", "--out", "{tmp}/o"], "task file not found"),
    (["train", "{tasks}", "--out", "{tmp}/o", "--set", "max_steps"], "--set expects KEY=VALUE"),
    (["train", "{tasks}", "--out", "{tmp}/o", "--set", "max_steps=-1"], "max_steps"),
    (["train", "{tasks}", "--out", "{tmp}/o", "--set", "batch_size=many"], "batch_size"),
    (["train", "{tasks}", "--out", "{tmp}/o", "--set", "bogus=1"], "unknown training option 'bogus'"),
    (["evaluate", "{tmp}/no-such-run"], "checkpoint directory not found"),
    (["evaluate", "{run}", "--data", "{tmp}/no-such-folder"], "not found"),
    (["evaluate", "{run}", "--split", "test"], "no 'test' split"),
    (["predict", "{tmp}/no-such-run"], "checkpoint directory not found"),
    (["predict", "{run}", "--input", "{tmp}/missing.txt"], "missing.txt"),
])
def test_user_errors_are_one_line_and_exit_2(argv, message, cli_run, tmp_path, capsys):
    _, run = cli_run
    (tmp_path / "tasks.yml").write_text(TASK_FILE)
    fill = {"tmp": tmp_path, "tasks": tmp_path / "tasks.yml", "run": run}
    argv = [a.format(**fill) for a in argv]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"mtl-lib {argv[0]}: error: "), err
    assert message in err
    assert not (tmp_path / "o").exists()  # nothing half-written


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["train", "{tmp}/missing.yml", "--out", "{tmp}/o"],
                                  ["evaluate", "{tmp}/no-such-run", "--json"]])
def test_user_errors_in_a_real_process_print_no_traceback(argv, tmp_path):
    argv = [a.format(tmp=tmp_path) for a in argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "mtl_lib.cli", *argv], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"mtl-lib {argv[0]}: error: "), proc.stderr
    assert proc.stdout == ""


def test_task_file_example_runs_through_the_cli_parser(tmp_path, capsys):
    # an unknown key in the task file reaches the user as one line naming task and key
    (tmp_path / "bad.yml").write_text(TASK_FILE.replace("class_num: 7", "clas_num: 7"))
    assert main(["train", str(tmp_path / "bad.yml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "task 'intent': unknown key 'clas_num'" in err and err.count("\n") == 1


def test_help_texts_name_every_command(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "train", "evaluate", "predict", "encoders"):
        assert command in out


def test_train_resume_continues_from_last(cli_run, tmp_path, capsys):
    _, out = cli_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    (tmp_path / "tasks.yml").write_text(TASK_FILE)
    rc = main(["train", str(tmp_path / "tasks.yml"), "--out", str(run), "--encoder", "tiny-bert", "--resume",
               "--set", "max_steps=6", "--set", "progress=false"])
    assert rc == 0
    assert json.loads((run / "last" / "trainer_state.json").read_text())["step"] == 6
    history = History.from_json(run / "history.json")
    assert sorted({r["step"] for r in history.train_rows()}) == [1, 2, 3, 4, 5, 6]
    before = History.from_json(out / "history.json").train_rows()
    assert history.train_rows()[:len(before)] == before  # the first 4 steps are kept as they were


def test_train_refuses_to_replace_an_existing_run_unless_asked(cli_run, tmp_path, capsys):
    _, out = cli_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    (tmp_path / "tasks.yml").write_text(TASK_FILE)
    before = (run / "last" / "model.safetensors").read_bytes()
    argv = ["train", str(tmp_path / "tasks.yml"), "--out", str(run), "--encoder", "tiny-bert",
            "--set", "max_steps=2", "--set", "progress=false"]
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "last" / "model.safetensors").read_bytes() == before
    assert main(argv + ["--overwrite"]) == 0
    assert json.loads((run / "last" / "trainer_state.json").read_text())["step"] == 2


def test_demo_trains_prints_a_table_and_writes_checkpoint_and_plots(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--encoder", "tiny-bert", "--max-examples", "64",
               "--max-steps", "3"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "sentence_accuracy" in printed and "classification_accuracy" in printed
    for name in ("best/model.safetensors", "last/model.safetensors", "loss.png", "metrics.png",
                 "history.json"):
        assert (out / name).is_file(), name
    assert len({r["step"] for r in History.from_json(out / "history.json").eval_rows()}) >= 2
