"""Readers for tables with named columns: CSV, TSV, JSONL, and hierarchical CSV.

Also what a table *cell* may hold beyond plain text: a list written in the cell
(:func:`list_cell`: ``["O", "B-city"]`` as JSON, or ``['O', 'B-city']`` as multi-task-NLP's
Python lists), and text spread over several columns (:func:`join_text`).
"""

from __future__ import annotations

import ast
import csv
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .files import DataFormatError, decode, read_bytes

__all__ = ["join_text", "list_cell", "read_table", "read_hierarchical_table"]

_QUOTING = {"minimal": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}
_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_JSONL = (".jsonl", ".ndjson")


def _lines(path: Path, encoding: str) -> list[str]:
    """Physical lines (split on LF, CR of CRLF stripped), keeping their line ends for csv."""
    data = read_bytes(path)
    text = decode(path, data, encoding)
    if not text.strip():
        raise DataFormatError(path, None, "file is empty")
    return [ln[:-1] + "\n" if ln.endswith("\r") else ln + "\n" for ln in text.split("\n")]


def _csv_rows(path, lines, delimiter, quoting) -> Iterator[tuple[int, list[str]]]:
    """Yield (first line number, fields) per CSV record; blank lines are skipped."""
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)
    previous = 0  # csv counts physical lines read; a quoted field may span several
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            hint = ""
            if quoting == csv.QUOTE_MINIMAL:
                hint = " (a quote character inside a field? try quoting='none')"
            raise DataFormatError(path, reader.line_num, f"malformed CSV: {err}{hint}") from None
        start, previous = previous + 1, reader.line_num
        if fields and any(f.strip() for f in fields):
            yield start, fields


def _iter_table(path: Path, delimiter, quoting, encoding, fmt: str | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (line number, row dict) for a CSV/TSV file with a header, or a JSONL file.

    ``fmt`` (``"csv"``, ``"tsv"``, ``"jsonl"``) says how to parse whatever the extension; None
    decides by the extension.
    """
    if quoting not in _QUOTING:
        raise ValueError(f"quoting must be one of {sorted(_QUOTING)}, got {quoting!r}")
    lines = _lines(path, encoding)
    if fmt in ("csv", "tsv"):
        delimiter = delimiter or {"csv": ",", "tsv": "\t"}[fmt]
    if fmt == "jsonl" or (fmt is None and delimiter is None and path.suffix.lower() in _JSONL):
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataFormatError(path, lineno, f"malformed JSON line: {err.msg} "
                                      f"(column {err.colno})") from None
            except RecursionError:
                raise DataFormatError(path, lineno, "malformed JSON line: nested too "
                                      "deeply") from None
            if not isinstance(row, dict):
                raise DataFormatError(path, lineno, "expected a JSON object per line, "
                                      f"found {type(row).__name__}")
            yield lineno, row
        return
    if delimiter is None:
        # Unknown extension (MRPC's .txt): a tab in the header means TSV, else CSV.
        delimiter = _DELIMITERS.get(path.suffix.lower(), "\t" if "\t" in lines[0] else ",")
    rows = _csv_rows(path, lines, delimiter, _QUOTING[quoting])
    first = next(rows, None)
    if first is None:
        raise DataFormatError(path, None, "file is empty (no header row)")
    header = [h.strip() for h in first[1]]
    if header[0].startswith("\ufeff"):
        raise DataFormatError(path, 1, "the header starts with a byte-order mark; read the "
                              "file with encoding='utf-8-sig'")
    for h in header:
        if not h or header.count(h) > 1:
            raise DataFormatError(path, 1, f"header has an empty or repeated column name: "
                                  f"{header}")
    for lineno, fields in rows:
        if len(fields) != len(header):
            # Too few fields under minimal quoting usually means an unbalanced quote swallowed
            # the rest of the line (MRPC); say so.
            hint = ""
            if quoting == "minimal" and len(fields) < len(header):
                hint = " (a quote character inside a field? try quoting='none')"
            raise DataFormatError(path, lineno, f"expected {len(header)} fields "
                                  f"({', '.join(header)}), found {len(fields)}{hint}")
        yield lineno, dict(zip(header, fields, strict=True))


def read_rows(path, columns=None, delimiter=None, quoting="minimal", encoding="utf-8",
              fmt: str | None = None) -> list[tuple[int, dict]]:
    """(line number, row) of every row of a table that has all ``columns`` (as :func:`read_table`)."""
    path = Path(path)
    rows = list(_iter_table(path, delimiter, quoting, encoding, fmt))
    if not rows:
        raise DataFormatError(path, None, "no data rows (the file holds only a header or "
                              "blank lines)")
    for lineno, row in rows:
        missing = [c for c in columns or () if c not in row]
        if missing:
            raise DataFormatError(path, lineno, f"missing column(s) "
                                  f"{', '.join(map(repr, missing))}; columns found: "
                                  f"{', '.join(map(repr, row))}")
    return rows


def read_table(
    path: str | os.PathLike,
    columns: list[str] | None = None,
    delimiter: str | None = None,
    quoting: str = "minimal",
    encoding: str = "utf-8",
    format: str | None = None,  # noqa: A002 - the task-file key of the same name
) -> list[dict]:
    """Read a CSV/TSV file with a header row, or a JSONL file (one JSON object per line).

    Parameters
    ----------
    path : str or Path
        ``.csv`` (comma), ``.tsv`` (tab), ``.jsonl``/``.ndjson``; for other extensions a tab
        in the header line means TSV, otherwise CSV.
    columns : list of str, optional
        Columns every row must have (else DataFormatError naming the columns found).
    delimiter : str, optional
        Overrides the choice by extension (and forces CSV parsing).
    quoting : {"minimal", "none"}
        ``"none"`` reads ``"`` as an ordinary character (``csv.QUOTE_NONE``): needed for MRPC,
        whose sentences contain unbalanced quotes.
    encoding : str
        ``"utf-8"`` (strict) or ``"utf-8-sig"`` to drop a byte-order mark (MRPC has one).
    format : {"csv", "tsv", "jsonl"}, optional
        How to parse the file whatever its extension (``format="jsonl"`` on a ``.json`` file).

    Returns
    -------
    list of dict
        One dict per row, ``{column: value}``; CSV values are strings, JSONL values as parsed.
    """
    return [row for _, row in read_rows(path, columns, delimiter, quoting, encoding, format)]


def read_hierarchical_table(
    path: str | os.PathLike, text_columns: Sequence[str], level_columns: Sequence[str], **table: str | None
) -> list[dict]:
    """Read a table with text column(s) and one label column per hierarchy level.

    Parameters
    ----------
    path : str or Path
        Any file :func:`read_table` reads (e.g. amazon_hier's ``Title,Text,Cat1,Cat2,Cat3``).
    text_columns : sequence of str
        Joined with ``". "`` when more than one; empty pieces are left out.
    level_columns : sequence of str
        From the top level to the leaves. An empty value is an error: a path must be complete.
    **table
        ``delimiter``, ``quoting``, ``encoding``, ``format``: as for :func:`read_table`.

    Returns
    -------
    list of dict
        ``{"text": str, "path": tuple of str}`` per row.
    """
    if not text_columns or not level_columns:
        raise ValueError("text_columns and level_columns must each name at least one column")
    path = Path(path)
    options = {"delimiter": None, "quoting": "minimal", "encoding": "utf-8", "format": None}
    if set(table) - set(options):
        raise TypeError(f"unknown table option(s) {sorted(set(table) - set(options))}; known: {sorted(options)}")
    options |= table
    fmt = options.pop("format", None)
    rows = read_rows(path, [*text_columns, *level_columns], options["delimiter"], options["quoting"],
                     options["encoding"], fmt)
    examples = []
    for lineno, row in rows:
        try:
            text = join_text(row, text_columns)
        except ValueError as err:
            raise DataFormatError(path, lineno, str(err)) from None
        values = {}
        for col in level_columns:
            value = row[col]
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # JSONL may store numeric class ids
            if not isinstance(value, str):
                raise DataFormatError(path, lineno, f"column {col!r} should hold text, "
                                      f"found {type(value).__name__}")
            values[col] = value.strip()
        for col in level_columns:
            if not values[col]:
                raise DataFormatError(path, lineno, f"empty value in level column {col!r}; "
                                      "every row needs a complete path")
        examples.append({"text": text, "path": tuple(values[c] for c in level_columns)})
    return examples


def join_text(row: dict, columns: Sequence[str]) -> str:
    """The text of ``row`` from one or more ``columns``, joined with ``". "`` (empty ones left out).

    Raises
    ------
    ValueError
        A column holds something other than text (``null``, a number), or all are empty.
    """
    pieces = []
    for col in columns:
        value = row[col]
        if not isinstance(value, str):
            what = "null" if value is None else type(value).__name__
            raise ValueError(f"column {col!r} should hold text, found {what}")
        if value.strip():
            pieces.append(value.strip())
    if not pieces:
        raise ValueError(f"empty text (column{'s' if len(columns) > 1 else ''} {', '.join(columns)})")
    return ". ".join(pieces)


def list_cell(text: str) -> list[Any]:
    """The list written in a table cell: JSON (``["O", "B-x"]``) or a Python literal (``['O']``).

    ``ast.literal_eval`` reads literals only: it never calls or imports anything.

    Raises
    ------
    ValueError
        The cell starts like a list but is neither (it must never be read character by character).
    """
    text = text.strip()
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = None
    if not isinstance(value, list):
        raise ValueError(f"{text[:40]!r} starts like a list but is not a JSON or Python list")
    return value
