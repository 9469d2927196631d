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
(:class:`~mtl_lib.training.config.TrainerConfig`). Reading is safe YAML only: merge keys
(``<<: *defaults``) work, duplicated keys and keys that are not names are errors, and a file
whose aliases expand to more than ``MAX_YAML_VALUES`` values (a "billion laughs" bomb: 447
bytes that expand to gigabytes) is refused before anything is built from it. Every error names
the file (and line, for YAML syntax) and cuts long values short. What the task types mean is
checked one layer up, by :func:`mtl_lib.experiment.load_task_file`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..training.config import TrainerConfig
from .spec import TaskFileError, TaskSpec
from .validation import short

__all__ = ["MAX_TASK_FILE_BYTES", "MAX_YAML_VALUES", "TaskFile", "parse_tasks", "read_task_file", "read_yaml"]

MAX_TASK_FILE_BYTES = 10_000_000  # a task file is a page of settings; 10 MB leaves room for inline labels
MAX_YAML_VALUES = 1_000_000  # values once every alias is expanded: a bomb is refused before it is built


@dataclass
class TaskFile:
    """A parsed task file: the tasks, the encoder they ask for and training options."""

    tasks: list[TaskSpec]
    encoder: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    source: str | None = None


_KEYS = {f for f in TaskSpec.__dataclass_fields__} - {"task_dir"}  # task_dir: where the file is, not a setting


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
            raise TaskFileError(f"{source}: task {short(name)} must be a mapping of settings")
        unknown = sorted(map(str, set(body) - _KEYS - {"name"}))
        if unknown:
            raise TaskFileError(
                f"{source}: task {short(name)}: unknown key {short(unknown[0])} "
                f"(known keys: {', '.join(sorted(_KEYS - {'name', 'labels'}))})"
            )
        if "task_type" not in body:
            raise TaskFileError(f"{source}: task {short(name)}: missing key 'task_type'")
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
            f"{source}: tasks ask for different encoders ({', '.join(short(e) for e in sorted(encoders))}); "
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
    for spec in tf.tasks:  # relative paths in a task file are relative to its folder first
        spec.task_dir = str(Path(path).resolve().parent)
    return tf


def read_yaml(path: str | Path, what: str = "task file") -> Any:
    """Safe YAML with unique keys; a missing file, bad UTF-8 or bad YAML is a ``TaskFileError``
    naming the file (and the line)."""
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(f"{path}: {what} not found")
    if path.stat().st_size > MAX_TASK_FILE_BYTES:
        raise TaskFileError(f"{path}: larger than {MAX_TASK_FILE_BYTES:,} bytes; a {what} holds settings, "
                            "not data (put long label lists in a label file)")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise TaskFileError(f"{path}: cannot read the {what}: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TaskFileError(f"{path}: not valid UTF-8 (byte {err.start})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise TaskFileError(f"{where}: invalid YAML: {problem}") from None
    except RecursionError:
        raise TaskFileError(f"{path}: invalid YAML: nested too deeply") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicated keys (plain YAML keeps the last one silently), keys
    that are not names, and documents whose aliases expand to more than ``MAX_YAML_VALUES``."""

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        _check_expansion(node)  # before anything is constructed from the node graph
        return self.construct_document(node)


_MERGE = "tag:yaml.org,2002:merge"


def _check_expansion(root: yaml.Node) -> None:
    """Count the values of ``root`` with every alias expanded, without expanding anything.

    An alias is the *same* node object as its anchor, so a size per node (memoised by identity)
    gives the expanded size in time linear in the file; a node reached while its own size is
    being computed is a recursive alias (``&a [*a]``), which would expand forever.
    """
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            if size[key] > MAX_YAML_VALUES:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the document expands to more than {MAX_YAML_VALUES:,} values (aliases "
                    "repeat their anchor's value); refusing it", node.start_mark)
            continue
        if key in size:
            if size[key] < 0:
                raise yaml.constructor.ConstructorError(None, None, "recursive alias (a value that contains "
                                                        "itself)", node.start_mark)
            continue
        size[key] = -1  # in progress
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE:  # `<<: *defaults`: merged keys may be overridden, not duplicates
            continue
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a name, found a {key_node.id} (line {line})", key_node.start_mark)
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a name, found {type(key).__name__} {short(key)} (line {line}); "
                f"write it in quotes: '{key_node.value}'", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicated key {short(key)} (line {line})", key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)  # SafeConstructor: flattens merge keys first


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
