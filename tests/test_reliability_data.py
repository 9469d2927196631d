"""Reliability, round two (issue 14): data, task files and labels never silently mislabel.

The bad inputs that must end in one clear error are cases of ``test_reliability_inputs.py``
(checked there through the API, the command line and the files left untouched). This file
holds what needs more than one error line to check: whole runs (train then evaluate), inputs
that must now be *accepted* and read correctly, and limits that must act quickly.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from mtl_lib import CheckpointError, DataFormatError, TaskSpec, build_groups, load_model, load_task_file, tiny_encoder
from mtl_lib.cli import main

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TRAIN = {"max_steps": 2, "batch_size": 4, "progress": False, "eval_every": 1}
TEXTS = ["play jazz music", "book a table for two", "play some rock", "add this song to my list",
         "book a room in paris", "play the blues", "add a track to rock", "book two seats"]


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def write_yaml(path: Path, tasks: dict) -> Path:
    return write(path, yaml.safe_dump(tasks, sort_keys=False))


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> Path:
    """A tiny BERT saved as a local encoder directory (quick to load for every CLI call)."""
    torch.set_num_threads(1)
    enc = tiny_encoder("BERT", TEXTS)
    out = tmp_path_factory.mktemp("enc") / "tiny-bert"
    enc.model.save_pretrained(out)
    enc.tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tokenizer(encoder_dir):
    from mtl_lib import load_encoder

    return load_encoder(str(encoder_dir)).tokenizer


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- item 4


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_two_tasks_on_one_file_each_read_their_own_column(fmt, encoder_dir, tmp_path, capsys):
    """Two tasks with different label columns of one CSV / JSONL file train and evaluate, each
    on its own column (before: only the first column was read, then a KeyError traceback)."""
    rows = [(t, "music" if t.startswith("play") else "other", "pos" if i % 2 else "neg")
            for i, t in enumerate(TEXTS * 2)]
    if fmt == "csv":
        data = "text,topic,mood\n" + "".join(f"{t},{a},{b}\n" for t, a, b in rows)
    else:
        data = "".join(json.dumps({"text": t, "topic": a, "mood": b}) + "\n" for t, a, b in rows)
    path = write(tmp_path / f"both.{fmt}", data)
    common = {"task_type": "classification", "format": fmt, "path": str(path), "config_name": str(encoder_dir)}
    tf = write_yaml(tmp_path / "two.yml", {"topic": {**common, "label_field": "topic"},
                                           "mood": {**common, "label_field": "mood"}, "training": TRAIN})
    code, out, err = run_cli(["train", tf, "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    model = load_model(tmp_path / "run")
    assert model.tasks["topic"].labels == ["music", "other"]
    assert model.tasks["mood"].labels == ["neg", "pos"]
    code, out, err = run_cli(["evaluate", tmp_path / "run", "--json"], capsys)
    assert code == 0, err
    scores = json.loads(out)
    assert {"topic", "mood"} <= set(scores) and all(0 <= v <= 1 for s in scores.values() for v in s.values())


# --------------------------------------------------------------------------- items 6 and 14


def test_yaml_bomb_is_refused_quickly_with_a_short_line(tmp_path, capsys):
    from test_reliability_inputs import yaml_bomb

    tf = write(tmp_path / "bomb.yml", yaml_bomb("labels"))
    assert tf.stat().st_size < 500
    start = time.perf_counter()
    code, _, err = run_cli(["train", tf, "--out", tmp_path / "run"], capsys)
    assert time.perf_counter() - start < 5  # before: minutes and gigabytes
    assert code == 2 and len(err) < 300, err  # before: a 351 MB error line
    assert not (tmp_path / "run").exists()


def test_recursive_alias_is_refused(tmp_path):
    tf = write(tmp_path / "loop.yml", "intent: &a\n  task_type: NER\n  labels: [*a]\n")
    with pytest.raises(Exception, match="recursive alias"):
        load_task_file(tf)


def test_yaml_merge_keys_are_accepted(tmp_path):
    tf = write(tmp_path / "merge.yml", "intent: &common\n  task_type: classification\n  path: snips\n"
               "  format: jointbert\n  label_field: intent\nslots:\n  <<: *common\n  task_type: tagging\n"
               "  label_field: slots\ntraining:\n  <<: {epochs: 1, batch_size: 8}\n  epochs: 2\n")
    loaded = load_task_file(tf)
    slots = loaded.tasks[1]
    assert (slots.task_type, slots.path, slots.label_field, slots.format) == ("tagging", "snips", "slots", "jointbert")
    assert loaded.training == {"epochs": 2, "batch_size": 8}  # an explicit key overrides a merged one


# --------------------------------------------------------------------------- item 10


def test_label_file_with_a_byte_order_mark_makes_no_fake_class(tokenizer, tmp_path):
    data = write(tmp_path / "t.csv", "text,label\n" + "".join(f"{t},{t.split()[0]}\n" for t in TEXTS))
    labels = write(tmp_path / "labels.txt", "\ufeffplay\nbook\nadd\n")  # as Notepad saves it
    spec = TaskSpec(name="verb", task_type="classification", format="csv", path=str(data),
                    label_map_or_file=str(labels))
    (group,) = build_groups([spec], tokenizer)
    assert spec.labels == ["play", "book", "add"]  # before: "\ufeffplay", and every "play" unknown
    assert {f["labels"]["verb"] for f in group.splits["train"]} <= {0, 1, 2}


def test_integer_and_string_labels_are_one_class(tokenizer, tmp_path):
    lines = [json.dumps({"text": t, "label": 1 if i % 2 else "1"}) if i < 4 else
             json.dumps({"text": t, "label": 2}) for i, t in enumerate(TEXTS)]
    path = write(tmp_path / "t.jsonl", "\n".join(lines) + "\n")
    spec = TaskSpec(name="n", task_type="classification", format="jsonl", path=str(path))
    build_groups([spec], tokenizer)
    assert spec.labels == ["1", "2"]


def test_tag_cells_split_on_spaces_or_read_as_lists_never_as_characters(tokenizer, tmp_path):
    spaced = write(tmp_path / "a.tsv", "text\ttags\nplay jazz\tO B-genre\nbook two\tO B-num\n"
                   "play rock\tO B-genre\n")
    listed = write(tmp_path / "b.csv", 'text,tags\nplay jazz,"[""O"", ""B-genre""]"\n'
                   "book two,\"['O', 'B-num']\"\nplay rock,\"[\"\"O\"\", \"\"B-genre\"\"]\"\n")
    got = []
    for path in (spaced, listed):
        spec = TaskSpec(name="t", task_type="tagging", format=path.suffix[1:], path=str(path), label_field="tags",
                        dev_fraction=0.34)
        build_groups([spec], tokenizer)
        got.append(spec.labels)
    assert got[0] == got[1] == ["O", "B-genre", "B-num"]
    broken = write(tmp_path / "c.csv", 'text,tags\nplay jazz,O B-genre\nbook two,"[O, B-num"\nplay x,O O\n')
    spec = TaskSpec(name="t", task_type="tagging", format="csv", path=str(broken), label_field="tags",
                    dev_fraction=0.34)
    with pytest.raises(DataFormatError, match=r"c.csv:3: .*not a JSON or Python list"):
        build_groups([spec], tokenizer)


def test_hierarchy_level_holding_the_separator_is_not_merged(tokenizer, tmp_path):
    """" > " joined the levels of a path into one string once: ("a > b", "c") and ("a", "b > c")
    were one class. Labels are paths now."""
    path = write(tmp_path / "h.csv", "text,l1,l2\n" + "".join(
        f"{t},{'a > b' if i % 2 else 'a'},{'c' if i % 2 else 'b > c'}\n" for i, t in enumerate(TEXTS)))
    spec = TaskSpec(name="h", task_type="hierarchical", format="csv", path=str(path), level_columns=["l1", "l2"])
    build_groups([spec], tokenizer)
    assert spec.labels == [("a", "b > c"), ("a > b", "c")]


# --------------------------------------------------------------------------- items 13, 15


def test_label_file_larger_than_the_limit_is_refused(tmp_path, monkeypatch):
    from mtl_lib.data import readers

    monkeypatch.setattr(readers, "MAX_LABEL_BYTES", 100)
    path = write(tmp_path / "labels.txt", "x\n" * 60)
    with pytest.raises(DataFormatError, match="larger than 100 bytes"):
        readers.read_label_file(path)


@pytest.mark.parametrize("task_type, label, value", [
    ("classification", "label", "music"), ("multilabel", "label", "\"music,calm\""),
    ("pair_classification", "label", "yes")])
def test_several_text_columns_work_for_every_task_type(task_type, label, value, tokenizer, tmp_path):
    path = write(tmp_path / "t.csv", "title,body,other,label\n" +
                 "".join(f"{t.split()[0]},{t},{t[::-1]},{value}\n" for t in TEXTS))
    spec = TaskSpec(name="t", task_type=task_type, format="csv", path=str(path), text_column="title,body",
                    text_pair_column="other" if task_type == "pair_classification" else "")
    (group,) = build_groups([spec], tokenizer)
    first = group.records["train"][0]
    assert first["words"][0].endswith(".") and len(first["words"]) > 2  # "play. play jazz music"


# --------------------------------------------------------------------------- item 17


def test_negative_seed_is_named_before_any_data_is_read(tmp_path, capsys):
    tf = write_yaml(tmp_path / "t.yml", {"intent": {"task_type": "classification", "path": str(tmp_path / "none"),
                                                    "format": "jointbert"}})
    code, _, err = run_cli(["train", tf, "--out", tmp_path / "run", "--set", "seed=-1"], capsys)
    assert code == 2 and "seed must be an integer >= 0, got -1" in err and "no train data" not in err


# --------------------------------------------------------------------------- item 18 (+ issue 18.1)


def test_evaluate_finds_the_data_of_a_run_from_any_directory(encoder_dir, tmp_path, capsys, monkeypatch):
    """After ``train io.yml --out io`` in the task file's folder, ``evaluate io --split dev`` works
    from another directory (before: "no train data found under io")."""
    proj = tmp_path / "proj"
    write(proj / "io.tsv", "text\ttags\n" + "".join(f"{t}\t{' '.join(['I-x'] + ['O'] * (len(t.split()) - 1))}\n"
                                                   for t in TEXTS * 2))
    write_yaml(proj / "io.yml", {"io": {"task_type": "tagging", "format": "tsv", "path": "io.tsv",
                                        "label_field": "tags", "config_name": str(encoder_dir)}, "training": TRAIN})
    monkeypatch.chdir(proj)
    code, _, err = run_cli(["train", "io.yml", "--out", "io"], capsys)
    assert code == 0, err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = run_cli(["evaluate", proj / "io", "--split", "dev", "--json"], capsys)
    assert code == 0, err
    assert set(json.loads(out)) == {"io"}
    code, out, err = run_cli(["evaluate", proj / "io", "--split", "test"], capsys)
    assert code == 2 and "no 'test' split" in err and "train" not in err, err


def test_unknown_dev_labels_warn_once_per_task_and_count_as_errors(tokenizer, tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + "".join(f"{t},{t.split()[0]}\n" for t in TEXTS))
    write(tmp_path / "dev.csv", "text,label\nplay it,play\nsing it,sing\nhum it,hum\n")
    spec = TaskSpec(name="verb", task_type="classification", path=str(tmp_path), format="csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (group,) = build_groups([spec], tokenizer)
    assert [str(w.message).count("2 dev example(s) have 2 label(s)") for w in caught] == [1]
    assert [("verb" in f["labels"]) for f in group.splits["dev"]] == [True, False, False]


# --------------------------------------------------------------------------- item 7: DWA state


def test_tampered_dwa_state_is_refused_before_resuming(encoder_dir, tmp_path, capsys):
    jb = tmp_path / "jb"
    for split in ("train", "dev"):
        write(jb / split / "seq.in", "".join(t + "\n" for t in TEXTS))
        write(jb / split / "seq.out", "".join(" ".join("O" for _ in t.split()) + "\n" for t in TEXTS))
        write(jb / split / "label", "".join(t.split()[0] + "\n" for t in TEXTS))
    common = {"format": "jointbert", "path": str(jb), "config_name": str(encoder_dir)}
    tf = write_yaml(tmp_path / "t.yml", {"intent": {"task_type": "classification", "label_field": "intent", **common},
                                         "slots": {"task_type": "tagging", "label_field": "slots", **common},
                                         "training": {**TRAIN, "weighting": "dwa"}})
    run = tmp_path / "run"
    assert run_cli(["train", tf, "--out", run], capsys)[0] == 0
    state_file = run / "last" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    assert set(state["weighting"]) == {"sum", "count", "steps", "means", "w"}
    for bad in ({"w": {"intent": "heavy", "slots": 1.0}}, {"sum": {"intent": 0.0}}, {"steps": -3},
                {"means": [[1, 2]]}):
        state_file.write_text(json.dumps({**state, "weighting": {**state["weighting"], **bad}}))
        code, _, err = run_cli(["train", tf, "--out", run, "--resume", "--set", "max_steps=3"], capsys)
        assert code == 2 and "trainer_state.json" in err and "DWA" in err and len(err.splitlines()) == 1, err
    from mtl_lib.training.weighting import DWAWeighting

    with pytest.raises(ValueError, match="DWA w of task 'intent'"):
        DWAWeighting(["intent", "slots"]).load_extra_state({**state["weighting"], "w": {"intent": None, "slots": 1}})


def test_deeply_nested_history_json_is_a_checkpoint_error(tmp_path):
    from mtl_lib.models.safe_files import read_json
    from mtl_lib.training.history import History

    path = write(tmp_path / "history.json", "[" * 50 + "]" * 50)
    with pytest.raises(CheckpointError, match="nested more than 32 levels"):
        read_json(path)
    with pytest.raises(CheckpointError, match="nested more than 32 levels"):
        History.from_json(path)
