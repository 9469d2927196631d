"""Token tagging (NER, slot filling): one BIO tag per word.

Tags are read from a list (a JSON list, Hugging Face's ``ner_tags``) or a table cell: tags
separated by spaces, or a list written in the cell (JSON, or multi-task-NLP's Python lists).
Integer tags are class *ids*, as Hugging Face token-classification data stores them: they index
the task's label list (``labels`` or ``label_map_or_file``), which is then required.

Word tags go to each word's first sub-token; every other token gets -100, which ``NERLoss``
skips. Reading tags back takes the scores at those first sub-tokens and decodes them as the
task says (``tag_decoding``: constrained BIO Viterbi by default, or per-word argmax). Words
that truncation cut off have no token: they are read as ``"O"`` and still scored, so a
result is always over the gold spans as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from ..data.encoding import align_word_labels
from ..data.tables import list_cell
from ..evaluation.decoding import decode_tags
from ..evaluation.metrics import conll_chunks
from ..models.heads import TaggingHead
from .base import TaskType, label_name

__all__ = ["TaggingType"]


class TaggingType(TaskType):
    """A tag per word; logits ``(B, T, C)`` over every token, counted at word starts only."""

    name = "tagging"
    aliases = ("NER",)
    default_loss = "NERLoss"
    default_metrics = ("seqeval_f1_score", "seqeval_precision", "seqeval_recall")
    head = TaggingHead
    label_kind = "token"  # (B, T), -100 off word starts
    weighted = False
    mtnlp_layout = "tagging"

    @staticmethod
    def default_label_field(fmt: str) -> str:
        return {"jointbert": "slots", "conll": "tags"}.get(fmt, "label")

    def gold(self, record: dict) -> list[str] | None:
        value = record.get(self.spec.label_field)
        if value is None:
            return None
        # a table cell holds the tags as one string; never read it per character
        if isinstance(value, str):
            value = list_cell(value) if value.strip().startswith("[") else value.split()
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list of tags, found {type(value).__name__} {str(value)[:40]!r}")
        if len(value) != len(record["words"]):
            raise ValueError(f"{len(value)} tags for {len(record['words'])} words; "
                             "expected one tag per word")
        ids = [isinstance(t, int) and not isinstance(t, bool) for t in value]
        if any(ids) and not all(ids):
            raise ValueError(f"the tags mix class ids (integers) and names: {str(value)[:60]}")
        if value and all(ids):
            return self._names_of_ids(value)
        return [label_name(t) for t in value]

    def _names_of_ids(self, ids: Sequence[int]) -> list[str]:
        labels = self.spec.labels
        if not labels:
            raise ValueError("the tags are class ids (integers); give the names they stand for, in id "
                             "order, with labels: or label_map_or_file")
        bad = [i for i in ids if not 0 <= i < len(labels)]
        if bad:
            raise ValueError(f"tag id {bad[0]} is not an index of the {len(labels)} labels")
        return [labels[i] for i in ids]

    def names(self, gold: list[str]) -> list[str]:
        return list(gold)

    def labels_from_data(self, records: Sequence[dict]) -> list[str]:
        seen = super().labels_from_data(records)
        return ["O"] + [t for t in seen if t != "O"] if "O" in seen else seen  # "O" first reads well

    def encode(self, gold: list[str], feature: dict) -> list[int]:
        return align_word_labels(feature["word_ids"], [self.index[t] for t in gold])

    def decode(self, logits: Tensor, feature: dict) -> list[str]:
        """Word tags from one example's token logits ``(T, C)``."""
        first = word_starts(feature["word_ids"])
        read = decode_tags(logits[list(first.values())], self.spec.labels, self.spec.tag_decoding)
        tags = dict(zip(first, read))
        return [tags.get(w, "O") for w in range(feature["n_words"])]

    def present(self, logits: Tensor, feature: dict, words: list[str]) -> dict[str, Any]:
        tags = self.decode(logits, feature)
        valid = [t if t == "O" or t[:2] in ("B-", "I-") else "O" for t in tags]
        spans = [{"type": ty, "start": s, "end": e + 1, "text": " ".join(words[s:e + 1])}
                 for ty, s, e in conll_chunks(valid)]
        return {"tags": tags, "spans": spans}


def word_starts(word_ids: Sequence[int | None]) -> dict[int, int]:
    """``{word: position of its first token}``, in word order."""
    first: dict[int, int] = {}
    for pos, w in enumerate(word_ids):
        if w is not None and w not in first:
            first[w] = pos
    return first
