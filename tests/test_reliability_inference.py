"""Reliability: the Predictor on hostile text answers (or raises a clear error), never crashes.

Hostile inputs: empty and whitespace-only strings, 10,000-character inputs (truncated with a
warning), mixed scripts, emoji and ZWJ sequences, control and zero-width characters,
combining-mark floods, and non-strings. For every answer: one tag per word (words = the
Predictor's documented split — whitespace, control characters, punctuation — computed here
independently), spans inside the text, probabilities that sum to 1, JSON-serialisable output,
and the same answer alone or in a batch with ordinary sentences (padding must not leak).
"""

from __future__ import annotations

import io
import json
import math
import re
import string
import unicodedata
import warnings
from pathlib import Path

import pytest
import torch

from mtl_lib import Predictor, build_experiment, snips_tasks
from mtl_lib.cli import main
from mtl_lib.models.multitask import save_model

HOSTILE = {
    "empty": "",
    "spaces": " " * 50,
    "whitespace-mix": "\t\n\r\x0b\x0c \u00a0\u2028\u2029\u3000",
    "ten-thousand-char-word": "x" * 10_000,
    "ten-thousand-chars-of-words": "play jazz " * 1_000,
    "ten-thousand-spaces": " " * 10_000,
    "digits": "7" * 10_000,
    "mixed-scripts": "play جاز 音乐 музыку jazz मौसम בבקשה",
    "emoji": "play 😀 🎷🎺 on 🇫🇷 with 👩‍👩‍👧‍👦",
    "emoji-only": "😀😀😀 🔥",
    "control-chars": "play\x00 jazz\x07 \x1b[31mnow\x1b[0m \x7f\x85 please\x9f",
    "zero-width": "play \u200b \u200d jazz \ufeff \u2060",
    "bidi-override": "play \u202ejazz\u202c now \u2066x\u2069",
    "combining-flood": "pla" + "\u0301" * 500 + "y jazz",
    "math-alphanumerics": "𝔭𝔩𝔞𝔶 𝒿𝒶𝓏𝓏",
    "markup": "<script>alert('x')</script> && rm -rf / ; DROP TABLE songs;--",
    "private-use": "play \ue000\uf8ff jazz",
    "replacement-char": "play \ufffd\ufffd jazz",
}
NORMAL = ["play some jazz by miles davis", "book a table for two in paris"]


def expected_words(text: str) -> list[str]:
    """The Predictor's documented rule, computed another way: each character becomes a class
    letter (s: whitespace or control, p: punctuation, w: letter/digit/mark, o: other), a "p"
    between two "w" joins the word, and words are the runs of w/o or a single p."""
    def kind(c: str) -> str:
        cat = unicodedata.category(c)
        if c.isspace() or cat == "Cc":
            return "s"
        if c in string.punctuation or cat.startswith("P"):
            return "p"
        return "w" if cat[0] in "LNM" else "o"

    classes = re.sub(r"(?<=w)p(?=w)", "w", "".join(kind(c) for c in text))
    return [text[m.start():m.end()] for m in re.finditer(r"p|[wo]+", classes)]


@pytest.fixture(scope="module", params=["bert", "roberta", "xlnet"])
def predictor(request) -> Predictor:
    """WordPiece, byte-level BPE and SentencePiece tokenizers; XLNet pads on the left."""
    torch.set_num_threads(1)
    model, _ = build_experiment(snips_tasks(max_examples=32), f"tiny-{request.param}")
    return Predictor(model)


def n_tokens(predictor: Predictor, text: str) -> int:
    """Length of the untruncated encoding (what the model would need)."""
    tok = predictor.model.encoder.tokenizer
    return len(tok(expected_words(text), is_split_into_words=True)["input_ids"])


def check_answer(result: dict, text: str, predictor: Predictor) -> None:
    words = expected_words(text)
    assert result["text"] == text and result["words"] == words
    intent, slots = result["intent"], result["slots"]
    labels = predictor.tasks["intent"].labels
    assert intent["label"] in labels and intent["label"] == max(intent["scores"], key=intent["scores"].get)
    assert all(math.isfinite(p) and 0 <= p <= 1 for p in intent["scores"].values())
    assert sum(intent["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert len(slots["tags"]) == len(words)
    assert set(slots["tags"]) <= set(predictor.tasks["slots"].labels)
    for span in slots["spans"]:
        assert 0 <= span["start"] < span["end"] <= len(words)
        assert 0 <= span["start_char"] < span["end_char"] <= len(text)
        assert span["text"] == text[span["start_char"]:span["end_char"]]
        assert span["text"].startswith(words[span["start"]]) and span["text"].endswith(words[span["end"] - 1])
    json.loads(json.dumps(result, ensure_ascii=False))  # what `mtl-lib predict` writes


def same_answer(a: dict, b: dict) -> None:
    assert a["intent"]["label"] == b["intent"]["label"] and a["slots"]["tags"] == b["slots"]["tags"]
    for k, p in a["intent"]["scores"].items():
        assert p == pytest.approx(b["intent"]["scores"][k], abs=1e-5)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_text_gets_an_answer_with_one_tag_per_word(predictor, name):
    text = HOSTILE[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation warnings are tested below
        alone = predictor.predict(text)
        batch = predictor.predict([NORMAL[0], text, NORMAL[1]])
        normal = predictor.predict(NORMAL)
    check_answer(alone, text, predictor)
    check_answer(batch[1], text, predictor)
    same_answer(alone, batch[1])
    same_answer(batch[0], normal[0])  # the hostile neighbour does not change ordinary answers
    same_answer(batch[2], normal[1])


def test_ten_thousand_characters_are_truncated_with_a_warning(predictor):
    text = HOSTILE["ten-thousand-chars-of-words"]  # 2,000 words
    with pytest.warns(UserWarning, match=r"text 1 was truncated to 128 tokens"):
        result = predictor.predict(["play jazz", text])[1]
    words = expected_words(text)
    assert len(result["slots"]["tags"]) == len(words) == 2000
    assert set(result["slots"]["tags"][128:]) == {"O"}  # past the cut: no token, tagged "O"


@pytest.mark.parametrize("name", ["ten-thousand-char-word", "digits", "combining-flood"])
def test_one_huge_word_warns_exactly_when_it_is_cut(predictor, name):
    """BERT's WordPiece maps a word over 100 characters to [UNK] (nothing to cut); BPE and
    SentencePiece split it into many pieces, which are cut: that must warn too."""
    text = HOSTILE[name]
    if n_tokens(predictor, text) > 128:
        with pytest.warns(UserWarning, match=r"truncated to 128 tokens"):
            result = predictor.predict(text)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = predictor.predict(text)
    assert len(result["slots"]["tags"]) == len(expected_words(text))


def test_no_warning_for_inputs_that_fit(predictor):
    texts = [*NORMAL, "play " * 40, "x" * 60, HOSTILE["emoji"], HOSTILE["mixed-scripts"]]
    assert all(n_tokens(predictor, t) <= 128 for t in texts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor.predict(texts)


@pytest.mark.parametrize("bad", [None, 123, 4.5, b"play jazz", ["play", None], ["play", 7], [["play", "jazz"]],
                                 {"text": "play"}])
def test_non_strings_raise_a_clear_type_error(predictor, bad):
    with pytest.raises(TypeError, match=r"str"):
        predictor.predict(bad)


def test_lone_surrogates_are_a_clear_error_not_a_tokenizer_crash(predictor):
    with pytest.raises(ValueError, match=r"text 1.*surrogate"):
        predictor.predict(["play jazz", "play \ud800 jazz"])


def test_empty_batch_and_mismatched_pairs(predictor):
    assert predictor.predict([]) == []
    with pytest.raises(ValueError, match="text_pairs"):
        predictor.predict(["a", "b"], text_pairs=["c"])


@pytest.fixture(scope="module")
def checkpoint(predictor, tmp_path_factory) -> Path:
    return save_model(predictor.model, tmp_path_factory.mktemp("pred") / "ckpt")


def test_cli_predict_gives_one_output_line_per_input_line(checkpoint, tmp_path, capfd):
    """Lines hold characters str.splitlines() would split at (\\x0c, \\x1c, \\x85, \\u2028): one
    input line must still be one JSONL record, even for empty and 10,000-character lines."""
    lines = ["play jazz", "", "a\x0cb", "c\x1cd\x1de\x1ef", "g\x85h", "i\u2028j\u2029k", "😀 " * 3,
             HOSTILE["ten-thousand-chars-of-words"], "\ttabs\t", HOSTILE["control-chars"]]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["predict", str(checkpoint), "-i", str(src), "-o", str(out)]) == 0
    records = [json.loads(r) for r in out.read_text(encoding="utf-8").split("\n") if r]
    assert [r["text"] for r in records] == lines
    assert all(len(r["slots"]["tags"]) == len(expected_words(r["text"])) for r in records)


def test_cli_predict_crlf_input(checkpoint, tmp_path, capfd):
    src = tmp_path / "in.txt"
    src.write_bytes(b"play jazz\r\nbook a table\r\n")
    assert main(["predict", str(checkpoint), "-i", str(src), "-o", str(tmp_path / "o.jsonl")]) == 0
    records = [json.loads(r) for r in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["text"] for r in records] == ["play jazz", "book a table"]


def test_cli_predict_bad_bytes_on_stdin_is_one_error_line(checkpoint, monkeypatch, capfd):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"play jazz\nplay \xff\xfe\n")))
    capfd.readouterr()
    assert main(["predict", str(checkpoint)]) == 2
    err = [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("mtl-lib predict: error: standard input") and "utf-8" in err[0]
