"""multi-task-NLP's files: its headerless TSV layouts and its pickled label maps.

The library hellohaptik/multi-task-NLP writes each task's data as a TSV file *without* a header,
in a layout fixed by the task type (``format: mtnlp``):

==============================  =====================================================
task type                       one line
==============================  =====================================================
``SingleSenClassification``     ``uid<TAB>label<TAB>text``
``SentencePairClassification``  ``uid<TAB>label<TAB>text_a<TAB>text_b``
``NER``                         ``uid<TAB>['O', 'B-x', ...]<TAB>['word', ...]`` (Python lists)
==============================  =====================================================

and its label maps as ``.joblib`` files: a pickled ``{label: id}`` dict. A pickle can run any
code while it loads, so :func:`load_plain_pickle` uses an unpickler that can build plain
containers and scalars only: it resolves no global (no class, no function) at all, so a pickle
that names one is refused before anything runs.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

from .files import MAX_LABEL_BYTES, DataFormatError, read_bytes, read_text_lines
from .tables import list_cell

__all__ = ["MTNLP_LAYOUTS", "load_plain_pickle", "read_mtnlp"]

#: The columns of each layout, by the task type's ``mtnlp_layout``.
MTNLP_LAYOUTS = {"single": ("uid", "label", "text"), "pair": ("uid", "label", "text_a", "text_b"),
                 "tagging": ("uid", "tags", "words")}


def read_mtnlp(path: str | os.PathLike, layout: str) -> list[tuple[int, dict]]:
    """Read a headerless multi-task-NLP TSV file.

    Parameters
    ----------
    path : str or Path
    layout : {"single", "pair", "tagging"}
        Which columns a line holds (see :data:`MTNLP_LAYOUTS`).

    Returns
    -------
    list of (int, dict)
        (line number, record) per line: ``{"uid", "words", "label"}`` and, for pairs,
        ``"words_b"``; a tagging record's ``label`` is its list of tags.
    """
    path = Path(path)
    columns = MTNLP_LAYOUTS[layout]
    out = []
    for lineno, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise DataFormatError(path, lineno, f"expected {len(columns)} tab-separated fields "
                                  f"({', '.join(columns)}: multi-task-NLP's layout for this task type), found "
                                  f"{len(fields)}; a TSV file with a header row needs format: tsv")
        if lineno == 1 and fields[1].strip().lower() in ("label", "labels", "tags"):
            raise DataFormatError(path, 1, "this looks like a header row, which multi-task-NLP's files do "
                                  "not have; remove it, or set format: tsv to read a table with a header")
        if layout == "tagging":
            tags, words = (_string_list(path, lineno, fields[i], columns[i]) for i in (1, 2))
            if not words:
                raise DataFormatError(path, lineno, "empty sentence (no words)")
            record = {"uid": fields[0], "words": words, "label": tags}
        else:
            record = {"uid": fields[0], "label": fields[1].strip(), "words": fields[2].split()}
            if layout == "pair":
                record["words_b"] = fields[3].split()
            if not record["words"]:
                raise DataFormatError(path, lineno, "empty text")
        out.append((lineno, record))
    return out


def _string_list(path: Path, lineno: int, cell: str, what: str) -> list[str]:
    try:
        value = list_cell(cell) if cell.strip().startswith("[") else None
    except ValueError:
        value = None
    if value is None or not all(isinstance(v, str) for v in value):
        raise DataFormatError(path, lineno, f"the {what} column must be a list of strings such as "
                              f"['O', 'B-city'], found {cell.strip()[:40]!r}")
    return value


class _NoGlobals(pickle.Unpickler):
    """Builds dicts, lists, tuples, strings and numbers; refuses every global (class or function)."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"it names {module}.{name}")


def load_plain_pickle(path: str | os.PathLike) -> Any:
    """A pickle's content, if it is made of plain containers and scalars only.

    Raises
    ------
    DataFormatError
        The pickle names a global (any object beyond plain data: refused, since building it
        could run code), is compressed or broken.
    """
    path = Path(path)
    data = read_bytes(path, MAX_LABEL_BYTES, pickles=True)
    try:
        return _NoGlobals(io.BytesIO(data)).load()
    except pickle.UnpicklingError as err:
        why = str(err) if str(err).startswith("it names") else f"is not a plain pickle ({err})"
    except Exception as err:  # noqa: BLE001 - a broken pickle raises any of a dozen types; none ran code
        why = f"is not a plain pickle ({type(err).__name__})"
    raise DataFormatError(path, None, f"a pickled label map may hold only a plain {{label: id}} dict or a list "
                          f"of labels; this one {why}: refused, since loading other objects can run arbitrary code "
                          "(a compressed joblib file: save it with compress=0, or as JSON)")
