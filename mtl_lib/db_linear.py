"""DB_Linear (DistilBERT + Linear): a preset for hierarchical classification.

The seed's model — an encoder, dropout and one linear layer over the *leaves* of a label tree,
trained with the class-weighted averaged NLL ``L = Σ_n w[y_n] (−log p[n, y_n]) / Σ_n w[y_n]``
— is a one-task :class:`~mtl_lib.models.multitask.MultiTaskModel` with a ``hierarchical``
task. This module only translates the seed's interface (its config keys, ``fit`` / ``test`` /
``save`` / ``load`` / ``from_checkpoint``) into that model, the
:class:`~mtl_lib.training.trainer.Trainer` and the :class:`~mtl_lib.evaluation.predict.Predictor`.
Any registry encoder can stand in for DistilBERT (default ``"minilm"``).

A DB_Linear checkpoint is an ordinary resumable checkpoint, so ``mtl-lib evaluate`` and
``mtl-lib predict`` work on it; :func:`seed_view` reads it as the seed's schema (``config``,
``hierarchy``, ``encoder_state_dict``, ``classifier_state_dict``, ``optimizer_state_dict``).
Taught in ``notebooks/07_hierarchical_classification.ipynb``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from .evaluation.predict import Predictor
from .experiment import build_groups
from .models.encoders import POOLING_MODES, Encoder, load_encoder
from .models.legacy import DB_LINEAR_TASK as TASK
from .models.multitask import MultiTaskModel
from .models.safe_files import read_tensors, resolve_checkpoint
from .tasks.hierarchy import PerLevelHierarchy, texts_and_paths
from .tasks.spec import TaskSpec
from .tasks.validation import check_value
from .training.callbacks import Callback
from .training.checkpoint import optimizer_from_tensors
from .training.trainer import Trainer

__all__ = ["DB_Linear", "DEFAULT_CONFIG", "seed_view"]

DEFAULT_CONFIG: dict = {
    # --- the seed's three keys
    "encoder_lr": 5e-5,  # small: the encoder is pretrained
    "classifier_lr": 1e-3,  # large: the leaf layer starts from scratch
    "dropout": 0.1,  # before the leaf layer (the encoder keeps its own dropout config)
    # --- training keys (optional)
    "encoder": "minilm",  # registry name or directory for load_encoder()
    "pooling": None,  # None = the encoder family's default; or "first" / "last" / "mean"
    "max_length": 128,  # tokens, special tokens included; longer texts are truncated
    "batch_size": 32,
    "eval_batch_size": 64,
    "epochs": 3,  # total epochs that fit() trains up to
    "class_weighting": "uniform",  # or "inverse_frequency" (w_c = N / (C n_c))
    "weight_decay": 0.01,  # AdamW, both groups
    "max_grad_norm": 1.0,  # gradient clipping; 0 or None to disable
    "lr_schedule": "constant",  # the seed trains at fixed rates; "linear" decays them to 0
    "warmup_ratio": 0.0,  # share of the steps spent warming the rates up from 0
    "seed": 0,  # head init, batch order and dropout masks
}
_RULES = {"encoder_lr": ("float", ">= 0"), "classifier_lr": ("float", ">= 0"), "dropout": ("float", "[0, 1)"),
          "encoder": ("str", None), "pooling": ("str", POOLING_MODES), "max_length": ("int", ">= 1"),
          "batch_size": ("int", ">= 1"), "eval_batch_size": ("int", ">= 1"), "epochs": ("int", ">= 1"),
          "class_weighting": ("str", ("uniform", "inverse_frequency")), "weight_decay": ("float", ">= 0"),
          "max_grad_norm": ("float", ">= 0"), "lr_schedule": ("str", ("constant", "linear")),
          "warmup_ratio": ("float", "[0, 1)"), "seed": ("int", ">= 0")}
_TRAINER_KEYS = ("encoder_lr", "classifier_lr", "batch_size", "eval_batch_size", "epochs", "weight_decay",
                 "max_length", "lr_schedule", "warmup_ratio", "seed")


def _check_config(config: dict | None) -> dict:
    unknown = sorted(set(config or {}) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"DB_Linear config: unknown key {unknown[0]!r}; known keys: {', '.join(DEFAULT_CONFIG)}")
    config = {**DEFAULT_CONFIG, **(config or {})}
    for key, (kind, rule) in _RULES.items():
        optional = key in ("pooling", "max_grad_norm")
        config[key] = check_value("DB_Linear config", key, config[key], kind, rule, optional=optional)
    return config


class DB_Linear(nn.Module):
    """Encoder + Dropout + Linear over leaves, with the seed's ``fit`` / ``test`` / ``save`` / ``load``.

    Parameters
    ----------
    hierarchy : PerLevelHierarchy
        The label tree; the output columns are ``hierarchy.leaves``.
    config : dict, optional
        The seed keys ``encoder_lr``, ``classifier_lr``, ``dropout`` plus the optional keys of
        :data:`DEFAULT_CONFIG`; unknown keys and bad values raise ``ValueError`` naming the key.
    encoder : Encoder, optional
        Use this encoder (e.g. a tiny one in tests) instead of loading ``config["encoder"]``.

    Examples
    --------
    Train on TREC, predict, save and reload (a few minutes on a CPU)::

        records = read_trec(data_root() / "trec" / "train_5500.label")
        tree = PerLevelHierarchy.from_paths(r["path"] for r in records)
        model = DB_Linear(tree, {"encoder_lr": 1e-4, "classifier_lr": 3e-3, "dropout": 0.1})
        model.fit(records[:4900], dev_records=records[4900:])
        model.predict(["What is the capital of Peru ?"])  # full paths, e.g. [("LOC", "city")]
        model.save("runs/trec_db_linear")
        same = DB_Linear.from_checkpoint("runs/trec_db_linear")
    """

    def __init__(self, hierarchy: PerLevelHierarchy, config: dict | None = None,
                 encoder: Encoder | None = None) -> None:
        super().__init__()
        self.config = _check_config(config)
        if encoder is None:
            encoder = load_encoder(self.config["encoder"], pooling=self.config["pooling"])
        elif self.config["pooling"] is not None:
            encoder.pooling = self.config["pooling"]
        self.config["encoder"], self.config["pooling"] = encoder.name, encoder.pooling
        self.hierarchy = hierarchy
        # a table with columns text, level1, ..., levelL is how `mtl-lib evaluate --data` reads it
        self.task = TaskSpec(name=TASK, task_type="hierarchical", labels=hierarchy.leaves,
                             dropout_prob=self.config["dropout"], class_weighting=self.config["class_weighting"],
                             format="csv", level_columns=[f"level{k + 1}" for k in range(hierarchy.depth)])
        self.model = MultiTaskModel.from_tasks(encoder, [self.task], seed=self.config["seed"])
        self.trainer: Trainer | None = None  # the last fit's; holds the optimiser state
        self._resume: Path | None = None  # a checkpoint whose optimiser state the next fit continues
        self.history: list[dict] = []

    @property
    def encoder(self) -> Encoder:
        return self.model.encoder

    @property
    def classifier(self) -> nn.Module:
        return self.model.heads[TASK]

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """Raw leaf scores ``(B, n_leaves)`` for a batch ``(B, T)``."""
        return self.model(input_ids, attention_mask, token_type_ids)[TASK]

    def _records(self, records: Sequence[dict]) -> list[dict]:
        texts, paths = texts_and_paths(records)
        for i, p in enumerate(paths):
            if p not in self.hierarchy.leaves:
                raise ValueError(f"record {i}: label path {p!r} is not a leaf of the hierarchy "
                                 "(build it from all known label paths)")
        return [{"words": t.split(), "label": p} for t, p in zip(texts, paths)]

    def fit(self, train_records: Sequence[dict], dev_records: Sequence[dict] | None = None,
            epochs: int | None = None, progress: bool = True) -> list[dict]:
        """Train on records ``{"text": str, "path": tuple}`` up to ``epochs`` in total.

        The learning-rate schedule spans ``config["epochs"]``; ``epochs`` stops earlier, and a
        later ``fit`` (also after :meth:`save` and :meth:`from_checkpoint`) continues exactly
        where this one stopped.

        Returns
        -------
        list of dict
            One record per epoch trained: ``epoch``, ``train_loss`` (mean over its steps),
            ``train_time_s``, and ``dev_<metric>`` for each metric when ``dev_records`` are given.
        """
        data = {"train": self._records(train_records)} | ({"dev": self._records(dev_records)} if dev_records else {})
        groups = build_groups([self.task], self.encoder.tokenizer, self.config["max_length"],
                              splits=tuple(data), records=data)
        options = {k: self.config[k] for k in _TRAINER_KEYS} | {
            "max_grad_norm": self.config["max_grad_norm"] or 0.0, "progress": progress}
        clock = _EpochClock(epochs or self.config["epochs"])
        previous = self.trainer
        self.trainer = Trainer(self.model, groups, options, callbacks=[clock])
        if previous is not None:
            self.trainer.load_state_dict(previous.state_dict())
        history = self.trainer.fit(resume_from=self._resume if previous is None else None)
        self._resume = None
        records = clock.records(history, self.trainer.steps_per_epoch)
        self.history.extend(records)
        return records

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        return self.trainer.optimizer if self.trainer is not None else None

    def predict_scores(self, texts: Sequence[str], progress: bool = False) -> Tensor:
        """Raw leaf scores ``(N, n_leaves)`` for ``texts``."""
        predictor = Predictor(self.model, self.config["max_length"], self.config["eval_batch_size"])
        return predictor.logits(list(texts))[TASK]

    def predict(self, texts: Sequence[str], progress: bool = False) -> list[tuple[str, ...]]:
        """Full predicted path for each text: the argmax leaf, expanded."""
        return [self.hierarchy.expand(int(i)) for i in self.predict_scores(texts).argmax(dim=-1)]

    def test(self, records: Sequence[dict], progress: bool = False) -> dict[str, float]:
        """Score ``records`` with :func:`~mtl_lib.evaluation.hierarchical_metrics.hierarchical_metrics`."""
        texts, paths = texts_and_paths(records)
        return self.model.types[TASK].score(list(paths), self.predict(texts))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint directory atomically (resumable once trained)."""
        if self.trainer is not None:
            return self.trainer.save(path)
        return self.model.save_pretrained(path, training={k: self.config[k] for k in _TRAINER_KEYS})

    def load(self, path: str | os.PathLike) -> DB_Linear:
        """Load a checkpoint's weights into this (same-shaped) model; the next fit continues it."""
        other = MultiTaskModel.from_pretrained(path)
        differences = self.model.schema_differences(other.config(other.training_config), self.config["max_length"])
        if differences:
            raise ValueError(f"{path}: the checkpoint's hierarchy differs from this model's: {'; '.join(differences)}")
        self.model.load_state_dict(other.state_dict())
        where = resolve_checkpoint(path)
        self._resume, self.trainer = (where if (where / "optimizer.safetensors").exists() else None), None
        return self

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> DB_Linear:
        """Rebuild a model (architecture from files, weights strictly) from :meth:`save`."""
        view = seed_view(path, with_weights=False)
        model = cls(PerLevelHierarchy.from_dict(view["hierarchy"]), view["config"],
                    MultiTaskModel.from_pretrained(path).encoder)
        return model.load(path)


def seed_view(path: str | os.PathLike, with_weights: bool = True) -> dict:
    """A DB_Linear checkpoint read as the seed's schema: ``config``, ``hierarchy``,
    ``encoder_state_dict``, ``classifier_state_dict`` and ``optimizer_state_dict`` (None when
    the checkpoint was saved before any training)."""
    model = MultiTaskModel.from_pretrained(path)
    if TASK not in model.tasks:
        raise ValueError(f"{path}: not a DB_Linear checkpoint (no {TASK!r} task)")
    task, training, where = model.tasks[TASK], model.training_config, resolve_checkpoint(path)
    config = {k: _as(DEFAULT_CONFIG[k], training.get(k, DEFAULT_CONFIG[k]))
              for k in (*_TRAINER_KEYS, "max_grad_norm")} | {
        "dropout": task.dropout_prob, "class_weighting": task.class_weighting,
        "encoder": model.encoder.name, "pooling": model.encoder.pooling}
    view = {"config": config, "hierarchy": PerLevelHierarchy.from_paths(task.labels).to_dict()}
    if with_weights:
        optimizer = None
        if (where / "optimizer.safetensors").exists():
            tensors, meta = read_tensors(where / "optimizer.safetensors")
            optimizer = optimizer_from_tensors({k: v for k, v in tensors.items() if k.startswith("state.")},
                                               meta["param_groups"])
        view |= {"encoder_state_dict": model.encoder.model.state_dict(),
                 "classifier_state_dict": model.heads[TASK].state_dict(), "optimizer_state_dict": optimizer}
    return view


def _as(default, value):
    """``value`` with the type of the DB_Linear default (the trainer stores epochs as a float)."""
    return int(value) if isinstance(default, int) and isinstance(value, float) and value.is_integer() else value


class _EpochClock(Callback):
    """Stops training after ``until`` epochs and times each epoch, for DB_Linear's per-epoch records."""

    def __init__(self, until: int) -> None:
        self.until, self.times, self._t0 = until, {}, 0.0

    def on_fit_start(self, trainer) -> None:
        self._t0 = time.perf_counter()
        if trainer.step >= self.until * trainer.steps_per_epoch:
            trainer.should_stop = True

    def on_batch_end(self, trainer) -> None:
        if trainer.step % trainer.steps_per_epoch == 0:
            self.times[trainer.step // trainer.steps_per_epoch] = time.perf_counter() - self._t0
            self._t0 = time.perf_counter()
        if trainer.step >= self.until * trainer.steps_per_epoch:
            trainer.should_stop = True

    def records(self, history, steps_per_epoch: int) -> list[dict]:
        out = []
        for epoch, seconds in sorted(self.times.items()):
            losses = [r["loss"] for r in history.train_rows()
                      if (epoch - 1) * steps_per_epoch < r["step"] <= epoch * steps_per_epoch]
            rec = {"epoch": epoch, "train_loss": sum(losses) / len(losses), "train_time_s": seconds}
            rec |= {f"dev_{r['metric']}": r["value"] for r in history.eval_rows(TASK)
                    if r["step"] == epoch * steps_per_epoch}
            out.append(rec)
        return out
