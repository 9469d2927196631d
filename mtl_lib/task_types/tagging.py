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

import torch
from torch import Tensor, nn

from ..data.encoding import align_word_labels
from ..data.tables import list_cell
from ..evaluation.decoding import constraints, decode_tags
from ..evaluation.error_analysis import span_errors, spans
from ..evaluation.metrics import conll_chunks
from ..models.heads import CRFTaggingHead, TaggingHead
from ..models.losses import CRFLoss
from ..tasks.spec import TaskFileError, TaskSpec
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
    crf = None  # the head's CRF, when the task has use_crf

    @classmethod
    def complete_loss(cls, spec: TaskSpec) -> None:
        if not spec.use_crf:
            return super().complete_loss(spec)
        if spec.loss_type not in ("", "CRFLoss"):
            raise TaskFileError(f"task {spec.name!r}: use_crf trains with the CRF likelihood (loss_type "
                                f"CRFLoss), not {spec.loss_type!r}")
        spec.loss_type = "CRFLoss"

    def build_head(self, hidden_size: int) -> nn.Module:
        head = CRFTaggingHead if self.spec.use_crf else TaggingHead
        return head(hidden_size, self.spec.num_labels, dropout=self.spec.dropout_prob)

    def bind(self, head: nn.Module) -> None:
        self.crf = getattr(head, "crf", None)

    def build_loss(self, weight=None) -> nn.Module:
        return CRFLoss(self.crf) if self.crf is not None else super().build_loss(weight)

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
        scores = logits[list(first.values())]  # (W, C) at each word's first token
        if self.crf is not None:  # learned transitions, within the BIO rules unless told otherwise
            bio = constraints(tuple(self.spec.labels)) if self.spec.tag_decoding == "bio" else (None, None)
            read = [self.spec.labels[j] for j in self.crf.decode(scores, *bio)]
        else:
            read = decode_tags(scores, self.spec.labels, self.spec.tag_decoding)
        tags = dict(zip(first, read))
        return [tags.get(w, "O") for w in range(feature["n_words"])]

    def present(self, logits: Tensor, feature: dict, words: list[str]) -> dict[str, Any]:
        """Tags, and spans with word positions (``start``, ``end``); when the Predictor gives
        the text and its words' ``char_offsets``, also ``start_char`` / ``end_char`` and the
        span's ``text`` as written there."""
        tags = self.decode(logits, feature)
        valid = [t if t == "O" or t[:2] in ("B-", "I-") else "O" for t in tags]
        offsets, text = feature.get("char_offsets"), feature.get("text")
        found = []
        for ty, s, e in conll_chunks(valid):
            span = {"type": ty, "start": s, "end": e + 1, "text": " ".join(words[s:e + 1])}
            if offsets is not None and text is not None:
                first, last = offsets[s][0], offsets[e][1]
                span |= {"start_char": first, "end_char": last, "text": text[first:last]}
            found.append(span)
        return {"tags": tags, "spans": found}

    def confidence(self, logits: Tensor, feature: dict, pred: list[str]) -> float:
        """The lowest probability the model gives one of its predicted tags (its weakest word)."""
        first = word_starts(feature["word_ids"])
        if not first:
            return 1.0
        p = torch.softmax(logits.float()[list(first.values())], -1)  # (W, C)
        ids = torch.tensor([self.index[pred[w]] for w in first])  # (W,)
        return float(p[torch.arange(len(ids)), ids].min())

    def diagnose(self, gold: list[str], pred: list[str]) -> dict[str, Any]:
        """Span errors: missed, spurious, wrong type, wrong boundary (``span_errors``), and
        both sides' ``spans`` (to draw the sentence with its spans coloured)."""
        errors = span_errors(gold, pred)
        return {"correct": not errors, "errors": errors, "spans": {"gold": spans(gold), "pred": spans(pred)}}

    def shown(self, value: list[str]) -> list[str]:
        """The entity types of the sentence's spans."""
        return sorted({s["type"] for s in spans(value)})

    def as_text(self, value: list[str], words: Sequence[str]) -> str:
        """The sentence with each span in brackets and its type: ``play [jazz]:genre``."""
        out, at = [], 0
        for s in spans(value):
            out += list(words[at:s["start"]]) + [f"[{' '.join(words[s['start']:s['end']])}]:{s['type']}"]
            at = s["end"]
        return " ".join(out + list(words[at:]))


def word_starts(word_ids: Sequence[int | None]) -> dict[int, int]:
    """``{word: position of its first token}``, in word order."""
    first: dict[int, int] = {}
    for pos, w in enumerate(word_ids):
        if w is not None and w not in first:
            first[w] = pos
    return first
