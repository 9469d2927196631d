"""A run directory holds one run, is written by one process at a time, and keeps the user's files.

``output_dir`` (``mtl-lib train --out``) holds::

    run.json       {"run_id": ...}: the run that every file here belongs to
    best/ last/    checkpoints; each config.json names its run ("run": {"run_id": ...})
    history.json, loss.png, metrics.png, log.csv, tensorboard/    the run's records and plots
    .lock          while a process writes here (locked with flock: the lock dies with its process)

Three rules, so that ``evaluate`` and ``predict`` never pick up another run's model silently:

- **One writer.** :class:`RunLock` takes an exclusive ``flock`` on ``.lock``; a second process
  fails at once with a message naming the holder's pid. The kernel drops the lock when its
  process ends, however it ends, so it cannot go stale.
- **One run.** :func:`claim` (called when training starts) removes the files of *other* runs
  before the first step, so an interrupted replacement leaves no ``best/`` of the old run next
  to ``last/`` of the new one; :func:`mtl_lib.models.safe_files.check_one_run` refuses a
  directory that mixes runs anyway (left by an older version).
- **Nothing of the user's is deleted.** Only files of ours are removed or replaced: a
  ``best/`` or ``last/`` holding anything else is refused, naming what is there; other files in
  the directory are never touched.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from ..models.checkpoint_files import (  # no torch: the CLI checks a run directory before importing it
    RUN_MARKER,
    CheckpointError,
    check_one_run,
    foreign_entries,
    listing,
    run_id_of,
)

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = ["RUN_FILES", "RunDirectoryError", "RunLock", "check_run_directory", "check_writable", "claim",
           "new_run_id", "run_directory"]

CHECKPOINTS = ("best", "last")
RECORDS = ("history.json", "loss.png", "metrics.png", "log.csv", "tensorboard")  # belong to run.json's run
RUN_FILES = (*CHECKPOINTS, *RECORDS, RUN_MARKER)


class RunDirectoryError(CheckpointError):
    """A run directory is in use by another process, holds another run, or holds files not ours."""


def new_run_id() -> str:
    """A readable, unique run id: start time and 6 random hex digits (``20261125-142233-3f9a2c``)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


# -- one writer --------------------------------------------------------------------------------
_HELD: dict[str, list[int]] = {}  # real path of a locked directory -> [fd, times acquired]


class RunLock:
    """An exclusive lock on ``directory/.lock``, re-entrant within a process.

    The CLI takes it for the whole command and the trainer's checkpoint callback for ``fit``;
    within one process both share it (a count), and the file is removed when the last release
    comes.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.held = False

    def acquire(self) -> None:
        if self.held or fcntl is None:
            return
        key = os.path.realpath(self.directory)
        if key in _HELD:
            _HELD[key][1] += 1
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            _HELD[key] = [_lock_file(self.directory / ".lock", self.directory), 1]
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        key = os.path.realpath(self.directory)
        entry = _HELD.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[key]
            try:  # unlink while still holding the lock: see _lock_file for the other side
                os.unlink(self.directory / ".lock")
            except OSError:
                pass
            os.close(entry[0])


def _lock_file(path: Path, directory: Path) -> int:
    """Open and ``flock`` ``path``; the file descriptor. Busy: RunDirectoryError naming the holder."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: someone holds it
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunDirectoryError(
                f"{directory}: another process (pid {holder}) is writing to this run directory; wait for "
                "it to finish, or choose another output directory") from None
        # The holder we waited for unlinks the file before closing it; if we opened the old file
        # just before that, our lock is on a file no longer there: open the current one instead.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


# -- checks before anything is written ---------------------------------------------------------
def check_writable(out: str | Path) -> None:
    """Fail now, not after training, if ``out`` cannot be created or written.

    Probes the directory (or its nearest existing parent) by creating and removing a temporary
    file, which also catches read-only file systems and root-proof immutable folders.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"{out}: exists and is not a directory")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise RunDirectoryError(f"{out}: cannot be created, {probe} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".mtl-write-test-"):
            pass
    except OSError as err:
        what = "is not writable" if probe == out else f"cannot be created: {probe} is not writable"
        raise RunDirectoryError(f"{out}: {what} ({err.strerror or err})") from None


def check_run_directory(out: str | Path, resume: bool = False, overwrite: bool = False,
                        can_resume: bool = True) -> None:
    """The command line's check before any work: may a new run (or a resumed one) write to ``out``?

    Without ``resume`` or ``overwrite``, ``out`` must hold no run files; with ``resume`` it must
    hold a ``last/`` of one run; either way its ``best/`` and ``last/`` must hold only our files.
    """
    out = Path(out)
    found = [f"{n}/" if (out / n).is_dir() else n for n in RUN_FILES if (out / n).exists()]
    if not found:
        if resume:
            raise RunDirectoryError(f"{out}: no run to resume (no last/ checkpoint)")
        return
    for name in CHECKPOINTS:
        _check_ours(out / name)
    if resume:
        if not (out / "last").exists():
            raise RunDirectoryError(f"{out}: no last/ checkpoint to resume (it holds {', '.join(found)})")
        check_one_run(out)
    elif not overwrite:
        how = "pass --resume to continue it or --overwrite to replace it" if can_resume else \
            "pass --overwrite to replace it"
        raise RunDirectoryError(f"{out} already holds a run ({', '.join(found)}); {how}")


def _check_ours(path: Path) -> None:
    if not path.exists():
        return
    foreign = foreign_entries(path) if path.is_dir() and not path.is_symlink() else [path.name]
    if foreign:
        raise RunDirectoryError(f"{path}: holds {listing(foreign)}, which mtl_lib did not write; move "
                                f"{'it' if len(foreign) == 1 else 'them'} away (nothing was deleted)")


# -- one run -----------------------------------------------------------------------------------
def claim(out: str | Path, run_id: str, adopt_unmarked: bool = False) -> None:
    """Make ``out`` the directory of run ``run_id``: remove the files of any other run, then
    write ``run.json``. Call it holding the :class:`RunLock`.

    Files of this run are kept (a resumed run keeps its ``best/``). ``adopt_unmarked`` keeps
    files that name no run too (a run written by an older version, being resumed).
    Raises :class:`RunDirectoryError`, before removing anything, if a checkpoint folder holds
    files that are not ours.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def other(run: str | None) -> bool:
        return run != run_id and not (run is None and adopt_unmarked)

    for name in CHECKPOINTS:
        _check_ours(out / name)
    for name in RECORDS:
        p = out / name
        if p.is_dir() != (name == "tensorboard") and p.exists():
            raise RunDirectoryError(f"{p}: expected a {'folder' if name == 'tensorboard' else 'file'}; "
                                    "move it away (nothing was deleted)")
    if (out / "tensorboard").is_dir():
        odd = [p.name for p in (out / "tensorboard").iterdir() if not p.name.startswith("events.out.tfevents.")]
        if odd:
            raise RunDirectoryError(f"{out / 'tensorboard'}: holds {', '.join(odd[:5])}, which mtl_lib did not "
                                    "write; move them away (nothing was deleted)")
    stale = [out / n for n in CHECKPOINTS if (out / n).exists() and other(run_id_of(out / n))]
    # crash copies of checkpoints (see atomic_directory) would stand in for a missing best/ or last/
    stale += [p for n in CHECKPOINTS for p in out.glob(f".{n}.old-*") if other(run_id_of(p))]
    marked = run_id_of(out / RUN_MARKER) if (out / RUN_MARKER).exists() else None
    if other(marked):
        stale += [out / n for n in RECORDS if (out / n).exists()]
    for p in stale:
        _remove(p)
    for p in out.glob(".trash-*"):  # left by a process killed while removing (we hold the lock)
        shutil.rmtree(p, ignore_errors=True)
    tmp = out / f".{RUN_MARKER}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps({"run_id": run_id, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    os.replace(tmp, out / RUN_MARKER)


def _remove(path: Path) -> None:
    """Delete a file or folder of ours; a folder is renamed first, so that a crash midway leaves
    no half folder under its name."""
    if not path.is_dir():
        path.unlink()
        return
    trash = path.parent / f".trash-{path.name}-{os.getpid()}"
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


@contextmanager
def run_directory(out: str | Path, main: bool = True):
    """The command line's hold on ``out`` for a whole ``train`` or ``demo``: fail at once if it
    cannot be written or another process writes there (locking it if it exists), and yield
    the lock — call ``acquire()`` again once the directory is about to be written. Whether it
    may take this run is :func:`check_run_directory`'s business, once the inputs are read.

    ``main`` is False on the other processes of a ``torchrun`` launch: only rank 0 writes.
    """
    lock = RunLock(out)
    if main:
        check_writable(out)
        if Path(out).is_dir():
            lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
