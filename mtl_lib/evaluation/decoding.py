"""Reading tags out of a tagging head: per-word argmax, or the best *valid* BIO sequence.

A token-classification head scores every word independently, so its argmax can produce tag
sequences that the BIO scheme forbids: ``O I-city`` (an inside tag with no beginning) or
``B-artist I-album`` (a span that changes type half-way). seqeval still reads such a sequence,
but as extra, broken entities: the model loses precision on spans it almost got right.

Constrained decoding keeps the head and its training unchanged and only changes the readout:
among all tag sequences that obey the scheme it returns the one with the highest total
log-probability. With :math:`s_w(y) = \\log p(y \\mid \\text{word } w)` and an allowed-transition
matrix :math:`A` (``A[i, j]``: tag ``j`` may follow tag ``i``)

.. math::

    \\hat y = \\mathrm{argmax}_{y_1..y_W\\;:\\;A[y_{w-1}, y_w]\\ \\forall w} \\sum_w s_w(y_w),

found exactly by the Viterbi recursion in :math:`O(W C^2)`. When the argmax sequence is already
valid, it is the answer (nothing changes). This is the decoding half of a CRF, with fixed 0/−∞
transition scores instead of learned ones.

The only rule enforced is the one that makes spans ambiguous: ``I-x`` may only follow ``B-x``
or ``I-x``, and may not start a sentence. It applies only when the tag set has ``B-x``: in an
*IO* tag set (``O``, ``I-PER``, ``I-LOC``: every span is written with ``I-`` tags) ``I-x`` is
how a span begins, so constraining it would make it unreachable. Tags that do not start with
``I-``, and ``I-x`` tags without a ``B-x``, are never constrained, so tag sets without BIO
prefixes, and IO tag sets, decode exactly as argmax.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from ..tasks.spec import DECODINGS

__all__ = ["DECODINGS", "bio_constraints", "constraints", "decode_tags", "viterbi_decode"]


def bio_constraints(labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Which BIO tags may follow which, and which may start a sentence.

    Parameters
    ----------
    labels : sequence of str, length C
        Tag names, e.g. ``["O", "B-city", "I-city"]``.

    Returns
    -------
    allowed : torch.BoolTensor, shape (C, C)
        ``allowed[i, j]``: tag ``j`` may directly follow tag ``i``. Only ``I-x`` tags whose
        ``B-x`` is in ``labels`` are constrained.
    start : torch.BoolTensor, shape (C,)
        ``start[j]``: a sentence may begin with tag ``j``.
    """
    n = len(labels)
    allowed = torch.ones(n, n, dtype=torch.bool)
    start = torch.ones(n, dtype=torch.bool)
    present = set(labels)
    for j, tag in enumerate(labels):
        kind = tag[2:]
        if not tag.startswith("I-") or f"B-{kind}" not in present:  # IO tags: I-x begins a span
            continue
        start[j] = False
        allowed[:, j] = torch.tensor([lab in (f"B-{kind}", f"I-{kind}") for lab in labels])
    return allowed, start


def viterbi_decode(scores: torch.Tensor, allowed: torch.Tensor, start: torch.Tensor) -> list[int]:
    """Highest-scoring tag sequence whose transitions are all allowed.

    Parameters
    ----------
    scores : torch.Tensor, shape (W, C)
        Per-word tag scores, normally log-probabilities (they are summed along the path).
    allowed : torch.BoolTensor, shape (C, C)
    start : torch.BoolTensor, shape (C,)

    Returns
    -------
    list of int, length W
        The best valid path.
    """
    n_words = scores.shape[0]
    if n_words == 0:
        return []
    scores = scores.float()
    neg = torch.tensor(float("-inf"))
    trans = torch.where(allowed, 0.0, neg)  # (C, C)
    best = torch.where(start, scores[0], neg)  # (C,) best score of a path ending in each tag
    back = []
    for w in range(1, n_words):
        cand = best[:, None] + trans  # (C_prev, C): extend every path by every next tag
        best, arg = cand.max(dim=0)  # (C,), (C,)
        best = best + scores[w]
        back.append(arg)
    path = [int(best.argmax())]
    for arg in reversed(back):
        path.append(int(arg[path[-1]]))
    return path[::-1]


def decode_tags(logits: torch.Tensor, labels: Sequence[str], decoding: str = "bio") -> list[str]:
    """Word tags from one sentence's tag logits.

    Parameters
    ----------
    logits : torch.Tensor, shape (W, C)
        Tag logits at each word's first sub-token.
    labels : sequence of str, length C
    decoding : {"bio", "argmax"}
        ``"bio"``: best valid BIO sequence (Viterbi); ``"argmax"``: each word on its own.

    Returns
    -------
    list of str, length W
    """
    if decoding == "argmax":
        return [labels[j] for j in logits.argmax(-1).tolist()]
    if decoding != "bio":
        raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}")
    allowed, start = constraints(tuple(labels))
    path = viterbi_decode(torch.log_softmax(logits.float(), dim=-1), allowed, start)
    return [labels[j] for j in path]


@functools.lru_cache(maxsize=32)
def constraints(labels: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`bio_constraints`, built once per label set (evaluation decodes many sentences)."""
    return bio_constraints(labels)
