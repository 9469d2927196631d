"""Where a task's data is, and reading one split of it into records.

A *record* is one example as read, before tokenisation: ``words`` (a list of str), optional
``words_b`` (the second sentence of a pair) and label fields named after the file's columns
(``intent``, ``slots``, ``tags``, ``path``, ``label``, ...). What a label field means is the
task type's business (:mod:`mtl_lib.task_types`); this module only finds files and reads them.

Dev is carved (seeded) from train when the data has no dev split, so every run of every task
file sees the same dev examples.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..tasks.spec import TaskFileError, TaskSpec
from .files import DataFormatError, data_root
from .readers import read_conll, read_jointbert, read_trec
from .tables import read_hierarchical_table, read_table

__all__ = ["DEV_SPLIT_SEED", "InputGroup", "read_from", "read_split", "resolve_path", "split_source"]

DEV_SPLIT_SEED = 1234  # fixed, so a carved dev split is the same whatever the training seed
# a file's extension says its format; anything else (.txt) is read in the task's own format
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                  ".label": "trec", ".conll": "conll"}


@dataclass
class InputGroup:
    """Tasks sharing one input stream: their records and encoded features, per split.

    ``records[split][i]`` and ``splits[split][i]`` are the same example, read and encoded.
    """

    name: str
    tasks: list[TaskSpec]
    splits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]


def resolve_path(path: str) -> Path:
    """An absolute path, an existing relative one, or one under the data root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() or p.exists() else data_root() / p


def split_source(spec: TaskSpec, split: str) -> Path | None:
    """The file or folder holding ``split`` for this task, or None when the data has none."""
    base = resolve_path(spec.path)
    if spec.splits:
        rel = spec.splits.get(split)
        return (base / rel if base.is_dir() else Path(rel)) if rel else None
    if spec.file_names:
        names = dict(zip(("train", "dev", "test"), spec.file_names))
        return base / names[split] if split in names else None
    if base.is_file():
        return base if split == "train" else None
    if spec.format == "jointbert":
        cand = base / split
    elif spec.format == "trec":
        cand = base / "train_5500.label" if split == "train" else base / f"{split}.label"
    else:
        ext = "txt" if spec.format == "conll" else spec.format
        cand = base / f"{split}.{ext}"
    return cand if cand.exists() else None


def read_from(spec: TaskSpec, path: str | Path, split: str) -> None:
    """Point ``spec``'s ``split`` at ``path`` — a file, a JointBERT split folder, or a folder of
    split files — instead of its own data (``mtl-lib evaluate --data``).

    The format is the task's own unless the file's extension names another one (a task
    trained on a TSV file can be scored on a CSV or JSONL file with the same columns).
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise DataFormatError(path, None, "not found (expected a data file or folder)")
    spec.file_names, spec.max_examples = [], None  # all of the user's data, not a quick-run sample
    if path.is_dir() and not (path / "seq.in").exists():
        spec.path, spec.splits = str(path), {}
        return
    if path.is_dir():
        spec.format = "jointbert"
    else:
        spec.format = SUFFIX_FORMATS.get(path.suffix.lower(), spec.format)
        if spec.format == "jointbert":
            raise DataFormatError(path, None, "a JointBERT task reads a folder holding seq.in, seq.out "
                                  "and label, not a file")
    spec.path, spec.splits = "", {split: str(path)}


def _read(spec: TaskSpec, src: Path, label_fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """Read one file or folder into records (tables: the text and every label column)."""
    fmt = spec.format
    if fmt == "jointbert":
        return read_jointbert(src)
    if fmt == "conll":
        return read_conll(src)
    if fmt == "trec":
        return [{"words": r["text"].split(), "path": r["path"]} for r in read_trec(src)]
    delim = {"tsv": "\t", "csv": ","}.get(fmt)
    if spec.level_columns:  # hierarchical table: the label is the path (a tuple, one name per level)
        rows = read_hierarchical_table(src, spec.text_column.split(","), spec.level_columns,
                                       delimiter=delim, quoting=spec.quoting, encoding=spec.encoding)
        return [{"words": r["text"].split(), spec.label_field: r["path"]} for r in rows]
    cols = [spec.text_column, *label_fields] + ([spec.text_pair_column] if spec.text_pair_column else [])
    rows = read_table(src, columns=cols, delimiter=delim, quoting=spec.quoting, encoding=spec.encoding)
    out = []
    for r in rows:
        rec = {"words": str(r[spec.text_column]).split()} | {f: r[f] for f in label_fields}
        if spec.text_pair_column:
            rec["words_b"] = str(r[spec.text_pair_column]).split()
        out.append(rec)
    return out


def read_split(spec: TaskSpec, split: str, label_fields: tuple[str, ...] = ()
               ) -> tuple[list[dict[str, Any]], Path] | None:
    """Records of one split, and the file they came from; None when the data has no such split.

    ``label_fields`` are the columns to read from a table (default: the spec's own); tasks
    that share one file each read their own column.

    Dev is carved from train when the data has none (and train then loses those examples).
    ``max_examples`` keeps a seeded subset, in file order, for quick runs.
    """
    label_fields = tuple(label_fields) or (spec.label_field,)
    src = split_source(spec, split)
    if src is not None:
        recs = _read(spec, src, label_fields)
    elif split == "dev":
        src = split_source(spec, "train")
        if src is None:
            raise TaskFileError(f"task {spec.name!r}: no train data found under {resolve_path(spec.path)}")
        _, recs = _carve(_read(spec, src, label_fields), spec.dev_fraction)
    else:
        return None
    if split == "train" and split_source(spec, "dev") is None:
        recs, _ = _carve(recs, spec.dev_fraction)
    if spec.max_examples is not None:
        n = spec.max_examples if split == "train" else max(1, spec.max_examples // 5)
        keep = sorted(random.Random(DEV_SPLIT_SEED).sample(range(len(recs)), min(n, len(recs))))
        recs = [recs[i] for i in keep]
    return recs, src


def _carve(recs: list, fraction: float) -> tuple[list, list]:
    """Seeded split of ``recs`` into (train, dev) with ``fraction`` of them in dev."""
    idx = list(range(len(recs)))
    random.Random(DEV_SPLIT_SEED).shuffle(idx)
    dev = set(idx[:max(1, round(len(recs) * fraction))])
    return [r for i, r in enumerate(recs) if i not in dev], [r for i, r in enumerate(recs) if i in dev]
