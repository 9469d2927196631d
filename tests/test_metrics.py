"""Metrics against scikit-learn, seqeval and hand counts."""

import doctest
import random
import warnings

import numpy as np
import pytest
from seqeval import metrics as sq
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB2
from sklearn import metrics as sk

import mtl_lib.evaluation.metrics as M
from mtl_lib.evaluation.metrics import (
    METRICS,
    compute_metrics,
    confusion_matrix,
    conll_chunks,
    per_class_report,
    per_entity_report,
    sentence_accuracy,
    snips_f1_score,
    snips_precision,
    snips_recall,
)

SEED_NAMES = {
    "classification_accuracy",
    "classification_f1_score",
    "classification_recall_score",
    "seqeval_f1_score",
    "seqeval_precision",
    "seqeval_recall",
    "snips_f1_score",
    "snips_precision",
    "snips_recall",
}


def random_tags(rng, n_sentences, types=("A", "B")):
    tags = ["O"] + [f"{p}-{t}" for t in types for p in "BI"]
    return [[rng.choice(tags) for _ in range(rng.randint(0, 8))] for _ in range(n_sentences)]


def test_docstring_examples_run():
    result = doctest.testmod(M)
    assert result.attempted >= 3 and result.failed == 0


# --- Classification --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, 40).tolist()
    y_pred = rng.integers(0, 4, 40).tolist()
    assert M.classification_accuracy(y_true, y_pred) == pytest.approx(
        sk.accuracy_score(y_true, y_pred)
    )
    for average in ("macro", "micro", "weighted"):
        f1 = M.classification_f1_score(y_true, y_pred, average=average)
        recall = M.classification_recall_score(y_true, y_pred, average=average)
        assert f1 == pytest.approx(sk.f1_score(y_true, y_pred, average=average))
        assert recall == pytest.approx(sk.recall_score(y_true, y_pred, average=average))
    # macro is the default
    assert M.classification_f1_score(y_true, y_pred) == pytest.approx(
        sk.f1_score(y_true, y_pred, average="macro")
    )


def test_classification_by_hand_and_zero_division():
    y_true = ["play", "play", "book", "rate"]
    y_pred = ["play", "book", "book", "play"]
    assert M.classification_accuracy(y_true, y_pred) == 0.5
    # recall per class: play 1/2, book 1/1, rate 0/1 -> macro 1/2
    assert M.classification_recall_score(y_true, y_pred) == pytest.approx(0.5)
    # F1 per class: play P=1/2 R=1/2 -> 1/2; book P=1/2 R=1 -> 2/3; rate 0 -> macro 7/18
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero_division=0: no UndefinedMetricWarning
        assert M.classification_f1_score(y_true, y_pred) == pytest.approx(7 / 18)
    assert all(
        isinstance(f(y_true, y_pred), float)
        for f in (
            M.classification_accuracy,
            M.classification_f1_score,
            M.classification_recall_score,
        )
    )


# --- Entity level ----------------------------------------------------------------------------


def test_seqeval_metrics_by_hand():
    y_true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    y_pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "B-LOC"]]
    # true: PER(0-1), LOC(3), ORG(0); pred: PER(0-1), ORG(3), ORG(0), LOC(1); correct: 2
    assert M.seqeval_precision(y_true, y_pred) == pytest.approx(2 / 4)
    assert M.seqeval_recall(y_true, y_pred) == pytest.approx(2 / 3)
    assert M.seqeval_f1_score(y_true, y_pred) == pytest.approx(2 * 2 / (4 + 3))
    assert isinstance(M.seqeval_f1_score(y_true, y_pred), float)


def test_conll_chunks_rules():
    assert conll_chunks([]) == []
    assert conll_chunks(["O", "O"]) == []
    assert conll_chunks(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    # I- after O starts a chunk (conlleval), unlike strict IOB2
    assert conll_chunks(["O", "I-PER", "I-PER"]) == [("PER", 1, 2)]
    assert conll_chunks(["I-PER"]) == [("PER", 0, 0)]
    # a type change ends one chunk and starts another, whatever the prefix
    assert conll_chunks(["B-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 2)]
    # B- always starts a new chunk, even of the same type
    assert conll_chunks(["B-PER", "B-PER", "I-PER"]) == [("PER", 0, 0), ("PER", 1, 2)]
    assert conll_chunks(["I-PER", "B-PER"]) == [("PER", 0, 0), ("PER", 1, 1)]
    # entity types may contain dashes
    assert conll_chunks(["B-time-range", "I-time-range"]) == [("time-range", 0, 1)]
    for bad in ("PER", "E-PER", "B-", "X-Y"):
        with pytest.raises(ValueError, match="IOB tag"):
            conll_chunks([bad])


def test_snips_counts_a_chunk_that_starts_with_i():
    y_true = [["O", "I-PER", "I-PER"]]
    y_pred = [["O", "B-PER", "I-PER"]]
    # conlleval: both hold PER(1-2) -> perfect
    assert snips_precision(y_true, y_pred) == 1.0
    assert snips_recall(y_true, y_pred) == 1.0
    assert snips_f1_score(y_true, y_pred) == 1.0
    # seqeval default mode agrees; strict IOB2 mode finds no true entity and scores 0
    assert sq.f1_score(y_true, y_pred) == 1.0
    strict = sq.f1_score(y_true, y_pred, mode="strict", scheme=IOB2, zero_division=0)
    assert strict == 0.0


def test_snips_by_hand():
    y_true = [["B-city", "I-city", "O", "B-date"], ["O", "B-city"]]
    y_pred = [["B-city", "O", "O", "I-date"], ["O", "B-city"]]
    # true: city(0-1), date(3), city(1); pred: city(0-0), date(3), city(1); correct 2 of 3 / 3
    assert snips_precision(y_true, y_pred) == pytest.approx(2 / 3)
    assert snips_recall(y_true, y_pred) == pytest.approx(2 / 3)
    assert snips_f1_score(y_true, y_pred) == pytest.approx(2 / 3)
    # nothing predicted, nothing true: 0, not a division error
    assert snips_f1_score([["O"]], [["O"]]) == 0.0
    with pytest.raises(ValueError, match="sentence 0"):
        snips_f1_score([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="sentences"):
        snips_f1_score([["O"]], [])


def test_snips_agrees_with_seqeval_default_mode_on_random_tags():
    rng = random.Random(0)
    for _ in range(300):
        y_true = random_tags(rng, rng.randint(1, 4))
        y_pred = [[rng.choice([t, "O", "B-A", "I-B"]) for t in s] for s in y_true]
        for sentence in y_true + y_pred:
            assert conll_chunks(sentence) == get_entities(sentence)
        for ours, theirs in (
            (snips_precision, M.seqeval_precision),
            (snips_recall, M.seqeval_recall),
            (snips_f1_score, M.seqeval_f1_score),
        ):
            value = ours(y_true, y_pred)
            assert 0.0 <= value <= 1.0 and isinstance(value, float)
            assert value == pytest.approx(theirs(y_true, y_pred))


def test_all_metrics_in_unit_interval():
    rng = random.Random(1)
    for _ in range(20):
        tags_true = random_tags(rng, 3)
        tags_pred = [[rng.choice([t, "O", "I-A"]) for t in s] for s in tags_true]
        labels_true = [rng.randint(0, 3) for _ in range(10)]
        labels_pred = [rng.randint(0, 3) for _ in range(10)]
        for name, fn in METRICS.items():
            args = (
                (tags_true, tags_pred)
                if "classification" not in name
                else (labels_true, labels_pred)
            )
            value = fn(*args)
            assert isinstance(value, float) and 0.0 <= value <= 1.0, name


# --- Joint and per-class views ---------------------------------------------------------------


def test_sentence_accuracy_by_hand():
    intents_true = ["play", "book", "play"]
    intents_pred = ["play", "book", "rate"]
    tags_true = [["B-a", "O"], ["O"], ["O"]]
    tags_pred = [["B-a", "O"], ["B-a"], ["O"]]
    # sentence 0 right; 1 has a wrong tag; 2 has a wrong intent
    assert sentence_accuracy(intents_true, intents_pred, tags_true, tags_pred) == pytest.approx(
        1 / 3
    )
    assert sentence_accuracy([], [], [], []) == 0.0
    with pytest.raises(ValueError):
        sentence_accuracy(["a"], ["a", "b"], [["O"]], [["O"]])


def test_per_class_report_matches_sklearn():
    y_true = [0, 1, 2, 2, 1, 0, 2, 1]
    y_pred = [0, 2, 2, 1, 1, 0, 0, 1]
    report = per_class_report(y_true, y_pred)
    reference = sk.classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    assert [row["label"] for row in report] == [0, 1, 2]
    for row in report:
        ref = reference[str(row["label"])]
        assert row["precision"] == pytest.approx(ref["precision"])
        assert row["recall"] == pytest.approx(ref["recall"])
        assert row["f1"] == pytest.approx(ref["f1-score"])
        assert row["support"] == ref["support"] and isinstance(row["support"], int)
    # chosen labels and order; an unseen label gets zeros, not a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = per_class_report(y_true, y_pred, labels=[2, 0, 7])
    assert [r["label"] for r in rows] == [2, 0, 7]
    assert rows[2] == {"label": 7, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_per_entity_report_by_hand_and_vs_seqeval():
    y_true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    y_pred = [["B-PER", "I-PER", "O", "B-PER"], ["B-LOC", "O"]]
    report = per_entity_report(y_true, y_pred)
    assert report == [
        {"label": "LOC", "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2},
        {"label": "PER", "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1},
    ]
    reference = sq.classification_report(y_true, y_pred, output_dict=True)
    for row in report:
        assert row["f1"] == pytest.approx(reference[row["label"]]["f1-score"])


def test_confusion_matrix_by_hand():
    y_true = ["a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b"]
    cm = confusion_matrix(y_true, y_pred, labels=["a", "b", "c"])
    np.testing.assert_array_equal(cm, [[1, 0, 0], [1, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, ["c", "a"]), [[0, 0], [0, 1]])


def test_registry_and_compute_metrics():
    assert set(METRICS) == SEED_NAMES
    y_true, y_pred = [0, 1, 1, 0], [0, 1, 0, 0]
    out = compute_metrics(
        ["classification_accuracy", "classification_recall_score"], y_true, y_pred
    )
    assert out == {
        "classification_accuracy": 0.75,
        "classification_recall_score": pytest.approx((1.0 + 0.5) / 2),
    }
    tags = compute_metrics(["snips_f1_score", "seqeval_f1_score"], [["B-X"]], [["B-X"]])
    assert tags == {"snips_f1_score": 1.0, "seqeval_f1_score": 1.0}
    with pytest.raises(KeyError, match="known metrics"):
        compute_metrics(["accuracy"], y_true, y_pred)
