"""Task specifications and task files (YAML).

A *task* is one prediction problem with its own head, labels, loss and metrics. Several tasks
may read the same inputs (SNIPS intent + slots): they then share an *input group* and one
encoder pass feeds all their heads. A task file lists tasks by name, in the multi-task-NLP
convention::

    snips_intent:
      task_type: SingleSenClassification     # alias of "classification"
      format: jointbert
      path: snips                            # relative to the data root ($MTL_LIB_DATA)
      label_field: intent
      label_map_or_file: snips/intent_label.txt
      loss_type: CrossEntropyLoss
      metrics: [classification_accuracy, classification_f1_score]

An optional top-level ``training:`` section holds trainer options (see ``TrainerConfig``).
Taught in ``notebooks/05_multi_task_training.ipynb``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TASK_TYPES", "TaskSpec", "TaskFile", "TaskFileError", "load_task_file", "parse_tasks"]

TASK_TYPES = ("classification", "pair_classification", "tagging", "multilabel", "hierarchical")

# multi-task-NLP's task-type names, accepted so its task files run with only data paths changed.
ALIASES = {
    "singlesenclassification": "classification",
    "sentencepairclassification": "pair_classification",
    "ner": "tagging",
}

DEFAULT_LOSS = {
    "classification": "CrossEntropyLoss",
    "pair_classification": "CrossEntropyLoss",
    "tagging": "NERLoss",
    "multilabel": "BCEWithLogitsLoss",
    "hierarchical": "WeightedNLLLoss",
}
DEFAULT_METRICS = {
    "classification": ["classification_accuracy", "classification_f1_score"],
    "pair_classification": ["classification_accuracy", "classification_f1_score"],
    "tagging": ["seqeval_f1_score", "seqeval_precision", "seqeval_recall"],
    "multilabel": ["classification_f1_score"],
    "hierarchical": ["classification_accuracy"],
}
FORMATS = ("jointbert", "conll", "csv", "tsv", "jsonl", "trec")


class TaskFileError(ValueError):
    """A task file or task specification is invalid; the message names the task and key."""


@dataclass
class TaskSpec:
    """One task: what to predict, from which data, with which loss and metrics.

    Parameters
    ----------
    name : str
        Unique task name; also the head's key in ``MultiTaskModel.heads``.
    task_type : str
        One of ``TASK_TYPES`` (aliases from multi-task-NLP are normalised).
    format, path : str
        Data format (one of ``FORMATS``) and a folder or file, relative to the data root
        unless absolute. ``splits`` maps split names to files inside ``path`` when the
        default layout does not apply.
    label_field : str
        Which field of a read record holds this task's label (``intent``, ``slots``, ``tags``,
        ``label`` or a column name).
    text_column, text_pair_column : str
        Columns holding the text (tables only); ``text_column`` may name several columns
        separated by commas (``"Title,Text"``), joined in that order.
    level_columns : list of str
        For ``hierarchical`` tasks on tables: one column per level, top level first. The
        task's label is the full path, written ``"top > ... > leaf"``.
    labels : list of str
        The label inventory; read from ``label_map_or_file`` or collected from train data.
    dev_fraction : float
        Share of train carved off (seeded) as dev when the data has no dev split.
    tag_decoding : str
        Tagging tasks: ``"bio"`` (default) reads the best tag sequence that obeys the BIO
        scheme (Viterbi, see ``mtl_lib.decoding``); ``"argmax"`` takes each word's top tag.
    """

    name: str
    task_type: str
    format: str = "jointbert"
    path: str = ""
    splits: dict[str, str] = field(default_factory=dict)
    label_field: str = ""
    text_column: str = "text"
    text_pair_column: str = ""
    level_columns: list[str] = field(default_factory=list)
    quoting: str = "minimal"
    encoding: str = "utf-8"
    labels: list[str] = field(default_factory=list)
    label_map_or_file: str = ""
    class_num: int | None = None
    loss_type: str = ""
    metrics: list[str] = field(default_factory=list)
    loss_weight: float = 1.0
    dropout_prob: float = 0.1
    dev_fraction: float = 0.1
    max_examples: int | None = None
    model_type: str = ""
    config_name: str = ""
    file_names: list[str] = field(default_factory=list)
    tag_decoding: str = "bio"

    def __post_init__(self) -> None:
        where = f"task {self.name!r}"
        tt = str(self.task_type)
        self.task_type = ALIASES.get(tt.lower(), tt)
        if self.task_type not in TASK_TYPES:
            raise TaskFileError(
                f"{where}: task_type {tt!r} is not one of {', '.join(TASK_TYPES)} "
                f"(or the aliases {', '.join(sorted(ALIASES))})"
            )
        self._check_types(where)
        if self.format not in FORMATS:
            raise TaskFileError(f"{where}: format {self.format!r} is not one of {', '.join(FORMATS)}")
        for key in ("loss_weight", "dropout_prob", "dev_fraction"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise TaskFileError(f"{where}: {key} must be a finite number, got {value!r}")
        if self.loss_weight < 0:
            raise TaskFileError(f"{where}: loss_weight must be >= 0, got {self.loss_weight}")
        if not 0 <= self.dropout_prob < 1:
            raise TaskFileError(f"{where}: dropout_prob must be in [0, 1), got {self.dropout_prob}")
        if not 0 < self.dev_fraction < 1:
            raise TaskFileError(f"{where}: dev_fraction must be in (0, 1), got {self.dev_fraction}")
        for key in ("class_num", "max_examples"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise TaskFileError(f"{where}: {key} must be a positive integer, got {v!r}")
        from .decoding import DECODINGS  # local, as in _check_names

        if self.tag_decoding not in DECODINGS:
            raise TaskFileError(f"{where}: tag_decoding {self.tag_decoding!r} is not one of "
                                f"{', '.join(DECODINGS)}")
        self.loss_type = self.loss_type or DEFAULT_LOSS[self.task_type]
        self.metrics = list(self.metrics) or list(DEFAULT_METRICS[self.task_type])
        if not self.label_field:
            self.label_field = {"jointbert": "slots" if self.task_type == "tagging" else "intent",
                                "conll": "tags", "trec": "path"}.get(self.format, "label")
        self._check_names()

    def _check_types(self, where: str) -> None:
        """Text fields must be strings, list fields lists of strings (YAML can give anything)."""
        for key in _STR_FIELDS:
            v = getattr(self, key)
            if v is None:  # an empty YAML value (`path:`) means "not given"
                setattr(self, key, "")
            elif not isinstance(v, str):
                raise TaskFileError(f"{where}: {key} must be a string, got {v!r}")
        for key in _STR_LIST_FIELDS:
            v = getattr(self, key)
            if not isinstance(v, (list, tuple, type(None))) or not all(isinstance(x, str) for x in v or ()):
                raise TaskFileError(f"{where}: {key} must be a list of names (strings), got {v!r}")
            setattr(self, key, list(v or ()))
        if not isinstance(self.splits, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.splits.items()):
            raise TaskFileError(f"{where}: splits must map split names to file names, got {self.splits!r}")

    def _check_names(self) -> None:
        from .losses import LOSSES  # local: tasks stay importable without torch-heavy modules
        from .metrics import METRICS

        where = f"task {self.name!r}"
        if self.loss_type not in LOSSES:
            raise TaskFileError(f"{where}: loss_type {self.loss_type!r} is not one of {', '.join(LOSSES)}")
        for m in self.metrics:
            if m not in METRICS:
                raise TaskFileError(f"{where}: metric {m!r} is not one of {', '.join(METRICS)}")

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def input_key(self) -> tuple:
        """Tasks with equal keys read the same inputs and share one encoder pass."""
        return (self.format, self.path, tuple(sorted(self.splits.items())), self.text_column,
                self.text_pair_column, self.dev_fraction, self.max_examples, tuple(self.file_names),
                tuple(self.level_columns))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_STR_FIELDS = ("format", "path", "label_field", "text_column", "text_pair_column", "quoting", "encoding",
               "label_map_or_file", "loss_type", "model_type", "config_name", "tag_decoding")
_STR_LIST_FIELDS = ("level_columns", "labels", "metrics", "file_names")


@dataclass
class TaskFile:
    """A parsed task file: the tasks, the encoder they ask for and training options."""

    tasks: list[TaskSpec]
    encoder: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    source: str | None = None


_KEYS = {f for f in TaskSpec.__dataclass_fields__}


def parse_tasks(raw: Any, source: str = "<task file>") -> TaskFile:
    """Validate a task-file mapping (already loaded from YAML) into a ``TaskFile``."""
    if not isinstance(raw, dict) or not raw:
        raise TaskFileError(f"{source}: expected a mapping of task names to task settings")
    training = raw.get("training", {}) or {}
    if not isinstance(training, dict):
        raise TaskFileError(f"{source}: 'training' must be a mapping of trainer options")
    if training:
        from .trainer import TrainerConfig  # local: the trainer pulls in torch-heavy modules

        try:  # a bad option is reported now, naming the file, not after data and encoder load
            TrainerConfig.from_dict(dict(training))
        except (ValueError, TypeError) as err:
            raise TaskFileError(f"{source}: training: {err}") from None
    tasks, encoders = [], set()
    for name, body in raw.items():
        if name == "training":
            continue
        if not isinstance(body, dict):
            raise TaskFileError(f"{source}: task {name!r} must be a mapping of settings")
        unknown = sorted(set(body) - _KEYS - {"name"})
        if unknown:
            raise TaskFileError(
                f"{source}: task {name!r}: unknown key {unknown[0]!r} "
                f"(known keys: {', '.join(sorted(_KEYS - {'name', 'labels'}))})"
            )
        if "task_type" not in body:
            raise TaskFileError(f"{source}: task {name!r}: missing key 'task_type'")
        try:
            spec = TaskSpec(name=str(name), **{k: v for k, v in body.items() if k != "name"})
        except TypeError as err:  # wrong value types for dataclass fields
            raise TaskFileError(f"{source}: task {name!r}: {err}") from None
        except TaskFileError as err:
            raise TaskFileError(f"{source}: {err}") from None
        if spec.config_name:
            encoders.add(spec.config_name)
        tasks.append(spec)
    if not tasks:
        raise TaskFileError(f"{source}: no tasks defined")
    if len(encoders) > 1:
        raise TaskFileError(
            f"{source}: tasks ask for different encoders ({', '.join(sorted(encoders))}); "
            "a multi-task model has one shared encoder"
        )
    return TaskFile(tasks, next(iter(encoders), None), dict(training), source)


def load_task_file(path: str | Path) -> TaskFile:
    """Read and validate a YAML task file.

    Raises
    ------
    TaskFileError
        For a missing or unreadable file, bad YAML, unknown keys or bad values; the message
        names the file, the task and the key. YAML task names are unique by construction:
        a duplicated task name is reported rather than silently overwritten.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(f"{path}: task file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise TaskFileError(f"{path}: not valid UTF-8 (byte {err.start})") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise TaskFileError(f"{where}: invalid YAML: {problem}") from None
    tf = parse_tasks(raw, str(path))
    tf.source = str(path)
    return tf


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicated keys (plain YAML keeps the last one silently)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicated key {key!r} (line {key_node.start_mark.line + 1})",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
