"""Saving and restoring models and training runs with ``checkpoint``'s safe format."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, load_checkpoint, load_state_strict, save_checkpoint
from .encoders import Encoder
from .model import MultiTaskModel
from .tasks import TaskFileError, TaskSpec

__all__ = ["save_model", "load_model", "save_training", "restore_training"]

VERSION = 1


def model_config(model: MultiTaskModel) -> dict[str, Any]:
    return {"version": VERSION, "encoder": model.encoder.config_dict(),
            "tasks": [t.to_dict() for t in model.tasks.values()]}


def save_model(model: MultiTaskModel, path: str | Path, training: dict | None = None) -> Path:
    """Save weights + config only (no optimiser): enough for evaluation and prediction."""
    return save_checkpoint(path, model, {**model_config(model), "training": training or {}})


def load_model(path: str | Path) -> MultiTaskModel:
    """Rebuild a ``MultiTaskModel`` from a checkpoint directory (or a run's best/last)."""
    ck = load_checkpoint(path)
    return _build(ck)


def _build(ck: dict[str, Any]) -> MultiTaskModel:
    cfg, where = ck["config"], ck["dir"]
    try:
        enc_cfg = cfg["encoder"]
        specs = [TaskSpec(**t) for t in cfg["tasks"]]
    except (KeyError, TypeError, TaskFileError) as err:
        raise CheckpointError(f"{where / 'config.json'}: invalid model configuration ({err})") from None
    try:
        encoder = Encoder.from_config_dir(where / "encoder", **enc_cfg)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{where / 'encoder'}: cannot rebuild the encoder ({err})") from None
    model = MultiTaskModel.from_tasks(encoder, specs)
    load_state_strict(model, ck["model_state"], str(where / "model.safetensors"))
    model.eval()
    return model


def save_training(trainer, path: str | Path) -> Path:
    """Everything needed to continue ``trainer`` exactly: weights, optimiser, RNG, positions."""
    state = {
        "step": trainer.step,
        "positions": trainer._pos,
        "best_score": trainer.best_score,
        "bad_evals": trainer._bad_evals,
        "torch_rng": torch.random.get_rng_state().tolist(),
        "weighting": trainer.weighting.extra_state(),
        "scheduler": trainer.scheduler.state_dict(),
    }
    extra = {f"weighting.{k}": v for k, v in trainer.weighting.state_dict().items()}
    return save_checkpoint(path, trainer.model,
                           {**model_config(trainer.model), "training": asdict(trainer.config)},
                           optimizer=trainer.optimizer, extra_tensors=extra,
                           trainer_state=state, history=trainer.history.records)


def restore_training(trainer, path: str | Path) -> None:
    """Load a ``save_training`` checkpoint into ``trainer`` (same tasks and config)."""
    ck = load_checkpoint(path, with_optimizer=True)
    where = ck["dir"]
    if ck["trainer_state"] is None or ck["optimizer_state"] is None:
        raise CheckpointError(f"{where}: has no optimiser/trainer state; it cannot be resumed")
    load_state_strict(trainer.model, ck["model_state"], str(where / "model.safetensors"))
    try:
        trainer.optimizer.load_state_dict(ck["optimizer_state"])
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{where / 'optimizer.safetensors'}: does not fit this model ({err})") from None
    w = {k[len("weighting."):]: v for k, v in ck["extra_tensors"].items() if k.startswith("weighting.")}
    if w:
        trainer.weighting.load_state_dict(w)
    st = ck["trainer_state"]
    trainer.step = int(st["step"])
    trainer._pos = [list(p) for p in st["positions"]]
    trainer.best_score, trainer._bad_evals = st["best_score"], st["bad_evals"]
    trainer.weighting.load_extra_state(st.get("weighting") or {})
    trainer.scheduler.load_state_dict(st["scheduler"])
    torch.random.set_rng_state(torch.tensor(st["torch_rng"], dtype=torch.uint8))
    from .history import History

    trainer.history = History(ck["history"] or [])
