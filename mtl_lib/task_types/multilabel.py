"""Multi-label classification: any subset of C labels per example, one yes/no score each.

Gold is a list of label names (a JSON list, or in a table cell a list written as JSON or a
comma-separated string). An empty list (an empty cell) is a valid example with none of the
labels: an all-negative example, trained and scored. An example not labelled for this task
must say so explicitly, with ``null`` in JSONL. Targets are 0/1 rows ``(C,)``; the loss is binary cross-entropy
per label, and a label is predicted when its logit is above 0 (probability above 1/2).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.tables import list_cell
from ..evaluation.error_analysis import label_set_errors
from ..evaluation.metrics import METRICS
from ..models.heads import MultiLabelHead
from .base import TaskType, label_name

__all__ = ["MultiLabelType"]


class MultiLabelType(TaskType):
    """Independent sigmoid per label; logits ``(B, C)``, targets ``(B, C)`` of 0./1."""

    name = "multilabel"
    default_loss = "BCEWithLogitsLoss"
    default_metrics = ("classification_f1_score",)
    head = MultiLabelHead
    label_kind = "multi"
    weighted = False
    mtnlp_layout = None

    def gold(self, record: dict) -> list[str] | None:
        value = record.get(self.spec.label_field)
        if value is None:
            return None
        if isinstance(value, str) and value.strip().startswith("["):
            value = list_cell(value)  # a JSON list in a CSV cell, never split at its commas
        elif isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list of labels, got {type(value).__name__} {str(value)[:40]!r}")
        kinds = {type(v).__name__ for v in value}
        if len(kinds) > 1:  # [1, "1"] would be two different classes
            raise ValueError(f"the label list mixes {' and '.join(sorted(kinds))}: {str(value)[:60]}")
        return [label_name(v) for v in value]

    def names(self, gold: list[str]) -> list[str]:
        return list(gold)

    def encode(self, gold: list[str], feature: dict) -> list[float]:
        row = [0.0] * self.spec.num_labels
        for name in gold:
            row[self.index[name]] = 1.0
        return row

    def decode(self, logits: Tensor, feature: dict) -> list[str]:
        return [lab for lab, z in zip(self.spec.labels, logits.tolist()) if z > 0]

    def score(self, golds: list, preds: list) -> dict[str, float]:
        # 0/1 matrices over the known labels plus any unknown gold label (always missed)
        extra = sorted({n for g in golds for n in g if n not in self.index})
        columns = {n: j for j, n in enumerate(list(self.spec.labels) + extra)}
        def matrix(rows):
            m = np.zeros((len(rows), len(columns)), dtype=int)
            for i, names in enumerate(rows):
                m[i, [columns[n] for n in names]] = 1
            return m
        t, p = matrix(golds), matrix(preds)
        return {m: float(METRICS[m](t, p)) for m in self.spec.metrics}

    def present(self, logits: Tensor, feature: dict, words: list[str]) -> dict[str, Any]:
        p = torch.sigmoid(logits.float())  # (C,)
        return {"labels": [lab for j, lab in enumerate(self.spec.labels) if p[j] > 0.5],
                "scores": {lab: float(p[j]) for j, lab in enumerate(self.spec.labels)}}

    def confidence(self, logits: Tensor, feature: dict, pred: list[str]) -> float:
        """The least sure of the C yes/no decisions: ``min_c max(p_c, 1 - p_c)``."""
        p = torch.sigmoid(logits.float())  # (C,)
        return float(torch.maximum(p, 1 - p).min())

    def diagnose(self, gold: list[str], pred: list[str]) -> dict[str, Any]:
        """Missed (gold, not predicted) and spurious (predicted, not gold) labels."""
        found = label_set_errors(gold, pred)
        errors = [{"kind": kind, "label": lab} for kind, labs in found.items() for lab in labs]
        return {"correct": not errors, "errors": errors}

    def shown(self, value: list[str]) -> list[str]:
        return list(value)

    def as_text(self, value: list[str], words) -> str:
        return ", ".join(value) or "(no label)"
