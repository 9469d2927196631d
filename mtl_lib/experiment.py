"""From a task file (or task list) to a model, its data and a trainer, in one call.

This is the glue the CLI and the notebooks share::

    model, groups = build_experiment("examples/tasks/snips.yml")
    trainer = Trainer(model, groups, TrainerConfig(epochs=1))
"""

from __future__ import annotations

from pathlib import Path

from .encoders import DEFAULT_ENCODER, Encoder, load_encoder, tiny_encoder
from .model import MultiTaskModel
from .task_data import InputGroup, build_groups
from .tasks import TaskFile, TaskSpec, load_task_file

__all__ = ["build_experiment", "snips_tasks", "resolve_encoder"]


def resolve_encoder(encoder: str | Encoder | None, texts=None) -> Encoder:
    """An ``Encoder`` from a name/path, ``"tiny-<family>"`` (random init, for fast runs) or as is."""
    if isinstance(encoder, Encoder):
        return encoder
    name = encoder or DEFAULT_ENCODER
    if name.lower().startswith("tiny-"):
        return tiny_encoder(name[5:].upper(), texts)
    return load_encoder(name)


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


def build_experiment(tasks: str | Path | TaskFile | list[TaskSpec], encoder: str | Encoder | None = None,
                     max_length: int = 128, seed: int = 0,
                     splits: tuple[str, ...] = ("train", "dev")) -> tuple[MultiTaskModel, list[InputGroup]]:
    """Read the data of ``tasks``, load the encoder and build a ``MultiTaskModel``.

    Parameters
    ----------
    tasks : path to a task file, a ``TaskFile`` or a list of ``TaskSpec``
    encoder : str or Encoder, optional
        Overrides the task file's ``config_name``; default ``"minilm"``.
    max_length : int
        Longest tokenised input; longer ones are truncated.
    seed : int
        Seed of the heads' initialisation.
    """
    if isinstance(tasks, (str, Path)):
        tasks = load_task_file(tasks)
    if isinstance(tasks, TaskFile):
        encoder = encoder or tasks.encoder
        tasks = tasks.tasks
    enc = resolve_encoder(encoder)
    groups = build_groups(tasks, enc.tokenizer, max_length=max_length, splits=splits)
    return MultiTaskModel.from_tasks(enc, tasks, seed=seed), groups
