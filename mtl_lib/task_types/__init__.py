"""The task-type registry: one small class per kind of task.

=====================  ==========================  ==============  ===================
type                   head reads                  labels stack    default loss
=====================  ==========================  ==============  ===================
classification         pooled vector ``(B, H)``    ``(B,)``        CrossEntropyLoss
pair_classification    pooled vector of the pair   ``(B,)``        CrossEntropyLoss
tagging                every token ``(B, T, H)``   ``(B, T)``      NERLoss
multilabel             pooled vector               ``(B, C)``      BCEWithLogitsLoss
hierarchical           pooled vector               ``(B,)``        WeightedNLLLoss
=====================  ==========================  ==============  ===================

Everything else in mtl_lib asks the task's type (``task_type(spec)``) instead of testing
``spec.task_type``: a new kind of task is one :class:`~mtl_lib.task_types.base.TaskType`
subclass added to :data:`TASK_TYPES`, and a test.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..evaluation.metrics import sentence_accuracy
from ..tasks.spec import TaskFileError, TaskSpec
from ..tasks.validation import short
from .base import TaskType
from .classification import ClassificationType, PairClassificationType
from .hierarchical import HierarchicalType
from .multilabel import MultiLabelType
from .tagging import TaggingType

__all__ = ["TASK_TYPES", "TaskType", "group_metrics", "make_head", "register_task_type", "task_type", "upgrade_v1"]

TASK_TYPES: dict[str, type[TaskType]] = {}
_BY_NAME: dict[str, type[TaskType]] = {}  # every name and alias, lower-cased


def register_task_type(cls: type[TaskType]) -> type[TaskType]:
    """Add a new kind of task: task files may then name it (or one of its aliases).

    Usable as a class decorator. A name that is already taken is an error, so a type is never
    replaced by accident.
    """
    taken = [n for n in (cls.name, *cls.aliases) if n.lower() in _BY_NAME and _BY_NAME[n.lower()] is not cls]
    if not cls.name or taken:
        raise ValueError(f"task type {cls.__name__}: name {taken[0] if taken else cls.name!r} is "
                         "empty or already registered")
    TASK_TYPES[cls.name] = cls
    _BY_NAME.update({n.lower(): cls for n in (cls.name, *cls.aliases)})
    return cls


for _cls in (ClassificationType, PairClassificationType, TaggingType, MultiLabelType, HierarchicalType):
    register_task_type(_cls)
del _cls


def task_type(spec: TaskSpec) -> TaskType:
    """The behaviour of ``spec``'s type, bound to it; fills the spec's defaults on first use.

    Raises
    ------
    TaskFileError
        For an unknown type, loss or metric name; the message names the task and the key.
    """
    cls = _BY_NAME.get(str(spec.task_type).lower())
    if cls is None:
        aliases = sorted(a for c in TASK_TYPES.values() for a in c.aliases)
        raise TaskFileError(f"task {spec.name!r}: task_type {short(spec.task_type)} is not one of "
                            f"{', '.join(TASK_TYPES)} (or the aliases {', '.join(aliases)})")
    cls.complete(spec)
    return cls(spec)


def upgrade_v1(task: dict) -> dict:
    """A task's settings as the first checkpoint format wrote them, in today's terms."""
    cls = _BY_NAME.get(str(task.get("task_type")).lower())
    return cls.upgrade_v1(dict(task)) if cls is not None else task


def make_head(task_type: str, hidden_size: int, num_labels: int, dropout: float = 0.1) -> nn.Module:
    """The head of a task type (by name or alias) for ``num_labels`` classes."""
    cls = _BY_NAME.get(task_type.lower())
    if cls is None:
        raise ValueError(f"unknown task type {task_type!r}; known types: {sorted(TASK_TYPES)}")
    return cls.head(hidden_size, num_labels, dropout=dropout)


def group_metrics(types: Sequence[TaskType], golds: dict[str, list], preds: dict[str, list],
                  index: dict[str, list[int]]) -> dict[str, float]:
    """Metrics of a whole input group: SNIPS' *sentence accuracy* for intent + slots.

    A sentence counts as right when its class and every one of its tags are right; it is
    defined when the group is exactly one sentence classification and one tagging task
    labelled on the same examples.
    """
    kinds = {type(t): t.spec.name for t in types}
    if len(types) != 2 or set(kinds) != {ClassificationType, TaggingType}:
        return {}
    c, t = kinds[ClassificationType], kinds[TaggingType]
    if index[c] != index[t] or not golds[c]:
        return {}
    return {"sentence_accuracy": float(sentence_accuracy(golds[c], preds[c], golds[t], preds[t]))}
