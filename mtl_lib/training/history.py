"""``History``: the table of what happened during training, for plots and widgets.

Each row is a dict. Training rows: ``kind="train"``, ``step``, ``epoch``, ``task``, ``loss``,
``lr`` (the encoder's learning rate at that step), ``samples_per_s``, ``weight`` (the task's
loss weight). Evaluation rows: ``kind="eval"``, ``step``, ``epoch``, ``split``, ``task``,
``metric``, ``value`` (in [0, 1]). Task-conflict rows (with ``conflict_every``):
``kind="conflict"``, ``step``, ``epoch``, ``tasks`` (a pair), ``cosine`` (in [-1, 1]).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..models.safe_files import CheckpointError, read_json

__all__ = ["History"]


class History:
    """An append-only list of step records with small query helpers."""

    def __init__(self, records: list[dict] | None = None) -> None:
        self.records: list[dict] = list(records or [])

    def append(self, record: dict) -> None:
        self.records.append(record)

    def log_evaluation(self, step: int, epoch: float, split: str,
                       metrics: dict[str, dict[str, float]]) -> None:
        """Append one evaluation row per (task, metric)."""
        for task, scores in metrics.items():
            for metric, value in scores.items():
                self.records.append({"kind": "eval", "step": step, "epoch": epoch, "split": split,
                                     "task": task, "metric": metric, "value": value})

    def __len__(self) -> int:
        return len(self.records)

    @property
    def tasks(self) -> list[str]:
        """Tasks seen in training rows, in order of first appearance."""
        return list(dict.fromkeys(r["task"] for r in self.records if r["kind"] == "train"))

    def train_rows(self, task: str | None = None) -> list[dict]:
        return [r for r in self.records if r["kind"] == "train" and task in (None, r["task"])]

    def eval_rows(self, task: str | None = None, metric: str | None = None) -> list[dict]:
        return [r for r in self.records if r["kind"] == "eval"
                and task in (None, r["task"]) and metric in (None, r["metric"])]

    def conflict_rows(self) -> list[dict]:
        """The task-conflict rows (``training.conflict``), in order."""
        return [r for r in self.records if r["kind"] == "conflict"]

    def last_metrics(self) -> dict[str, dict[str, float]]:
        """The most recent evaluation as ``{task: {metric: value}}``."""
        out: dict[str, dict[str, float]] = {}
        rows = self.eval_rows()
        if rows:
            last = rows[-1]["step"]
            for r in rows:
                if r["step"] == last:
                    out.setdefault(r["task"], {})[r["metric"]] = r["value"]
        return out

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.records))

    @classmethod
    def from_json(cls, path: str | Path) -> History:
        """Read :meth:`to_json` output; anything but a list of objects is a CheckpointError."""
        records = read_json(Path(path))
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise CheckpointError(f"{path}: expected a JSON list of history records")
        return cls(records)

    def __repr__(self) -> str:
        return f"History({len(self.train_rows())} train rows, {len(self.eval_rows())} eval rows, tasks={self.tasks})"
