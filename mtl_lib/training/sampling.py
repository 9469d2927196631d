"""Task samplers: which input group the next training batch comes from.

With datasets of very different sizes the choice matters: proportional sampling lets the big
dataset dominate, uniform sampling over-fits the small one. Temperature sampling interpolates,

.. math:: p_i \\propto n_i^{1/T},

(T = 1 proportional, T -> inf uniform), and annealed sampling moves from proportional towards
uniform over training (Stickland & Murray, 2019): :math:`p_i \\propto n_i^{\\alpha}`,
:math:`\\alpha = 1 - 0.8\\,\\frac{e}{E - 1}` at epoch e of E; we use the fraction of
training done in place of :math:`e/(E-1)`, so α moves smoothly from 1 to 0.2.

Every sampler is stateless: the choice at step ``s`` depends only on (seed, s), so training
resumed from a checkpoint draws exactly the same sequence. Taught in
``notebooks/06_sampling_and_loss_weighting.ipynb``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SAMPLERS", "TaskSampler", "make_sampler"]


class TaskSampler:
    """Base class: ``probabilities(progress)`` and a seeded ``choose(step)``.

    Parameters
    ----------
    sizes : list of int
        Number of training batches (or examples) of each input group.
    seed : int
        Seed of the draws.
    total_steps : int
        Length of training, for samplers that change over time.
    """

    name = "base"

    def __init__(self, sizes: list[int], seed: int = 0, total_steps: int = 1) -> None:
        self.sizes = np.asarray(sizes, dtype=float)
        self.seed = seed
        self.total_steps = max(1, total_steps)

    def probabilities(self, progress: float) -> np.ndarray:
        """Probability of each group at ``progress`` in [0, 1] of training."""
        raise NotImplementedError

    def choose(self, step: int) -> int:
        """Index of the group for training step ``step`` (0-based)."""
        p = self.probabilities(step / self.total_steps)
        rng = np.random.default_rng([self.seed, step])
        return int(rng.choice(len(p), p=p))


class ProportionalSampler(TaskSampler):
    """Groups drawn in proportion to their size: :math:`p_i = n_i / \\sum_j n_j`."""

    name = "proportional"

    def probabilities(self, progress: float) -> np.ndarray:
        return self.sizes / self.sizes.sum()


class UniformSampler(TaskSampler):
    """Every group equally likely: :math:`p_i = 1/K`."""

    name = "uniform"

    def probabilities(self, progress: float) -> np.ndarray:
        return np.full(len(self.sizes), 1.0 / len(self.sizes))


class RoundRobinSampler(TaskSampler):
    """Groups in turn, 0, 1, ..., K-1, 0, ...; no randomness."""

    name = "round_robin"

    def probabilities(self, progress: float) -> np.ndarray:
        return np.full(len(self.sizes), 1.0 / len(self.sizes))

    def choose(self, step: int) -> int:
        return step % len(self.sizes)


class TemperatureSampler(TaskSampler):
    """:math:`p_i \\propto n_i^{1/T}`; T = 1 is proportional, large T tends to uniform."""

    name = "temperature"

    def __init__(self, sizes: list[int], seed: int = 0, total_steps: int = 1,
                 temperature: float = 2.0) -> None:
        super().__init__(sizes, seed, total_steps)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def probabilities(self, progress: float) -> np.ndarray:
        w = self.sizes ** (1.0 / self.temperature)
        return w / w.sum()


class AnnealedSampler(TaskSampler):
    """Stickland & Murray (2019): :math:`p_i \\propto n_i^{\\alpha}`, α from 1 down to 0.2."""

    name = "annealed"

    def probabilities(self, progress: float) -> np.ndarray:
        alpha = 1.0 - 0.8 * min(max(progress, 0.0), 1.0)
        w = self.sizes**alpha
        return w / w.sum()


SAMPLERS: dict[str, type[TaskSampler]] = {
    cls.name: cls
    for cls in (ProportionalSampler, UniformSampler, RoundRobinSampler, TemperatureSampler,
                AnnealedSampler)
}


def make_sampler(name: str, sizes: list[int], seed: int = 0, total_steps: int = 1,
                 temperature: float = 2.0) -> TaskSampler:
    """Build a registered sampler by name."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    if name == "temperature":
        return TemperatureSampler(sizes, seed, total_steps, temperature)
    return SAMPLERS[name](sizes, seed, total_steps)
