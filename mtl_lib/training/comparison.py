"""Runs side by side: did the change help? A table of every task metric of several runs.

A :class:`Run` is what a comparison needs of one training run: its History records, its
settings (encoder, tasks, training options, as ``config.json`` saves them) and the step of
its best checkpoint. :func:`read_run` reads one from a run directory (``mtl-lib train
--out``), :func:`run_from_trainer` from a trainer still in memory (the experiment panel).

:func:`comparison_table` gives, for each task metric and run, the value at the best
checkpoint and at the last evaluation, with the difference to the first run (the baseline);
:func:`describe_changes` names each run by what differs from the others
(``"weighting=uncertainty"``). Plain data, no pandas; the overlay figure is
:func:`mtl_lib.ui.compare.compare_runs`, which returns both. Taught in
``notebooks/06_sampling_and_loss_weighting.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models.safe_files import read_json

__all__ = ["Run", "comparison_table", "describe_changes", "format_comparison", "name_runs", "read_run",
           "run_from_trainer", "settings_of"]

# options that say where or how verbosely a run was made, not how it learned
_NOT_SETTINGS = {"output_dir", "progress", "log_every", "eval_batch_size", "save_every", "conflict_every"}
# task fields a comparison names (the data paths and label files are the task itself)
_TASK_SETTINGS = ("loss_type", "loss_weight", "dropout_prob", "tag_decoding", "class_weighting",
                  "max_examples")


@dataclass
class Run:
    """One training run, as a comparison reads it.

    Attributes
    ----------
    name : str
        How tables and legends call it (a directory name, or what changed).
    records : list of dict
        The History rows (``kind`` train / eval / conflict).
    settings : dict
        Flat ``{option: value}`` (:func:`settings_of`).
    primary : dict
        ``{task: metric}``: each task's first metric, what picks the best checkpoint.
    best_step : int or None
        Step of the best checkpoint (None: no evaluation).
    """

    name: str
    records: list[dict]
    settings: dict[str, Any] = field(default_factory=dict)
    primary: dict[str, str] = field(default_factory=dict)
    best_step: int | None = None
    path: Path | None = None

    def evals(self) -> dict[int, dict[tuple[str, str], float]]:
        """``{step: {(task, metric): value}}`` of the evaluations on dev."""
        out: dict[int, dict[tuple[str, str], float]] = {}
        for r in self.records:
            if r.get("kind") == "eval" and r.get("split", "dev") == "dev":
                out.setdefault(r["step"], {})[(r["task"], r["metric"])] = r["value"]
        return out


def settings_of(config: dict) -> dict[str, Any]:
    """A checkpoint config (``config.json``) as flat settings: ``encoder``, ``tasks``, the
    training options and ``<task>.<field>`` for the task fields that change how it learns."""
    tasks = config.get("tasks") or []
    out: dict[str, Any] = {"encoder": (config.get("encoder") or {}).get("name"),
                           "tasks": "+".join(t["name"] for t in tasks)}
    out |= {k: v for k, v in (config.get("training") or {}).items() if k not in _NOT_SETTINGS}
    for t in tasks:
        out |= {f"{t['name']}.{k}": t.get(k) for k in _TASK_SETTINGS if k in t}
    return out


def _best_step(records: list[dict], primary: dict[str, str]) -> int | None:
    """The evaluation step with the highest mean primary metric, the first on ties: the rule
    of the checkpoint callback (``callbacks.primary_score``)."""
    best, best_score = None, float("-inf")
    for step, values in sorted(Run("", records).evals().items()):
        scores = [values[(t, m)] for t, m in primary.items() if (t, m) in values]
        score = sum(scores) / len(scores) if scores else float("-inf")
        if best is None or score > best_score:
            best, best_score = step, score
    return best


def _run(name: str, records: list[dict], config: dict, best_step: int | None = None,
         path: Path | None = None) -> Run:
    primary = {t["name"]: t["metrics"][0] for t in config.get("tasks") or [] if t.get("metrics")}
    if best_step is None:
        best_step = _best_step(records, primary)
    return Run(name, records, settings_of(config), primary, best_step, path)


def read_run(path: str | Path, name: str | None = None) -> Run:
    """Read a run directory (``best/``, ``last/``, ``history.json``) or one of its checkpoints.

    The History comes from ``history.json`` (the run's, else ``last/``'s), the best step from
    ``best/config.json`` (``"run": {"step": ...}``), else from the History itself.

    Raises
    ------
    ValueError
        ``path`` holds neither a History nor a checkpoint config.
    """
    path = Path(path)
    run_dir = path.parent if path.name in ("best", "last") and (path / "config.json").is_file() else path
    histories = [p for p in (run_dir / "history.json", run_dir / "last" / "history.json",
                             path / "history.json") if p.is_file()]
    configs = [p for p in (run_dir / "best" / "config.json", run_dir / "last" / "config.json",
                           path / "config.json") if p.is_file()]
    if not histories or not configs:
        missing = "history.json" if not histories else "config.json"
        raise ValueError(f"{path}: not a run directory (no {missing} in it, in best/ or in last/)")
    records = read_json(histories[0])
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{histories[0]}: not a History (expected a JSON list of records)")
    config = read_json(configs[0])
    best = (read_json(run_dir / "best" / "config.json").get("run") or {}).get("step") \
        if (run_dir / "best" / "config.json").is_file() else None
    return _run(name or str(path), records, config, best, run_dir)


def run_from_trainer(trainer, name: str = "") -> Run:
    """A :class:`Run` of a trainer in memory (its History so far); best step by the rule of
    the checkpoint callback."""
    config = trainer.model.config(trainer.config.to_dict())
    return _run(name, list(trainer.history.records), config)


def describe_changes(runs: list[Run], most: int = 3) -> list[str]:
    """Name each run by the settings that differ between the runs: ``"weighting=uncertainty"``.

    A task field that differs, with the same value for every task of a run, is named once
    (``max_examples=500``); otherwise per task (``slots.tag_decoding=argmax``). Fields of a
    task a run does not have are left out; runs with equal settings are ``"same settings"``.
    """
    keys = list(dict.fromkeys(k for r in runs for k in r.settings))
    differ = [k for k in keys if len({repr(r.settings.get(k)) for r in runs}) > 1]
    labels = []
    for r in runs:
        parts: dict[str, str] = {}
        for k in (k for k in differ if k in r.settings):
            _, dot, short = k.partition(".")
            alike = [j for j in differ if dot and j.endswith("." + short) and j in r.settings]
            if len(alike) > 1 and len({repr(r.settings[j]) for j in alike}) == 1:
                parts.setdefault(short, f"{short}={_show(r.settings[k])}")
            else:
                parts[k] = f"{k}={_show(r.settings[k])}"
        items = list(parts.values())
        labels.append(", ".join(items[:most]) + (", ..." if len(items) > most else "") or "same settings")
    return labels


def name_runs(runs: list[Run]) -> list[Run]:
    """Name the unnamed runs by what changed (:func:`describe_changes`); repeated names get
    ``#2``, ``#3``... Returns the runs, renamed in place."""
    for r, label in zip(runs, describe_changes(runs)):
        if not r.name:
            r.name = label
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
        if seen[r.name] > 1:
            r.name = f"{r.name} #{seen[r.name]}"
    return runs


def _show(v: Any) -> str:
    return "none" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def comparison_table(runs: list[Run]) -> list[dict]:
    """Each task metric of each run, at the best checkpoint and at the last evaluation.

    Returns
    -------
    list of dict
        One row per (task, metric, run), grouped by task and metric, runs in order:
        ``task``, ``metric``, ``run``, ``best``, ``best_step``, ``last``, ``last_step`` (values in
        [0, 1], None when the run did not measure it) and ``best_diff``, ``last_diff``: the
        difference to the first run (None for the first run itself or a missing value).
    """
    evals = [r.evals() for r in runs]
    keys = list(dict.fromkeys(k for e in evals for values in e.values() for k in values))
    rows = []
    for task, metric in keys:
        base = None
        for i, (run, e) in enumerate(zip(runs, evals)):
            steps = [s for s in sorted(e) if (task, metric) in e[s]]
            last = steps[-1] if steps else None
            best = run.best_step if run.best_step in e and (task, metric) in e[run.best_step] else None
            row = {"task": task, "metric": metric, "run": run.name,
                   "best": e[best][(task, metric)] if best is not None else None, "best_step": best,
                   "last": e[last][(task, metric)] if last is not None else None, "last_step": last}
            if i == 0:
                base = row
            for k in ("best", "last"):
                row[f"{k}_diff"] = None if i == 0 or row[k] is None or base[k] is None else row[k] - base[k]
            rows.append(row)
    return rows


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _pp(v: float | None) -> str:
    return "" if v is None else f"{100 * v:+.2f}"


def format_comparison(rows: list[dict], runs: list[Run] | None = None) -> str:
    """The table as text (what ``mtl-lib compare`` prints); differences in percentage points."""
    lines = []
    if runs:
        width = max(len(r.name) for r in runs)
        for r, label in zip(runs, describe_changes(runs)):
            lines.append(f"{r.name:<{width}}  {label}")
        lines.append("")
    names = max([len(r["run"]) for r in rows] + [3])
    head = f"{'task':<16} {'metric':<26} {'run':<{names}} {'best':>8} {'vs 1st':>7} {'at step':>7} " \
           f"{'last':>8} {'vs 1st':>7}"
    lines += [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['task']:<16} {r['metric']:<26} {r['run']:<{names}} {_pct(r['best']):>8} "
                     f"{_pp(r['best_diff']):>7} {r['best_step'] if r['best_step'] is not None else '-':>7} "
                     f"{_pct(r['last']):>8} {_pp(r['last_diff']):>7}")
    return "\n".join(lines)
