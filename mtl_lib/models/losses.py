"""Task losses: plain, token-level, class-weighted and multi-label.

Every loss takes raw scores (logits) straight from a head and integer (or 0/1) targets, and
returns a 0-d tensor. Targets equal to ``-100`` are *not counted*: the collator writes ``-100``
for padding, for special tokens, for continuation sub-tokens of a word, and for a task an
example has no label for.

That last case matters in multi-task training: a batch may hold examples labelled for only
some tasks, so a task's targets can be *all* ``-100``. Averaging over zero targets is 0 / 0 =
NaN in PyTorch, and one NaN poisons the summed multi-task loss and every weight it touches.
So when nothing is countable each loss here returns ``0 * logits.sum()``: a zero that still
belongs to the autograd graph, so ``total.backward()`` works and the task simply contributes
no gradient.

Taught in notebook 02 (heads and losses).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.encoding import IGNORE_INDEX


def _zero_like_loss(logits: Tensor) -> Tensor:
    """A 0-d zero that keeps ``logits`` in the graph (see the module docstring)."""
    return logits.sum() * 0.0


class CrossEntropyLoss(nn.Module):
    """Cross-entropy for single-label classification, with optional class weights.

    Parameters
    ----------
    weight : Tensor of shape (C,), optional
        Per-class weights. With weights the mean is the weighted mean
        ``sum_n w[y_n] * l_n / sum_n w[y_n]`` (PyTorch's convention).
    ignore_index : int
        Targets with this value are skipped (default -100).

    Notes
    -----
    ``forward(logits, labels)`` with logits ``(B, C)`` and labels ``(B,)``. Extra leading
    dimensions are flattened, so ``(B, T, C)`` with ``(B, T)`` also works.
    """

    def __init__(self, weight: Tensor | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        # A buffer follows .to(device); not persistent because it is configuration derived
        # from data, not a learned parameter, and must not change a model's state_dict keys.
        self.register_buffer("weight", weight, persistent=False)
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Return the mean cross-entropy over counted targets.

        Parameters
        ----------
        logits : Tensor of shape (B, C)
        labels : Tensor of shape (B,), int64, ``ignore_index`` where unlabelled

        Returns
        -------
        Tensor of shape ()
        """
        logits = logits.reshape(-1, logits.size(-1))  # (N, C)
        labels = labels.reshape(-1)  # (N,)
        if not (labels != self.ignore_index).any():
            return _zero_like_loss(logits)
        return F.cross_entropy(logits, labels, weight=self.weight, ignore_index=self.ignore_index)


class NERLoss(nn.Module):
    """Token cross-entropy for tagging, counted over word-start tokens only.

    Only the first sub-token of each word carries a tag; padding, special tokens ([CLS],
    [SEP], ...) and continuation sub-tokens have label -100 and are excluded. The loss is
    the mean over the counted tokens of the whole batch, so a long sentence weighs more than
    a short one (each *word* weighs the same).

    Parameters
    ----------
    ignore_index : int
        Label value of positions that are not counted (default -100).
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(
        self, logits: Tensor, labels: Tensor, attention_mask: Tensor | None = None
    ) -> Tensor:
        """Return the mean token cross-entropy.

        Parameters
        ----------
        logits : Tensor of shape (B, T, C)
        labels : Tensor of shape (B, T), int64, -100 where not counted
        attention_mask : Tensor of shape (B, T), optional
            1 for real tokens, 0 for padding. Masks positions too, for callers whose labels
            do not already mark padding with -100.

        Returns
        -------
        Tensor of shape ()
        """
        counted = labels != self.ignore_index  # (B, T) bool
        if attention_mask is not None:
            counted = counted & attention_mask.bool()  # (B, T)
        if not counted.any():
            return _zero_like_loss(logits)
        # Boolean indexing keeps only counted positions: (B, T, C) -> (N, C), (B, T) -> (N,)
        return F.cross_entropy(logits[counted], labels[counted])


class WeightedNLLLoss(CrossEntropyLoss):
    """Class-weighted, averaged negative log-likelihood (the DB_Linear loss).

    The head outputs raw scores; this loss applies LogSoftmax itself and then computes

        L = sum_n w[y_n] * (-log p[n, y_n]) / sum_n w[y_n]

    i.e. each example's NLL is weighted by the weight of its true class, and the total is
    divided by the sum of those weights (not by N). With ``weight=None`` every class weighs 1
    and L is the plain mean NLL. This is exactly :class:`CrossEntropyLoss` with the same
    weights (PyTorch's ``F.nll_loss(log_softmax(x), y, weight=w)``); only ``forward`` is written
    out here, so the formula is visible. Same parameters as :class:`CrossEntropyLoss`.
    """

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Return the weighted mean NLL.

        Parameters
        ----------
        logits : Tensor of shape (B, C)
            Raw scores (not probabilities).
        labels : Tensor of shape (B,), int64

        Returns
        -------
        Tensor of shape ()
        """
        counted = labels != self.ignore_index  # (B,)
        if not counted.any():
            return _zero_like_loss(logits)
        log_probs = F.log_softmax(logits[counted], dim=-1)  # (N, C)
        targets = labels[counted]  # (N,)
        nll = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)  # (N,)
        if self.weight is None:
            w = torch.ones_like(nll)  # (N,)
        else:
            w = self.weight.to(nll.dtype)[targets]  # (N,) weight of each true class
        return (w * nll).sum() / w.sum()


class MultiLabelLoss(nn.Module):
    """Binary cross-entropy with logits for multi-label tasks, masking entries equal to -100.

    Each of the C labels is an independent yes/no decision. A whole row of -100 means the
    example is not labelled for this task; single -100 entries mean "unknown for this label".
    The loss is the mean over the counted (example, label) entries.

    Parameters
    ----------
    ignore_index : int
        Target value of entries that are not counted (default -100).
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Return the mean BCE over counted entries.

        Parameters
        ----------
        logits : Tensor of shape (B, C)
        labels : Tensor of shape (B, C), 0/1 (float or int), -100 where unknown

        Returns
        -------
        Tensor of shape ()
        """
        counted = labels != self.ignore_index  # (B, C) bool
        if not counted.any():
            return _zero_like_loss(logits)
        # (B, C) -> (N,) for both, N = number of counted entries
        return F.binary_cross_entropy_with_logits(logits[counted], labels[counted].to(logits.dtype))


class CRFLoss(nn.Module):
    """The CRF's negative log-likelihood of the gold tags, averaged over sentences.

    Tags sit at word-start tokens (the others are -100); each sentence's word starts are packed
    to the left, in order, and scored as one sequence by the CRF.

    Parameters
    ----------
    crf : CRF
        The tagging head's CRF (:class:`~mtl_lib.models.heads.CRFTaggingHead`). Its parameters
        belong to the head, so they are trained and saved with it, not with this loss.
    """

    def __init__(self, crf: nn.Module, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self._crf = (crf,)  # a tuple, not an attribute: registering it here would save it twice
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Return the mean negative log-likelihood.

        Parameters
        ----------
        logits : Tensor of shape (B, T, C)
            Emissions at every token.
        labels : Tensor of shape (B, T), -100 off word starts

        Returns
        -------
        Tensor of shape ()
        """
        counted = labels != self.ignore_index  # (B, T)
        n_words = counted.sum(1)  # (B,)
        rows = n_words > 0
        if not rows.any():
            return _zero_like_loss(logits)
        # word starts first, in sentence order: a stable sort on "not a word start"
        order = torch.sort((~counted).to(torch.int8), dim=1, stable=True).indices[:, : int(n_words.max())]  # (B, W)
        emissions = logits.gather(1, order.unsqueeze(2).expand(-1, -1, logits.size(2)))  # (B, W, C)
        tags = labels.gather(1, order)  # (B, W)
        mask = torch.arange(order.size(1), device=labels.device) < n_words.unsqueeze(1)  # (B, W)
        return self._crf[0].neg_log_likelihood(emissions[rows], tags[rows], mask[rows])


def class_weights(
    label_ids: Sequence[int] | Tensor, num_classes: int, scheme: str = "uniform"
) -> Tensor:
    """Per-class weights for :class:`WeightedNLLLoss` or :class:`CrossEntropyLoss`.

    Parameters
    ----------
    label_ids : sequence of int or Tensor of shape (N,)
        Training labels; entries equal to -100 are ignored.
    num_classes : int
        C, the number of classes.
    scheme : {"uniform", "inverse_frequency"}
        ``"uniform"``: all ones. ``"inverse_frequency"``: ``w_c = N / (C * n_c)``, the
        "balanced" rule of scikit-learn, so rare classes weigh more and a perfectly balanced
        set gets all ones. A class absent from ``label_ids`` is counted as if seen once, so
        its weight stays finite (the largest any class can get). With no labels at all the
        weights are uniform.

    Returns
    -------
    Tensor of shape (C,), float32
    """
    if scheme == "uniform":
        return torch.ones(num_classes)
    if scheme != "inverse_frequency":
        raise ValueError(
            f"unknown class-weight scheme {scheme!r}; use 'uniform' or 'inverse_frequency'"
        )
    labels = torch.as_tensor(label_ids, dtype=torch.long).reshape(-1)  # (N,)
    labels = labels[labels != IGNORE_INDEX]
    if labels.numel() == 0:  # nothing to count: fall back to uniform rather than 0 / 0
        return torch.ones(num_classes)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"label ids must lie in [0, {num_classes}); found values from "
            f"{labels.min().item()} to {labels.max().item()}"
        )
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).float()  # (C,)
    return labels.numel() / (num_classes * counts)


LOSSES: dict[str, type[nn.Module]] = {
    "CrossEntropyLoss": CrossEntropyLoss,
    "NERLoss": NERLoss,
    "WeightedNLLLoss": WeightedNLLLoss,
    "BCEWithLogitsLoss": MultiLabelLoss,
}
"""Loss classes by the name used for ``loss_type`` in task files."""
