"""Evaluation metrics: the nine seed metrics, per-class reports and confusion matrices.

Every metric has the form ``f(y_true, y_pred, **kw) -> float`` and returns a plain python
float in [0, 1]; percentages belong in displays only. Task files name metrics by the keys
of :data:`METRICS`.

- ``classification_*``: one label per example (ints or strings), via scikit-learn.
- ``seqeval_*``: entity-level scores on lists of tag sequences, via seqeval (default mode).
- ``snips_*``: the same entity-level scores with chunks found by :func:`conll_chunks`, a
  hand-written, readable version of the rules of ``conlleval.pl`` (the CoNLL-2000 script that
  SNIPS slot-filling results are reported with).

Taught in notebook 03 (metrics).

Examples
--------
>>> classification_accuracy([0, 1, 1, 2], [0, 1, 2, 2])
0.75
>>> conll_chunks(["B-PER", "I-PER", "O", "I-LOC"])
[('PER', 0, 1), ('LOC', 3, 3)]
>>> snips_f1_score([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
0.0
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np
from seqeval import metrics as seqeval_metrics
from sklearn import metrics as sk_metrics
from sklearn.utils.multiclass import unique_labels

Tags = Sequence[Sequence[str]]  # a batch of sentences, each a sequence of tag strings

# ---------------------------------------------------------------------------------------------
# Classification (one label per example)
# ---------------------------------------------------------------------------------------------


def classification_accuracy(y_true: Sequence[Hashable], y_pred: Sequence[Hashable]) -> float:
    """Fraction of examples whose predicted label equals the true label."""
    return float(sk_metrics.accuracy_score(y_true, y_pred))


def classification_f1_score(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], average: str = "macro"
) -> float:
    """F1 score, macro-averaged over classes by default (``average=`` as in scikit-learn).

    A class with no predictions and no true examples contributes 0 (``zero_division=0``)
    instead of a warning.
    """
    return float(sk_metrics.f1_score(y_true, y_pred, average=average, zero_division=0))


def classification_recall_score(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], average: str = "macro"
) -> float:
    """Recall, macro-averaged over classes by default (``average=`` as in scikit-learn)."""
    return float(sk_metrics.recall_score(y_true, y_pred, average=average, zero_division=0))


# ---------------------------------------------------------------------------------------------
# Entity level, via seqeval
# ---------------------------------------------------------------------------------------------
# seqeval's default mode (mode=None) finds chunks with conlleval's rules, so an I- tag after O
# starts an entity. Its strict mode (mode="strict", scheme=IOB2) instead requires every entity
# to start with B-, so the same predictions can score lower there.


def _as_lists(tags: Tags) -> list[list[str]]:
    return [list(sentence) for sentence in tags]


def seqeval_f1_score(y_true: Tags, y_pred: Tags) -> float:
    """Entity-level micro F1 (an entity counts only if type, start and end all match)."""
    return float(seqeval_metrics.f1_score(_as_lists(y_true), _as_lists(y_pred), zero_division=0))


def seqeval_precision(y_true: Tags, y_pred: Tags) -> float:
    """Entity-level micro precision: correct predicted entities / predicted entities."""
    return float(
        seqeval_metrics.precision_score(_as_lists(y_true), _as_lists(y_pred), zero_division=0)
    )


def seqeval_recall(y_true: Tags, y_pred: Tags) -> float:
    """Entity-level micro recall: correct predicted entities / true entities."""
    return float(
        seqeval_metrics.recall_score(_as_lists(y_true), _as_lists(y_pred), zero_division=0)
    )


# ---------------------------------------------------------------------------------------------
# Entity level, conlleval-style chunking written out
# ---------------------------------------------------------------------------------------------


def _split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", "")``."""
    if tag == "O":
        return "O", ""
    prefix, sep, entity_type = tag.partition("-")
    if prefix not in ("B", "I") or not sep or not entity_type:
        raise ValueError(f"expected an IOB tag like 'B-X', 'I-X' or 'O', got {tag!r}")
    return prefix, entity_type


def conll_chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Chunks ``(type, start, end)`` (end inclusive) of one IOB tag sequence, as conlleval.pl.

    A chunk *starts* at a B- tag, or at an I- tag that follows O or a tag of another type.
    A chunk *ends* before O, before any B-, or before a tag of another type. So
    ``["O", "I-PER", "I-PER"]`` holds one PER chunk (strict IOB2 would find none, since it
    is not opened by B-), and ``["B-PER", "I-LOC"]`` holds two chunks.
    """
    chunks = []
    start, current_type = None, ""  # the open chunk, if any
    for i, tag in enumerate(tags):
        prefix, entity_type = _split_tag(tag)
        # Close the open chunk if this tag does not continue it.
        continues = prefix == "I" and entity_type == current_type
        if start is not None and not continues:
            chunks.append((current_type, start, i - 1))
            start, current_type = None, ""
        # Open a new chunk at B-, or at an I- that did not continue anything.
        if prefix == "B" or (prefix == "I" and start is None):
            start, current_type = i, entity_type
    if start is not None:
        chunks.append((current_type, start, len(tags) - 1))
    return chunks


def _chunk_counts(y_true: Tags, y_pred: Tags) -> tuple[int, int, int]:
    """(correct, predicted, true) chunk counts over all sentences."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true sentences but {len(y_pred)} predicted")
    correct = n_pred = n_true = 0
    for i, (true_tags, pred_tags) in enumerate(zip(y_true, y_pred, strict=True)):
        if len(true_tags) != len(pred_tags):
            raise ValueError(
                f"sentence {i}: {len(true_tags)} true tags but {len(pred_tags)} predicted"
            )
        true_chunks = set(conll_chunks(true_tags))
        pred_chunks = set(conll_chunks(pred_tags))
        correct += len(true_chunks & pred_chunks)  # same type, same start, same end
        n_pred += len(pred_chunks)
        n_true += len(true_chunks)
    return correct, n_pred, n_true


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def snips_precision(y_true: Tags, y_pred: Tags) -> float:
    """conlleval chunk precision: correct chunks / predicted chunks (0 if none predicted)."""
    correct, n_pred, _ = _chunk_counts(y_true, y_pred)
    return _ratio(correct, n_pred)


def snips_recall(y_true: Tags, y_pred: Tags) -> float:
    """conlleval chunk recall: correct chunks / true chunks (0 if there are none)."""
    correct, _, n_true = _chunk_counts(y_true, y_pred)
    return _ratio(correct, n_true)


def snips_f1_score(y_true: Tags, y_pred: Tags) -> float:
    """conlleval chunk F1 = 2PR / (P + R) = 2 * correct / (predicted + true)."""
    correct, n_pred, n_true = _chunk_counts(y_true, y_pred)
    return _ratio(2 * correct, n_pred + n_true)


# ---------------------------------------------------------------------------------------------
# Joint and per-class views
# ---------------------------------------------------------------------------------------------


def sentence_accuracy(
    intent_true: Sequence[Hashable],
    intent_pred: Sequence[Hashable],
    tags_true: Tags,
    tags_pred: Tags,
) -> float:
    """Fraction of sentences with the right intent *and* every slot tag right (SNIPS)."""
    n = len(intent_true)
    if not n == len(intent_pred) == len(tags_true) == len(tags_pred):
        raise ValueError("all four arguments must have one entry per sentence")
    if n == 0:
        return 0.0
    right = sum(
        it == ip and list(tt) == list(tp)
        for it, ip, tt, tp in zip(intent_true, intent_pred, tags_true, tags_pred, strict=True)
    )
    return right / n


def per_class_report(
    y_true: Sequence[Hashable],
    y_pred: Sequence[Hashable],
    labels: Sequence[Hashable] | None = None,
) -> list[dict]:
    """Precision, recall, F1 and support for each class.

    Parameters
    ----------
    y_true, y_pred : sequences of labels, shape (N,)
    labels : sequence, optional
        Classes to report, in this order; default: every label seen, sorted.

    Returns
    -------
    list of dict with keys ``label``, ``precision``, ``recall``, ``f1``, ``support``
    """
    if labels is None:
        labels = unique_labels(y_true, y_pred).tolist()
    precision, recall, f1, support = sk_metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=list(labels), zero_division=0
    )
    return [
        {
            "label": label,
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "support": int(s),
        }
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    ]


def per_entity_report(tags_true: Tags, tags_pred: Tags) -> list[dict]:
    """Entity-level precision, recall, F1 and support for each entity type (via seqeval).

    Returns
    -------
    list of dict with keys ``label`` (entity type), ``precision``, ``recall``, ``f1``,
    ``support`` (number of true entities), sorted by type; the averages are left out.
    """
    report = seqeval_metrics.classification_report(
        _as_lists(tags_true), _as_lists(tags_pred), output_dict=True, zero_division=0
    )
    return [
        {
            "label": name,
            "precision": float(row["precision"]),
            "recall": float(row["recall"]),
            "f1": float(row["f1-score"]),
            "support": int(row["support"]),
        }
        for name, row in sorted(report.items())
        if not name.endswith(" avg")  # "micro avg", "macro avg", "weighted avg"
    ]


def confusion_matrix(
    y_true: Sequence[Hashable],
    y_pred: Sequence[Hashable],
    labels: Sequence[Hashable] | None = None,
) -> np.ndarray:
    """Counts ``C[i, j]`` of examples of true class ``labels[i]`` predicted as ``labels[j]``.

    Returns
    -------
    np.ndarray of shape (K, K), K = number of labels (default: every label seen, sorted)
    """
    return sk_metrics.confusion_matrix(y_true, y_pred, labels=labels)


METRICS: dict[str, Callable[..., float]] = {
    "classification_accuracy": classification_accuracy,
    "classification_f1_score": classification_f1_score,
    "classification_recall_score": classification_recall_score,
    "seqeval_f1_score": seqeval_f1_score,
    "seqeval_precision": seqeval_precision,
    "seqeval_recall": seqeval_recall,
    "snips_f1_score": snips_f1_score,
    "snips_precision": snips_precision,
    "snips_recall": snips_recall,
}
"""The seed metrics by the name used under ``metrics`` in task files."""


def compute_metrics(names: Sequence[str], y_true, y_pred) -> dict[str, float]:
    """Compute several metrics by name on the same predictions.

    Raises
    ------
    KeyError
        If a name is not in :data:`METRICS` (the message lists the known names).
    """
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric(s) {unknown}; known metrics: {sorted(METRICS)}")
    return {name: METRICS[name](y_true, y_pred) for name in names}
