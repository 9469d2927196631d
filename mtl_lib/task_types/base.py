"""``TaskType``: everything that differs between kinds of task, in one small class per kind.

A task type answers, for one task (a :class:`~mtl_lib.tasks.spec.TaskSpec`):

- **labels**: what a record's gold label is (:meth:`gold`), which label names it holds
  (:meth:`names`), the inventory (:meth:`resolve_labels`), the ids a feature carries for
  training (:meth:`encode`) and how the collator stacks them (:attr:`label_kind`);
- **model**: its head (:attr:`head`), its loss and class weighting (:meth:`build_loss`,
  :meth:`class_weights`);
- **reading outputs**: how logits become a prediction (:meth:`decode`), how predictions are
  scored (:meth:`score`, :attr:`default_metrics`) and what the ``Predictor`` returns
  (:meth:`present`);
- **examining predictions** (the error browser): one example's loss and the model's
  confidence (:meth:`example_loss`, :meth:`confidence`), what kind of mistake a prediction is
  (:meth:`diagnose`) and the class names a label shows (:meth:`shown`).

The base class is single-label classification; the other types override what differs.
A new kind of task is one subclass, registered in :mod:`mtl_lib.task_types`, plus a test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..data.files import DataFormatError
from ..data.readers import PLACEHOLDER_LABELS, read_label_file
from ..data.sources import detect_format, path_candidates, resolve_path
from ..evaluation.metrics import METRICS
from ..models.heads import ClassificationHead, LinearHead
from ..models.losses import LOSSES, class_weights
from ..tasks.spec import TaskFileError, TaskSpec
from ..tasks.validation import short

__all__ = ["TaskType", "label_name"]


def label_name(value: Any) -> str:
    """A label as written in the data, as a class name.

    The rule that keeps ``1`` and ``1.0`` from being two classes: a label is a string or an
    integer (``1`` and ``"1"`` are one class); a number with a fraction part, true/false and
    containers are errors, as is an empty string (write ``null`` for "no label for this task").
    """
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("empty label (write null, or leave the field out of a JSONL line, for an "
                             "example without a label for this task)")
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        raise ValueError(f"label {value!r} is a number with a decimal point; class labels are names or "
                         "integers (write 1, not 1.0), so that 1 and 1.0 cannot be two classes")
    raise ValueError(f"expected one label (a string or an integer), found {type(value).__name__} "
                     f"{short(value, 40)}")


class TaskType:
    """The common machinery, with single-label classification's behaviour as the default.

    Parameters
    ----------
    spec : TaskSpec
        The task; :meth:`complete` has filled in its defaults.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()  # other names a task file may use (multi-task-NLP's)
    default_loss: ClassVar[str] = "CrossEntropyLoss"
    default_metrics: ClassVar[tuple[str, ...]] = ("classification_accuracy", "classification_f1_score")
    head: ClassVar[type[LinearHead]] = ClassificationHead
    label_kind: ClassVar[str] = "class"  # how the Collator stacks labels: (B,)
    reads_pairs: ClassVar[bool] = False  # the input is a sentence pair
    weighted: ClassVar[bool] = True  # class_weighting applies to its loss
    _example_loss: nn.Module | None = None  # the unweighted loss of example_loss, built once
    mtnlp_layout: ClassVar[str | None] = "single"  # its line in multi-task-NLP's TSV files (data.mtnlp)

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.index = {label: i for i, label in enumerate(spec.labels)}

    # -- the spec ------------------------------------------------------------------------------
    @classmethod
    def complete(cls, spec: TaskSpec) -> None:
        """Fill in this type's defaults and check the names a task file may give."""
        where = f"task {spec.name!r}"
        if hasattr(nn.ModuleDict(), spec.name):  # `keys`, `items`, `update`, `to`, `training`...
            raise TaskFileError(f"{where}: the name is taken by torch's nn.ModuleDict, which holds the "
                                "heads (a method or attribute of it); choose another task name")
        spec.task_type = cls.name
        if spec.format == "auto":
            spec.format = detect_format(spec)
        if spec.format == "mtnlp" and cls.mtnlp_layout is None:
            raise TaskFileError(f"{where}: multi-task-NLP's files (format mtnlp) hold classification, "
                                f"sentence-pair and NER tasks, not {cls.name}")
        spec.metrics = list(spec.metrics) or list(cls.default_metrics)
        spec.label_field = spec.label_field or cls.default_label_field(spec.format)
        cls.complete_loss(spec)
        for m in spec.metrics:
            if m not in METRICS:
                raise TaskFileError(f"{where}: metric {short(m)} is not one of {', '.join(METRICS)}")
        if spec.class_weighting != "uniform" and not cls.weighted:
            raise TaskFileError(f"{where}: class_weighting applies to classification-like tasks, "
                                f"not to {cls.name}")

    @classmethod
    def complete_loss(cls, spec: TaskSpec) -> None:
        """Default and check the task's ``loss_type`` (and the keys that change the loss)."""
        spec.loss_type = spec.loss_type or cls.default_loss
        if spec.loss_type not in LOSSES:
            raise TaskFileError(f"task {spec.name!r}: loss_type {short(spec.loss_type)} is not one of "
                                f"{', '.join(LOSSES)}")
        if spec.use_crf:
            raise TaskFileError(f"task {spec.name!r}: use_crf applies to tagging tasks, not to {cls.name}")

    @classmethod
    def upgrade_v1(cls, task: dict) -> dict:
        """Settings saved by the first checkpoint format, in today's terms (unchanged here)."""
        return task

    @staticmethod
    def default_label_field(fmt: str) -> str:
        return {"jointbert": "intent", "conll": "tags", "trec": "path"}.get(fmt, "label")

    # -- labels --------------------------------------------------------------------------------
    def gold(self, record: dict) -> Any | None:
        """The record's label as written, or None when the record has none for this task."""
        value = record.get(self.spec.label_field)
        return None if value is None else label_name(value)

    def names(self, gold: Any) -> list:
        """The label names a gold value holds (one here; a list for tags and multilabel)."""
        return [gold]

    def resolve_labels(self, train_records: Sequence[dict]) -> list:
        """The label inventory: the spec's list, its label file, or what train holds (sorted)."""
        spec = self.spec
        if spec.labels:
            labels = list(spec.labels)
        elif spec.label_map_or_file:
            labels = [x for x in read_label_file(self.label_file()) if x not in PLACEHOLDER_LABELS]
        else:
            labels = self.labels_from_data(train_records)
        if spec.class_num is not None and spec.class_num != len(labels):
            raise TaskFileError(f"task {spec.name!r}: class_num is {spec.class_num} but the label "
                                f"inventory has {len(labels)} labels")
        if not labels:
            raise TaskFileError(f"task {spec.name!r}: no labels found")
        return labels

    def label_file(self) -> Path:
        """Where ``label_map_or_file`` is (relative paths as for data: task file's folder, data root)."""
        spec = self.spec
        found = resolve_path(spec.label_map_or_file, spec.task_dir)
        if not found.exists():
            looked = " or ".join(map(str, path_candidates(spec.label_map_or_file, spec.task_dir)))
            raise DataFormatError(found, None, f"label file of task {spec.name!r} not found (looked for {looked})")
        return found

    def labels_from_data(self, records: Sequence[dict]) -> list:
        return sorted({n for r in records if (g := self.gold(r)) is not None for n in self.names(g)})

    def unknown(self, gold: Any) -> list:
        """Label names in ``gold`` that the model cannot predict."""
        return [n for n in self.names(gold) if n not in self.index]

    def encode(self, gold: Any, feature: dict) -> Any:
        """The training target of one example (all its labels are known)."""
        return self.index[gold]

    # -- the model -----------------------------------------------------------------------------
    def bind(self, head: nn.Module) -> None:
        """Called with the task's head once the model exists (a CRF head's transitions live there)."""

    def build_head(self, hidden_size: int) -> nn.Module:
        return self.head(hidden_size, self.spec.num_labels, dropout=self.spec.dropout_prob)

    def build_loss(self, weight: Tensor | None = None) -> nn.Module:
        loss = LOSSES[self.spec.loss_type]
        return loss(weight) if weight is not None else loss()

    def class_weights(self, features: Sequence[dict]) -> Tensor | None:
        """Per-class loss weights from the training targets (None for uniform weighting)."""
        if self.spec.class_weighting == "uniform":
            return None
        ids = [f["labels"][self.spec.name] for f in features if self.spec.name in f["labels"]]
        return class_weights(ids, self.spec.num_labels, self.spec.class_weighting)

    # -- reading outputs -----------------------------------------------------------------------
    def decode(self, logits: Tensor, feature: dict) -> Any:
        """A prediction from one example's logits ``(C,)``: the top class."""
        return self.spec.labels[int(logits.argmax(-1))]

    def score(self, golds: list, preds: list) -> dict[str, float]:
        """The task's metrics over parallel lists of gold and predicted labels."""
        return {m: float(METRICS[m](golds, preds)) for m in self.spec.metrics}

    def present(self, logits: Tensor, feature: dict, words: list[str]) -> dict[str, Any]:
        """What ``Predictor.predict`` returns for this task on one text."""
        p = torch.softmax(logits.float(), -1)  # (C,)
        j = int(p.argmax())
        return {"label": self.spec.labels[j], "score": float(p[j]),
                "scores": {str(lab): float(p[k]) for k, lab in enumerate(self.spec.labels)}}

    # -- examining predictions -----------------------------------------------------------------
    def example_loss(self, logits: Tensor, feature: dict, gold: Any) -> float:
        """One example's loss, to rank examples: the task's own loss (:meth:`build_loss`,
        without class weights) on this example alone — ``-log p(gold)`` for a class, the mean
        over word starts for tags, the mean binary cross-entropy over labels.

        ``logits`` are the example's own: ``(C,)``, or ``(T, C)`` over its tokens. A gold
        label the model does not know gives ``inf``: it can never be predicted.
        """
        if self.unknown(gold):
            return math.inf
        if self._example_loss is None:
            self._example_loss = self.build_loss()  # built on first use: after the head is bound
        target = torch.tensor([self.encode(gold, feature)])  # (1,), (1, T) or (1, C)
        return float(self._example_loss(logits.float()[None], target))

    def confidence(self, logits: Tensor, feature: dict, pred: Any) -> float:
        """The probability the model gives its own prediction ``pred``."""
        return float(torch.softmax(logits.float(), -1)[self.index[pred]])

    def diagnose(self, gold: Any, pred: Any) -> dict[str, Any]:
        """What kind of mistake ``pred`` is: ``{"correct": bool, "errors": [{"kind": ...}]}``.

        Each type names its own kinds of error (here one: ``"wrong_label"``) and may add keys.
        """
        return {"correct": gold == pred, "errors": [] if gold == pred else [{"kind": "wrong_label"}]}

    def shown(self, value: Any) -> list[str]:
        """The class names a gold or predicted value shows, to filter and colour examples by."""
        return [str(value)]

    def as_text(self, value: Any, words: Sequence[str]) -> str:
        """A gold or predicted value as one line of text (for listings)."""
        return str(value)


def unknown_label_error(tt: TaskType, source: str | Path, index: int, label: Any,
                        line: int | None = None) -> DataFormatError:
    """The train split holds a label outside the inventory: say which, where, and from what."""
    spec = tt.spec
    # labels found in train are never unknown there: they come from a label file or a labels: list
    origin = str(resolve_path(spec.label_map_or_file, spec.task_dir)) if spec.label_map_or_file else \
        "the task's labels: list"
    where = "" if line is not None else f"example {index + 1}: "
    hint = ""
    if isinstance(label, str) and label.isdigit() and not any(str(x).isdigit() for x in spec.labels):
        hint = "; an integer label is a class name here, not an index into the label list"
    return DataFormatError(source, line, f"{where}unknown label {short(label, 60)} for task {spec.name!r} "
                           f"(the {len(spec.labels)} labels come from {origin}){hint}")
