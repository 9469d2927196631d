"""Loggers: callbacks that send the History's rows elsewhere as training goes (``report_to``).

``TrainerConfig(report_to=["csv", "tensorboard"], output_dir=OUT)`` adds them:

``csv``
    ``OUT/log.csv``: one line per History row (train rows every ``log_every`` steps, one per
    task; eval rows one per task and metric), flushed as it is written, so ``tail -f`` or
    ``pandas.read_csv`` follow a running job.
``tensorboard``
    ``OUT/tensorboard/``: scalars ``train/loss/<task>``, ``train/weight/<task>``, ``train/lr``,
    ``train/samples_per_s`` and ``dev/<task>/<metric>``; ``tensorboard --logdir OUT`` shows
    them. Needs the ``tensorboard`` package (``pip install 'mtl_lib[tensorboard]'``).

A resumed run continues both where its checkpoint stopped: the CSV is rewritten from the
restored History, and TensorBoard is told to drop any points the interrupted process logged
after the checkpoint (``purge_step``). Only rank 0 of a ``torchrun`` launch writes.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

from .callbacks import Callback
from .config import LOGGER_NAMES

__all__ = ["CSVLogger", "TensorBoardLogger", "check_loggers", "make_loggers"]

COLUMNS = ("kind", "step", "epoch", "task", "loss", "lr", "samples_per_s", "weight", "split", "metric", "value")


def check_loggers(names: list[str]) -> None:
    """Fail early, with what to install, if a requested logger's package is missing."""
    for name in names:
        if name not in LOGGER_NAMES:
            raise ValueError(f"training options: report_to must be one of {', '.join(LOGGER_NAMES)}, got {name!r}")
    if "tensorboard" in names and importlib.util.find_spec("tensorboard") is None:
        raise ValueError("training options: report_to: tensorboard needs the tensorboard package, which is not "
                         "installed here: pip install 'mtl_lib[tensorboard]' (or pip install tensorboard)")


def make_loggers(names: list[str], output_dir: str | Path) -> list[Callback]:
    """The logger callbacks for ``report_to`` names, writing into ``output_dir``."""
    check_loggers(names)
    out = Path(output_dir)
    makers = {"csv": lambda: CSVLogger(out / "log.csv"), "tensorboard": lambda: TensorBoardLogger(out / "tensorboard")}
    return [makers[name]() for name in names]


def _eval_rows(trainer) -> list[dict[str, Any]]:
    """The History's rows of the evaluation that just happened (logged before ``on_evaluate``)."""
    return [r for r in trainer.history.eval_rows() if r["step"] == trainer.step]


class CSVLogger(Callback):
    """Write every History row to a CSV file (columns ``COLUMNS``; blank where a row has no value)."""

    name = "csv_logger"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = None
        self._writer = None

    def on_fit_start(self, trainer) -> None:
        if not trainer.dist.is_main:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in on_fit_exit)
        self._writer = csv.DictWriter(self._file, COLUMNS, extrasaction="ignore")
        self._writer.writeheader()
        self._write(trainer.history.records)  # a resumed run: its rows so far

    def on_step_end(self, trainer, record: dict) -> None:
        self._write([record])

    def on_evaluate(self, trainer, metrics) -> None:
        self._write(_eval_rows(trainer))

    def on_fit_exit(self, trainer) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None

    def _write(self, rows: list[dict]) -> None:
        if self._writer is not None:
            self._writer.writerows(rows)
            self._file.flush()


class TensorBoardLogger(Callback):
    """Write the History's numbers as TensorBoard scalars into ``log_dir``."""

    name = "tensorboard"

    def __init__(self, log_dir: str | Path) -> None:
        check_loggers(["tensorboard"])
        self.log_dir = Path(log_dir)
        self.writer = None
        self._lr_step = -1

    def on_fit_start(self, trainer) -> None:
        if not trainer.dist.is_main:
            return
        from torch.utils.tensorboard import SummaryWriter

        # resumed at step s: points a killed process logged after its checkpoint (steps > s) go
        self.writer = SummaryWriter(str(self.log_dir), purge_step=trainer.step + 1 if trainer.step else None)

    def on_step_end(self, trainer, record: dict) -> None:
        if self.writer is None:
            return
        step = record["step"]
        self.writer.add_scalar(f"train/loss/{record['task']}", record["loss"], step)
        self.writer.add_scalar(f"train/weight/{record['task']}", record["weight"], step)
        if step != self._lr_step:  # once per step, not once per task
            self._lr_step = step
            self.writer.add_scalar("train/lr", record["lr"], step)
            self.writer.add_scalar("train/samples_per_s", record["samples_per_s"], step)

    def on_evaluate(self, trainer, metrics) -> None:
        if self.writer is None:
            return
        for r in _eval_rows(trainer):
            self.writer.add_scalar(f"{r['split']}/{r['task']}/{r['metric']}", r["value"], r["step"])
        self.writer.flush()

    def on_fit_exit(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
