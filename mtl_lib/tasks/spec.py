"""``TaskSpec``: one task as a task file states it — what to predict, from which data.

A *task* is one prediction problem with its own head, labels, loss and metrics. Several tasks
may read the same inputs (SNIPS intent + slots): they then share an *input group* and one
encoder pass feeds all their heads. A spec is plain data: it checks the type and range of each
value, and nothing else. What a task type *means* (its head, loss, default metrics, how labels
are encoded and read back) is the business of :mod:`mtl_lib.task_types`, which completes a spec
(aliases, default loss and metrics) when it is used.

This module imports nothing heavy (no torch), so task files can be checked anywhere.
Taught in ``notebooks/05_multi_task_training.ipynb``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .validation import check_fields, short

__all__ = ["FORMATS", "TaskFileError", "TaskSpec", "check_task_name"]

FORMATS = ("jointbert", "conll", "csv", "tsv", "jsonl", "trec", "mtnlp", "auto")
CLASS_WEIGHTINGS = ("uniform", "inverse_frequency")
DECODINGS = ("bio", "argmax")


class TaskFileError(ValueError):
    """A task file or task specification is invalid; the message names the task and key."""


_NAME = re.compile(r"\w[\w-]*")


def check_task_name(name: Any) -> str:
    """A task name as mtl_lib can use it everywhere, or a TaskFileError saying why not.

    A name keys the task's head and loss (``nn.ModuleDict``: no ``.``, not empty), its tensors
    in ``model.safetensors`` (``heads.<name>.weight``), its metrics, and ``--data NAME=PATH``;
    the metrics of an input group are reported under the members' names joined by ``+``
    (``intent+slots``). So a name is letters, digits, ``_`` and ``-``, which no group key can
    equal. (Names that ``nn.ModuleDict`` itself uses, such as ``keys``, are refused one layer
    up, by :meth:`mtl_lib.task_types.TaskType.complete`.)
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        why = "is empty" if name == "" else f"is {short(name)}"
        raise TaskFileError(f"task name {why}: a task name is letters, digits, '_' and '-' (it keys the "
                            "task's head, tensors and metrics; '+' joins the names of tasks that share "
                            "inputs, '.' separates tensor names)")
    return name


@dataclass
class TaskSpec:
    """One task: what to predict, from which data, with which loss and metrics.

    Parameters
    ----------
    name : str
        Unique task name; also the head's key in ``MultiTaskModel.heads``.
    task_type : str
        A registered task type (:data:`mtl_lib.task_types.TASK_TYPES`) or one of
        multi-task-NLP's names for them (``SingleSenClassification``, ``NER``, ...).
    format, path : str
        Data format (one of ``FORMATS``; ``"auto"``: from the data, see
        :func:`mtl_lib.data.sources.detect_format`) and a folder or file. A relative path is
        looked for in ``task_dir`` (else the working directory), then under the data root.
        ``splits`` maps split names to files inside ``path`` when the default layout does not
        apply.
    label_field : str
        Which field of a read record holds this task's label (``intent``, ``slots``, ``tags``,
        ``label`` or a column name); the task type picks a default.
    text_column, text_pair_column : str
        Columns holding the text (tables only); ``text_column`` may name several columns
        separated by commas (``"Title,Text"``), joined in that order.
    level_columns : list of str
        For ``hierarchical`` tasks on tables: one column per level, top level first.
    labels : list
        The label inventory, index = class id; read from ``label_map_or_file`` or collected
        from the train data. Hierarchical tasks list leaf *paths* (tuples of level names).
    class_weighting : str
        ``"uniform"`` or ``"inverse_frequency"`` (rare classes weigh more in the loss);
        classification-like task types only.
    dev_fraction : float
        Share of train carved off (seeded) as dev when the data has no dev split.
    tag_decoding : str
        Tagging tasks: ``"bio"`` (default) reads the best tag sequence that obeys the BIO
        scheme (Viterbi, see :mod:`mtl_lib.evaluation.decoding`); ``"argmax"`` takes each
        word's top tag.
    pooling : str
        How this task's head reduces the token states to one vector: ``"first"``, ``"last"``
        or ``"mean"``; empty for the encoder's default. One encoder pass still feeds all heads.
    use_crf : bool
        Tagging tasks: a CRF on top of the head (learned tag transitions), trained with the
        CRF likelihood (``loss_type`` CRFLoss) and decoded by Viterbi (JointBERT's ``use_crf``).
    task_dir : str
        The folder of the task file the task came from (set when it is read, saved with
        checkpoints), so relative paths mean the same from any working directory.
    """

    name: str
    task_type: str
    format: str = "auto"
    path: str = ""
    splits: dict[str, str] = field(default_factory=dict)
    label_field: str = ""
    text_column: str = "text"
    text_pair_column: str = ""
    level_columns: list[str] = field(default_factory=list)
    quoting: str = "minimal"
    encoding: str = "utf-8"
    labels: list = field(default_factory=list)
    label_map_or_file: str = ""
    class_num: int | None = None
    loss_type: str = ""
    metrics: list[str] = field(default_factory=list)
    loss_weight: float = 1.0
    dropout_prob: float = 0.1
    class_weighting: str = "uniform"
    dev_fraction: float = 0.1
    max_examples: int | None = None
    model_type: str = ""
    config_name: str = ""
    file_names: list[str] = field(default_factory=list)
    tag_decoding: str = "bio"
    use_crf: bool = False
    pooling: str = ""
    task_dir: str = ""

    def __post_init__(self) -> None:
        check_task_name(self.name)
        where = f"task {self.name!r}"
        for key in _STR_FIELDS + _LIST_FIELDS:  # an empty YAML value (`path:`) means "not given"
            if getattr(self, key) is None:
                setattr(self, key, "" if key in _STR_FIELDS else [])
        if self.splits is None:
            self.splits = {}
        check_fields(self, where, _RULES, error=TaskFileError)
        for key in _LIST_FIELDS:
            items = list(getattr(self, key))
            if key == "labels":  # a hierarchical task lists paths; JSON gave them back as lists
                items = [tuple(x) if isinstance(x, list) else x for x in items]
            ok = all(isinstance(x, str) or (key == "labels" and isinstance(x, tuple)
                                            and all(isinstance(y, str) for y in x)) for x in items)
            if not ok:
                raise TaskFileError(f"{where}: {key} must be a list of names (strings), got "
                                    f"{short(items)}")
            setattr(self, key, items)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def input_key(self) -> tuple:
        """Tasks with equal keys read the same inputs and share one encoder pass."""
        return (self.format, self.task_dir, self.path, tuple(sorted(self.splits.items())), self.text_column,
                self.text_pair_column, self.dev_fraction, self.max_examples, tuple(self.file_names),
                tuple(self.level_columns))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_STR_FIELDS = ("format", "path", "label_field", "text_column", "text_pair_column", "quoting", "encoding",
               "label_map_or_file", "loss_type", "model_type", "config_name", "tag_decoding",
               "class_weighting", "task_dir", "pooling")
_LIST_FIELDS = ("level_columns", "labels", "metrics", "file_names")
_RULES: dict[str, str | tuple] = {
    "format": FORMATS, "quoting": ("minimal", "none"), "tag_decoding": DECODINGS,
    "class_weighting": CLASS_WEIGHTINGS, "pooling": ("", "first", "last", "mean"), "loss_weight": ">= 0",
    "dropout_prob": "[0, 1)",
    "dev_fraction": "(0, 1)", "class_num": ">= 1", "max_examples": ">= 1",
}
