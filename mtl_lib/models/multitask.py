"""The shared-encoder multi-task model, and its checkpoint directory.

One transformer encoder sits in the centre; each task owns a small head on top of it. A batch
of inputs goes through the encoder once, and every requested head reads the same hidden
states, so tasks that share inputs (SNIPS intent + slots) cost a single encoder pass.

A saved model is a directory, like a Hugging Face ``save_pretrained`` one::

    config.json          format, version, encoder (name, family, pooling), tasks (with labels),
                         the training options of the run, and where in it the model was saved
                         ("run": step, epoch and, for a run's best/, the dev score)
    encoder/             the encoder's architecture config and tokenizer files
    model.safetensors    encoder and head weights

It is written to a temporary sibling and renamed, so a crash never leaves half a model, and it
holds no pickle. Taught in ``notebooks/02_heads_and_losses.ipynb`` (the model) and
``08_save_load_predict.ipynb`` (the directory).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ..task_types import task_type, upgrade_v1
from ..tasks.spec import TaskFileError, TaskSpec
from .encoders import Encoder, EncoderNotAvailable
from .legacy import read_legacy
from .safe_files import (
    FORMAT,
    CheckpointError,
    atomic_directory,
    check_encoder_config,
    load_state_strict,
    read_json,
    read_tensors,
    resolve_checkpoint,
    state_to_tensors,
)

__all__ = ["FORMAT", "MultiTaskModel", "load_model", "save_model"]

VERSION = 2  # 2: hierarchical labels are paths (lists); 1 wrote them as "top > leaf" strings


_HEAD_SHAPING = ("use_crf",)  # task options whose change alters the head's layers


class MultiTaskModel(nn.Module):
    """A shared ``Encoder`` under a ``ModuleDict`` of task heads.

    Parameters
    ----------
    encoder : Encoder
        The shared encoder. Its pretrained weights are used as they are: building the model
        only creates heads, it never re-initialises the encoder.
    heads : dict of str to nn.Module
        One head per task, each with ``forward(hidden (B, T, H), pooled (B, H)) -> logits``.
    tasks : list of TaskSpec, optional
        The task specifications (labels, loss type, weights), kept for losses, checkpoints
        and prediction. ``types[name]`` is each task's :class:`~mtl_lib.task_types.TaskType`.
    """

    def __init__(self, encoder: Encoder, heads: dict[str, nn.Module],
                 tasks: Iterable[TaskSpec] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)
        self.tasks = {t.name: t for t in (tasks or [])}
        self.types = {name: task_type(t) for name, t in self.tasks.items()}
        for name, tt in self.types.items():
            tt.bind(self.heads[name])
        self.losses = nn.ModuleDict({name: tt.build_loss() for name, tt in self.types.items()})
        self.training_config: dict[str, Any] = {}  # how it was trained, when loaded from a run
        self.run_info: dict[str, Any] = {}  # where in its run it was saved (step, epoch, dev score)

    @classmethod
    def from_tasks(cls, encoder: Encoder, tasks: Iterable[TaskSpec], seed: int = 0) -> MultiTaskModel:
        """Build one head per task (labels must be resolved), seeded for reproducible heads."""
        tasks = list(tasks)
        with torch.random.fork_rng(devices=[]):  # the caller's random stream stays as it was
            torch.manual_seed(seed)
            heads = {t.name: task_type(t).build_head(encoder.hidden_size) for t in tasks}
        return cls(encoder, heads, tasks)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None,
                tasks: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Run the encoder once and the requested heads on its output.

        Parameters
        ----------
        input_ids, attention_mask, token_type_ids : LongTensor, shape (B, T)
        tasks : iterable of str, optional
            Heads to run; all heads by default.

        Returns
        -------
        dict of str to Tensor
            ``{task: logits}``, logits of shape (B, C) for sequence-level heads and (B, T, C)
            for token-level heads.
        """
        hidden, pooled = self.encoder(input_ids, attention_mask, token_type_ids)  # (B,T,H), (B,H)
        names = list(tasks) if tasks is not None else list(self.heads)
        # a task may pool its own way (TaskSpec.pooling): each mode is computed once per batch
        modes = {name: (self.tasks[name].pooling if name in self.tasks else "") or self.encoder.pooling
                 for name in names}
        by_mode = {self.encoder.pooling: pooled}
        for mode in set(modes.values()) - set(by_mode):
            by_mode[mode] = self.encoder.pool(hidden, attention_mask, mode)  # (B, H)
        return {name: self.heads[name](hidden, by_mode[modes[name]]) for name in names}

    def compute_losses(self, logits: dict[str, torch.Tensor],
                       labels: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each task's loss (a 0-d tensor) for the tasks present in both dicts."""
        return {name: self.losses[name](logits[name], labels[name])
                for name in logits if name in labels and name in self.losses}

    def set_class_weights(self, weights: dict[str, torch.Tensor | None]) -> None:
        """Give tasks' losses per-class weights ``(C,)`` (None: every class weighs 1)."""
        device = next(self.parameters()).device
        for name, w in weights.items():
            self.losses[name] = self.types[name].build_loss(w).to(device)

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(encoder parameters, head parameters): they get different learning rates."""
        return list(self.encoder.parameters()), list(self.heads.parameters())

    # -- the checkpoint directory ---------------------------------------------------------------
    def config(self, training: dict[str, Any] | None = None, run: dict[str, Any] | None = None) -> dict[str, Any]:
        """What ``config.json`` holds: enough to rebuild the model without its weights."""
        return {"format": FORMAT, "version": VERSION, "encoder": self.encoder.config_dict(),
                "tasks": [t.to_dict() for t in self.tasks.values()], "training": training or {},
                "run": run or {}}

    def schema_differences(self, config: dict[str, Any], max_length: int | None = None) -> list[str]:
        """How this model's tasks differ from those of a checkpoint's ``config.json``.

        Compares task names, task types, label lists (in order: a label's index is its class id,
        so a reordered label file changes what the weights mean), the options that shape a head
        (``use_crf``) and, when given, the
        ``max_length`` of the checkpoint's training options. An empty list means they match.
        """
        saved = {t.get("name"): t for t in config.get("tasks") or [] if isinstance(t, dict)}
        out = [f"task {n!r} is in the checkpoint, not in this model" for n in saved if n not in self.tasks]
        out += [f"task {n!r} is not in the checkpoint" for n in self.tasks if n not in saved]
        for name in (n for n in self.tasks if n in saved):
            old_type, new_type = _type_name(name, saved[name].get("task_type")), self.types[name].name
            if old_type != new_type:
                out.append(f"task {name!r}: type {old_type!r} in the checkpoint, {new_type!r} now")
                continue
            old, new = [_label(x) for x in saved[name].get("labels") or []], self.tasks[name].labels
            if len(old) != len(new):
                gone, added = [x for x in old if x not in new], [x for x in new if x not in old]
                what = ", ".join(([f"new {added[0]!r}"] if added else []) + ([f"gone {gone[0]!r}"] if gone else []))
                out.append(f"task {name!r}: {len(old)} labels in the checkpoint, {len(new)} now"
                           + (f" ({what})" if what else ""))
            elif old != new:
                i = next(i for i, (a, b) in enumerate(zip(old, new)) if a != b)
                out.append(f"task {name!r}: label {i} is {old[i]!r} in the checkpoint, {new[i]!r} now")
            for key in _HEAD_SHAPING:  # options that change the head's layers
                was, now = bool(saved[name].get(key, False)), bool(getattr(self.tasks[name], key))
                if was != now:
                    out.append(f"task {name!r}: {key} is {str(was).lower()} in the checkpoint, "
                               f"{str(now).lower()} now")
        saved_length = (config.get("training") or {}).get("max_length")
        if max_length is not None and saved_length is not None and saved_length != max_length:
            out.append(f"max_length is {saved_length} in the checkpoint, {max_length} now")
        return out

    def write_files(self, directory: Path, training: dict[str, Any] | None = None,
                    run: dict[str, Any] | None = None) -> None:
        """Write config, encoder files and weights into an existing (temporary) directory."""
        (directory / "config.json").write_text(json.dumps(self.config(training, run), indent=2))
        self.encoder.save_config(directory / "encoder")
        save_file(state_to_tensors(self.state_dict()), str(directory / "model.safetensors"))

    def save_pretrained(self, path: str | Path, training: dict[str, Any] | None = None,
                        run: dict[str, Any] | None = None) -> Path:
        """Save weights and config (no optimiser): enough for evaluation and prediction."""
        with atomic_directory(path) as tmp:
            self.write_files(tmp, training, run)
        return Path(path)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> MultiTaskModel:
        """Rebuild a model from a checkpoint directory (or a run directory's ``best``/``last``).

        Reads every format mtl_lib has written, the first DB_Linear layout included.
        """
        where = resolve_checkpoint(path)
        config = read_json(where / "config.json")
        legacy = read_legacy(where, config)
        if legacy is not None:
            config, state = legacy
        else:
            if not isinstance(config, dict) or config.get("format") != FORMAT:
                raise CheckpointError(f"{where / 'config.json'}: not an mtl_lib checkpoint config")
            state, _ = read_tensors(where / "model.safetensors")
        try:
            tasks = config["tasks"]
            if config.get("version") == 1:
                tasks = [upgrade_v1(t) if isinstance(t, dict) else t for t in tasks]
            specs = [TaskSpec(**t) for t in tasks]
            enc_cfg = config["encoder"]
        except (KeyError, TypeError, TaskFileError) as err:
            raise CheckpointError(f"{where / 'config.json'}: invalid model configuration ({err})") from None
        if not (where / "encoder" / "config.json").is_file():  # else transformers reads the path as a hub id
            raise CheckpointError(f"{where / 'encoder'}: missing (the encoder's config and tokenizer files); "
                                  "the checkpoint is incomplete")
        n_encoder = sum(v.numel() for k, v in state.items() if k.startswith("encoder."))
        check_encoder_config(where / "encoder" / "config.json", n_encoder)  # before allocating from it
        try:
            encoder = Encoder.from_config_dir(where / "encoder", **enc_cfg)
        except (OSError, ValueError, KeyError, TypeError, EncoderNotAvailable) as err:
            raise CheckpointError(f"{where / 'encoder'}: cannot rebuild the encoder ({err})") from None
        try:
            model = cls.from_tasks(encoder, specs)
        except TaskFileError as err:
            raise CheckpointError(f"{where / 'config.json'}: {err}") from None
        load_state_strict(model, state, str(where / "model.safetensors"))
        model.training_config = config.get("training") or {}
        model.run_info = config.get("run") or {}
        return model.eval()


def _type_name(task: str, name: Any) -> str:
    """The registered name of a task type given by name or alias (``NER`` -> ``tagging``)."""
    try:
        return task_type(TaskSpec(name=task, task_type=name)).name
    except (TaskFileError, TypeError):
        return str(name)


def _label(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x  # JSON gives hierarchical paths back as lists


def save_model(model: MultiTaskModel, path: str | Path, training: dict | None = None) -> Path:
    """``model.save_pretrained(path)``: weights + config, enough for evaluation and prediction."""
    return model.save_pretrained(path, training)


def load_model(path: str | Path) -> MultiTaskModel:
    """``MultiTaskModel.from_pretrained(path)``: a checkpoint or a run's ``best``/``last``."""
    return MultiTaskModel.from_pretrained(path)
