"""Hierarchical classification (DistilBERT + Linear style): one leaf of a label tree.

The labels are the leaf *paths* of a :class:`~mtl_lib.tasks.hierarchy.PerLevelHierarchy`, in
its order, so a label id is the hierarchy's leaf index. One linear layer scores every leaf;
the prediction is the top leaf's full path, consistent with the tree at every level by
construction. The loss is the class-weighted NLL of the seed,
``L = Σ_n w[y_n] (−log p[n, y_n]) / Σ_n w[y_n]``. Scores add per-level accuracy and
hierarchical precision / recall / F1 to the task's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..evaluation.error_analysis import first_wrong_level
from ..evaluation.hierarchical_metrics import hierarchical_metrics
from ..evaluation.metrics import METRICS
from ..models.heads import HierarchicalHead
from ..tasks.hierarchy import PerLevelHierarchy
from ..tasks.spec import TaskFileError, TaskSpec
from .base import TaskType

__all__ = ["HierarchicalType"]


class HierarchicalType(TaskType):
    """A leaf path per example; logits ``(B, n_leaves)``."""

    name = "hierarchical"
    default_loss = "WeightedNLLLoss"
    default_metrics = ("classification_accuracy",)
    head = HierarchicalHead
    mtnlp_layout = None

    def __init__(self, spec: TaskSpec) -> None:
        super().__init__(spec)
        self.hierarchy = PerLevelHierarchy.from_paths(spec.labels) if spec.labels else None
        if self.hierarchy is not None and self.hierarchy.leaves != list(spec.labels):
            raise TaskFileError(f"task {spec.name!r}: hierarchical labels must be the hierarchy's "
                                "leaf paths in its (sorted) order")

    @classmethod
    def upgrade_v1(cls, task: dict) -> dict:
        # the first format joined each leaf path into one "top > leaf" string
        return {**task, "labels": [label.split(" > ") for label in task.get("labels") or []]}

    @staticmethod
    def default_label_field(fmt: str) -> str:
        return "path" if fmt == "trec" else "label"

    def gold(self, record: dict) -> tuple[str, ...] | None:
        value = record.get(self.spec.label_field)
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a label path (a list of level names), got {value!r}")
        return tuple(value)

    def resolve_labels(self, train_records: Sequence[dict]) -> list[tuple[str, ...]]:
        paths = super().resolve_labels(train_records)
        try:
            return PerLevelHierarchy.from_paths(tuple(p) if isinstance(p, list) else p for p in paths).leaves
        except (ValueError, TypeError) as err:
            raise TaskFileError(f"task {self.spec.name!r}: not a label tree: {err}") from None

    def score(self, golds: list, preds: list) -> dict[str, float]:
        # paths as ints for scikit-learn (a tuple would read as a row of a 2-d array)
        ids = {p: i for i, p in enumerate(dict.fromkeys(golds + preds))}
        scores = {m: float(METRICS[m]([ids[g] for g in golds], [ids[p] for p in preds]))
                  for m in self.spec.metrics}
        return scores | hierarchical_metrics(golds, preds)

    def present(self, logits: Tensor, feature: dict, words: list[str]) -> dict[str, Any]:
        p = torch.softmax(logits.float(), -1)  # (n_leaves,)
        j = int(p.argmax())
        path = self.spec.labels[j]
        return {"label": " > ".join(path), "path": list(path), "score": float(p[j]),
                "scores": {" > ".join(leaf): float(p[k]) for k, leaf in enumerate(self.spec.labels)}}

    def diagnose(self, gold: tuple[str, ...], pred: tuple[str, ...]) -> dict[str, Any]:
        """Where the predicted path first leaves the gold one: ``first_wrong_level`` (0 = top)."""
        level = first_wrong_level(gold, pred)
        errors = [] if level is None else [{"kind": f"wrong_level_{level + 1}", "level": level}]
        return {"correct": level is None, "errors": errors, "first_wrong_level": level}

    def shown(self, value: tuple[str, ...]) -> list[str]:
        return [" > ".join(value)]

    def as_text(self, value: tuple[str, ...], words) -> str:
        return " > ".join(value)
