"""Data as people have it (issue 15, item 2): Hugging Face and pandas habits, read right or refused.

Tag columns as space-separated strings or lists, Hugging Face token-classification JSONL (tag
names, or ids with a label list), multi-label rows with no label, ``validation`` splits, an
explicit ``format:`` over the extension, paths relative to the task file, and data passed in
memory as lists of dicts, pandas DataFrames or ``datasets`` objects.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mtl_lib import DataFormatError, TaskFileError, TaskSpec, build_groups, load_task_file, tiny_encoder

TOKENS = [["John", "lives", "in", "Paris"], ["Mary", "left"], ["Berlin", "is", "big"], ["he", "sings"]]
TAGS = [["B-PER", "O", "O", "B-LOC"], ["B-PER", "O"], ["B-LOC", "O", "O"], ["O", "O"]]
NAMES = ["O", "B-LOC", "B-PER"]  # as read from the data: "O" first, then sorted


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def tokenizer():
    torch.set_num_threads(1)
    return tiny_encoder("BERT", [" ".join(t) for t in TOKENS]).tokenizer


def targets(group, split: str, task: str) -> list:
    return [f["labels"].get(task) for f in group.splits[split]]


# --------------------------------------------------------------------------- tags


def test_hugging_face_token_classification_jsonl_with_tag_names(tokenizer, tmp_path):
    path = write(tmp_path / "ner.jsonl", jsonl([{"tokens": w, "ner_tags": t} for w, t in zip(TOKENS, TAGS)]))
    spec = TaskSpec(name="ner", task_type="tagging", path=str(path), text_column="tokens", label_field="ner_tags",
                    dev_fraction=0.25)
    (group,) = build_groups([spec], tokenizer)
    assert spec.format == "jsonl" and spec.labels == NAMES
    assert sorted(map(tuple, (r["words"] for g in group.records.values() for r in g))) == sorted(map(tuple, TOKENS))


def test_hugging_face_tag_ids_index_the_label_list(tokenizer, tmp_path):
    rows = [{"tokens": w, "ner_tags": [NAMES.index(x) for x in t]} for w, t in zip(TOKENS, TAGS)]
    path = write(tmp_path / "ner.jsonl", jsonl(rows))
    spec = TaskSpec(name="ner", task_type="tagging", path=str(path), text_column="tokens", label_field="ner_tags",
                    labels=NAMES, dev_fraction=0.25)
    (group,) = build_groups([spec], tokenizer)
    named = TaskSpec(name="ner", task_type="tagging", path=str(write(tmp_path / "n.jsonl", jsonl(
        [{"tokens": w, "ner_tags": t} for w, t in zip(TOKENS, TAGS)]))), text_column="tokens",
        label_field="ner_tags", labels=NAMES, dev_fraction=0.25)
    (same,) = build_groups([named], tokenizer)
    assert targets(group, "train", "ner") == targets(same, "train", "ner")
    without = TaskSpec(name="ner", task_type="tagging", path=str(path), text_column="tokens", label_field="ner_tags")
    with pytest.raises(DataFormatError, match=r"ner.jsonl:1: task 'ner': the tags are class ids .* labels: or "
                                              "label_map_or_file"):
        build_groups([without], tokenizer)
    mixed = write(tmp_path / "m.jsonl", jsonl([{"tokens": ["a", "b"], "ner_tags": [0, "O"]}]))
    with pytest.raises(DataFormatError, match=r"m.jsonl:1: .*mix class ids"):
        build_groups([TaskSpec(name="ner", task_type="tagging", path=str(mixed), text_column="tokens",
                               label_field="ner_tags", labels=NAMES)], tokenizer)
    out_of_range = write(tmp_path / "r.jsonl", jsonl([{"tokens": ["a"], "ner_tags": [7]}]))
    with pytest.raises(DataFormatError, match=r"r.jsonl:1: .*tag id 7 is not an index of the 3 labels"):
        build_groups([TaskSpec(name="ner", task_type="tagging", path=str(out_of_range), text_column="tokens",
                               label_field="ner_tags", labels=NAMES)], tokenizer)


def test_tag_string_in_jsonl_is_split_on_spaces(tokenizer, tmp_path):
    rows = [{"text": " ".join(w), "tags": " ".join(t)} for w, t in zip(TOKENS, TAGS)]
    spec = TaskSpec(name="ner", task_type="tagging", path=str(write(tmp_path / "s.jsonl", jsonl(rows))),
                    label_field="tags", dev_fraction=0.25)
    build_groups([spec], tokenizer)
    assert spec.labels == NAMES  # before: single characters, "B", "-", "P", ...


# --------------------------------------------------------------------------- multilabel


def test_multilabel_empty_list_is_an_all_negative_example_and_null_is_unlabelled(tokenizer, tmp_path):
    rows = [{"text": "play jazz", "topics": ["music"]}, {"text": "book a table", "topics": ["food", "plans"]},
            {"text": "hello there", "topics": []}, {"text": "who knows", "topics": None}]
    train = write(tmp_path / "j" / "train.jsonl", jsonl(rows))
    write(tmp_path / "j" / "dev.jsonl", jsonl(rows))
    spec = TaskSpec(name="topics", task_type="multilabel", path=str(train.parent), label_field="topics")
    (group,) = build_groups([spec], tokenizer)
    assert spec.format == "jsonl" and spec.labels == ["food", "music", "plans"]
    assert targets(group, "train", "topics") == [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0], None]
    csv = write(tmp_path / "c" / "train.csv", 'text,topics\nplay jazz,music\nbook it,"food,plans"\nhello,\n'
                '"list cell","[""music"", ""food""]"\n')
    write(tmp_path / "c" / "dev.csv", csv.read_text())
    spec = TaskSpec(name="topics", task_type="multilabel", path=str(csv.parent), label_field="topics")
    (group,) = build_groups([spec], tokenizer)
    assert targets(group, "train", "topics") == [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]


def test_multilabel_all_negative_examples_are_scored(tokenizer, tmp_path):
    from mtl_lib.evaluation.evaluate import collect_predictions
    from mtl_lib.models.multitask import MultiTaskModel

    enc = tiny_encoder("BERT", ["play jazz", "hello there"])
    rows = [{"text": "play jazz", "topics": ["music"]}, {"text": "hello there", "topics": []}]
    write(tmp_path / "train.jsonl", jsonl(rows))
    write(tmp_path / "dev.jsonl", jsonl(rows))
    spec = TaskSpec(name="topics", task_type="multilabel", path=str(tmp_path), label_field="topics")
    (group,) = build_groups([spec], enc.tokenizer)
    preds = collect_predictions(MultiTaskModel.from_tasks(enc, [spec]), group, "dev")
    assert preds["topics"]["true"] == [["music"], []] and preds["topics"]["index"] == [0, 1]


# --------------------------------------------------------------------------- layout


def test_validation_split_is_dev(tokenizer, tmp_path):
    rows = [{"text": " ".join(w), "label": w[0]} for w in TOKENS]
    write(tmp_path / "train.jsonl", jsonl(rows))
    write(tmp_path / "validation.jsonl", jsonl(rows[:2]))
    spec = TaskSpec(name="t", task_type="classification", path=str(tmp_path))
    (group,) = build_groups([spec], tokenizer)
    assert len(group.records["train"]) == 4 and len(group.records["dev"]) == 2  # not carved from train
    mapped = TaskSpec(name="t", task_type="classification", path=str(tmp_path), format="jsonl",
                      splits={"train": "train.jsonl", "validation": "validation.jsonl"})
    (group,) = build_groups([mapped], tokenizer)
    assert len(group.records["dev"]) == 2


@pytest.mark.filterwarnings("ignore:.*they count as errors")  # the carved dev row's label is not in train
def test_explicit_format_wins_over_the_extension(tokenizer, tmp_path):
    path = write(tmp_path / "data.json", jsonl([{"text": " ".join(w), "label": w[0]} for w in TOKENS]))
    spec = TaskSpec(name="t", task_type="classification", path=str(path), format="jsonl", dev_fraction=0.25)
    build_groups([spec], tokenizer)  # before: parsed as CSV, "missing column 'text'"
    assert len(spec.labels) == 3 and set(spec.labels) < {w[0] for w in TOKENS}  # one row carved off as dev
    tsv = write(tmp_path / "data.tsv", "text,label\na b,x\nc d,y\ne f,x\n")
    spec = TaskSpec(name="t", task_type="classification", path=str(tsv), format="csv", dev_fraction=0.34)
    build_groups([spec], tokenizer)  # commas, as format: csv says, though the name ends in .tsv
    assert set(spec.labels) <= {"x", "y"}


def test_format_comes_from_the_data_when_not_given(tmp_path):
    tf = write(tmp_path / "t.yml", yaml.safe_dump({"a": {"task_type": "classification", "path": "x.csv"},
                                                   "b": {"task_type": "classification", "path": "x.txt"}}))
    write(tmp_path / "x.txt", "text\tlabel\nhi\tx\n")
    with pytest.raises(TaskFileError, match=r"task 'b': cannot tell the format of .*x.txt .*add a format: key"):
        load_task_file(tf)
    write(tf, yaml.safe_dump({"a": {"task_type": "classification", "path": "x.csv"}}))
    assert load_task_file(tf).tasks[0].format == "csv"


def test_relative_paths_resolve_against_the_task_file_folder_then_the_data_root(tokenizer, tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    write(proj / "data" / "train.csv", "text,label\n" + "".join(f"{' '.join(w)},{w[0]}\n" for w in TOKENS))
    write(proj / "labels.txt", "\n".join(w[0] for w in TOKENS) + "\n")
    write(proj / "t.yml", yaml.safe_dump({
        "mine": {"task_type": "classification", "path": "data", "label_map_or_file": "labels.txt"},
        "shared": {"task_type": "classification", "path": "snips", "label_field": "intent",
                   "label_map_or_file": "snips/intent_label.txt", "max_examples": 8}}))
    monkeypatch.chdir(tmp_path)  # not the task file's folder
    tasks = load_task_file(proj / "t.yml").tasks
    assert [t.format for t in tasks] == ["csv", "jointbert"]
    groups = build_groups(tasks, tokenizer)
    assert len(tasks[0].labels) == 4 and "PlayMusic" in tasks[1].labels
    assert len(groups[1].records["train"]) == 8  # snips, from the data root
    # a folder next to the task file wins over the data root's folder of the same name
    write(proj / "snips" / "train.csv", "text,label\nhi there,x\nbye now,y\n")
    write(proj / "local.yml", yaml.safe_dump({"s": {"task_type": "classification", "path": "snips"}}))
    (spec,) = load_task_file(proj / "local.yml").tasks
    assert spec.format == "csv"


def test_missing_train_data_names_the_files_looked_for(tokenizer, tmp_path):
    (tmp_path / "empty").mkdir()
    spec = TaskSpec(name="t", task_type="classification", path=str(tmp_path / "empty"), format="csv")
    with pytest.raises(TaskFileError, match=r"task 't': no train data found; looked for .*empty/train.csv"):
        build_groups([spec], tokenizer)
    spec = TaskSpec(name="t", task_type="classification", format="csv", path="",
                    file_names=["nowhere.csv", "dev.csv"])
    with pytest.raises(TaskFileError, match=r"looked for nowhere.csv, .*nowhere.csv"):  # working dir, data root
        build_groups([spec], tokenizer)


# --------------------------------------------------------------------------- data in memory


ROWS = [{"text": " ".join(w), "label": w[0]} for w in TOKENS]


def test_records_as_a_list_of_dicts(tokenizer):
    spec = TaskSpec(name="t", task_type="classification")
    (group,) = build_groups([spec], tokenizer, records={"train": ROWS, "validation": ROWS[:2]})
    assert spec.labels == sorted(w[0] for w in TOKENS) and len(group.splits["dev"]) == 2


def test_records_as_a_pandas_dataframe_and_a_datasets_dataset(tokenizer):
    pd = pytest.importorskip("pandas")
    datasets = pytest.importorskip("datasets")
    expected = None
    for data in (pd.DataFrame(ROWS), datasets.Dataset.from_list(ROWS)):
        spec = TaskSpec(name="t", task_type="classification")
        (group,) = build_groups([spec], tokenizer, records={"train": data})
        got = [(f["input_ids"], f["labels"]) for f in group.splits["train"]]
        assert got == (expected := expected or got)
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS), "validation": datasets.Dataset.from_list(
        ROWS[:1])})
    (group,) = build_groups([TaskSpec(name="t", task_type="classification")], tokenizer, records=dd)
    assert len(group.splits["dev"]) == 1
    frame = pd.DataFrame([{"text": "a b", "label": "x"}, {"text": None, "label": "y"}])
    with pytest.raises(DataFormatError, match=r"records\['train'\]:2: column 'text' should hold text, found null"):
        build_groups([TaskSpec(name="t", task_type="classification")], tokenizer, records={"train": frame})


def test_the_library_works_without_pandas_and_datasets():
    """With pandas, datasets and pyarrow unimportable, mtl_lib imports and reads records in memory
    (transformers' own optional imports are not ours to test: no encoder is built here)."""
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('pandas', 'datasets', 'pyarrow'):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
import mtl_lib, mtl_lib.experiment
from mtl_lib import TaskSpec
from mtl_lib.data.sources import records_from
spec = TaskSpec(name='t', task_type='classification', format='jsonl', label_field='label')
rows = records_from([{'text': 'a b', 'label': 'x'}, {'text': 'c', 'label': 'y'}], spec, ('label',), 'train')
print([r['words'] for r in rows])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[['a', 'b'], ['c']]"
