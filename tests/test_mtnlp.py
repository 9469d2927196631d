"""multi-task-NLP task files run with only their paths changed (issue 15, item 3).

The task files are the ones hellohaptik/multi-task-NLP ships for SNIPS and CoNLL-2003
(``shared/reference``, not copied into this repository). The data is written here, tiny, in
that library's own formats: headerless TSV files whose layout depends on the task type, and
``.joblib`` label maps written with ``joblib.dump`` as it writes them. Only the label-map
paths of the task files are changed (they point at ``../../data`` in that repository).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import joblib
import pytest
import torch

from mtl_lib import DataFormatError, TaskSpec, build_groups, load_model, load_task_file, tiny_encoder
from mtl_lib.cli import main
from mtl_lib.data import data_root, read_label_file
from mtl_lib.data.mtnlp import read_mtnlp

REFERENCE = data_root().parent / "reference"
SENTENCES = [  # (words, BIO tags, POS tags, intent)
    ("play jazz by miles davis".split(), "O B-genre O B-artist I-artist".split(), "VB NN IN NNP NNP".split(),
     "PlayMusic"),
    ("book a table in paris".split(), "O O O O B-city".split(), "VB DT NN IN NNP".split(), "BookRestaurant"),
    ("play some rock".split(), "O O B-genre".split(), "VB DT NN".split(), "PlayMusic"),
    ("book two seats for tonight".split(), "O B-num O O B-time".split(), "VB CD NNS IN NN".split(),
     "BookRestaurant"),
    ("add this song to my list".split(), "O O O O O O".split(), "VB DT NN TO PRP NN".split(), "AddToPlaylist"),
    ("add miles davis to jazz".split(), "O B-artist I-artist O B-genre".split(), "VB NNP NNP TO NN".split(),
     "AddToPlaylist"),
]


def write_tsv(path: Path, rows) -> None:
    # multi-task-NLP writes "{}\t{}\t{}\n".format(uid, label, sentence): lists as Python reprs
    path.write_text("".join("\t".join(str(x) for x in row) + "\n" for row in rows), encoding="utf-8")


def label_map(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:  # first-seen order over train, as its data preparation does
        out.setdefault(v, len(out))
    return out


def taskfile_with_paths(name: str, folder: Path) -> Path:
    """The reference task file with its label-map paths pointed at ``folder`` (and nothing else)."""
    text = (REFERENCE / name).read_text(encoding="utf-8")
    changed = re.sub(r"(label_map_or_file: )\.\./\.\./data/(\S+)", r"\1\2", text)
    diff = [(a, b) for a, b in zip(text.splitlines(), changed.splitlines()) if a != b]
    assert diff and all("label_map_or_file" in a and "label_map_or_file" in b for a, b in diff)
    out = folder / name
    out.write_text(changed, encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def snips_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mtnlp_snips")
    for split, rows in (("train", SENTENCES), ("dev", SENTENCES[:3]), ("test", SENTENCES[3:])):
        write_tsv(d / f"ner_snips_{split}.tsv", [(i, tags, words) for i, (words, tags, _, _) in enumerate(rows)])
        write_tsv(d / f"intent_snips_{split}.tsv", [(i, intent, " ".join(w))
                                                    for i, (w, _, _, intent) in enumerate(rows)])
        write_tsv(d / f"fragment_snips_{split}.tsv", [(2 * i + f, f, " ".join(w[:2] if f else w))
                                                      for i, (w, *_) in enumerate(rows) for f in (0, 1)])
    joblib.dump(label_map(t for _, tags, _, _ in SENTENCES for t in tags), d / "ner_snips_train_label_map.joblib")
    joblib.dump(label_map(i for *_, i in SENTENCES), d / "int_snips_train_label_map.joblib")
    return d


@pytest.fixture(scope="module")
def conll_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mtnlp_conll")
    for split, rows in (("train", SENTENCES), ("testa", SENTENCES[:3]), ("testb", SENTENCES[3:])):
        write_tsv(d / f"ner_coNLL_{split}.tsv", [(i, tags, words) for i, (words, tags, _, _) in enumerate(rows)])
        write_tsv(d / f"pos_coNLL_{split}.tsv", [(i, pos, words) for i, (words, _, pos, _) in enumerate(rows)])
    joblib.dump(label_map(t for _, tags, _, _ in SENTENCES for t in tags), d / "ner_coNLL_train_label_map.joblib")
    joblib.dump(label_map(t for _, _, pos, _ in SENTENCES for t in pos), d / "pos_coNLL_train_label_map.joblib")
    return d


def test_joblib_label_map_is_read_without_running_anything(snips_dir, tmp_path):
    labels = read_label_file(snips_dir / "int_snips_train_label_map.joblib")
    assert labels == ["PlayMusic", "BookRestaurant", "AddToPlaylist"]
    np = pytest.importorskip("numpy")
    joblib.dump({"a": np.int64(0)}, tmp_path / "numpy.joblib")  # names numpy's classes: refused
    with pytest.raises(DataFormatError, match=r"numpy.joblib: a pickled label map may hold only .*names numpy"):
        read_label_file(tmp_path / "numpy.joblib")
    joblib.dump({"a": 0}, tmp_path / "zipped.joblib", compress=3)
    with pytest.raises(DataFormatError, match=r"zipped.joblib: .*not a plain pickle"):
        read_label_file(tmp_path / "zipped.joblib")


def test_headerless_layouts_by_task_type(snips_dir, tmp_path):
    ((line, rec), *_) = read_mtnlp(snips_dir / "ner_snips_train.tsv", "tagging")
    assert line == 1 and rec["words"] == SENTENCES[0][0] and rec["label"] == SENTENCES[0][1]
    ((_, rec), *_) = read_mtnlp(snips_dir / "intent_snips_train.tsv", "single")
    assert rec == {"uid": "0", "label": "PlayMusic", "words": SENTENCES[0][0]}
    pair = tmp_path / "pair.tsv"
    write_tsv(pair, [(0, 1, "a b", "c d")])
    assert read_mtnlp(pair, "pair") == [(1, {"uid": "0", "label": "1", "words": ["a", "b"], "words_b": ["c", "d"]})]
    bad = tmp_path / "bad.tsv"
    bad.write_text("0\t['O', 'O']\t__import__('os').system('true')\n")
    with pytest.raises(DataFormatError, match=r"bad.tsv:1: the words column must be a list of strings"):
        read_mtnlp(bad, "tagging")  # literal_eval: never evaluated
    header = tmp_path / "header.tsv"
    header.write_text("uid\tlabel\ttext\n0\tx\thi\n")
    with pytest.raises(DataFormatError, match=r"header.tsv:1: this looks like a header row"):
        read_mtnlp(header, "single")


def test_task_type_picks_the_layout(snips_dir):
    tf = load_task_file(taskfile_with_paths("mtnlp_tasks_file_snips.yml", snips_dir))
    assert [(t.name, t.format, t.task_type) for t in tf.tasks] == [
        ("ner", "mtnlp", "tagging"), ("intent", "mtnlp", "classification"), ("fragdetect", "mtnlp", "classification")]
    enc = tiny_encoder("BERT", [" ".join(w) for w, *_ in SENTENCES])
    groups = build_groups(tf.tasks, enc.tokenizer, splits=("train", "dev", "test"))
    by_task = {g.tasks[0].name: g for g in groups}
    assert tf.tasks[0].labels[:3] == ["O", "B-genre", "B-artist"]  # the joblib map's id order
    assert tf.tasks[2].labels == ["0", "1"]  # class_num: 2, no label map: the labels of the data
    assert [len(by_task["ner"].records[s]) for s in ("train", "dev", "test")] == [6, 3, 3]
    with pytest.raises(Exception, match="multi-task-NLP's files .* not multilabel"):
        build_groups([TaskSpec(name="m", task_type="multilabel", format="mtnlp", path=str(snips_dir))],
                     enc.tokenizer)


# its CoNLL file scores POS tags with seqeval, which warns that they are not entity tags
@pytest.mark.filterwarnings("ignore:.*seems not to be NE tag")
@pytest.mark.parametrize("name, data", [("mtnlp_tasks_file_snips.yml", "snips_dir"),
                                        ("mtnlp_tasks_file_conll.yml", "conll_dir")])
def test_reference_task_file_trains_and_evaluates(name, data, request, tmp_path, capsys):
    folder = request.getfixturevalue(data)
    torch.set_num_threads(1)
    tf = taskfile_with_paths(name, folder)
    run = tmp_path / "run"
    code = main(["train", str(tf), "--out", str(run), "--encoder", "tiny-bert", "--set", "max_steps=2",
                 "--set", "batch_size=4", "--set", "progress=false"])
    out, err = capsys.readouterr()
    assert code == 0, err
    tasks = load_model(run).tasks
    assert code == 0 and set(tasks) == {t.name for t in load_task_file(tf).tasks}
    split = "test"
    code = main(["evaluate", str(run), "--split", split, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    scores = json.loads(out)
    assert set(tasks) <= set(scores)
    metrics = {m for s in scores.values() for m in s}
    assert ("snips_f1_score" in metrics) if "snips" in name else ("seqeval_f1_score" in metrics)
