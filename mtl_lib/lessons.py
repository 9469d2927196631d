"""The runs the lessons train, described once and trained once: ``lesson_run`` and ``cached_run``.

Training MiniLM for a lesson takes minutes, and a class should not wait for it. Every run a
lesson needs is described in one file, ``notebooks/lesson_runs.yml``, which both the lessons
and ``make lessons`` read. ``make lessons`` trains each run once into a cache directory; a
lesson then calls :func:`cached_run`, which loads the trained model and its history when the
run is in the cache, and trains it (and stores it) when it is not::

    run = lesson_run("snips_joint", fast=FAST)         # the settings, from lesson_runs.yml
    model, history = cached_run(run, callbacks=[board])

A stored run keeps the settings it was trained with; when the file's settings (or the task
file's) change, it no longer matches and is trained again. Fast mode (``MTL_LIB_FAST=1``: a
tiny random encoder, few steps) has its own settings (each run's ``fast:`` entry) and its own
part of the cache. The cache (``cache:`` in the file, relative to it, or
``$MTL_LIB_LESSON_CACHE``) holds, per run::

    <cache>/<fast|full>/<run>/run.json      the settings, the date and how long training took
                              model/        the trained model (save_model, or DB_Linear.save)
                              history.json  its History (for DB_Linear: one row per epoch)
                              checkpoints/  the trainer's best/ and last/ (``checkpoints: true``)

Only a run trained to its last step is stored: one stopped early (Ctrl-C) is not mistaken
for the real thing. Used by the lesson notebooks; ``notebooks/lessons.py`` fills the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .data.sources import read_split
from .db_linear import DB_Linear
from .experiment import build_experiment, load_task_file
from .models.encoders import DEFAULT_ENCODER, Encoder, load_encoder
from .models.multitask import load_model, save_model
from .models.tiny import tiny_encoder
from .tasks.hierarchy import PerLevelHierarchy
from .tasks.spec import TaskFileError, TaskSpec
from .tasks.task_file import read_yaml
from .training.config import TrainerConfig
from .training.history import History
from .training.trainer import Trainer

__all__ = ["CACHE_ENV", "FAST_NOTE", "RUNS_FILE", "LessonRun", "cached_run", "fast_mode_note",
           "lesson_run", "lesson_runs"]

RUNS_FILE = "lesson_runs.yml"  # the lessons run in notebooks/, next to it
CACHE_ENV = "MTL_LIB_LESSON_CACHE"
TINY_HIDDEN = 128  # fast mode's tiny encoders: ~1 M parameters, vocabulary trained on the run's data
FAST_NOTE = ("FAST MODE: a tiny random encoder trained for a few steps, so these numbers are "
             "meaningless. Run the lesson without MTL_LIB_FAST=1 for real results.")
_RUN_KEYS = ("kind", "task_file", "tasks", "encoder", "max_examples", "seed", "seeds", "training",
             "db_linear", "checkpoints", "fast")


def fast_mode_note(fast: bool) -> None:
    """Print, in fast mode only, one line saying that the numbers below are meaningless."""
    if fast:
        print(FAST_NOTE)


@dataclass
class LessonRun:
    """One run a lesson needs, with the settings of one mode (fast or full).

    Attributes
    ----------
    name : str
    task_file : Path
        The task file whose tasks (all, or those named in ``tasks``) are trained.
    kind : {"trainer", "db_linear"}
        ``Trainer`` on a ``MultiTaskModel``, or the ``DB_Linear`` preset (one hierarchical task).
    training : dict
        ``TrainerConfig`` options over the task file's ``training:`` section (kind trainer).
    db_linear : dict
        The ``DB_Linear`` config (kind db_linear).
    directory : Path
        Where the cache keeps this run.
    """

    name: str
    task_file: Path
    directory: Path
    kind: str = "trainer"
    tasks: list[str] | None = None
    encoder: str = DEFAULT_ENCODER
    max_examples: int | dict[str, int] | None = None  # training examples, per task if a mapping
    seed: int = 0
    training: dict[str, Any] = field(default_factory=dict)
    db_linear: dict[str, Any] = field(default_factory=dict)
    checkpoints: bool = False
    fast: bool = False

    def task_specs(self, subset: bool = True) -> list[TaskSpec]:
        """The run's tasks from its task file; ``subset=False`` ignores ``max_examples``."""
        specs = load_task_file(self.task_file).tasks
        if self.tasks is not None:
            missing = sorted(set(self.tasks) - {s.name for s in specs})
            if missing:
                raise TaskFileError(f"{self.task_file}: no task {missing[0]!r} (run {self.name!r})")
            specs = [s for s in specs if s.name in self.tasks]
        for s in specs:
            n = self.max_examples.get(s.name) if isinstance(self.max_examples, dict) else self.max_examples
            s.max_examples = n if subset else None
        return specs

    def config(self) -> TrainerConfig:
        """Trainer options: defaults < the task file's ``training:`` < the run's ``training``."""
        options = {"progress": False, **load_task_file(self.task_file).training, **self.training}
        return TrainerConfig.from_dict({**options, "seed": self.seed})

    def make_encoder(self) -> Encoder:
        """A fresh encoder: pretrained weights, or a tiny random one whose vocabulary is
        trained on the run's training texts."""
        if not self.encoder.lower().startswith("tiny-"):
            return load_encoder(self.encoder)
        texts = [" ".join(r["words"] + r.get("words_b", []))
                 for s in self.task_specs() for r in read_split(s, "train")[0]]
        return tiny_encoder(self.encoder[5:].upper(), list(dict.fromkeys(texts)), hidden_size=TINY_HIDDEN)

    def build(self):
        """``(model, groups)`` ready to train, from ``build_experiment`` (kind trainer)."""
        return build_experiment(self.task_specs(), encoder=self.make_encoder(), seed=self.seed)

    def hierarchy_data(self) -> tuple[list[dict], list[dict], PerLevelHierarchy]:
        """``(train, dev, hierarchy)`` of a one-task hierarchical run: records ``{"text", "path"}``;
        the hierarchy knows every path of the full data, so a leaf seen only in dev is a class."""
        (spec,), (whole,) = self.task_specs(), self.task_specs(subset=False)
        train, dev = ([{"text": " ".join(r["words"]), "path": tuple(r["path"])}
                       for r in read_split(spec, split)[0]] for split in ("train", "dev"))
        paths = [r["path"] for split in ("train", "dev") for r in read_split(whole, split)[0]]
        return train, dev, PerLevelHierarchy.from_paths(paths)

    def settings(self) -> dict[str, Any]:
        """Everything the trained result depends on, as JSON: compared with a stored run's."""
        out = {"kind": self.kind, "encoder": self.encoder, "seed": self.seed, "fast": self.fast,
               "tasks": [s.to_dict() for s in self.task_specs()], "checkpoints": self.checkpoints}
        if self.kind == "trainer":
            out["training"] = {k: v for k, v in self.config().to_dict().items() if k != "progress"}
        else:
            out["db_linear"] = dict(self.db_linear)
        return json.loads(json.dumps(out, default=str))


# --------------------------------------------------------------------------- the two kinds
def _train_trainer(run: LessonRun, callbacks: list, out: Path) -> tuple[Any, History, bool]:
    model, groups = run.build()
    config = run.config().replace(output_dir=str(out / "checkpoints") if run.checkpoints else None)
    trainer = Trainer(model, groups, config, callbacks=callbacks)
    history = trainer.fit()
    save_model(model, out / "model", training=config.to_dict())
    history.to_json(out / "history.json")
    complete = trainer.step >= trainer.total_steps or bool(config.early_stopping_patience)
    return model, history, complete


def _load_trainer(where: Path) -> tuple[Any, History]:
    return load_model(where / "model"), History.from_json(where / "history.json")


def _train_db_linear(run: LessonRun, callbacks: list, out: Path) -> tuple[Any, list[dict], bool]:
    train, dev, hierarchy = run.hierarchy_data()
    model = DB_Linear(hierarchy, {**run.db_linear, "seed": run.seed}, encoder=run.make_encoder())
    rows = model.fit(train, dev, progress=False)
    model.save(out / "model")
    (out / "history.json").write_text(json.dumps(rows))
    return model, rows, model.trainer.step >= model.trainer.total_steps


def _load_db_linear(where: Path) -> tuple[Any, list[dict]]:
    return DB_Linear.from_checkpoint(where / "model"), json.loads((where / "history.json").read_text())


KINDS = {"trainer": (_train_trainer, _load_trainer), "db_linear": (_train_db_linear, _load_db_linear)}


# --------------------------------------------------------------------------- the cache
def cached_run(run: str | LessonRun, callbacks: list | None = None, fast: bool | None = None,
               runs_file: str | Path = RUNS_FILE):
    """``(model, history)`` of a lesson run: loaded from the cache, or trained and then stored.

    Parameters
    ----------
    run : str or LessonRun
        A run of ``runs_file`` (by name), or one from :func:`lesson_run`.
    callbacks : list, optional
        Given to the trainer when the run is trained here. A loaded run was not trained here,
        so nothing fires; instead each callback with a ``replay(history)`` method (such as
        :class:`~mtl_lib.ui.live_dashboard.LiveDashboard`) is shown the stored history.
    fast : bool, optional
        Fast-mode settings; default: ``$MTL_LIB_FAST == "1"``. Ignored for a ``LessonRun``.

    Returns
    -------
    (MultiTaskModel, History) for kind trainer; (DB_Linear, list of per-epoch dicts) for db_linear.
    In both cases the model is the one at the end of training.
    """
    if isinstance(run, str):
        run = lesson_run(run, fast, runs_file)
    train, load = KINDS[run.kind]
    where, settings = run.directory, run.settings()
    stored = _read_info(where)
    if stored is not None and stored.get("settings") == settings:
        model, history = load(where)
        print(f"{run.name}: loaded from {where} (trained {stored['trained'][:10]} in "
              f"{stored['seconds'] / 60:.1f} min; `make lessons` trains it again after a change)")
        if isinstance(history, History):  # a dashboard shows the stored run instead of nothing
            for cb in callbacks or []:
                if callable(getattr(cb, "replay", None)):
                    cb.replay(history)
        return model, history
    if stored is not None:
        changed = sorted(k for k in settings if settings[k] != stored.get("settings", {}).get(k))
        print(f"{run.name}: the stored run was trained with other settings ({', '.join(changed)}): "
              "training it again")
    else:
        print(f"{run.name}: not in the cache ({where}): training it now")
    # each process trains into its own directory: two lessons may train one run at once
    partial = where.with_name(f"{where.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    start = time.perf_counter()
    model, history, complete = train(run, list(callbacks or []), partial)
    if not complete:
        shutil.rmtree(partial, ignore_errors=True)
        print(f"{run.name}: training stopped before its last step: not stored in the cache")
        return model, history
    info = {"run": run.name, "settings": settings,
            "seconds": round(time.perf_counter() - start, 1),
            "trained": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (partial / "run.json").write_text(json.dumps(info, indent=2))
    if (_read_info(where) or {}).get("settings") == settings:  # stored meanwhile by another process
        shutil.rmtree(partial, ignore_errors=True)
    else:
        shutil.rmtree(where, ignore_errors=True)
        partial.rename(where)  # a run is in the cache whole or not at all
    return model, history


def _read_info(where: Path) -> dict | None:
    try:
        return json.loads((where / "run.json").read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- the runs file
def lesson_runs(runs_file: str | Path = RUNS_FILE, fast: bool | None = None) -> dict[str, LessonRun]:
    """Every run of ``runs_file`` with the settings of one mode, by name.

    The file has ``cache:`` (a directory, relative to the file), ``defaults:`` (merged into
    every run) and ``runs:``. A run with ``seeds: [1, 2, 3]`` stands for three runs,
    ``NAME-seed1`` ... ``NAME-seed3``. ``fast: {...}`` holds what changes in fast mode.

    Raises
    ------
    TaskFileError
        Naming the file and the run, for a missing file, bad YAML, an unknown key or a bad
        training option.
    """
    path = Path(runs_file)
    fast = os.environ.get("MTL_LIB_FAST") == "1" if fast is None else fast
    raw = read_yaml(path, "lesson runs file")
    if not isinstance(raw, dict) or not isinstance(raw.get("runs"), dict):
        raise TaskFileError(f"{path}: expected a mapping with a 'runs:' section")
    unknown = sorted(set(raw) - {"cache", "defaults", "runs"})
    if unknown:
        raise TaskFileError(f"{path}: unknown key {unknown[0]!r} (known: cache, defaults, runs)")
    cache = Path(os.environ.get(CACHE_ENV) or path.parent / raw.get("cache", "cache"))
    runs: dict[str, LessonRun] = {}
    for name, entry in raw["runs"].items():
        where = f"{path}: run {name!r}"
        entry = _merge(raw.get("defaults") or {}, entry or {})
        unknown = sorted(set(entry) - set(_RUN_KEYS))
        if unknown:
            raise TaskFileError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_RUN_KEYS)})")
        fast_part = entry.pop("fast", None) or {}
        if fast:
            entry = _merge(entry, fast_part)
        if entry.get("kind", "trainer") not in KINDS:
            raise TaskFileError(f"{where}: kind must be one of {', '.join(KINDS)}, got {entry['kind']!r}")
        if "task_file" not in entry:
            raise TaskFileError(f"{where}: missing key 'task_file'")
        try:
            TrainerConfig.from_dict(entry.get("training") or {})
        except ValueError as err:
            raise TaskFileError(f"{where}: {err}") from None
        seeds, seed = entry.pop("seeds", None), entry.pop("seed", 0)
        task_file = path.parent / entry.pop("task_file")
        for s in seeds or [seed]:
            full_name = f"{name}-seed{s}" if seeds else name
            runs[full_name] = LessonRun(name=full_name, task_file=task_file, seed=s, fast=fast,
                                        directory=cache / ("fast" if fast else "full") / full_name,
                                        **entry)
    return runs


def lesson_run(name: str, fast: bool | None = None, runs_file: str | Path = RUNS_FILE) -> LessonRun:
    """One run of ``runs_file`` (see :func:`lesson_runs`); an unknown name lists the known ones."""
    runs = lesson_runs(runs_file, fast)
    if name not in runs:
        raise KeyError(f"{runs_file}: no run {name!r} (known: {', '.join(runs)})")
    return runs[name]


def _merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``; mappings under the same key are merged, not replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out
