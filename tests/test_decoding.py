"""Constrained BIO decoding: checked against brute force over every tag sequence."""

import itertools

import pytest
import torch
from seqeval.metrics.sequence_labeling import get_entities

from mtl_lib.evaluation.decoding import bio_constraints, decode_tags, viterbi_decode
from mtl_lib.tasks.spec import TaskFileError, TaskSpec

LABELS = ["O", "B-a", "I-a", "B-b", "I-b"]


def _valid(tags: list[str]) -> bool:
    prev = "O"
    for t in tags:
        if t.startswith("I-") and prev[2:] != t[2:]:
            return False
        prev = t
    return True


def _brute_force(scores: torch.Tensor, labels: list[str]) -> list[str]:
    best, best_path = float("-inf"), None
    for path in itertools.product(range(len(labels)), repeat=scores.shape[0]):
        tags = [labels[j] for j in path]
        if not _valid(tags):
            continue
        s = float(sum(scores[w, j] for w, j in enumerate(path)))
        if s > best:
            best, best_path = s, tags
    return best_path


def test_constraints_table():
    allowed, start = bio_constraints(LABELS)
    assert start.tolist() == [True, True, False, True, False]
    # I-a may follow only B-a and I-a; I-b only B-b and I-b; every other tag may follow anything
    assert allowed[:, 2].tolist() == [False, True, True, False, False]
    assert allowed[:, 4].tolist() == [False, False, False, True, True]
    assert allowed[:, [0, 1, 3]].all()


@pytest.mark.parametrize("seed", range(40))
def test_viterbi_equals_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    n_words = 1 + seed % 5
    logits = torch.randn(n_words, len(LABELS), generator=g) * 3
    got = decode_tags(logits, LABELS, "bio")
    want = _brute_force(torch.log_softmax(logits, -1), LABELS)
    assert got == want
    assert _valid(got)


def test_valid_argmax_is_unchanged_and_invalid_one_is_repaired():
    # argmax would read "O I-a I-a": an inside tag with no beginning
    logits = torch.tensor([[5.0, 0, 0, 0, 0], [0, 2.0, 2.5, 0, 0], [0, 0, 4.0, 0, 0]])
    assert decode_tags(logits, LABELS, "argmax") == ["O", "I-a", "I-a"]
    assert decode_tags(logits, LABELS, "bio") == ["O", "B-a", "I-a"]
    assert get_entities(["O", "B-a", "I-a"]) == [("a", 1, 2)]
    ok = torch.tensor([[0, 4.0, 0, 0, 0], [0, 0, 3.0, 0, 0], [3.0, 0, 0, 0, 0]])
    assert decode_tags(ok, LABELS, "bio") == decode_tags(ok, LABELS, "argmax") == ["B-a", "I-a", "O"]


def test_non_bio_tags_decode_as_argmax():
    labels = ["PER", "LOC", "none"]
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    assert decode_tags(logits, labels, "bio") == decode_tags(logits, labels, "argmax")


def test_empty_sentence_and_bad_mode():
    assert viterbi_decode(torch.zeros(0, 5), *bio_constraints(LABELS)) == []
    with pytest.raises(ValueError, match="decoding must be one of bio, argmax"):
        decode_tags(torch.zeros(2, 5), LABELS, "crf")


def test_task_key_is_validated():
    assert TaskSpec(name="t", task_type="tagging").tag_decoding == "bio"
    assert TaskSpec(name="t", task_type="tagging", tag_decoding="argmax").tag_decoding == "argmax"
    with pytest.raises(TaskFileError, match="task 't': tag_decoding must be one of bio, argmax, got 'greedy'"):
        TaskSpec(name="t", task_type="tagging", tag_decoding="greedy")


def test_io_tag_set_decodes_as_argmax_on_conll():
    """CoNLL-2003 dev written in the IO scheme (every span tagged ``I-x``, no ``B-`` tags): with
    perfect scores, BIO decoding must read every span back (it used to make I-x unreachable, F1 0)."""
    from seqeval.metrics import f1_score

    from mtl_lib.data import data_root, read_conll

    sentences = read_conll(data_root() / "conll2003" / "dev.txt")[:300]
    gold = [["I-" + t[2:] if t.startswith("B-") else t for t in s["tags"]] for s in sentences]
    labels = sorted({t for tags in gold for t in tags})
    assert labels == ["I-LOC", "I-MISC", "I-ORG", "I-PER", "O"]  # a real IO tag set
    pred = []
    for tags in gold:
        logits = torch.full((len(tags), len(labels)), -3.0)
        logits[range(len(tags)), [labels.index(t) for t in tags]] = 3.0  # (W, C): right tag on top
        pred.append(decode_tags(logits, labels, "bio"))
        assert pred[-1] == decode_tags(logits, labels, "argmax")
    assert pred == gold
    assert f1_score(gold, pred) == 1.0


def test_only_i_tags_with_a_b_tag_are_constrained():
    labels = ["O", "B-per", "I-per", "I-loc"]  # per is BIO, loc is IO
    allowed, start = bio_constraints(labels)
    assert start.tolist() == [True, True, False, True]
    assert allowed[:, 2].tolist() == [False, True, True, False]
    assert allowed[:, 3].all()
    logits = torch.tensor([[0, 1.0, 3.0, 0], [0, 0, 0, 3.0]])  # argmax: "I-per I-loc"
    assert decode_tags(logits, labels, "bio") == ["B-per", "I-loc"]
