"""Where the data lives, the error every reader raises, and safe text reading.

Every reader in :mod:`mtl_lib.data` goes through :func:`read_text_lines`, so all of
them share one behaviour: strict UTF-8 (a bad byte is reported with its line and byte
offset), CRLF line ends tolerated, and any problem with the file reported as a
:class:`DataFormatError` that names the file and, when it makes sense, the line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..tasks.examples import source_checkout

__all__ = ["MAX_DATA_BYTES", "MAX_LABEL_BYTES", "DataFormatError", "data_root", "read_text_lines"]

#: The dataset folders the bundled tasks and examples read under the data root.
DATASETS = "snips/, conll2003/, mrpc/, trec/, amazon_hier/"

#: Extensions of pickle files. Unpickling can execute arbitrary code, so we refuse them
#: (label maps excepted: :func:`~mtl_lib.data.readers.read_label_file` reads a plain
#: ``{label: id}`` pickle with an unpickler that can build nothing else).
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
#: Largest file a reader reads whole: a data split (several times the biggest shared data set).
MAX_DATA_BYTES = 2_000_000_000
#: Largest label file: a million labels of 16 characters.
MAX_LABEL_BYTES = 16_000_000


class DataFormatError(ValueError):
    """A data file is malformed; says which file, which line and what was expected.

    Parameters
    ----------
    path : str or Path
        The offending file (or folder, for a JointBERT folder with missing files).
    line : int or None
        1-based line number, or None when the problem concerns the whole file.
    message : str
        What was expected and what was found.

    Examples
    --------
    >>> str(DataFormatError("snips/dev/seq.out", 17, "expected 9 tags, found 8"))
    'snips/dev/seq.out:17: expected 9 tags, found 8'
    """

    def __init__(self, path: str | os.PathLike, line: int | None, message: str) -> None:
        # Passing all three to ValueError keeps the exception picklable (DataLoader workers).
        super().__init__(path, line, message)
        self.path = Path(path)
        self.line = line
        self.message = message

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


def data_root() -> Path:
    """Return the folder holding the shared data sets.

    ``$MTL_LIB_DATA`` if set; otherwise, in a source checkout, ``<repo>/../shared/data``. An
    installed mtl_lib has no default: the datasets are not part of the package.

    Raises
    ------
    FileNotFoundError
        If there is no such folder; the message says how to get the data and point at it.
    """
    env = os.environ.get("MTL_LIB_DATA")
    repo = source_checkout()
    if env:
        root, origin = Path(env).expanduser(), "$MTL_LIB_DATA"
    elif repo is not None:
        root, origin = repo.parent / "shared" / "data", "the default location next to the repository"
    else:
        raise FileNotFoundError(
            "no data folder: mtl_lib is installed outside its repository and $MTL_LIB_DATA is not set; "
            f"put the datasets in a folder holding {DATASETS} and set MTL_LIB_DATA to it (where each "
            "dataset comes from and its layout: the installation page of the docs, 'The data')"
        )
    if not root.is_dir():
        raise FileNotFoundError(
            f"data folder {root} (from {origin}) does not exist; set the environment variable "
            f"MTL_LIB_DATA to the folder that holds {DATASETS} (where each dataset comes from: the "
            "installation page of the docs, 'The data')"
        )
    return root


def read_bytes(path: str | os.PathLike, max_bytes: int = MAX_DATA_BYTES, pickles: bool = False) -> bytes:
    """Read a whole regular file of at most ``max_bytes``; every failure is a DataFormatError.

    A device or a pipe (``/dev/zero``, ``/dev/stdin``) is refused before reading: it can be
    endless. ``pickles=True`` lets a pickle through (the caller unpickles it safely).
    """
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES and not pickles:
        raise DataFormatError(
            path, None, "pickle files are refused: loading a pickle can run arbitrary code; "
            "save the labels as a text file (one per line) or a JSON list instead"
        )
    try:
        st = path.stat()  # before opening: opening a pipe waits for a writer
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(st.st_mode):
            raise DataFormatError(path, None, "not a regular file (a device, pipe or socket); "
                                  "expected a data file")
        if st.st_size > max_bytes:
            raise DataFormatError(path, None, f"larger than {max_bytes:,} bytes, the most this reader reads")
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise DataFormatError(path, None, "file not found") from None
    except IsADirectoryError:
        raise DataFormatError(path, None, "is a folder, expected a file") from None
    except OSError as err:
        raise DataFormatError(path, None, f"cannot read file: {err.strerror or err}") from None
    if len(data) > max_bytes:  # it grew while we looked
        raise DataFormatError(path, None, f"larger than {max_bytes:,} bytes, the most this reader reads")
    return data


def decode(path: Path, data: bytes, encoding: str = "utf-8") -> str:
    """Decode ``data`` strictly; a bad byte is reported with its line and byte offset.

    ``encoding="utf-8-sig"`` strips a leading byte-order mark (MRPC has one).
    """
    start = 0
    if encoding.lower().replace("_", "-") == "utf-8-sig":
        # Strip the BOM ourselves so that error offsets stay relative to the raw file.
        encoding = "utf-8"
        if data.startswith(b"\xef\xbb\xbf"):
            start = 3
    try:
        return data[start:].decode(encoding, errors="strict")
    except UnicodeDecodeError as err:
        offset = start + err.start
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1)
        raise DataFormatError(
            path, line, f"not valid {encoding}: byte 0x{data[offset]:02x} at byte offset "
            f"{offset} of the file (byte {column} of this line); re-save the file as UTF-8"
        ) from None
    except LookupError:
        raise ValueError(f"unknown text encoding {encoding!r}") from None


def read_text_lines(path: str | os.PathLike, encoding: str = "utf-8", max_bytes: int = MAX_DATA_BYTES) -> list[str]:
    """Read a text file as a list of lines, without line ends.

    Lines are split on ``"\\n"`` only (so numbers match what an editor shows), a trailing
    ``"\\r"`` is stripped (CRLF files are fine) and trailing blank lines are dropped.

    Raises
    ------
    DataFormatError
        If the file is missing, unreadable, not valid text, or empty.
    """
    path = Path(path)
    data = read_bytes(path, max_bytes)
    if data.startswith(b"\x80") and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise DataFormatError(
            path, None, "this looks like a pickle file; pickles are refused because loading "
            "one can run arbitrary code"
        )
    text = decode(path, data, encoding)
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataFormatError(path, None, "file is empty")
    return lines
