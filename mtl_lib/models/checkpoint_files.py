"""Which files are a checkpoint's, and which run a run directory's files belong to (no torch).

Kept free of torch so that the command line can check a run directory — is it in use, does it
hold another run or files of the user — in the first moments of a command, before the heavy
imports. :mod:`~mtl_lib.models.safe_files` (atomic writes, safe loading) and
:mod:`~mtl_lib.training.run_dir` (the lock, claiming a directory for a run) build on it.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["CHECKPOINT_FILES", "FORMAT", "RUN_MARKER", "CheckpointError", "check_one_run", "foreign_entries",
           "listing", "newest_old", "run_id_of"]

FORMAT = "mtl_lib.checkpoint"  # config.json's "format"
RUN_MARKER = "run.json"  # in a run directory: {"run_id": ...}, the run its files belong to
# What a checkpoint directory of ours may hold (the first DB_Linear layout's files too). Anything
# else is someone's file: a directory holding one is never replaced (foreign_entries).
CHECKPOINT_FILES = frozenset({
    "config.json", "encoder", "model.safetensors", "optimizer.safetensors", "trainer_state.json",
    "history.json", "encoder_state_dict.safetensors", "classifier_state_dict.safetensors",
    "optimizer_state_dict.safetensors", "optimizer_state_dict.json",
    ".DS_Store", "Thumbs.db", "desktop.ini"})  # what file browsers leave in a folder they show
# encoder/ holds the encoder's architecture config and tokenizer files: JSON files (whose names
# vary with the tokenizer) and these vocabularies
ENCODER_FILES = frozenset({"vocab.txt", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "spm.model",
                           "chat_template.jinja"})


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, incomplete, tampered with or unsafe."""


def _is_our_config(path: Path) -> bool:
    """``config.json`` of an mtl_lib checkpoint (any version, the first DB_Linear layout too)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(config, dict) and (config.get("format") == FORMAT or {"config", "hierarchy"} <= set(config))


def foreign_entries(path: str | Path) -> list[str]:
    """What in directory ``path`` is not a file of an mtl_lib checkpoint (empty: it is ours).

    Ours are the names in ``CHECKPOINT_FILES`` with ``config.json`` an mtl_lib config, and in
    ``encoder/`` the encoder's JSON configs and tokenizer vocabularies (no sub-folders). A
    folder is listed with a trailing ``/``.
    """
    path = Path(path)
    out = []
    for p in sorted(path.iterdir()):
        name = p.name + ("/" if p.is_dir() else "")
        if p.name not in CHECKPOINT_FILES or p.is_symlink() or p.is_dir() != (p.name == "encoder") \
                or (p.name == "config.json" and not _is_our_config(p)):
            out.append(name)
        elif p.name == "encoder":
            out += [f"encoder/{q.name}" + ("/" if q.is_dir() else "") for q in sorted(p.iterdir())
                    if q.is_dir() or q.is_symlink() or not (q.suffix == ".json" or q.name in ENCODER_FILES)]
    return out


def listing(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def newest_old(parent: Path, name: str) -> Path | None:
    """The newest complete ``.name.old-*`` copy: a crash between the two renames of
    ``atomic_directory`` leaves only that one."""
    olds = [p for p in parent.glob(f".{name}.old-*") if (p / "config.json").is_file()]
    return max(olds, key=lambda p: (p / "config.json").stat().st_mtime_ns) if olds else None


def run_id_of(path: str | Path) -> str | None:
    """The run a checkpoint directory (its ``config.json``) or a run marker belongs to; None
    for checkpoints written before run ids existed, or unreadable ones."""
    path = Path(path)
    try:
        data = json.loads((path / "config.json" if path.is_dir() else path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    run = data.get("run") if isinstance(data, dict) and path.is_dir() else data
    run_id = run.get("run_id") if isinstance(run, dict) else None
    return run_id if isinstance(run_id, str) else None


def check_one_run(run_dir: str | Path) -> None:
    """Refuse a run directory whose ``run.json``, ``best/`` and ``last/`` name different runs.

    An interrupted or concurrent write by an older version could leave ``best/`` of one run
    next to ``last/`` of another; evaluating such a directory must not silently pick the old
    model. Checkpoints without a run id (older versions) cannot be told apart and pass.
    """
    run_dir = Path(run_dir)
    ids: dict[str, str] = {}
    if (run_dir / RUN_MARKER).is_file():
        ids[RUN_MARKER] = run_id_of(run_dir / RUN_MARKER)
    for sub in ("best", "last"):
        ck = run_dir / sub if (run_dir / sub / "config.json").is_file() else newest_old(run_dir, sub)
        if ck is not None:
            ids[f"{sub}/"] = run_id_of(ck)
    runs: dict[str, list[str]] = {}
    for where, run_id in ids.items():
        if run_id is not None:
            runs.setdefault(run_id, []).append(where)
    if len(runs) > 1:
        parts = [f"{' and '.join(where)} from run {run_id}" for run_id, where in runs.items()]
        raise CheckpointError(f"{run_dir}: mixes two runs ({'; '.join(parts)}), left by an interrupted or "
                              f"concurrent write; name the checkpoint ({run_dir / 'best'} or "
                              f"{run_dir / 'last'}) or train again with --overwrite")


