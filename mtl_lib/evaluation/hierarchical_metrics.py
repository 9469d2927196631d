"""Metrics for hierarchical classification, computed from label *paths*.

``y_true`` and ``y_pred`` are sequences of paths such as ``("LOC", "city")``. A class at
level ``k`` is identified by its prefix ``path[: k + 1]``, so "food" under "dogs" and "food"
under "cats" are different classes, and a right leaf name under a wrong parent counts as
wrong. No :class:`~mtl_lib.tasks.hierarchy.PerLevelHierarchy` is needed: every quantity below only
compares prefixes. All values are floats in ``[0, 1]`` (show percentages only in display).

* per-level accuracy: fraction of examples whose first ``k + 1`` labels are all right;
* leaf macro-F1: scikit-learn's macro F1 over full leaf paths (classes = union of true and
  predicted leaves, scikit-learn's default);
* hierarchical precision / recall / F1 (Kiritchenko et al., 2005), micro-averaged: each path
  is augmented with all its ancestors, ``hP = Σ|Ŷ∩Y| / Σ|Ŷ|``, ``hR = Σ|Ŷ∩Y| / Σ|Y|``,
  ``hF = 2·hP·hR / (hP + hR)``. With fixed-depth paths ``|Ŷ| = |Y| = L`` so the three
  coincide; they differ for paths of different depths.

Taught in notebook ``07_hierarchical``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support

__all__ = [
    "per_level_accuracy",
    "leaf_macro_f1",
    "hierarchical_precision_recall_f1",
    "per_level_report",
    "hierarchical_metrics",
]

Paths = Sequence[Sequence[str]]


def _check(y_true: Paths, y_pred: Paths) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    true = [tuple(p) for p in y_true]
    pred = [tuple(p) for p in y_pred]
    if len(true) != len(pred):
        raise ValueError(f"y_true has {len(true)} paths but y_pred has {len(pred)}")
    if not true:
        raise ValueError("no examples to score")
    return true, pred


def _encode(*columns: list[tuple[str, ...]]) -> tuple[list[np.ndarray], list[tuple[str, ...]]]:
    """Map hashable paths to ints so scikit-learn sees plain 1-d label arrays."""
    vocab = sorted(set().union(*columns))
    index = {p: i for i, p in enumerate(vocab)}
    return [np.array([index[p] for p in col]) for col in columns], vocab


def per_level_accuracy(y_true: Paths, y_pred: Paths) -> list[float]:
    """Accuracy at each level ``k``: the prefix ``path[: k + 1]`` must match exactly.

    Returns a list of length ``depth`` (the depth of the true paths).
    """
    true, pred = _check(y_true, y_pred)
    depth = max(len(p) for p in true)
    return [
        float(np.mean([t[: k + 1] == p[: k + 1] for t, p in zip(true, pred, strict=True)]))
        for k in range(depth)
    ]


def leaf_macro_f1(y_true: Paths, y_pred: Paths) -> float:
    """Macro-averaged F1 over full leaf paths (``sklearn.metrics.f1_score``, zero_division=0)."""
    true, pred = _check(y_true, y_pred)
    (t, p), _ = _encode(true, pred)
    return float(f1_score(t, p, average="macro", zero_division=0))


def _ancestors(path: tuple[str, ...]) -> set[tuple[str, ...]]:
    # The path itself and every proper prefix; the implicit root is left out, since it is
    # shared by all paths and would only inflate the scores.
    return {path[: k + 1] for k in range(len(path))}


def hierarchical_precision_recall_f1(y_true: Paths, y_pred: Paths) -> tuple[float, float, float]:
    """Micro-averaged hierarchical precision, recall and F1 over ancestor-augmented sets."""
    true, pred = _check(y_true, y_pred)
    overlap = n_pred = n_true = 0
    for t, p in zip(true, pred, strict=True):
        at, ap = _ancestors(t), _ancestors(p)
        overlap += len(at & ap)
        n_pred += len(ap)
        n_true += len(at)
    h_p = overlap / n_pred if n_pred else 0.0
    h_r = overlap / n_true if n_true else 0.0
    h_f = 2 * h_p * h_r / (h_p + h_r) if h_p + h_r else 0.0
    return h_p, h_r, h_f


def per_level_report(y_true: Paths, y_pred: Paths) -> list[dict]:
    """Precision, recall, F1 and support of every class at every level.

    Returns
    -------
    list[dict]
        One dict per (level, class) with keys ``level`` (1-based), ``label`` (display name),
        ``path`` (the full prefix joined with " > ", unique), ``precision``, ``recall``,
        ``f1``, ``support`` (number of true examples). Classes are the union of true and
        predicted prefixes at that level, sorted by path.
    """
    true, pred = _check(y_true, y_pred)
    depth = max(len(p) for p in true)
    rows: list[dict] = []
    for k in range(depth):
        (t, p), vocab = _encode([x[: k + 1] for x in true], [x[: k + 1] for x in pred])
        prec, rec, f1, support = precision_recall_fscore_support(
            t, p, labels=np.arange(len(vocab)), zero_division=0
        )
        for i, path in enumerate(vocab):
            rows.append({
                "level": k + 1,
                "label": path[-1],
                "path": " > ".join(path),
                "precision": float(prec[i]),
                "recall": float(rec[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            })
    return rows


def hierarchical_metrics(y_true: Paths, y_pred: Paths) -> dict[str, float]:
    """All summary metrics in one flat dict.

    Keys: ``level1_accuracy`` … ``level{L}_accuracy``, ``leaf_accuracy`` (= the last level),
    ``leaf_macro_f1``, ``hierarchical_precision``, ``hierarchical_recall``,
    ``hierarchical_f1``.
    """
    accs = per_level_accuracy(y_true, y_pred)
    out = {f"level{k + 1}_accuracy": a for k, a in enumerate(accs)}
    out["leaf_accuracy"] = accs[-1]
    out["leaf_macro_f1"] = leaf_macro_f1(y_true, y_pred)
    h_p, h_r, h_f = hierarchical_precision_recall_f1(y_true, y_pred)
    out.update(hierarchical_precision=h_p, hierarchical_recall=h_r, hierarchical_f1=h_f)
    return out
