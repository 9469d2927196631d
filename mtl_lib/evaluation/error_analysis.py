"""What kind of mistake a prediction is: span errors of a tagger, the first wrong level of a
label path, the missed and spurious labels of a multi-label prediction.

Pure functions of gold and predicted labels (no model), used by the task types
(:meth:`~mtl_lib.task_types.TaskType.diagnose`) and so by the error browser.

Span errors follow the MUC scheme, as in Chinchor & Sundheim (1993) and nervaluate: once the
exactly right spans are set aside, each remaining gold span is paired with at most one
overlapping predicted span, and every error is one of

==================  ==========================================================================
``missed``          a gold span that no predicted span overlaps
``spurious``        a predicted span that overlaps no (unpaired) gold span
``wrong_type``      overlapping spans of different types (whatever their boundaries: the type
                    axis of MUC counts a wrong type as wrong even when the boundaries are off)
``wrong_boundary``  overlapping spans of the same type whose start or end differ
==================  ==========================================================================

Examples
--------
>>> [e["kind"] for e in span_errors(["B-PER", "I-PER", "O"], ["B-LOC", "I-LOC", "O"])]
['wrong_type']
>>> [e["kind"] for e in span_errors(["B-PER", "I-PER", "O"], ["B-PER", "O", "B-LOC"])]
['wrong_boundary', 'spurious']
>>> first_wrong_level(("animal", "dog"), ("animal", "cat"))
1
"""

from __future__ import annotations

from collections.abc import Sequence

from .metrics import conll_chunks

__all__ = ["SPAN_ERROR_KINDS", "first_wrong_level", "label_set_errors", "span_errors", "spans"]

SPAN_ERROR_KINDS = ("missed", "spurious", "wrong_type", "wrong_boundary")


def _iob(tags: Sequence[str]) -> list[str]:
    """Tags outside the IOB scheme (a "PAD" label) read as "O", as the Predictor reads them."""
    return [t if t == "O" or t[:2] in ("B-", "I-") else "O" for t in tags]


def spans(tags: Sequence[str]) -> list[dict]:
    """The spans of one tag sequence: ``{"type", "start", "end"}``, ``end`` exclusive."""
    return [{"type": ty, "start": s, "end": e + 1} for ty, s, e in conll_chunks(_iob(tags))]


def _overlap(a: dict, b: dict) -> int:
    return max(0, min(a["end"], b["end"]) - max(a["start"], b["start"]))


def span_errors(gold_tags: Sequence[str], pred_tags: Sequence[str]) -> list[dict]:
    """Every span error of one sentence, in order of position.

    Parameters
    ----------
    gold_tags, pred_tags : sequence of str, shape (n_words,)
        IOB tags (chunks as conlleval finds them, see ``metrics.conll_chunks``).

    Returns
    -------
    list of dict
        ``{"kind", "gold", "pred"}``: ``kind`` one of :data:`SPAN_ERROR_KINDS`, ``gold`` and
        ``pred`` the spans involved (``None`` for the side that has none). An exactly right
        span is no error; a sentence without errors gives ``[]``.

    Pairing: among the predicted spans that overlap a gold span and are still free, one of the
    same type is taken first, then the largest overlap (then the leftmost). A predicted span
    is paired at most once, so a gold span cut in two gives one ``wrong_boundary`` and one
    ``spurious``.
    """
    key = lambda s: (s["type"], s["start"], s["end"])  # noqa: E731
    gold, pred = spans(gold_tags), spans(pred_tags)
    exact = {key(s) for s in gold} & {key(s) for s in pred}
    gold = [s for s in gold if key(s) not in exact]
    free = [s for s in pred if key(s) not in exact]
    errors = []
    for g in gold:
        near = [p for p in free if _overlap(g, p)]
        if not near:
            errors.append({"kind": "missed", "gold": g, "pred": None})
            continue
        p = max(near, key=lambda p: (p["type"] == g["type"], _overlap(g, p), -p["start"]))
        free.remove(p)
        kind = "wrong_boundary" if p["type"] == g["type"] else "wrong_type"
        errors.append({"kind": kind, "gold": g, "pred": p})
    errors += [{"kind": "spurious", "gold": None, "pred": p} for p in free]
    return sorted(errors, key=lambda e: min(s["start"] for s in (e["gold"], e["pred"]) if s))


def first_wrong_level(gold: Sequence[str], pred: Sequence[str]) -> int | None:
    """The first level (0 = top) where the predicted path leaves the gold one; None if equal.

    A path that is right as far as it goes but shorter or longer than the gold one is wrong
    at the first level where one of them has no label.
    """
    for level, (g, p) in enumerate(zip(gold, pred)):
        if g != p:
            return level
    return None if len(gold) == len(pred) else min(len(gold), len(pred))


def label_set_errors(gold: Sequence[str], pred: Sequence[str]) -> dict[str, list[str]]:
    """A multi-label prediction's ``missed`` (gold, not predicted) and ``spurious`` labels."""
    return {"missed": [g for g in gold if g not in pred], "spurious": [p for p in pred if p not in gold]}
