"""``TrainerConfig``: every training option, with its default and its check.

Plain data, no torch: a task file's ``training:`` section is checked against it as soon as the
file is read. Every field is saved with each checkpoint (``config.json``), so a run can always
say how it was trained.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..tasks.validation import check_fields, check_value, short

__all__ = ["LOGGER_NAMES", "SAMPLER_NAMES", "WEIGHTING_NAMES", "TrainerConfig"]

# The registries in sampling.py and weighting.py hold the strategies; their names are repeated
# here so that a config can be checked without importing them (tests keep the two in step).
SAMPLER_NAMES = ("proportional", "uniform", "round_robin", "temperature", "annealed")
WEIGHTING_NAMES = ("static", "equal", "uncertainty", "dwa")
LOGGER_NAMES = ("csv", "tensorboard")  # report_to: callbacks in loggers.py


@dataclass
class TrainerConfig:
    """Training options.

    Defaults suit a small pretrained encoder (MiniLM-L6) on a CPU: heads learn much faster
    than the encoder, hence ``classifier_lr`` 20x ``encoder_lr``.
    """

    encoder_lr: float = 5e-5
    classifier_lr: float = 1e-3
    layer_lr_decay: float = 1.0  # below 1: each encoder layer's rate is this times the one above's
    weight_decay: float = 0.01
    batch_size: int = 32
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs when set (optimiser steps)
    warmup_ratio: float = 0.1
    lr_schedule: str = "linear"  # after warm-up: "linear" decay to 0 at the end, or "constant"
    max_grad_norm: float = 1.0  # 0 switches clipping off
    grad_accum_steps: int = 1
    max_length: int = 128
    sampler: str = "proportional"
    temperature: float = 2.0  # for sampler "temperature"
    weighting: str = "static"
    weighting_lr: float = 1e-2  # learned loss weights (uncertainty): constant rate, no weight decay
    bucketing: bool = True  # length-bucketed batches: much less padding than random batches
    eval_every: int | None = None  # steps between evaluations; None = once per epoch
    eval_batch_size: int = 64
    early_stopping_patience: int | None = None  # evaluations without improvement
    seed: int = 42
    device: str = "auto"  # auto: cuda, then mps, then cpu
    bf16: bool | None = None  # None (and fp16 None): bf16 autocast on a CUDA GPU that supports it
    fp16: bool | None = None  # None (and bf16 None): fp16 autocast + GradScaler on a GPU without bf16
    output_dir: str | None = None  # where best/ and last/ checkpoints go
    save_every: int | None = None  # steps between `last` checkpoints (plus one at the end)
    log_every: int = 1  # steps per History train row (each the mean over its steps)
    report_to: list[str] = field(default_factory=list)  # loggers: "csv", "tensorboard"
    progress: bool = True
    conflict_every: int | None = None  # steps between task-gradient cosines (training/conflict.py)

    def __post_init__(self) -> None:
        if isinstance(self.report_to, str):  # report_to: tensorboard, as with Hugging Face
            self.report_to = [self.report_to]
        check_fields(self, "training options", _RULES)
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ValueError("training options: device must be auto, cpu, cuda, cuda:N or mps, "
                             f"got {short(self.device)}")
        if self.bf16 and self.fp16:
            raise ValueError("training options: bf16 and fp16 cannot both be true")
        for name in self.report_to:
            check_value("training options", "report_to", name, "str", LOGGER_NAMES)
        self.report_to = list(dict.fromkeys(self.report_to))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainerConfig:
        """Build from a mapping; an unknown key is an error that lists the known ones."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown training option {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes) -> TrainerConfig:
        """A copy with some options changed (checked like any config)."""
        return TrainerConfig.from_dict({**asdict(self), **changes})


_RULES: dict[str, str | tuple] = {
    "encoder_lr": "> 0", "classifier_lr": "> 0", "layer_lr_decay": "(0, 1]", "weight_decay": ">= 0",
    "batch_size": ">= 1",
    "epochs": "> 0", "max_steps": ">= 1", "warmup_ratio": "[0, 1)", "max_grad_norm": ">= 0",
    "grad_accum_steps": ">= 1", "max_length": ">= 1", "sampler": SAMPLER_NAMES, "temperature": "> 0",
    "weighting": WEIGHTING_NAMES, "lr_schedule": ("linear", "constant"), "weighting_lr": "> 0",
    "eval_every": ">= 1", "eval_batch_size": ">= 1",
    "early_stopping_patience": ">= 1", "save_every": ">= 1", "log_every": ">= 1", "seed": ">= 0",
    "conflict_every": ">= 1",
}
