"""Predictor words and spans (punctuation, character offsets); sentence pairs and NaN at inference.

Issue 15 item 8: the Predictor split words on whitespace only ("Lima." was one word, so a span
ended with the period) and spans had no character offsets. Issue 14 #8: `predict` on a pair
checkpoint printed records with no prediction and exited 0, there was no way to give the second
sentence, NaN head weights were accepted and `predict` wrote "score": NaN (invalid JSON).
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from mtl_lib.cli import main
from mtl_lib.evaluation.predict import Predictor, split_words
from mtl_lib.models.multitask import MultiTaskModel, load_model, save_model
from mtl_lib.models.safe_files import CheckpointError
from mtl_lib.tasks.spec import TaskSpec

TOPIC = TaskSpec(name="topic", task_type="classification", labels=["a", "b", "c"])
TAGS = TaskSpec(name="tags", task_type="tagging", labels=["O", "B-X", "I-X"])
PARA = TaskSpec(name="para", task_type="pair_classification", labels=["0", "1"])


@pytest.fixture(scope="module")
def checkpoints(tiny_snips, tmp_path_factory):
    """``{"mixed": topic + tags + para, "pairs": para only}`` saved as checkpoints."""
    enc, _ = tiny_snips
    root = tmp_path_factory.mktemp("predict_inputs")
    return {name: save_model(MultiTaskModel.from_tasks(copy.deepcopy(enc), tasks), root / name)
            for name, tasks in {"mixed": [TOPIC, TAGS, PARA], "pairs": [PARA]}.items()}


def run_cli(argv, capsys) -> tuple[int, list[str], list[str]]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out.splitlines(), [ln for ln in err.splitlines() if ln.strip()]


# ------------------------------------------------------------------------------- words and spans
@pytest.mark.parametrize("text, words", [
    ("Fly to Lima.", ["Fly", "to", "Lima", "."]),
    ("Lima, Peru; (tomorrow)!", ["Lima", ",", "Peru", ";", "(", "tomorrow", ")", "!"]),
    ("don't wake me at 7:30, ok?", ["don't", "wake", "me", "at", "7:30", ",", "ok", "?"]),
    ("$3.5 e-mail U.S.", ["$", "3.5", "e-mail", "U.S", "."]),
    ("«Ça va» — oui.", ["«", "Ça", "va", "»", "—", "oui", "."]),
    ("play\tsome\x00 jazz", ["play", "some", "jazz"]),
    ("emoji 👩‍👩‍👧 stay whole", ["emoji", "👩‍👩‍👧", "stay", "whole"]),
])
def test_words_separate_punctuation_and_keep_their_offsets(text, words):
    got = split_words(text)
    assert [w for w, _, _ in got] == words
    assert all(text[a:b] == w for w, a, b in got)


def test_spans_carry_character_offsets_into_the_text(checkpoints):
    model = load_model(checkpoints["mixed"])
    with torch.no_grad():  # every token's best tag is I-X: one valid BIO span over all words
        head = model.heads["tags"]
        for p in head.parameters():
            p.zero_()
        list(head.parameters())[-1][2] = 5.0
    text = "  Fly to   Lima."
    res = Predictor(model).predict(text)
    assert res["words"] == ["Fly", "to", "Lima", "."]
    assert res["tags"]["tags"] == ["B-X", "I-X", "I-X", "I-X"]
    assert res["tags"]["spans"] == [{"type": "X", "start": 0, "end": 4, "start_char": 2, "end_char": 16,
                                     "text": "Fly to   Lima."}]


# ------------------------------------------------------------------------------ sentence pairs
def test_a_pair_only_model_refuses_texts_without_a_second_sentence(checkpoints):
    p = Predictor.from_checkpoint(checkpoints["pairs"])
    with pytest.raises(ValueError, match=r"text 0 has no second sentence.*\(para\) reads sentence pairs"):
        p.predict(["is this the same"])
    with pytest.raises(ValueError, match="text 1 has no second sentence"):
        p.predict(["a", "b"], text_pairs=["a too", None])
    assert p.predict("a cat", text_pairs="a small cat")["para"]["label"] in ("0", "1")


def test_pair_tasks_run_on_the_texts_that_have_a_second_sentence(checkpoints):
    p = Predictor.from_checkpoint(checkpoints["mixed"])
    res = p.predict(["one", "two", "three"], text_pairs=["uno", None, "tres"])
    assert ["para" in r for r in res] == [True, False, True]
    assert all("topic" in r and "tags" in r for r in res)
    both = p.predict(["one", "three"], text_pairs=["uno", "tres"])
    assert [res[0]["para"], res[2]["para"]] == [b["para"] for b in both]


def test_cli_reads_jsonl_pairs(checkpoints, capsys, tmp_path):
    src = tmp_path / "pairs.jsonl"
    src.write_text('{"text": "a man plays guitar", "text_pair": "someone plays music"}\n\n'
                   '{"text": "it rains", "text_pair": "the weather is wet", "id": 7}\n')
    rc, out, err = run_cli(["predict", str(checkpoints["pairs"]), "-i", str(src)], capsys)
    assert rc == 0 and err == []
    records = [json.loads(line) for line in out]
    assert [r["text"] for r in records] == ["a man plays guitar", "it rains"]
    assert all(r["para"]["label"] in ("0", "1") for r in records)


def test_cli_refuses_plain_lines_for_a_pair_only_checkpoint(checkpoints, capsys, tmp_path):
    src = tmp_path / "plain.txt"
    src.write_text("a man plays guitar\n")
    rc, out, err = run_cli(["predict", str(checkpoints["pairs"]), "-i", str(src)], capsys)
    assert rc == 2 and out == [] and len(err) == 1
    assert "input 1 has no second sentence" in err[0] and '"text_pair"' in err[0] and "para" in err[0]


def test_cli_notes_pair_tasks_left_out_of_a_mixed_checkpoint(checkpoints, capsys, tmp_path):
    src = tmp_path / "mixed.jsonl"
    src.write_text('{"text": "play jazz", "text_pair": "play music"}\n{"text": "book a table"}\n')
    rc, out, err = run_cli(["predict", str(checkpoints["mixed"]), "-i", str(src)], capsys)
    records = [json.loads(line) for line in out]
    assert rc == 0 and ["para" in r for r in records] == [True, False]
    assert len(err) == 1 and "1 input(s) have no \"text_pair\"" in err[0]


@pytest.mark.parametrize("lines, where", [
    ('{"text": "ok"}\nnot json\n', ":2: not a JSON object"),
    ('{"text": 3}\n', ':1: expected an object with a string "text"'),
    ('{"text": "ok", "text_pair": ["x"]}\n', ':1: "text_pair" must be a string'),
])
def test_cli_names_the_bad_jsonl_line(checkpoints, capsys, tmp_path, lines, where):
    src = tmp_path / "bad.jsonl"
    src.write_text(lines)
    rc, out, err = run_cli(["predict", str(checkpoints["mixed"]), "-i", str(src)], capsys)
    assert rc == 2 and out == [] and len(err) == 1 and f"{src}{where}" in err[0]


# ----------------------------------------------------------------------------------------- NaN
def test_nan_head_weights_are_refused_naming_the_tensor(checkpoints, capsys, tmp_path):
    broken = tmp_path / "broken"
    load_model(checkpoints["mixed"]).save_pretrained(broken)
    state = load_file(broken / "model.safetensors")
    state["heads.topic.linear.weight"][0, 0] = float("nan")
    save_file(state, broken / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"tensor 'heads.topic.linear.weight' holds NaN"):
        load_model(broken)
    (tmp_path / "in.txt").write_text("play jazz\n")
    rc, out, err = run_cli(["predict", str(broken), "-i", str(tmp_path / "in.txt")], capsys)
    assert rc == 2 and out == [] and len(err) == 1 and "heads.topic.linear.weight" in err[0]


def test_a_model_that_computes_nan_is_an_error_not_a_nan_score(checkpoints):
    model = load_model(checkpoints["mixed"])
    with torch.no_grad():
        model.heads["topic"].linear.bias[1] = float("inf")  # inf - inf = NaN in the softmax
    with pytest.raises(ValueError, match=r"task 'topic' gave non-finite scores .* for text 0"):
        Predictor(model).predict("play jazz")


def test_cli_never_writes_nan(checkpoints, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(Predictor, "predict", lambda self, texts, text_pairs=None:
                        [{"text": t, "topic": {"label": "a", "score": float("nan")}} for t in texts])
    (tmp_path / "in.jsonl").write_text('{"text": "play jazz", "text_pair": "play music"}\n')
    rc, out, err = run_cli(["predict", str(checkpoints["mixed"]), "-i", str(tmp_path / "in.jsonl")], capsys)
    assert rc == 2 and out == [] and len(err) == 1 and "input 1: the prediction holds NaN" in err[0]
