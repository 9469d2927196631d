"""Where a task's data is, and reading one split of it into records.

A *record* is one example as read, before tokenisation: ``words`` (a list of str), optional
``words_b`` (the second sentence of a pair) and label fields named after the file's columns
(``intent``, ``slots``, ``tags``, ``path``, ``label``, ...). What a label field means is the
task type's business (:mod:`mtl_lib.task_types`); this module only finds files and reads them.

Dev is carved (seeded) from train when the data has no dev split, so every run of every task
file sees the same dev examples.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..tasks.spec import TaskFileError, TaskSpec
from ..tasks.validation import short
from .files import DataFormatError, data_root
from .mtnlp import read_mtnlp
from .readers import conll_sentences, read_jointbert, read_trec
from .tables import join_text, read_hierarchical_table, read_rows

__all__ = ["DEV_SPLIT_SEED", "InputGroup", "detect_format", "path_candidates", "read_from", "read_split",
           "record_file", "records_from", "resolve_path", "split_source"]

DEV_SPLIT_SEED = 1234  # fixed, so a carved dev split is the same whatever the training seed
# a file's extension says its format; anything else (.txt) is read in the task's own format
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                  ".label": "trec", ".conll": "conll"}
#: The names a split's file or folder may have (Hugging Face calls dev "validation").
SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "validation"), "test": ("test",)}
_EXTENSIONS = {"conll": ("txt", "conll"), "csv": ("csv",), "tsv": ("tsv",), "mtnlp": ("tsv",),
               "jsonl": ("jsonl", "ndjson", "json")}
#: JointBERT keeps each field of a record in its own file.
JOINTBERT_FIELD_FILES = {"words": "seq.in", "slots": "seq.out", "intent": "label"}


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


# -- where the data is ---------------------------------------------------------------------------


def path_candidates(path: str, task_dir: str = "") -> list[Path]:
    """Where a path may point, in order: itself if absolute; else in ``task_dir`` (the task
    file's folder; the working directory for tasks built in Python), then under the data root."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return [p]
    first = Path(task_dir) / p if task_dir else p
    try:
        return [first, data_root() / p]
    except FileNotFoundError:  # no data root on this machine: only the first place exists
        return [first]


def _no_data_root() -> str:
    """Why the data root was not searched, when it was not (an empty string when it was)."""
    try:
        data_root()
    except FileNotFoundError as err:
        return f"; {err}"
    return ""


def resolve_path(path: str, task_dir: str = "") -> Path:
    """The first of :func:`path_candidates` that exists, else the first one."""
    candidates = path_candidates(path, task_dir)
    return next((c for c in candidates if c.exists()), candidates[0])


def _split_candidates(spec: TaskSpec, split: str) -> list[Path]:
    """Every file or folder that would hold ``split``, in the order they are looked for."""
    names = SPLIT_NAMES.get(split, (split,))
    base = resolve_path(spec.path, spec.task_dir)
    if spec.splits:
        rels = [spec.splits[n] for n in names if spec.splits.get(n)]
        if spec.path and base.is_dir():
            return [base / rel for rel in rels]
        return [c for rel in rels for c in path_candidates(rel, spec.task_dir)]
    if spec.file_names:  # multi-task-NLP: [train, dev, test]
        i = ("train", "dev", "test").index(split) if split in ("train", "dev", "test") else len(spec.file_names)
        if i >= len(spec.file_names):
            return []
        name = spec.file_names[i]
        return [base / name] if spec.path else path_candidates(name, spec.task_dir)
    if base.is_file() or base.suffix.lower() in SUFFIX_FORMATS:
        return [base] if split == "train" else []  # one file: train (dev is carved from it)
    if spec.format == "jointbert":
        return [base / n for n in names]
    if spec.format == "trec":
        return [base / "train_5500.label"] if split == "train" else [base / f"{n}.label" for n in names]
    return [base / f"{n}.{ext}" for n in names for ext in _EXTENSIONS.get(spec.format, (spec.format,))]


def split_source(spec: TaskSpec, split: str) -> Path | None:
    """The file or folder holding ``split`` for this task, or None when the data has none."""
    return next((c for c in _split_candidates(spec, split) if c.exists()), None)


def detect_format(spec: TaskSpec) -> str:
    """The format of a task's data when the task does not say (``format: auto``).

    A file goes by its extension; ``.tsv`` files listed in ``file_names`` (multi-task-NLP's
    key) are its headerless layout, ``mtnlp``. A folder goes by what it holds: ``train/seq.in``
    is JointBERT, ``train.txt`` CoNLL, ``train_5500.label`` TREC, ``train.csv`` (``.tsv``,
    ``.jsonl``) a table. Data that cannot be found is JointBERT, the historical default (a
    missing folder is reported when the data is read).

    Raises
    ------
    TaskFileError
        A file whose extension names no format.
    """
    first = (spec.splits.get("train") or next(iter(spec.splits.values()))) if spec.splits else \
        spec.file_names[0] if spec.file_names else None
    if first is not None:
        base = resolve_path(spec.path, spec.task_dir)
        src = base / first if spec.path and base.is_dir() else resolve_path(first, spec.task_dir)
    else:
        src = resolve_path(spec.path, spec.task_dir)
    if src.is_dir():
        found = [fmt for fmt, name in (("jointbert", "train/seq.in"), ("conll", "train.txt"),
                                       ("trec", "train_5500.label"), ("csv", "train.csv"),
                                       ("tsv", "train.tsv"), ("jsonl", "train.jsonl"))
                 if (src / name).exists()]
        return found[0] if found else "jointbert"
    suffix = src.suffix.lower()
    if suffix == ".tsv" and spec.file_names:
        return "mtnlp"
    if suffix in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[suffix]
    if not src.exists():
        return "jointbert"
    raise TaskFileError(f"task {spec.name!r}: cannot tell the format of {src} from its name; "
                        "add a format: key (csv, tsv, jsonl, conll, trec, jointbert or mtnlp)")


def record_file(src: Path, field: str) -> Path:
    """The file of ``src`` that holds a record's ``field`` (JointBERT keeps one file per field)."""
    return src / JOINTBERT_FIELD_FILES[field] if src.is_dir() and field in JOINTBERT_FIELD_FILES else src


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
        suffix = path.suffix.lower()
        if not (spec.format == "mtnlp" and suffix == ".tsv"):  # multi-task-NLP's files are .tsv too
            spec.format = SUFFIX_FORMATS.get(suffix, spec.format)
        if spec.format == "jointbert":
            raise DataFormatError(path, None, "a JointBERT task reads a folder holding seq.in, seq.out "
                                  "and label, not a file")
    spec.path, spec.splits = "", {split: str(path)}


# -- reading ------------------------------------------------------------------------------------


def _read(spec: TaskSpec, src: Path, label_fields: tuple[str, ...], layout: str | None) -> list[dict[str, Any]]:
    """Read one file or folder into records (tables: the text and every label column).

    Each record carries ``"_line"``, the line it starts on, for error messages.
    """
    fmt = spec.format
    if fmt == "jointbert":
        return [r | {"_line": i} for i, r in enumerate(read_jointbert(src), start=1)]
    if fmt == "conll":
        return [r | {"_line": line} for line, r in conll_sentences(src)]
    if fmt == "trec":
        return [{"words": r["text"].split(), "path": r["path"], "_line": i}
                for i, r in enumerate(read_trec(src), start=1)]
    if fmt == "mtnlp":
        if layout is None:
            raise TaskFileError(f"task {spec.name!r}: multi-task-NLP's files (format mtnlp) hold "
                                "classification, sentence-pair and NER tasks only")
        return [r | {"_line": line} for line, r in read_mtnlp(src, layout)]
    table = {"quoting": spec.quoting, "encoding": spec.encoding, "fmt": fmt}
    text_columns = [c.strip() for c in spec.text_column.split(",")]
    if spec.level_columns:  # hierarchical table: the label is the path (a tuple, one name per level)
        rows = read_hierarchical_table(src, text_columns, spec.level_columns, quoting=spec.quoting,
                                       encoding=spec.encoding, format=fmt)
        return [{"words": r["text"].split(), spec.label_field: r["path"]} for r in rows]
    pair_columns = [c.strip() for c in spec.text_pair_column.split(",")] if spec.text_pair_column else []
    rows = read_rows(src, [*text_columns, *label_fields, *pair_columns], **table)
    out = []
    for line, row in rows:
        try:
            out.append(table_record(row, text_columns, label_fields, pair_columns) | {"_line": line})
        except ValueError as err:
            raise DataFormatError(src, line, str(err)) from None
    return out


def table_record(row: Mapping, text_columns: list[str], label_fields: tuple[str, ...],
                 pair_columns: list[str] = ()) -> dict[str, Any]:
    """A record from a table row: words from the text column(s), label fields as written.

    A text column holds text (split on whitespace), or, alone, a list of words (Hugging
    Face's ``tokens``); several text columns are joined (``"Title,Text"``).
    """
    rec = {"words": _words(row, text_columns)} | {f: row[f] for f in label_fields}
    if pair_columns:
        rec["words_b"] = _words(row, pair_columns)
    return rec


def _words(row: Mapping, columns: list[str]) -> list[str]:
    value = row[columns[0]]
    if len(columns) == 1 and isinstance(value, (list, tuple)):  # already split into words
        if not value or not all(isinstance(w, str) and w.strip() and w == w.strip() for w in value):
            raise ValueError(f"column {columns[0]!r} should hold text or a list of words (non-empty "
                             f"strings without spaces), found {short(value, 60)}")
        return list(value)
    return join_text(row, columns).split()


def records_from(data: Any, spec: TaskSpec, label_fields: tuple[str, ...], split: str) -> list[dict[str, Any]]:
    """Records from data in memory: a list of dicts, a pandas ``DataFrame`` or a ``datasets.Dataset``.

    Rows are read like a table's (``text_column``, the label fields; see :func:`table_record`);
    rows that already are records (they have ``"words"``) are kept as they are. pandas and
    datasets are never imported: an object is recognised by what it offers.
    """
    where = Path(f"records[{split!r}]")
    if hasattr(data, "column_names") and hasattr(data, "to_list"):  # datasets.Dataset
        rows = data.to_list()
    elif hasattr(data, "to_dict") and hasattr(data, "columns") and hasattr(data, "iloc"):  # pandas.DataFrame
        rows = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
                for r in data.to_dict("records")]  # pandas writes a missing value as NaN
    elif isinstance(data, (list, tuple)):
        rows = list(data)
    else:
        raise TypeError(f"{where}: expected a list of dicts, a pandas DataFrame or a datasets.Dataset, "
                        f"got {type(data).__name__}")
    text_columns = [c.strip() for c in spec.text_column.split(",")]
    pair_columns = [c.strip() for c in spec.text_pair_column.split(",")] if spec.text_pair_column else []
    out = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise DataFormatError(where, i, f"expected a dict per example, found {type(row).__name__}")
        if "words" in row and spec.text_column not in row:
            out.append(dict(row))
            continue
        missing = [c for c in [*text_columns, *label_fields, *pair_columns] if c not in row]
        if missing:
            raise DataFormatError(where, i, f"missing key(s) {', '.join(map(repr, missing))}; keys found: "
                                  f"{', '.join(map(repr, row))}")
        try:
            out.append(table_record(row, text_columns, label_fields, pair_columns) | {"_line": i})
        except ValueError as err:
            raise DataFormatError(where, i, str(err)) from None
    return out


def read_split(spec: TaskSpec, split: str, label_fields: tuple[str, ...] = (), layout: str | None = "single"
               ) -> tuple[list[dict[str, Any]], Path] | None:
    """Records of one split, and the file they came from; None when the data has no such split.

    ``label_fields`` are the columns to read from a table (default: the spec's own); tasks
    that share one file each read their own column. ``layout`` is the task type's layout of
    multi-task-NLP files (:data:`~mtl_lib.data.mtnlp.MTNLP_LAYOUTS`).

    Dev is carved from train when the data has none (and train then loses those examples).
    ``max_examples`` keeps a seeded subset, in file order, for quick runs.
    """
    label_fields = tuple(label_fields) or (spec.label_field,)
    src = split_source(spec, split)
    if src is not None:
        recs = _read(spec, src, label_fields, layout)
    elif split in ("train", "dev"):
        src = split_source(spec, "train") if split == "dev" else None  # dev is carved from train
        if src is None:
            looked = _split_candidates(spec, split) + (_split_candidates(spec, "train") if split == "dev" else [])
            shown = ", ".join(map(str, looked[:6])) + (", ..." if len(looked) > 6 else "")
            need = "no train data found" if split == "train" else "no dev data, and no train data to carve it from"
            raise TaskFileError(f"task {spec.name!r}: {need}; looked for {shown or repr(spec.path)}"
                                f"{_no_data_root()}")
        _, recs = _carve(_read(spec, src, label_fields, layout), spec.dev_fraction)
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
