"""Readers for line-based formats: JointBERT folders, label files, CoNLL, TREC.

Each reader validates everything it reads and raises :class:`DataFormatError` naming the
file, the line and what was expected; no other exception escapes for bad file content.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from .files import MAX_LABEL_BYTES, PICKLE_SUFFIXES, DataFormatError, read_text_lines
from .mtnlp import load_plain_pickle

__all__ = ["read_jointbert", "read_label_file", "read_conll", "read_trec"]

JOINTBERT_FILES = ("seq.in", "seq.out", "label")
#: Placeholder entries of the JointBERT label files; they are not real classes.
PLACEHOLDER_LABELS = ("PAD", "UNK")

LabelSource = Sequence[str] | str | os.PathLike | None


def read_label_file(path: str | os.PathLike, drop_placeholders: bool = False) -> list[str]:
    """Read a label inventory: one label per line, or a JSON list / ``{label: id}`` object.

    Parameters
    ----------
    path : str or Path
        Text file (one label per line) or JSON file, of at most ``MAX_LABEL_BYTES``; a
        byte-order mark at its start is not part of the first label. A pickle
        (``.pkl``/``.pickle``/``.joblib``, as multi-task-NLP writes them) is read only if it
        holds a plain dict or list (:func:`~mtl_lib.data.mtnlp.load_plain_pickle`): anything
        else is refused, because unpickling objects can run arbitrary code.
    drop_placeholders : bool
        Drop the JointBERT placeholder entries ``"PAD"`` and ``"UNK"`` (SNIPS'
        ``intent_label.txt`` and ``slot_label.txt`` start with them).

    Returns
    -------
    list of str
        Labels in file order (JSON objects: ordered by their id), so index = class id.
    """
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        labels = _labels_from_value(path, load_plain_pickle(path))
        return [label for label in labels if label not in PLACEHOLDER_LABELS] if drop_placeholders else labels
    # utf-8-sig: a byte-order mark (Notepad writes one) would otherwise become part of the first label
    lines = read_text_lines(path, encoding="utf-8-sig", max_bytes=MAX_LABEL_BYTES)
    if path.suffix.lower() == ".json" or lines[0].lstrip()[:1] in ("[", "{"):
        labels = _labels_from_json(path, "\n".join(lines))
    else:
        labels, seen = [], {}
        for lineno, raw in enumerate(lines, start=1):
            label = raw.strip()
            if not label:
                raise DataFormatError(path, lineno, "blank line inside a label list "
                                      "(class ids come from line order); remove it")
            if label in seen:
                raise DataFormatError(path, lineno, f"label {label!r} already listed "
                                      f"on line {seen[label]}")
            seen[label] = lineno
            labels.append(label)
    if drop_placeholders:
        labels = [label for label in labels if label not in PLACEHOLDER_LABELS]
    return labels


def _labels_from_json(path: Path, text: str) -> list[str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, f"malformed JSON: {err.msg} "
                              f"(column {err.colno})") from None
    except RecursionError:
        raise DataFormatError(path, None, "malformed JSON: nested too deeply") from None
    return _labels_from_value(path, data)


def _labels_from_value(path: Path, data) -> list[str]:
    """A label list from a parsed list of names or ``{name: id}`` map (JSON or a plain pickle)."""
    if isinstance(data, dict):
        if not all(isinstance(k, str) for k in data):
            raise DataFormatError(path, None, "the labels of a label map must be strings")
        # A {label: id} map: ids must be exactly 0..n-1 so that they can index logits.
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
            raise DataFormatError(path, None, "a label map must map labels to integer ids")
        if sorted(data.values()) != list(range(len(data))):  # (ids are ints: checked above)
            raise DataFormatError(path, None, "the ids of a label map must be 0..n-1, "
                                  "each used once")
        data = sorted(data, key=data.__getitem__)
    if not isinstance(data, list):
        raise DataFormatError(path, None, "expected a list of labels or a {label: id} "
                              f"object, found {type(data).__name__}")
    for i, label in enumerate(data):
        if not isinstance(label, str) or not label.strip():
            raise DataFormatError(path, None, f"item {i} of the label list is {str(label)[:40]!r}, "
                                  "expected a non-empty string")
    if len(set(data)) != len(data):
        dup = next(label for label in data if data.count(label) > 1)
        raise DataFormatError(path, None, f"label {dup!r} is listed twice")
    return list(data)


def _valid_labels(labels: LabelSource, argname: str) -> tuple[set[str], str] | None:
    """Resolve a label list or label file into (set, description of where it came from)."""
    if labels is None:
        return None
    if isinstance(labels, (str, os.PathLike)):
        return set(read_label_file(labels)), str(labels)
    return set(labels), f"the {argname} list passed to read_jointbert"


def _check_label(label, valid, path, lineno, what) -> None:
    if valid is None or label in valid[0]:
        return
    close = difflib.get_close_matches(label, valid[0], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DataFormatError(path, lineno, f"unknown {what} {label!r}; valid labels come from "
                          f"{valid[1]} ({len(valid[0])} labels){hint}")


def read_jointbert(
    folder: str | os.PathLike,
    intent_labels: LabelSource = None,
    slot_labels: LabelSource = None,
) -> list[dict]:
    """Read a JointBERT-format folder (``seq.in``, ``seq.out``, ``label``; line-aligned).

    Parameters
    ----------
    folder : str or Path
        A split folder such as ``data_root() / "snips" / "dev"``.
    intent_labels, slot_labels : list of str, or path of a label file, optional
        When given, every intent / slot tag must be one of them (else DataFormatError).

    Returns
    -------
    list of dict
        ``{"words": [str], "intent": str, "slots": [str]}`` per utterance,
        with ``len(slots) == len(words)``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(folder, None, "not a folder (a JointBERT split folder holds "
                              "seq.in, seq.out and label)")
    missing = [name for name in JOINTBERT_FILES if not (folder / name).is_file()]
    if missing:
        found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise DataFormatError(folder, None, f"JointBERT folder is missing {', '.join(missing)} "
                              f"(it needs seq.in, seq.out and label); found: {found}")
    paths = {name: folder / name for name in JOINTBERT_FILES}
    lines = {name: read_text_lines(p) for name, p in paths.items()}
    n = len(lines["seq.in"])
    for name in ("seq.out", "label"):
        if len(lines[name]) != n:
            raise DataFormatError(
                paths[name], min(n, len(lines[name])) + 1,
                f"{name} has {len(lines[name])} lines but seq.in has {n}; the three files "
                "must be line-aligned (one utterance per line)")
    intents = _valid_labels(intent_labels, "intent_labels")
    slots = _valid_labels(slot_labels, "slot_labels")

    examples = []
    for i, (text, tag_line, label_line) in enumerate(
            zip(lines["seq.in"], lines["seq.out"], lines["label"], strict=True), start=1):
        words, tags, label = text.split(), tag_line.split(), label_line.split()
        if not words:
            raise DataFormatError(paths["seq.in"], i, "empty utterance; every line needs "
                                  "at least one word")
        if len(tags) != len(words):
            raise DataFormatError(paths["seq.out"], i, f"expected {len(words)} tags (one per "
                                  f"token in seq.in), found {len(tags)}")
        if len(label) != 1:
            raise DataFormatError(paths["label"], i, f"expected one intent label, found "
                                  f"{len(label)} fields: {label_line.strip()!r}")
        _check_label(label[0], intents, paths["label"], i, "intent")
        for tag in tags:
            _check_label(tag, slots, paths["seq.out"], i, "slot tag")
        examples.append({"words": words, "intent": label[0], "slots": tags})
    return examples


def read_conll(path: str | os.PathLike, tag_column: int = -1) -> list[dict]:
    """Read a CoNLL column file (one token per line, blank line between sentences).

    ``-DOCSTART-`` lines are skipped. Every token line must have the same number of
    columns (a token containing a space would shift the columns).

    Parameters
    ----------
    path : str or Path
    tag_column : int
        Column holding the tag; ``-1`` (last) is the NER column of CoNLL-2003.

    Returns
    -------
    list of dict
        ``{"words": [str], "tags": [str]}`` per sentence.
    """
    return [s for _, s in conll_sentences(path, tag_column)]


def conll_sentences(path: str | os.PathLike, tag_column: int = -1) -> list[tuple[int, dict]]:
    """:func:`read_conll`'s sentences with the line number of each one's first token."""
    path = Path(path)
    sentences, words, tags = [], [], []
    n_columns = first_line = start = None
    for lineno, line in enumerate(read_text_lines(path), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                sentences.append((start, {"words": words, "tags": tags}))
                words, tags = [], []
            continue
        if not words:
            start = lineno
        if n_columns is None:
            n_columns, first_line = len(fields), lineno
            if n_columns < 2:
                raise DataFormatError(path, lineno, "expected at least 2 columns (token ... "
                                      f"tag), found 1: {line.strip()!r}")
            if not -n_columns <= tag_column < n_columns:
                raise DataFormatError(path, lineno, f"tag_column={tag_column} but the file "
                                      f"has {n_columns} columns")
        elif len(fields) != n_columns:
            raise DataFormatError(path, lineno, f"expected {n_columns} columns (like line "
                                  f"{first_line}), found {len(fields)}: {line.strip()!r}")
        words.append(fields[0])
        tags.append(fields[tag_column])
    if words:
        sentences.append((start, {"words": words, "tags": tags}))
    if not sentences:
        raise DataFormatError(path, None, "no sentences found (only blank or -DOCSTART- lines)")
    return sentences


def read_trec(path: str | os.PathLike) -> list[dict]:
    """Read the TREC question file: ``COARSE:fine question tokens`` per line.

    Returns
    -------
    list of dict
        ``{"text": str, "path": (coarse, fine)}`` per question; the path feeds
        :class:`~mtl_lib.tasks.hierarchy.PerLevelHierarchy`.
    """
    path = Path(path)
    examples = []
    for lineno, line in enumerate(read_text_lines(path), start=1):
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise DataFormatError(path, lineno, "expected 'COARSE:fine question ...', found "
                                  f"{line.strip()!r}")
        levels = parts[0].split(":")
        if len(levels) != 2 or not all(levels):
            raise DataFormatError(path, lineno, "expected a label like 'LOC:city' before "
                                  f"the question, found {parts[0]!r}")
        examples.append({"text": parts[1].strip(), "path": (levels[0], levels[1])})
    return examples
