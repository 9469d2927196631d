"""A resumable training checkpoint: the model's directory plus the trainer's state.

Layout (``last/`` of a run)::

    config.json, encoder/, model.safetensors   the model, as MultiTaskModel.save_pretrained writes it
    optimizer.safetensors   AdamW's tensors ``state.<param>.<key>``, learned loss-weighting tensors
                            ``extra.weighting.<name>``; the param groups as JSON in its metadata
    trainer_state.json      step, data positions, random state, scheduler, fp16 loss scaler,
                            weighting and callbacks (the run id among them)
    history.json            the training History

Everything is safetensors or JSON (no pickle) and written atomically. Resuming checks the
whole checkpoint against the trainer *before* changing anything — its tasks, label lists and
``max_length`` included — so a broken or mismatched checkpoint leaves the trainer as it was.
Taught in ``notebooks/08_save_load_predict.ipynb``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..models.legacy import read_legacy
from ..models.multitask import FORMAT
from ..models.safe_files import (
    CheckpointError,
    atomic_directory,
    load_state_strict,
    pickles_instead,
    read_json,
    read_tensors,
    resolve_checkpoint,
)

__all__ = ["optimizer_from_tensors", "optimizer_to_tensors", "restore_training", "save_training"]


def optimizer_to_tensors(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], str]:
    """Flatten ``optimizer.state_dict()`` into tensors ``state.<param>.<key>`` + JSON param groups."""
    tensors = {f"state.{idx}.{key}": torch.as_tensor(val).detach().cpu().clone()
               for idx, st in state_dict["state"].items() for key, val in st.items()}
    return tensors, json.dumps(state_dict["param_groups"])


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], groups_json: str) -> dict[str, Any]:
    """Inverse of :func:`optimizer_to_tensors`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, val in tensors.items():
        prefix, _, rest = name.partition(".")
        idx, _, key = rest.partition(".")
        if prefix != "state" or not idx.isdigit() or not key:
            raise ValueError(f"unexpected tensor {name!r} (expected state.<parameter>.<key>)")
        state.setdefault(int(idx), {})[key] = val
    groups = json.loads(groups_json)
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ValueError("param_groups must be a JSON list of objects")
    return {"state": state, "param_groups": groups}


def save_training(trainer, path: str | Path, run: dict[str, Any] | None = None) -> Path:
    """Write ``trainer``'s model and :meth:`~mtl_lib.training.trainer.Trainer.state_dict`."""
    state = trainer.state_dict()
    tensors, groups = optimizer_to_tensors(state["optimizer"])
    tensors |= {f"extra.weighting.{k}": v.detach().cpu().clone() for k, v in state["weighting"]["tensors"].items()}
    trainer_state = {"step": state["step"], "positions": state["positions"],
                     "torch_rng": state["torch_rng"].tolist(), "scheduler": state["scheduler"],
                     "weighting": state["weighting"]["extra"], "callbacks": state["callbacks"],
                     "scaler": state["scaler"]}
    with atomic_directory(path) as tmp:
        trainer.model.write_files(tmp, training=trainer.config.to_dict(), run=run)
        save_file(tensors, str(tmp / "optimizer.safetensors"), metadata={"param_groups": groups})
        (tmp / "trainer_state.json").write_text(json.dumps(trainer_state))
        (tmp / "history.json").write_text(json.dumps(state["history"]))
    return Path(path)


def restore_training(trainer, path: str | Path) -> None:
    """Load a :func:`save_training` checkpoint into ``trainer`` (same tasks and config)."""
    where = resolve_checkpoint(path)
    config = read_json(where / "config.json")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{where / 'config.json'}: not an mtl_lib checkpoint config")
    config = (read_legacy(where, config) or (config,))[0]  # version 1: hierarchical labels as paths
    # the weights mean what the checkpoint's labels say: a reordered or renamed label file
    # would silently relabel every prediction
    differences = trainer.model.schema_differences(config, trainer.config.max_length)
    if differences:
        raise CheckpointError(f"{where}: cannot resume, the tasks differ from the checkpoint's: "
                              f"{'; '.join(differences)} (resume with the checkpoint's tasks, labels and "
                              "max_length, or start a new run)")
    opt_file, state_file = where / "optimizer.safetensors", where / "trainer_state.json"
    if not opt_file.exists() or not state_file.exists():
        why = pickles_instead(opt_file, "optim")
        raise CheckpointError(f"{where}: has no optimiser/trainer state; it cannot be resumed{why}")
    # check everything before changing the trainer, so a bad checkpoint leaves it as it was
    model_state, _ = read_tensors(where / "model.safetensors")
    tensors, meta = read_tensors(opt_file)
    if "param_groups" not in meta:
        raise CheckpointError(f"{opt_file}: missing param_groups metadata")
    try:
        optimizer = optimizer_from_tensors({k: v for k, v in tensors.items() if not k.startswith("extra.")},
                                           meta["param_groups"])
    except ValueError as err:  # json.JSONDecodeError is a ValueError too
        raise CheckpointError(f"{opt_file}: not an optimiser state written by mtl_lib ({err})") from None
    weighting = {k[len("extra.weighting."):]: v for k, v in tensors.items() if k.startswith("extra.weighting.")}
    st = _trainer_state(read_json(state_file), state_file)
    if len(st["positions"]) != len(trainer.groups):
        raise CheckpointError(f"{state_file}: data positions for {len(st['positions'])} input groups, "
                              f"this trainer has {len(trainer.groups)}")
    _check_optimizer_state(trainer.optimizer, optimizer, opt_file)
    try:
        trainer.weighting.check_extra_state(st["weighting"])
    except ValueError as err:
        raise CheckpointError(f"{state_file}: {err}") from None
    load_state_strict(trainer.model, model_state, str(where / "model.safetensors"))
    history = (read_json(where / "history.json") if (where / "history.json").exists() else None) or []
    try:
        trainer.load_state_dict({**st, "optimizer": optimizer, "history": history,
                                 "weighting": {"tensors": weighting, "extra": st["weighting"]}})
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{where}: the training state does not fit this trainer ({err})") from None


def _trainer_state(st: Any, where: Path) -> dict[str, Any]:
    """Parse ``trainer_state.json``; a missing or mistyped entry is a CheckpointError.

    Checkpoints of the first format kept ``best_score`` and ``bad_evals`` at the top level;
    they belong to the checkpoint and early-stopping callbacks now.
    """
    try:
        callbacks = dict(st.get("callbacks") or {})
        if "best_score" in st:  # first format
            callbacks.setdefault("checkpoint", {"best_score": st["best_score"]})
            callbacks.setdefault("early_stopping", {"best_score": st["best_score"],
                                                    "bad_evals": int(st.get("bad_evals", 0))})
        out = {"step": int(st["step"]), "positions": [[int(e), int(b)] for e, b in st["positions"]],
               "weighting": dict(st.get("weighting") or {}), "scheduler": dict(st["scheduler"]),
               "torch_rng": torch.tensor(st["torch_rng"], dtype=torch.uint8), "callbacks": callbacks,
               "scaler": dict(st.get("scaler") or {})}  # fp16's loss scale; {} without fp16
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError, AttributeError) as err:
        raise CheckpointError(f"{where}: missing or invalid entry ({type(err).__name__}: {err})") from None
    if out["step"] < 0:
        raise CheckpointError(f"{where}: step must be >= 0, got {out['step']}")
    return out


def _check_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any], where: Path) -> None:
    """The saved parameter groups must be this optimiser's (the options that shape them,
    ``layer_lr_decay`` and a learned ``weighting``, unchanged), and every
    saved per-parameter tensor (AdamW's moments) must have its parameter's shape;
    ``load_state_dict`` does not check this, and the first step would fail instead."""
    saved = [(g.get("name"), len(g["params"])) for g in state["param_groups"]]
    now = [(g.get("name"), len(g["params"])) for g in optimizer.param_groups]
    if saved != now and all(name is not None for name, _ in saved):  # (unnamed: before groups had names)
        def listed(groups):
            return ", ".join(f"{name} ({n} tensors)" for name, n in groups)
        raise CheckpointError(
            f"{where}: cannot resume, the optimiser's parameter groups differ: {listed(saved)} in the "
            f"checkpoint, {listed(now)} now (were layer_lr_decay or weighting changed? "
            "resume with the checkpoint's training options, or start a new run)")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for idx, entries in state["state"].items():
        if not 0 <= idx < len(params):
            raise CheckpointError(f"{where}: state for parameter {idx}, the model has {len(params)}")
        for key, value in entries.items():
            if value.dim() > 0 and value.shape != params[idx].shape:
                raise CheckpointError(f"{where}: {key} of parameter {idx} has shape {tuple(value.shape)}, "
                                      f"the parameter has {tuple(params[idx].shape)}")
