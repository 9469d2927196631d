"""Safe, atomic files for checkpoints: directories of safetensors and JSON, never a pickle.

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
from safetensors.torch import load_file

from .checkpoint_files import (
    FORMAT,
    RUN_MARKER,
    CheckpointError,
    check_one_run,
    foreign_entries,
    listing,
    newest_old,
    run_id_of,
)

__all__ = ["FORMAT", "MAX_JSON_DEPTH", "RUN_MARKER", "CheckpointError", "atomic_directory", "check_encoder_config",
           "check_one_run", "foreign_entries", "load_state_strict", "loads_json", "read_json", "read_tensors",
           "resolve_checkpoint", "run_id_of", "state_to_tensors"]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt")
MAX_JSON_DEPTH = 32  # our files nest 5 levels at most; a tampered one may nest 100,000


@contextmanager
def atomic_directory(path: str | Path):
    """Yield a temporary directory that replaces ``path`` only once the block completes.

    An existing ``path`` is replaced only if it holds nothing but checkpoint files of ours (see
    :func:`foreign_entries`); a folder holding anything else is refused, so a user's files are
    never deleted.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_dir() or path.is_symlink():
            raise CheckpointError(f"{path}: exists and is not a directory; refusing to replace it")
        foreign = foreign_entries(path)
        if foreign:
            raise CheckpointError(f"{path}: refusing to replace this folder: it holds {listing(foreign)}, "
                                  f"which {'is not a file' if len(foreign) == 1 else 'are not files'} of an "
                                  "mtl_lib checkpoint; save into a new or empty folder, or move them away")
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


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory for ``path``: itself, or a run directory's ``best``/``last``
    (which must belong to one run, :func:`check_one_run`)."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    if path.is_dir():
        check_one_run(path)
    for sub in ("best", "last"):
        if (path / sub / "config.json").is_file():
            return path / sub
        if path.is_dir() and (old := newest_old(path, sub)) is not None:
            return old
    if path.name and (old := newest_old(path.parent, path.name)) is not None:
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


def state_to_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied weights) or are views
    return {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}


def loads_json(text: str, where: str | Path) -> Any:
    """Parse JSON nested at most ``MAX_JSON_DEPTH`` deep; anything else is a CheckpointError.

    Deep nesting (``[[[[...]]]]``) would make the parser, or any code that walks the result
    recursively later, fail with a RecursionError instead of an error naming the file.
    """
    try:
        value = json.loads(text)
        deep = not _depth_ok(value)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{where}: not valid JSON ({err})") from None
    except RecursionError:
        deep = True
    if deep:
        raise CheckpointError(f"{where}: JSON nested more than {MAX_JSON_DEPTH} levels deep; "
                              "not a file mtl_lib wrote")
    return value


def _depth_ok(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                return False
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return True


def read_json(path: Path) -> Any:
    """A JSON file's content; a missing, broken or too deeply nested file is a CheckpointError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    return loads_json(text, path)


def pickles_instead(missing: Path, match: str = "") -> str:
    """Why ``missing`` is missing, when pickled files (e.g. pytorch_model.bin) sit in its place."""
    found = sorted(p.name for p in missing.parent.iterdir()
                   if p.suffix in PICKLE_SUFFIXES and match in p.name) if missing.parent.is_dir() else []
    if not found:
        return ""
    return (f"; refusing to load {', '.join(found)} instead: pickled files can run code when loaded, "
            "mtl_lib checkpoints are safetensors + JSON")


# Dimension keys of the Hugging Face configs of encoders (BERT-likes, DistilBERT, XLNet), with a
# bound well above every real encoder's value (XLM-R's vocabulary is 250k, ALBERT-xxlarge's
# feed-forward 16k, the deepest encoders 48 layers).
_DIM_LIMITS = {
    "vocab_size": 2_000_000, "type_vocab_size": 1_024, "max_position_embeddings": 65_536,
    "hidden_size": 16_384, "d_model": 16_384, "dim": 16_384, "embedding_size": 16_384,
    "intermediate_size": 65_536, "hidden_dim": 65_536, "d_inner": 65_536,
    "num_hidden_layers": 128, "n_layers": 128, "n_layer": 128,
    "num_attention_heads": 256, "n_heads": 256, "n_head": 256,
    "num_hidden_groups": 128, "inner_group_num": 128,
}
_MAY_BE_ZERO = {"type_vocab_size"}  # DeBERTa-v2 has no segment embeddings at all


def check_encoder_config(path: Path, n_weights: int | None = None) -> dict[str, Any]:
    """Check an encoder's ``config.json`` before anything is allocated from it.

    Building a model from a tampered config (``vocab_size`` 1e11, 150 layers) would allocate
    all of it before the weights are found not to fit. So each dimension must be an integer
    within ``_DIM_LIMITS``, and, when ``n_weights`` (the number of encoder weights the
    checkpoint holds) is given, the embedding table ``vocab x width`` plus the attention
    projections ``layers x 4 x hidden^2`` (a lower bound of any encoder's size) must stay
    under twice that. This guards the allocation only; smaller mismatches cost little to build
    and are then reported tensor by tensor, with their shapes.

    Returns
    -------
    dict
        The config, as read.
    """
    config = read_json(path)
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object (the encoder's configuration)")
    dims = {}
    for key, limit in _DIM_LIMITS.items():
        if key not in config or config[key] is None:
            continue
        value, low = config[key], 0 if key in _MAY_BE_ZERO else 1
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= limit:
            raise CheckpointError(f"{path}: {key} must be an integer in [{low}, {limit:,}], got {str(value)[:40]}; "
                                  "the encoder configuration was edited or is not an encoder's")
        dims[key] = value
    if n_weights:
        hidden = dims.get("hidden_size") or dims.get("d_model") or dims.get("dim") or 0
        width = dims.get("embedding_size") or hidden
        layers = dims.get("num_hidden_layers") or dims.get("n_layers") or dims.get("n_layer") or 0
        if "num_hidden_groups" in dims:  # ALBERT: the layers of a group share their weights
            layers = dims["num_hidden_groups"] * dims.get("inner_group_num", 1)
        need = dims.get("vocab_size", 0) * width + layers * 4 * hidden * hidden
        if need > 2 * n_weights:
            raise CheckpointError(f"{path}: the configuration needs at least {need:,} weights (vocab_size, "
                                  f"layers, hidden size), model.safetensors holds {n_weights:,} for the encoder; "
                                  "the encoder configuration was edited or belongs to another model")
    return config


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file's tensors and metadata; a missing or broken file is a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing{pickles_instead(path)}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: truncated or not a safetensors file ({err})") from None


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
        # training stops at a NaN before saving, so non-finite weights mean a broken or tampered file
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{where}: tensor {k!r} holds NaN or infinite values; refusing a model "
                                  "that would predict NaN")
    module.load_state_dict(state, strict=True)
