"""From a task file (or task list) to a model and its encoded data, in one call.

This is the glue the CLI, the widgets and the notebooks share::

    model, groups = build_experiment("examples/tasks/snips.yml")
    trainer = Trainer(model, groups, TrainerConfig(epochs=1))

:func:`build_groups` is where data meets the task types: tasks that read the same inputs
form one :class:`~mtl_lib.data.sources.InputGroup`, each split is read and tokenised once, and
each task's type reads its gold labels and encodes the training targets::

    features: {"input_ids": list[int], "attention_mask": list[int], ["token_type_ids": ...],
               "word_ids": list[int | None], "n_words": int, "truncated": bool,
               "labels": {task: int | list[int] | list[float]}}

A gold label outside the inventory is an error in train (naming the file, the line and where
the labels come from), and in every other split an example the model cannot get right: it is
counted, reported in one warning per task, and scored as an error by evaluation. A label that
is not a label at all (``1.0``, a tag list of the wrong length) is an error in every split.

Data may also be given in memory (``records={"train": ..., "dev": ...}``): lists of dicts,
pandas DataFrames or ``datasets.Dataset`` objects, read like table rows.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .data.encoding import encode_records
from .data.files import DataFormatError
from .data.sources import InputGroup, read_split, record_file, records_from
from .models.encoders import DEFAULT_ENCODER, Encoder, load_encoder
from .models.multitask import MultiTaskModel
from .models.tiny import tiny_encoder
from .task_types import task_type
from .task_types.base import unknown_label_error
from .tasks.examples import resolve_task_file
from .tasks.spec import TaskFileError, TaskSpec
from .tasks.task_file import TaskFile, read_task_file

__all__ = ["build_experiment", "build_groups", "load_task_file", "resolve_encoder", "snips_tasks"]


def load_task_file(path: str | Path) -> TaskFile:
    """Read a YAML task file and check every task against its task type.

    ``path`` may also name an example task file shipped with mtl_lib: ``"snips"``,
    ``"mixed"``, ``"hierarchical"`` (:func:`~mtl_lib.tasks.examples.example_task_files`).

    Raises
    ------
    TaskFileError
        For a missing or unreadable file, bad YAML, unknown keys or bad values; the message
        names the file, the task and the key.
    """
    tf = read_task_file(resolve_task_file(path))
    for spec in tf.tasks:
        try:
            task_type(spec)
        except TaskFileError as err:
            raise TaskFileError(f"{tf.source}: {err}") from None
    return tf


def resolve_encoder(encoder=None, texts=None) -> Encoder:
    """An ``Encoder`` from whatever names or holds one.

    Parameters
    ----------
    encoder : str, Path, Encoder, transformers model, (model, tokenizer) or None
        A registry name, hub id (local HF cache) or directory (:func:`load_encoder`);
        ``"tiny-<family>"`` for a random tiny encoder (fast runs); an ``Encoder`` as is; a
        transformers model, alone (its tokenizer is loaded from where it came from) or with its
        tokenizer (:meth:`Encoder.from_model`). None: the default, ``"minilm"``.
    texts : list of str, optional
        Extra text for a tiny encoder's tokenizer.
    """
    if isinstance(encoder, Encoder):
        return encoder
    if isinstance(encoder, tuple) and len(encoder) == 2:
        return Encoder.from_model(*encoder)
    if isinstance(encoder, torch.nn.Module):
        return Encoder.from_model(encoder)
    if encoder is not None and not isinstance(encoder, (str, os.PathLike)):
        raise TypeError(f"encoder must be a name, a path, an Encoder or a transformers model (with its "
                        f"tokenizer), got {type(encoder).__name__}")
    if isinstance(encoder, str) and encoder.lower().startswith("tiny-"):
        return tiny_encoder(encoder[5:], texts)
    return load_encoder(encoder or DEFAULT_ENCODER)


def snips_tasks(max_examples: int | None = None) -> list[TaskSpec]:
    """SNIPS intent (classification) + slots (tagging) on the same utterances."""
    common = dict(format="jointbert", path="snips", max_examples=max_examples)
    return [
        TaskSpec(name="intent", task_type="classification", label_field="intent",
                 label_map_or_file="snips/intent_label.txt",
                 metrics=["classification_accuracy", "classification_f1_score"], **common),
        TaskSpec(name="slots", task_type="tagging", label_field="slots",
                 label_map_or_file="snips/slot_label.txt",
                 metrics=["seqeval_f1_score", "snips_f1_score", "seqeval_precision", "seqeval_recall"],
                 **common),
    ]


def build_groups(tasks: list[TaskSpec], tokenizer, max_length: int = 128,
                 splits: tuple[str, ...] = ("train", "dev"),
                 records: Mapping[str, Any] | None = None) -> list[InputGroup]:
    """Group tasks by input, read and encode their splits, fill in label inventories.

    Parameters
    ----------
    tasks : list of TaskSpec
    tokenizer : a fast tokenizer
    max_length : int
        Longest tokenised input; longer ones are truncated.
    splits : tuple of str
        Splits to read (those the data lacks are skipped; dev is carved from train if absent).
    records : mapping of split to data, optional
        Data in memory, used instead of reading files; all tasks then form one group. Each
        split is a list of dicts, a pandas ``DataFrame`` or a ``datasets.Dataset`` (a
        ``DatasetDict`` is such a mapping; its ``"validation"`` is dev), with the columns the
        tasks name (``text_column``, ``label_field``); dicts holding ``"words"`` are used as
        they are.
    """
    names = [t.name for t in tasks]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise TaskFileError(f"duplicated task name {sorted(dup)[0]!r}")
    if records is not None:
        records = {("dev" if k == "validation" else k): v for k, v in records.items()}
        for t in tasks:  # rows in memory have named fields, like JSONL lines: so are their defaults
            t.format = "jsonl" if t.format == "auto" else t.format
    types = {t.name: task_type(t) for t in tasks}
    by_key: dict[tuple, list[TaskSpec]] = {}
    for t in tasks:
        by_key.setdefault(t.input_key if records is None else (), []).append(t)
    groups = []
    for members in by_key.values():
        g = InputGroup("+".join(t.name for t in members), members)
        sources: dict[str, Path] = {}
        fields = tuple(dict.fromkeys(t.label_field for t in members))
        for split in splits:
            if records is not None:
                read = (records_from(records[split], members[0], fields, split), Path(f"records[{split!r}]")) \
                    if split in records else None
            else:
                read = read_split(members[0], split, fields, types[members[0].name].mtnlp_layout)
            if read is not None:
                g.records[split], sources[split] = read
        for t in members:
            if "train" in g.records or not t.labels:
                train = g.records.get("train", [])
                try:
                    t.labels = types[t.name].resolve_labels(train)
                except (TaskFileError, DataFormatError):
                    raise
                except ValueError:  # a record's label is malformed: say which one
                    for i, rec in enumerate(train):
                        _gold(types[t.name], rec, i, sources["train"])
                    raise
            types[t.name] = task_type(t)  # bound to the resolved labels
        for split, recs in g.records.items():
            g.splits[split] = _encode(recs, [types[t.name] for t in members], tokenizer, max_length,
                                      split, sources[split])
        groups.append(g)
    return groups


def _gold(tt, record: dict, index: int, source: Path) -> Any:
    """``tt.gold(record)``, with a malformed label reported at its file and line."""
    try:
        return tt.gold(record)
    except ValueError as err:
        line = record.get("_line")
        where = record_file(source, tt.spec.label_field)
        raise DataFormatError(where, line, f"{'' if line else f'example {index + 1}, '}task {tt.spec.name!r}: "
                              f"{err}") from None


def _encode(records: list[dict], types: list, tokenizer, max_length: int, split: str,
            source: Path) -> list[dict]:
    """Features of ``records``, with each task's training target where its gold label is known."""
    features = encode_records(records, tokenizer, max_length)
    unknown: dict[str, tuple[int, set]] = {}
    for i, (rec, f) in enumerate(zip(records, features)):
        for tt in types:
            name = tt.spec.name
            gold = _gold(tt, rec, i, source)
            if gold is None:
                continue  # unlabelled for this task: masked out of its loss
            missing = tt.unknown(gold)
            if missing and split == "train":
                raise unknown_label_error(tt, record_file(source, tt.spec.label_field), i, missing[0],
                                          rec.get("_line"))
            if missing:
                n, labels = unknown.get(name, (0, set()))
                unknown[name] = (n + 1, labels | set(map(str, missing)))
                continue
            f["labels"][name] = tt.encode(gold, f)
    for name, (n, labels) in unknown.items():
        shown = ", ".join(sorted(labels)[:5]) + (", ..." if len(labels) > 5 else "")
        warnings.warn(f"{source}: task {name!r}: {n} {split} example(s) have {len(labels)} label(s) the "
                      f"model does not know ({shown}); they count as errors", stacklevel=3)
    return features


def build_experiment(tasks: str | Path | TaskFile | list[TaskSpec], encoder=None,
                     max_length: int = 128, seed: int = 0, splits: tuple[str, ...] = ("train", "dev"),
                     records: Mapping[str, Any] | None = None) -> tuple[MultiTaskModel, list[InputGroup]]:
    """Read the data of ``tasks``, load the encoder and build a ``MultiTaskModel``.

    Parameters
    ----------
    tasks : path to a task file, a ``TaskFile`` or a list of ``TaskSpec``
    encoder : str, Path, Encoder, transformers model or (model, tokenizer), optional
        Overrides the task file's ``config_name``; default ``"minilm"``. See
        :func:`resolve_encoder` for every form.
    max_length : int
        Longest tokenised input; longer ones are truncated.
    seed : int
        Seed of the heads' initialisation.
    records : mapping of split to data, optional
        Data in memory instead of the tasks' files (see :func:`build_groups`).
    """
    if isinstance(tasks, (str, Path)):
        tasks = load_task_file(tasks)
    if isinstance(tasks, TaskFile):
        encoder = encoder or tasks.encoder
        tasks = tasks.tasks
    enc = resolve_encoder(encoder)
    groups = build_groups(tasks, enc.tokenizer, max_length=max_length, splits=splits, records=records)
    return MultiTaskModel.from_tasks(enc, tasks, seed=seed), groups
