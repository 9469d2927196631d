"""From task specifications to encoded, model-ready examples.

Tasks that read the same inputs form an ``InputGroup``: its examples carry one label per
task (``labels[task]``), so a single encoder pass serves every head of the group. An example
may lack some task's label; the collator then fills -100 and that task's loss skips it.

Feature dictionaries (one per example, before collation)::

    {"input_ids": list[int], "attention_mask": list[int], ["token_type_ids": list[int]],
     "word_ids": list[int | None], "labels": {task: int | list[int] | list[float]}}
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import data as D
from .tasks import TaskFileError, TaskSpec

__all__ = ["InputGroup", "build_groups", "read_records", "resolve_labels", "encode_records"]

PLACEHOLDER_LABELS = {"PAD", "UNK"}  # JointBERT label files start with these non-classes
DEV_SPLIT_SEED = 1234  # fixed, so a carved dev split is the same whatever the training seed


@dataclass
class InputGroup:
    """Tasks sharing one input stream, with their encoded splits."""

    name: str
    tasks: list[TaskSpec]
    splits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]


def _resolve(path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or p.exists() else D.data_root() / p


def _split_source(spec: TaskSpec, split: str) -> Path | None:
    """The file or folder holding ``split`` for this task, or None when the data has none."""
    base = _resolve(spec.path)
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


def _read(spec: TaskSpec, src: Path) -> list[dict[str, Any]]:
    """Read one split into normalised records: ``words``, optional ``words_b`` and label fields."""
    fmt = spec.format
    if fmt == "jointbert":
        return D.read_jointbert(src)
    if fmt == "conll":
        return D.read_conll(src)
    if fmt == "trec":
        return [{"words": r["text"].split(), "path": " > ".join(r["path"])} for r in D.read_trec(src)]
    delim = {"tsv": "\t", "csv": ","}.get(fmt)
    if spec.level_columns:  # hierarchical table: label = full path "top > ... > leaf"
        rows = D.read_hierarchical_table(src, spec.text_column.split(","), spec.level_columns,
                                         delimiter=delim, quoting=spec.quoting, encoding=spec.encoding)
        return [{"words": r["text"].split(), spec.label_field: " > ".join(r["path"])} for r in rows]
    cols = [spec.text_column, spec.label_field] + ([spec.text_pair_column] if spec.text_pair_column else [])
    rows = D.read_table(src, columns=cols, delimiter=delim, quoting=spec.quoting, encoding=spec.encoding)
    out = []
    for r in rows:
        rec = {"words": str(r[spec.text_column]).split(), spec.label_field: r[spec.label_field]}
        if spec.text_pair_column:
            rec["words_b"] = str(r[spec.text_pair_column]).split()
        out.append(rec)
    return out


def read_records(group_tasks: list[TaskSpec], split: str) -> list[dict[str, Any]] | None:
    """Records of one split for an input group; dev is carved from train when absent."""
    spec = group_tasks[0]
    src = _split_source(spec, split)
    if src is not None:
        recs = _read(spec, src)
    elif split == "dev":
        train_src = _split_source(spec, "train")
        if train_src is None:
            raise TaskFileError(f"task {spec.name!r}: no train data found under {_resolve(spec.path)}")
        recs = _read(spec, train_src)
        _, recs = _carve(recs, spec.dev_fraction)
    else:
        return None
    if split == "train" and _split_source(spec, "dev") is None:
        recs, _ = _carve(recs, spec.dev_fraction)
    if spec.max_examples is not None:  # a seeded subset, in file order (for quick runs)
        n = spec.max_examples if split == "train" else max(1, spec.max_examples // 5)
        keep = sorted(random.Random(DEV_SPLIT_SEED).sample(range(len(recs)), min(n, len(recs))))
        recs = [recs[i] for i in keep]
    return recs


def _carve(recs: list, fraction: float) -> tuple[list, list]:
    """Seeded split of ``recs`` into (train, dev) with ``fraction`` of them in dev."""
    idx = list(range(len(recs)))
    random.Random(DEV_SPLIT_SEED).shuffle(idx)
    n_dev = max(1, round(len(recs) * fraction))
    dev = set(idx[:n_dev])
    return [r for i, r in enumerate(recs) if i not in dev], [r for i, r in enumerate(recs) if i in dev]


def _label_values(spec: TaskSpec, rec: dict) -> list[str]:
    value = rec.get(spec.label_field)
    if value is None:
        return []
    if spec.task_type == "tagging":
        return list(value)
    if spec.task_type == "multilabel":
        return [v for v in str(value).split(",") if v] if isinstance(value, str) else list(value)
    return [str(value)]


def resolve_labels(spec: TaskSpec, train_records: list[dict]) -> list[str]:
    """The task's label inventory: from its label file, else collected from the train split."""
    if spec.labels:
        labels = list(spec.labels)
    elif spec.label_map_or_file:
        labels = [x for x in D.read_label_file(_resolve(spec.label_map_or_file))
                  if x not in PLACEHOLDER_LABELS]
    else:
        seen = sorted({v for r in train_records for v in _label_values(spec, r)})
        if spec.task_type == "tagging" and "O" in seen:  # "O" first reads naturally in reports
            seen = ["O"] + [s for s in seen if s != "O"]
        labels = seen
    if spec.class_num is not None and spec.class_num != len(labels):
        raise TaskFileError(
            f"task {spec.name!r}: class_num is {spec.class_num} but the label inventory has "
            f"{len(labels)} labels"
        )
    if not labels:
        raise TaskFileError(f"task {spec.name!r}: no labels found")
    return labels


def encode_records(records: list[dict], tasks: list[TaskSpec], tokenizer, max_length: int = 128,
                   source: str = "<records>") -> list[dict[str, Any]]:
    """Tokenise records (pre-split words) and attach per-task label ids.

    Word-level tags go to each word's first sub-token; other positions get -100.
    """
    if not records:
        return []
    maps = {t.name: {lab: i for i, lab in enumerate(t.labels)} for t in tasks}
    words = [r["words"] for r in records]
    pairs = [r.get("words_b") for r in records]
    kw = dict(is_split_into_words=True, truncation=True, max_length=max_length)
    if any(p is not None for p in pairs):
        enc = tokenizer(words, [p or [] for p in pairs], **kw)
    else:
        enc = tokenizer(words, **kw)
    feats = []
    for i, rec in enumerate(records):
        f = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        f["word_ids"] = enc.word_ids(i)
        f["labels"] = {}
        for t in tasks:
            vals = _label_values(t, rec)
            if not vals:
                continue  # unlabelled for this task: masked out of its loss
            unknown = [v for v in vals if v not in maps[t.name]]
            if unknown:
                raise D.DataFormatError(
                    source, None,
                    f"example {i + 1}: unknown label {unknown[0]!r} for task {t.name!r} "
                    f"(expected one of {len(maps[t.name])} labels from the label file/train data)",
                )
            ids = [maps[t.name][v] for v in vals]
            if t.task_type == "tagging":
                first_seq = [w if s in (0, None) else None
                             for w, s in zip(f["word_ids"], _seq_ids(enc, i, len(f["word_ids"])))]
                f["labels"][t.name] = D.align_word_labels(first_seq, ids)
            elif t.task_type == "multilabel":
                row = [0.0] * len(t.labels)
                for j in ids:
                    row[j] = 1.0
                f["labels"][t.name] = row
            else:
                f["labels"][t.name] = ids[0]
        feats.append(f)
    return feats


def _seq_ids(enc, i: int, n: int) -> list[int | None]:
    try:
        return enc.sequence_ids(i)
    except (ValueError, AttributeError):
        return [0] * n


def build_groups(tasks: list[TaskSpec], tokenizer, max_length: int = 128,
                 splits: tuple[str, ...] = ("train", "dev")) -> list[InputGroup]:
    """Group tasks by input, read and encode their splits, fill in label inventories."""
    names = [t.name for t in tasks]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise TaskFileError(f"duplicated task name {sorted(dup)[0]!r}")
    by_key: dict[tuple, list[TaskSpec]] = {}
    for t in tasks:
        by_key.setdefault(t.input_key, []).append(t)
    groups = []
    for members in by_key.values():
        g = InputGroup("+".join(t.name for t in members), members)
        for split in splits:
            recs = read_records(members, split)
            if recs is not None:
                g.records[split] = recs
        for t in members:
            # a hierarchy's leaves come from every split read: a rare leaf seen only in dev is
            # still a class of the tree (the model just never saw it in training)
            known = [r for sp, rs in g.records.items() if sp == "train" or t.task_type == "hierarchical"
                     for r in rs]
            if "train" in g.records or not t.labels:
                t.labels = resolve_labels(t, known)
        for split, recs in g.records.items():
            src = str(_split_source(members[0], split) or _resolve(members[0].path))
            g.splits[split] = encode_records(recs, members, tokenizer, max_length, source=src)
        groups.append(g)
    return groups
