"""Reading checkpoints written by earlier versions of mtl_lib, as today's format.

- **Version 1** (``config.json`` with ``"version": 1``) is read as it is; each task type
  upgrades its own settings (:func:`mtl_lib.task_types.upgrade_v1`).
- **The first DB_Linear layout**: the seed's schema as separate files — ``config.json`` holding
  ``{"config", "hierarchy"}``, ``encoder/mtl_encoder.json``, ``encoder_state_dict``,
  ``classifier_state_dict`` and ``optimizer_state_dict`` (safetensors + JSON). It becomes a
  one-task model whose task is named ``"hierarchical"``.

:func:`read_legacy` returns ``(config, model_state)`` in today's terms, or None for a
checkpoint that is already current.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..tasks.hierarchy import PerLevelHierarchy
from .safe_files import CheckpointError, read_json, read_tensors

__all__ = ["read_legacy"]

DB_LINEAR_TASK = "hierarchical"


def read_legacy(where: Path, config: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """An old checkpoint's config and weights in today's form; None if it is current."""
    if isinstance(config, dict) and {"config", "hierarchy"} <= set(config) and "format" not in config:
        return _db_linear_v1(where, config)
    return None


def _db_linear_v1(where: Path, saved: dict) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    try:
        hierarchy = PerLevelHierarchy.from_dict(saved["hierarchy"])
        seed = dict(saved["config"])
        info = read_json(where / "encoder" / "mtl_encoder.json")
        encoder = {"name": info["name"], "family": info["family"], "pooling": info["pooling"]}
        task = {"name": DB_LINEAR_TASK, "task_type": "hierarchical",
                "labels": [list(p) for p in hierarchy.leaves], "dropout_prob": seed["dropout"],
                "class_weighting": seed.get("class_weighting", "uniform")}
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{where / 'config.json'}: not a readable DB_Linear checkpoint ({err})") from None
    encoder_state, _ = read_tensors(where / "encoder_state_dict.safetensors")
    head_state, _ = read_tensors(where / "classifier_state_dict.safetensors")
    state = {f"encoder.model.{k}": v for k, v in encoder_state.items()}
    state |= {f"heads.{DB_LINEAR_TASK}.{k}": v for k, v in head_state.items()}
    training = {"encoder_lr": seed.get("encoder_lr"), "classifier_lr": seed.get("classifier_lr"),
                "max_length": seed.get("max_length", 128)}
    return {"format": "mtl_lib.checkpoint", "version": 2, "encoder": encoder, "tasks": [task],
            "training": training}, state
