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
    if not (where / "encoder" / "config.json").is_file():  # else transformers reads the path as a hub id
        raise CheckpointError(f"{where / 'encoder'}: missing (the encoder's config and tokenizer files); "
                              "the checkpoint is incomplete")
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
    # check everything before changing the trainer, so a bad checkpoint leaves it as it was
    st = _trainer_state(ck["trainer_state"], where / "trainer_state.json")
    if len(st["positions"]) != len(trainer._pos):
        raise CheckpointError(f"{where / 'trainer_state.json'}: data positions for {len(st['positions'])} "
                              f"input groups, this trainer has {len(trainer._pos)}")
    _check_optimizer_state(trainer.optimizer, ck["optimizer_state"], where / "optimizer.safetensors")
    load_state_strict(trainer.model, ck["model_state"], str(where / "model.safetensors"))
    try:
        trainer.optimizer.load_state_dict(ck["optimizer_state"])
        w = {k[len("weighting."):]: v for k, v in ck["extra_tensors"].items() if k.startswith("weighting.")}
        if w:
            trainer.weighting.load_state_dict(w)
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{where / 'optimizer.safetensors'}: does not fit this model ({err})") from None
    try:
        trainer.weighting.load_extra_state(st["weighting"])
        trainer.scheduler.load_state_dict(st["scheduler"])
        torch.random.set_rng_state(st["torch_rng"])
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{where / 'trainer_state.json'}: invalid training state ({err})") from None
    trainer.step, trainer._pos = st["step"], st["positions"]
    trainer.best_score, trainer._bad_evals = st["best_score"], st["bad_evals"]
    from .history import History

    trainer.history = History(ck["history"] or [])


def _trainer_state(st: Any, where: Path) -> dict[str, Any]:
    """Parse ``trainer_state.json``; a missing or mistyped entry is a CheckpointError."""
    try:
        out = {"step": int(st["step"]), "positions": [[int(e), int(b)] for e, b in st["positions"]],
               "best_score": None if st["best_score"] is None else float(st["best_score"]),
               "bad_evals": int(st["bad_evals"]), "weighting": dict(st.get("weighting") or {}),
               "scheduler": dict(st["scheduler"]),
               "torch_rng": torch.tensor(st["torch_rng"], dtype=torch.uint8)}
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as err:
        raise CheckpointError(f"{where}: missing or invalid entry ({type(err).__name__}: {err})") from None
    if out["step"] < 0:
        raise CheckpointError(f"{where}: step must be >= 0, got {out['step']}")
    return out


def _check_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any], where: Path) -> None:
    """Every saved per-parameter tensor (AdamW's moments) must have its parameter's shape;
    ``load_state_dict`` does not check this, and the first step would fail instead."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for idx, entries in state["state"].items():
        if not 0 <= idx < len(params):
            raise CheckpointError(f"{where}: state for parameter {idx}, the model has {len(params)}")
        for key, value in entries.items():
            if value.dim() > 0 and value.shape != params[idx].shape:
                raise CheckpointError(f"{where}: {key} of parameter {idx} has shape {tuple(value.shape)}, "
                                      f"the parameter has {tuple(params[idx].shape)}")
