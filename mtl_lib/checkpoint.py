"""Safe, atomic checkpoints: a directory of safetensors and JSON, never a pickle.

Layout of a checkpoint directory::

    config.json          encoder name/family/pooling, tasks (with labels), training config
    encoder/             the encoder's architecture config and tokenizer files
    model.safetensors    encoder and head weights
    optimizer.safetensors  optimiser tensors; its param_groups as JSON in the file's metadata
    trainer_state.json   step, random-number state, data positions (for exact resume)
    history.json         the training History

A checkpoint is first written to a temporary sibling directory, flushed, then renamed into
place, so a crash while saving leaves the previous checkpoint intact. Loading reads only
JSON and safetensors: pickled files (``*.bin``, ``*.pt``, ``*.pkl``) are refused, because
unpickling a shared file can run arbitrary code. Taught in ``notebooks/08_save_load_predict.ipynb``.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "resolve_checkpoint",
           "atomic_directory", "optimizer_to_tensors", "optimizer_from_tensors"]

FORMAT = "mtl_lib.checkpoint"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt")


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, incomplete, tampered with or unsafe."""


@contextmanager
def atomic_directory(path: str | Path):
    """Yield a temporary directory that replaces ``path`` only once the block completes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        if path.exists():
            os.replace(path, old)  # between these two renames only `old` exists: see resolve
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_leftovers(path)


def _fsync_directory(path: Path) -> None:
    """Make the renames durable (a power cut, unlike a killed process, can lose them)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_leftovers(path: Path) -> None:
    """Once ``path`` is complete, delete the copies earlier crashes left next to it: every
    ``.old-*`` and the ``.tmp-*`` of processes that no longer run (a checkpoint's size each)."""
    for p in path.parent.glob(f".{path.name}.old-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in path.parent.glob(f".{path.name}.tmp-*"):
        pid = p.name.rpartition("-")[2]
        if pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _newest_old(parent: Path, name: str) -> Path | None:
    """The newest complete ``.name.old-*`` copy: a crash between the two renames of
    ``atomic_directory`` leaves only that one."""
    olds = [p for p in parent.glob(f".{name}.old-*") if (p / "config.json").is_file()]
    return max(olds, key=lambda p: (p / "config.json").stat().st_mtime_ns) if olds else None


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory for ``path``: itself, or a run directory's ``best``/``last``."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    for sub in ("best", "last"):
        if (path / sub / "config.json").is_file():
            return path / sub
        if path.is_dir() and (old := _newest_old(path, sub)) is not None:
            return old
    if path.name and (old := _newest_old(path.parent, path.name)) is not None:
        return old
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint directory not found")
    pickles = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise CheckpointError(
            f"{path}: refusing to load {pickles[0]}: pickled files can run code when loaded; "
            "mtl_lib checkpoints are safetensors + JSON"
        )
    raise CheckpointError(f"{path}: not a checkpoint (no config.json here or in best/ or last/)")


def _state_to_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied weights) or are views
    return {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    """Flatten an optimiser state into tensors ``state.<param>.<key>`` + JSON param_groups."""
    sd = optimizer.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"state.{idx}.{key}"] = torch.as_tensor(val).detach().cpu().clone()
    return tensors, json.dumps(sd["param_groups"])


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], groups_json: str) -> dict[str, Any]:
    """Inverse of ``optimizer_to_tensors``: a dict for ``optimizer.load_state_dict``."""
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


def save_checkpoint(path: str | Path, model, config: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None,
                    extra_tensors: dict[str, torch.Tensor] | None = None,
                    trainer_state: dict[str, Any] | None = None,
                    history: list[dict] | None = None) -> Path:
    """Write a checkpoint directory atomically (see module docstring for the layout)."""
    path = Path(path)
    with atomic_directory(path) as tmp:
        (tmp / "config.json").write_text(json.dumps({"format": FORMAT, **config}, indent=2))
        model.encoder.save_pretrained(tmp / "encoder")
        save_file(_state_to_tensors(model.state_dict()), str(tmp / "model.safetensors"))
        if optimizer is not None:
            tensors, groups = optimizer_to_tensors(optimizer)
            tensors.update({f"extra.{k}": v.detach().cpu().clone() for k, v in (extra_tensors or {}).items()})
            save_file(tensors, str(tmp / "optimizer.safetensors"), metadata={"param_groups": groups})
        if trainer_state is not None:
            (tmp / "trainer_state.json").write_text(json.dumps(trainer_state))
        if history is not None:
            (tmp / "history.json").write_text(json.dumps(history))
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None


def _pickles_instead(missing: Path, match: str = "") -> str:
    """Why ``missing`` is missing, when pickled files (e.g. pytorch_model.bin) sit in its place."""
    found = sorted(p.name for p in missing.parent.iterdir()
                   if p.suffix in PICKLE_SUFFIXES and match in p.name) if missing.parent.is_dir() else []
    if not found:
        return ""
    return (f"; refusing to load {', '.join(found)} instead: pickled files can run code when loaded, "
            "mtl_lib checkpoints are safetensors + JSON")


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing{_pickles_instead(path)}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: truncated or not a safetensors file ({err})") from None


def load_checkpoint(path: str | Path, with_optimizer: bool = False) -> dict[str, Any]:
    """Read a checkpoint (no model built): config, weights and, optionally, optimiser state.

    Returns
    -------
    dict
        ``config`` (dict), ``model_state`` ({name: Tensor}), ``dir`` (Path), and when asked
        ``optimizer_state`` (a dict for ``load_state_dict`` or None), ``extra_tensors``,
        ``trainer_state`` and ``history`` (None when absent).
    """
    ckpt = resolve_checkpoint(path)
    config = _read_json(ckpt / "config.json")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt / 'config.json'}: not an mtl_lib checkpoint config")
    model_state, _ = _read_tensors(ckpt / "model.safetensors")
    out: dict[str, Any] = {"config": config, "model_state": model_state, "dir": ckpt}
    if with_optimizer:
        opt_file = ckpt / "optimizer.safetensors"
        out["optimizer_state"], out["extra_tensors"] = None, {}
        if not opt_file.exists() and (why := _pickles_instead(opt_file, "optim")):
            raise CheckpointError(f"{opt_file}: missing{why}")
        if opt_file.exists():
            tensors, meta = _read_tensors(opt_file)
            extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
            rest = {k: v for k, v in tensors.items() if not k.startswith("extra.")}
            if "param_groups" not in meta:
                raise CheckpointError(f"{opt_file}: missing param_groups metadata")
            try:
                out["optimizer_state"] = optimizer_from_tensors(rest, meta["param_groups"])
            except ValueError as err:  # json.JSONDecodeError is a ValueError too
                raise CheckpointError(f"{opt_file}: not an optimiser state written by mtl_lib ({err})") from None
            out["extra_tensors"] = extra
        ts = ckpt / "trainer_state.json"
        out["trainer_state"] = _read_json(ts) if ts.exists() else None
    hist = ckpt / "history.json"
    out["history"] = _read_json(hist) if hist.exists() else None
    return out


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)`` with an error that names the checkpoint and tensor."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        what = f"missing tensor {missing[0]!r}" if missing else f"unexpected tensor {unexpected[0]!r}"
        raise CheckpointError(f"{where}: {what} ({len(missing)} missing, {len(unexpected)} unexpected)")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise CheckpointError(
                f"{where}: tensor {k!r} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
            )
    module.load_state_dict(state, strict=True)
