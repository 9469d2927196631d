"""Loss weighting: how per-task losses are combined into the one scalar we back-propagate.

Each strategy is a small class with the method's name, paper and rule in its docstring.
``combine({task: loss})`` returns the weighted sum over the tasks present in the batch;
``weights()`` reports the current weights (for plots). Taught in
``notebooks/06_sampling_and_loss_weighting.ipynb``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["WEIGHTINGS", "LossWeighting", "make_weighting"]


class LossWeighting(nn.Module):
    """Base: a fixed weight per task, :math:`L = \\sum_t w_t L_t`."""

    name = "base"

    def __init__(self, tasks: list[str], static: dict[str, float] | None = None) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.static = {t: float((static or {}).get(t, 1.0)) for t in self.tasks}

    def weights(self) -> dict[str, float]:
        return dict(self.static)

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        w = self.weights()
        return sum(w[t] * loss for t, loss in losses.items())

    def update(self, losses: dict[str, float]) -> None:
        """Observe detached per-task losses after a step (used by adaptive strategies)."""

    def extra_state(self) -> dict:
        return {}

    def check_extra_state(self, state: dict) -> None:
        """Raise ValueError unless ``state`` is an :meth:`extra_state` of this strategy and tasks
        (a checkpoint is checked before anything is restored from it)."""
        if state:
            raise ValueError(f"{self.name} weighting keeps no state, got {str(state)[:60]}")

    def load_extra_state(self, state: dict) -> None:
        self.check_extra_state(state)


class StaticWeighting(LossWeighting):
    """Static: each task's ``loss_weight`` from its task file (default 1)."""

    name = "static"


class EqualWeighting(LossWeighting):
    """Equal: every task's weight is always 1, whatever its ``loss_weight``."""

    name = "equal"

    def weights(self) -> dict[str, float]:
        return {t: 1.0 for t in self.tasks}


class UncertaintyWeighting(LossWeighting):
    """Uncertainty (Kendall, Gal & Cipolla, CVPR 2018): learn a log-variance per task.

    :math:`L = \\sum_t \\tfrac12 e^{-s_t} L_t + \\tfrac12 s_t`, with :math:`s_t = \\log\\sigma_t^2`
    trained with the heads; a noisy task gets a large :math:`\\sigma_t` and a small weight.
    """

    name = "uncertainty"

    def __init__(self, tasks: list[str], static: dict[str, float] | None = None) -> None:
        super().__init__(tasks, static)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))  # (K,)

    def weights(self) -> dict[str, float]:
        return {t: 0.5 * math.exp(-float(s)) for t, s in zip(self.tasks, self.log_vars.detach())}

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for t, loss in losses.items():
            s = self.log_vars[self.tasks.index(t)]
            total = total + 0.5 * torch.exp(-s) * loss + 0.5 * s
        return total


class DWAWeighting(LossWeighting):
    """Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019).

    :math:`w_t = K \\exp(r_t / T) / \\sum_i \\exp(r_i / T)` with :math:`r_t = \\bar L_t^{(k-1)} /
    \\bar L_t^{(k-2)}`, the ratio of a task's mean loss over the last two windows of
    ``window`` steps: a task whose loss falls slowly gets more weight. Weights are 1 until two
    windows are complete.
    """

    name = "dwa"

    def __init__(self, tasks: list[str], static: dict[str, float] | None = None,
                 temperature: float = 2.0, window: int = 50) -> None:
        super().__init__(tasks, static)
        self.temperature, self.window = temperature, window
        self._sum = {t: 0.0 for t in self.tasks}
        self._count = {t: 0 for t in self.tasks}
        self._steps = 0
        self._means: list[dict[str, float]] = []  # the last two windows' mean losses
        self._w = {t: 1.0 for t in self.tasks}

    def weights(self) -> dict[str, float]:
        return dict(self._w)

    def update(self, losses: dict[str, float]) -> None:
        for t, v in losses.items():
            self._sum[t] += v
            self._count[t] += 1
        self._steps += 1
        if self._steps % self.window:
            return
        means = {t: self._sum[t] / self._count[t] if self._count[t] else None for t in self.tasks}
        self._means = (self._means + [means])[-2:]
        self._sum = {t: 0.0 for t in self.tasks}
        self._count = {t: 0 for t in self.tasks}
        if len(self._means) == 2:
            prev, last = self._means
            r = {t: (last[t] / prev[t]) if last[t] and prev[t] else 1.0 for t in self.tasks}
            z = sum(math.exp(r[t] / self.temperature) for t in self.tasks)
            k = len(self.tasks)
            self._w = {t: k * math.exp(r[t] / self.temperature) / z for t in self.tasks}

    def extra_state(self) -> dict:
        return {"sum": self._sum, "count": self._count, "steps": self._steps,
                "means": self._means, "w": self._w}

    def check_extra_state(self, state: dict) -> None:
        if not state:
            return
        if not isinstance(state, dict) or set(state) != {"sum", "count", "steps", "means", "w"}:
            raise ValueError("DWA state must hold exactly sum, count, steps, means and w")
        _per_task(state["sum"], self.tasks, "sum", _is_number)
        _per_task(state["count"], self.tasks, "count", lambda v: _is_int(v) and v >= 0)
        _per_task(state["w"], self.tasks, "w", lambda v: _is_number(v) and v >= 0)
        if not _is_int(state["steps"]) or state["steps"] < 0:
            raise ValueError(f"DWA steps must be an integer >= 0, got {str(state['steps'])[:40]}")
        if not isinstance(state["means"], list) or len(state["means"]) > 2:
            raise ValueError("DWA means must be a list of at most two windows")
        for means in state["means"]:
            _per_task(means, self.tasks, "means", lambda v: v is None or _is_number(v))

    def load_extra_state(self, state: dict) -> None:
        self.check_extra_state(state)
        if state:
            self._sum, self._count = dict(state["sum"]), dict(state["count"])
            self._steps, self._means, self._w = state["steps"], [dict(m) for m in state["means"]], dict(state["w"])


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _per_task(values, tasks: list[str], what: str, ok) -> None:
    """``values`` must map exactly ``tasks`` to values that pass ``ok``."""
    if not isinstance(values, dict) or set(values) != set(tasks):
        raise ValueError(f"DWA {what} must have one entry per task ({', '.join(tasks)}), got {str(values)[:60]}")
    bad = [t for t in tasks if not ok(values[t])]
    if bad:
        raise ValueError(f"DWA {what} of task {bad[0]!r} is {str(values[bad[0]])[:40]}")


WEIGHTINGS: dict[str, type[LossWeighting]] = {
    c.name: c for c in (StaticWeighting, EqualWeighting, UncertaintyWeighting, DWAWeighting)
}


def make_weighting(name: str, tasks: list[str], static: dict[str, float] | None = None) -> LossWeighting:
    """Build a registered weighting strategy by name."""
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {name!r}; choose one of {', '.join(WEIGHTINGS)}")
    return WEIGHTINGS[name](tasks, static)
