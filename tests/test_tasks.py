"""Task files: the shipped examples, multi-task-NLP aliases, and every way to get one wrong."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from mtl_lib.data import DataFormatError, read_label_file
from mtl_lib.experiment import build_groups, load_task_file
from mtl_lib.task_types import task_type
from mtl_lib.tasks.spec import TaskFileError, TaskSpec
from mtl_lib.tasks.task_file import parse_tasks

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "tasks"
SNIPS = {"task_type": "classification", "format": "jointbert", "path": "snips",
         "label_map_or_file": "snips/intent_label.txt"}


def _write(tmp_path: Path, text: str, name: str = "tasks.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# the shipped task files
# --------------------------------------------------------------------------------------------
def test_snips_task_file():
    tf = load_task_file(EXAMPLES / "snips.yml")
    intent, slots = tf.tasks
    assert (intent.name, intent.task_type, slots.name, slots.task_type) == \
        ("intent", "classification", "slots", "tagging")
    assert tf.encoder == "minilm"
    assert tf.training["epochs"] == 5 and tf.training["encoder_lr"] == pytest.approx(2e-4)
    assert intent.input_key == slots.input_key  # one input group: one encoder pass for both
    assert slots.metrics == ["seqeval_f1_score", "snips_f1_score", "seqeval_precision", "seqeval_recall"]
    # class_num in the file agrees with the label files once UNK/PAD are dropped
    assert len(task_type(intent).resolve_labels([])) == intent.class_num == 7
    assert len(task_type(slots).resolve_labels([])) == slots.class_num == 72
    assert task_type(slots).resolve_labels([])[0] == "O"


def test_mixed_task_file_builds_three_input_groups(tiny_snips):
    tf = load_task_file(EXAMPLES / "mixed.yml")
    types = {t.name: t.task_type for t in tf.tasks}
    assert types == {"intent": "classification", "slots": "tagging", "ner": "tagging",
                     "paraphrase": "pair_classification"}
    assert tf.training["sampler"] == "temperature"
    for t in tf.tasks:
        t.max_examples = 20  # a quick check that every data source of the file can be read
    enc, _ = tiny_snips
    groups = build_groups(tf.tasks, enc.tokenizer)
    assert [g.task_names for g in groups] == [["intent", "slots"], ["ner"], ["paraphrase"]]
    for g in groups:
        assert len(g.splits["train"]) == 20 and len(g.splits["dev"]) == 4
    pair = groups[2].splits["train"][0]
    assert set(pair["token_type_ids"]) == {0, 1}  # sentence pairs are encoded jointly
    assert sorted(groups[2].tasks[0].labels) == ["0", "1"]
    assert {"B-PER", "I-ORG", "O"} <= set(groups[1].tasks[0].labels)


# --------------------------------------------------------------------------------------------
# aliases and defaults
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alias,canonical", [
    ("SingleSenClassification", "classification"),
    ("singlesenclassification", "classification"),
    ("SentencePairClassification", "pair_classification"),
    ("NER", "tagging"),
    ("ner", "tagging"),
    ("tagging", "tagging"),
    ("multilabel", "multilabel"),
])
def test_multi_task_nlp_aliases(alias, canonical):
    spec = TaskSpec(name="t", task_type=alias)
    assert task_type(spec).name == canonical
    assert spec.task_type == canonical  # the registry completes the spec it reads


def test_multi_task_nlp_style_file_with_file_names(tmp_path):
    # multi-task-NLP names its files; `file_names` maps them to train/dev/test in that order
    path = _write(tmp_path, """
        snips_ner:
          model_type: BERT
          config_name: bert-base-uncased
          dropout_prob: 0.3
          label_map_or_file: snips/slot_label.txt
          metrics: [seqeval_f1_score]
          loss_type: NERLoss
          task_type: NER
          file_names: [train, dev]
          format: jointbert
          path: snips
    """)
    tf = load_task_file(path)
    (t,) = tf.tasks
    assert (t.task_type, t.dropout_prob, tf.encoder, t.label_field) == ("tagging", 0.3, "bert-base-uncased", "slots")


def test_defaults_follow_the_task_type():
    t = TaskSpec(name="t", task_type="NER", format="conll")
    assert (t.loss_type, t.label_field, t.metrics) == ("", "", [])  # a spec is what the file says...
    task_type(t)  # ...until its task type fills in the rest
    assert (t.loss_type, t.label_field) == ("NERLoss", "tags")
    assert t.metrics == ["seqeval_f1_score", "seqeval_precision", "seqeval_recall"]
    c = TaskSpec(name="c", task_type="SingleSenClassification", format="csv")
    task_type(c)
    assert (c.loss_type, c.label_field, c.metrics[0]) == ("CrossEntropyLoss", "label", "classification_accuracy")


# --------------------------------------------------------------------------------------------
# errors name the task and the key
# --------------------------------------------------------------------------------------------
def test_unknown_key_names_task_and_key(tmp_path):
    path = _write(tmp_path, """
        intent:
          task_type: SingleSenClassification
          path: snips
          lable_field: intent
    """)
    with pytest.raises(TaskFileError, match=r"task 'intent': unknown key 'lable_field'") as err:
        load_task_file(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("key,value,pattern", [
    ("task_type", "Regression", r"task_type 'Regression' is not one of"),
    ("format", "xml", r"format must be one of jointbert, .*, got 'xml'"),
    ("loss_type", "FocalLoss", r"loss_type 'FocalLoss' is not one of"),
    ("metrics", ["accuracy"], r"metric 'accuracy' is not one of"),
    ("metrics", "classification_accuracy", r"metrics must be a list"),
    ("loss_weight", -1.0, r"loss_weight must be a number >= 0, got -1.0"),
    ("loss_weight", "heavy", r"loss_weight must be a number >= 0, got 'heavy'"),
    ("loss_weight", float("nan"), r"loss_weight must be a finite number, got nan"),
    ("loss_weight", True, r"loss_weight must be a number >= 0, got True"),
    ("dropout_prob", 1.5, r"dropout_prob must be a number \[0, 1\), got 1.5"),
    ("dev_fraction", 0.0, r"dev_fraction must be a number \(0, 1\), got 0.0"),
    ("class_num", 0, r"class_num must be an integer >= 1, got 0"),
    ("class_num", "7", r"class_num must be an integer >= 1, got '7'"),
    ("class_num", True, r"class_num must be an integer >= 1, got True"),
    ("max_examples", -5, r"max_examples must be an integer >= 1, got -5"),
    ("max_examples", True, r"max_examples must be an integer >= 1, got True"),
    ("class_weighting", "balanced", r"class_weighting must be one of uniform, inverse_frequency"),
])
def test_bad_values_name_the_task_and_key(key, value, pattern):
    with pytest.raises(TaskFileError, match=r"file.yml: task 'intent': " + pattern):
        _check({"intent": {**SNIPS, key: value}}, "file.yml")


def _check(raw, source="<task file>"):
    """What load_task_file does after reading the YAML: structure, values, then task types."""
    tf = parse_tasks(raw, source)
    for spec in tf.tasks:
        try:
            task_type(spec)
        except TaskFileError as err:
            raise TaskFileError(f"{source}: {err}") from None
    return tf


def test_a_number_written_as_a_string_is_read_as_a_number():
    # YAML reads 1e-4 (no dot) as a string; every float option accepts such a string
    (spec,) = parse_tasks({"intent": {**SNIPS, "loss_weight": "1e-1"}}).tasks
    assert spec.loss_weight == 0.1


def test_class_weighting_is_for_classification_like_tasks():
    with pytest.raises(TaskFileError, match="class_weighting applies to classification-like tasks, not to tagging"):
        _check({"slots": {**SNIPS, "task_type": "NER", "class_weighting": "inverse_frequency"}})


def test_missing_task_type_and_bad_structure(tmp_path):
    with pytest.raises(TaskFileError, match=r"task 'intent': missing key 'task_type'"):
        parse_tasks({"intent": {"path": "snips"}})
    with pytest.raises(TaskFileError, match=r"task 'intent' must be a mapping"):
        parse_tasks({"intent": ["classification"]})
    with pytest.raises(TaskFileError, match="expected a mapping of task names"):
        parse_tasks([{"intent": SNIPS}])
    with pytest.raises(TaskFileError, match="'training' must be a mapping"):
        parse_tasks({"intent": SNIPS, "training": 3})
    with pytest.raises(TaskFileError, match="no tasks defined"):
        parse_tasks({"training": {"epochs": 1}})
    with pytest.raises(TaskFileError, match="different encoders"):
        parse_tasks({"a": {**SNIPS, "config_name": "minilm"}, "b": {**SNIPS, "config_name": "roberta-base"}})


def test_file_level_errors(tmp_path):
    with pytest.raises(TaskFileError, match="task file not found"):
        load_task_file(tmp_path / "nope.yml")
    with pytest.raises(TaskFileError, match="invalid YAML"):
        load_task_file(_write(tmp_path, "intent: [unclosed\n"))
    with pytest.raises(TaskFileError, match="expected a mapping"):
        load_task_file(_write(tmp_path, ""))
    bad = tmp_path / "latin1.yml"
    bad.write_bytes("intent:\n  task_type: NER # caf\xe9\n".encode("latin-1"))
    with pytest.raises(TaskFileError, match="not valid UTF-8"):
        load_task_file(bad)


def test_duplicated_task_name(tmp_path):
    path = _write(tmp_path, """
        intent:
          task_type: SingleSenClassification
          path: snips
        slots:
          task_type: NER
          path: snips
        intent:
          task_type: NER
          path: snips
    """)
    with pytest.raises(TaskFileError, match=r"duplicated key 'intent' \(line 8\)"):
        load_task_file(path)
    # the same through the Python API
    a, b = TaskSpec(name="x", task_type="NER"), TaskSpec(name="x", task_type="NER")
    with pytest.raises(TaskFileError, match="duplicated task name 'x'"):
        build_groups([a, b], tokenizer=None)


# --------------------------------------------------------------------------------------------
# label maps
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["labels.pkl", "labels.joblib", "labels.txt"])
def test_pickled_label_map_is_refused(tmp_path, name):
    import collections

    path = tmp_path / name
    # A pickle of plain data is read when named as one (multi-task-NLP's label maps), never when
    # named .txt; one that builds an object (here a deque) is refused whatever its name.
    labels = ["O", "B-X", "I-X"] if name.endswith(".txt") else collections.deque(["O", "B-X", "I-X"])
    path.write_bytes(pickle.dumps(labels))
    spec = TaskSpec(name="tags", task_type="NER", label_map_or_file=str(path))
    with pytest.raises(DataFormatError, match="pickle") as err:
        task_type(spec).resolve_labels([])
    assert name in str(err.value)


def test_json_and_text_label_maps(tmp_path):
    (tmp_path / "l.json").write_text('{"b": 1, "a": 0, "c": 2}')
    (tmp_path / "l.txt").write_text("a\nb\nc\n")
    for name in ("l.json", "l.txt"):
        spec = TaskSpec(name="t", task_type="classification", label_map_or_file=str(tmp_path / name))
        assert task_type(spec).resolve_labels([]) == ["a", "b", "c"]
    assert read_label_file(tmp_path / "l.json") == ["a", "b", "c"]


def test_class_num_mismatch_names_task_and_counts():
    spec = TaskSpec(name="intent", task_type="classification", label_map_or_file="snips/intent_label.txt",
                    class_num=8)
    with pytest.raises(TaskFileError, match=r"task 'intent': class_num is 8 but the label inventory has 7"):
        task_type(spec).resolve_labels([])


def test_class_num_checked_against_labels_collected_from_data():
    spec = TaskSpec(name="t", task_type="classification", format="csv", class_num=3)
    records = [{"label": x} for x in ("a", "b", "a", "b")]
    with pytest.raises(TaskFileError, match="class_num is 3 but the label inventory has 2"):
        task_type(spec).resolve_labels(records)
    spec.class_num = 2
    assert task_type(spec).resolve_labels(records) == ["a", "b"]
