"""Single-sentence and sentence-pair classification: one label per example.

Both read the pooled vector ``(B, H)`` and score C classes ``(B, C)``; the loss is
cross-entropy, optionally class-weighted. A pair differs only in its input: the tokenizer
encodes both sentences together (``[CLS] a [SEP] b [SEP]``), so the pooled vector sees both.
"""

from __future__ import annotations

from ..models.heads import PairClassificationHead
from .base import TaskType

__all__ = ["ClassificationType", "PairClassificationType"]


class ClassificationType(TaskType):
    """One label per sentence (intent, topic, sentiment): softmax over C classes."""

    name = "classification"
    aliases = ("SingleSenClassification",)


class PairClassificationType(TaskType):
    """One label per sentence pair (paraphrase, entailment); needs both sentences as input."""

    name = "pair_classification"
    aliases = ("SentencePairClassification",)
    head = PairClassificationHead
    reads_pairs = True
    mtnlp_layout = "pair"
