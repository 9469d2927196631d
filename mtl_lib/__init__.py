"""mtl_lib: multi-task learning for NLP with a shared transformer encoder.

The public API is re-exported here (``from mtl_lib import Trainer``); everything else is
internal. Start with ``notebooks/00_tour.ipynb`` or ``make demo``. The subpackages are layers,
each importing only from the ones before it (``tests/test_layers.py`` checks it):

1. ``tasks``, ``training.config``   what a task and a training run are; plain data, no torch
2. ``data``                         reading, checking and batching data
3. ``models``, ``evaluation``       encoders, heads, losses; metrics, tag decoding, baselines
4. ``task_types``                   one class per kind of task, composing the layers above
5. ``models.multitask``             the shared-encoder model and its checkpoint directory
6. ``training``, ``evaluation.evaluate``, ``evaluation.predict``   the loop, scoring, inference
7. ``experiment``, ``db_linear``,   from a task file, or a label tree, to a ready model;
   ``lessons``                      the lessons' runs, trained once and cached
8. ``ui``, ``cli``                  plots, widgets, the ``mtl-lib`` command

Names are imported when first used, so ``import mtl_lib.tasks.spec`` stays light (no torch).
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

_PUBLIC: dict[str, list[str]] = {  # module -> the names it contributes to the public API
    "tasks.spec": ["TaskFileError", "TaskSpec"],
    "tasks.hierarchy": ["PerLevelHierarchy"],
    "training.config": ["TrainerConfig"],
    "data": ["DataFormatError", "data_root"],
    "models.encoders": ["DEFAULT_ENCODER", "Encoder", "EncoderNotAvailable", "list_encoders", "load_encoder"],
    "models.tiny": ["tiny_encoder"],
    "models.losses": ["CrossEntropyLoss", "MultiLabelLoss", "NERLoss", "WeightedNLLLoss"],
    "models.safe_files": ["CheckpointError"],
    "evaluation.metrics": ["classification_accuracy", "classification_f1_score", "classification_recall_score",
                           "confusion_matrix", "per_class_report", "seqeval_f1_score", "seqeval_precision",
                           "seqeval_recall", "snips_f1_score", "snips_precision", "snips_recall"],
    "evaluation.hierarchical_metrics": ["hierarchical_metrics", "per_level_report"],
    "evaluation.baselines": ["TfidfSGDBaseline"],
    "task_types": ["TASK_TYPES", "TaskType", "make_head"],
    "models.multitask": ["MultiTaskModel", "load_model", "save_model"],
    "training.callbacks": ["Callback"],
    "training.history": ["History"],
    "training.trainer": ["Trainer", "TrainingDiverged"],
    "evaluation.evaluate": ["evaluate"],
    "evaluation.errors": ["error_records"],
    "evaluation.predict": ["Predictor"],
    "experiment": ["build_experiment", "build_groups", "load_task_file", "snips_tasks"],
    "db_linear": ["DB_Linear"],
    "lessons": ["LessonRun", "cached_run", "fast_mode_note", "lesson_run", "lesson_runs"],
    "ui.compare": ["compare_runs"],
}
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'mtl_lib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value  # found once, then an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
