"""A linear-chain conditional random field (CRF) over word tags: JointBERT's ``use_crf``.

A tagging head scores each word on its own (emissions ``e[w, y]``). A CRF adds a learned score
for every tag *transition* ``A[y', y]`` (and for starting and ending a sentence with a tag), and
scores whole tag sequences:

.. math::

    s(y_{1..W}) = \\mathrm{start}[y_1] + \\sum_w e[w, y_w] + \\sum_{w>1} A[y_{w-1}, y_w] + \\mathrm{end}[y_W],
    \\qquad p(y \\mid x) = \\frac{\\exp s(y)}{\\sum_{y'} \\exp s(y')}.

Training minimises :math:`-\\log p(y \\mid x)`; the denominator (the *partition function*) sums
over every tag sequence, in :math:`O(W C^2)` with the forward algorithm. Decoding is the Viterbi
recursion over the same scores, here restricted to valid BIO sequences (``I-x`` only after
``B-x`` or ``I-x``), as :mod:`mtl_lib.evaluation.decoding` does without learned transitions.
Taught in ``notebooks/03_metrics.ipynb`` (decoding) and checked against brute force in the tests.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CRF"]


class CRF(nn.Module):
    """Transition, start and end scores for ``num_tags`` tags (all start at 0).

    Parameters
    ----------
    num_tags : int
        C, the number of tags.
    """

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # (C, C): from row to column
        self.start = nn.Parameter(torch.zeros(num_tags))  # (C,)
        self.end = nn.Parameter(torch.zeros(num_tags))  # (C,)

    def neg_log_likelihood(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Mean over sentences of :math:`-\\log p(\\text{tags} \\mid x)`.

        Parameters
        ----------
        emissions : Tensor of shape (N, W, C)
            Word scores, words packed to the left (word ``w`` of sentence ``n`` at ``[n, w]``).
        tags : LongTensor of shape (N, W)
            Gold tags; any value where ``mask`` is False.
        mask : BoolTensor of shape (N, W)
            True for real words: a prefix of each row, at least one word per sentence.

        Returns
        -------
        Tensor of shape ()
        """
        return (self._log_partition(emissions, mask) - self._score(emissions, tags, mask)).mean()

    def _score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Score of the gold sequence, per sentence: (N,)."""
        tags = tags.masked_fill(~mask, 0)  # (N, W) padding points at tag 0, then masked out
        m = mask.to(emissions.dtype)  # (N, W)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (N, W)
        trans = self.transitions[tags[:, :-1], tags[:, 1:]]  # (N, W-1)
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)  # (N,) last real tag
        return self.start[tags[:, 0]] + (emit * m).sum(1) + (trans * m[:, 1:]).sum(1) + self.end[last]

    def _log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Log of the sum of exp(score) over all tag sequences, per sentence: (N,)."""
        alpha = self.start + emissions[:, 0]  # (N, C): log-sum of paths ending in each tag
        for w in range(1, emissions.shape[1]):
            # (N, C_prev, 1) + (C_prev, C) + (N, 1, C) -> (N, C_prev, C), summed over C_prev
            step = torch.logsumexp(alpha.unsqueeze(2) + self.transitions + emissions[:, w].unsqueeze(1), dim=1)
            alpha = torch.where(mask[:, w].unsqueeze(1), step, alpha)  # (N, C) finished rows stay
        return torch.logsumexp(alpha + self.end, dim=1)  # (N,)

    @torch.no_grad()
    def decode(self, emissions: Tensor, allowed: Tensor | None = None,
               start_allowed: Tensor | None = None) -> list[int]:
        """Best tag sequence of one sentence (Viterbi), optionally among allowed transitions only.

        Parameters
        ----------
        emissions : Tensor of shape (W, C)
        allowed : BoolTensor of shape (C, C), optional
            ``allowed[i, j]``: tag ``j`` may follow tag ``i`` (see ``decoding.bio_constraints``).
        start_allowed : BoolTensor of shape (C,), optional

        Returns
        -------
        list of int, length W
        """
        if emissions.shape[0] == 0:
            return []
        neg = torch.tensor(float("-inf"))
        trans = self.transitions.float() if allowed is None else \
            torch.where(allowed, self.transitions.float(), neg)  # (C, C)
        start = self.start.float() if start_allowed is None else \
            torch.where(start_allowed, self.start.float(), neg)  # (C,)
        best, back = start + emissions[0].float(), []  # (C,)
        for w in range(1, emissions.shape[0]):
            cand = best.unsqueeze(1) + trans  # (C_prev, C)
            best, arg = cand.max(dim=0)  # (C,), (C,)
            best = best + emissions[w].float()
            back.append(arg)
        path = [int((best + self.end.float()).argmax())]
        for arg in reversed(back):
            path.append(int(arg[path[-1]]))
        return path[::-1]
