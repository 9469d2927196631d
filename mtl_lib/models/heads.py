"""Task heads: the small task-specific layers that sit on the shared encoder.

Every head is dropout followed by one linear layer. What differs is what it reads:

- sequence-level heads (``level = "sequence"``) read the pooled vector ``(B, H)`` and give
  one score vector per example ``(B, C)``;
- the token-level head (``level = "token"``) reads every token's hidden state ``(B, T, H)``
  and gives one score vector per token ``(B, T, C)``.

All heads share one signature, ``forward(hidden, pooled, attention_mask=None)``, so the
multi-task model can call any head the same way after a single encoder pass. Heads return
raw scores (logits); the losses apply softmax / sigmoid themselves.

Linear weights start from normal(0, 0.02) with zero bias, as transformers initialises its
classifier layers. The draw uses torch's global generator, so ``torch.manual_seed`` before
building the model makes it reproducible.

Which task type uses which head is said by the task type (:mod:`mtl_lib.task_types`).
Taught in notebook 02 (heads and losses).
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from .crf import CRF

INIT_STD = 0.02  # transformers' default initializer_range


class LinearHead(nn.Module):
    """Dropout + Linear(hidden_size, num_labels); subclasses choose the input (:meth:`select`).

    Parameters
    ----------
    hidden_size : int
        H, the encoder's hidden size.
    num_labels : int
        C, the number of classes (tags, labels, leaves).
    dropout : float
        Dropout probability before the linear layer (active only in training mode).
    """

    level: ClassVar[str] = "sequence"

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        self.hidden_size = hidden_size
        self.num_labels = num_labels
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, num_labels)
        nn.init.normal_(self.linear.weight, mean=0.0, std=INIT_STD)
        nn.init.zeros_(self.linear.bias)

    def extra_repr(self) -> str:
        return f"level={self.level!r}"

    def select(self, hidden: Tensor, pooled: Tensor) -> Tensor:
        """What the head reads: ``pooled (B, H)`` or ``hidden (B, T, H)``."""
        raise NotImplementedError

    def forward(self, hidden: Tensor, pooled: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Score each example (or each token).

        Parameters
        ----------
        hidden : Tensor of shape (B, T, H)
            Token hidden states.
        pooled : Tensor of shape (B, H)
        attention_mask : Tensor of shape (B, T), optional
            Unused; part of the shared signature (padding is excluded by losses and decoding).

        Returns
        -------
        Tensor of shape (B, C) for a sequence-level head, (B, T, C) for a token-level one
        """
        return self.linear(self.dropout(self.select(hidden, pooled)))  # (B, [T,] H) -> (B, [T,] C)


class ClassificationHead(LinearHead):
    """Single-sentence classification: scores over C classes from the pooled vector."""

    level: ClassVar[str] = "sequence"

    def select(self, hidden: Tensor, pooled: Tensor) -> Tensor:
        return pooled  # (B, H)


class PairClassificationHead(ClassificationHead):
    """Sentence-pair classification (paraphrase, entailment, ...).

    Identical to :class:`ClassificationHead`: the tokenizer encodes both sentences together
    (``[CLS] a [SEP] b [SEP]``), so the pooled vector already sees the pair.
    """


class MultiLabelHead(ClassificationHead):
    """Multi-label classification: C independent yes/no scores from the pooled vector.

    Same layers as :class:`ClassificationHead`; the difference is in the loss
    (``BCEWithLogitsLoss``: a sigmoid per label instead of one softmax over labels).
    """


class HierarchicalHead(ClassificationHead):
    """Hierarchical classification, DB_Linear style: scores over the leaf classes.

    One linear layer from the pooled vector to every leaf path of the hierarchy; prediction
    is the argmax leaf, whose path gives the label at every level.

    Parameters
    ----------
    hidden_size : int
        H.
    num_labels : int or hierarchy
        Number of leaves. An object with a ``leaves`` attribute (a ``PerLevelHierarchy``) is
        also accepted and counted by ``len(hierarchy.leaves)``.
    dropout : float
    """

    def __init__(self, hidden_size: int, num_labels, dropout: float = 0.1) -> None:
        if hasattr(num_labels, "leaves"):  # a hierarchy object was passed
            num_labels = len(num_labels.leaves)
        super().__init__(hidden_size, num_labels, dropout)


class TaggingHead(LinearHead):
    """Token tagging (NER, slot filling): scores over C tags for every token.

    Every token gets scores, including padding and continuation sub-tokens; the loss
    (``NERLoss``) counts only word-start tokens, whose labels are not -100.
    """

    level: ClassVar[str] = "token"

    def select(self, hidden: Tensor, pooled: Tensor) -> Tensor:
        return hidden  # (B, T, H)


class CRFTaggingHead(TaggingHead):
    """A tagging head with a CRF on top (JointBERT's ``use_crf``): the same per-token scores,
    read as CRF emissions, plus learned tag-transition scores (``self.crf``). See
    :mod:`mtl_lib.models.crf`; its loss is :class:`~mtl_lib.models.losses.CRFLoss`."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__(hidden_size, num_labels, dropout)
        self.crf = CRF(num_labels)
