"""Task files (YAML): a mapping of task names to task settings, plus trainer options.

A task file lists tasks by name, in the multi-task-NLP convention::

    snips_intent:
      task_type: SingleSenClassification     # alias of "classification"
      format: jointbert
      path: snips                            # relative to the data root ($MTL_LIB_DATA)
      label_field: intent
      label_map_or_file: snips/intent_label.txt
      loss_type: CrossEntropyLoss
      metrics: [classification_accuracy, classification_f1_score]

An optional top-level ``training:`` section holds trainer options
(:class:`~mtl_lib.training.config.TrainerConfig`). Reading is safe YAML only, duplicated keys
are errors, and every error names the file (and line, for YAML syntax). What the task types
mean is checked one layer up, by :func:`mtl_lib.experiment.load_task_file`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..training.config import TrainerConfig
from .spec import TaskFileError, TaskSpec

__all__ = ["TaskFile", "parse_tasks", "read_task_file", "read_yaml"]


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


def read_task_file(path: str | Path) -> TaskFile:
    """Read and validate a YAML task file.

    Raises
    ------
    TaskFileError
        For a missing or unreadable file, bad YAML, unknown keys or bad values; the message
        names the file, the task and the key. YAML task names are unique by construction:
        a duplicated task name is reported rather than silently overwritten.
    """
    tf = parse_tasks(read_yaml(path), str(path))
    tf.source = str(path)
    return tf


def read_yaml(path: str | Path, what: str = "task file") -> Any:
    """Safe YAML with unique keys; a missing file, bad UTF-8 or bad YAML is a ``TaskFileError``
    naming the file (and the line)."""
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise TaskFileError(f"{path}: not valid UTF-8 (byte {err.start})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise TaskFileError(f"{where}: invalid YAML: {problem}") from None


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
