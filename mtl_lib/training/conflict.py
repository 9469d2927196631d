"""Task conflict: do the tasks pull the shared encoder in different directions?

Every ``conflict_every`` steps (a :class:`~mtl_lib.training.config.TrainerConfig` option, off
by default) the :class:`GradientConflict` callback computes, for each task, the gradient of
its loss with respect to the shared encoder's parameters, and logs the cosine similarity of
every pair of tasks, as Yu et al. (2020, "Gradient Surgery for Multi-Task Learning", PCGrad)
do to find conflicting gradients:

.. math:: \\cos(g_a, g_b) = \\frac{g_a \\cdot g_b}{\\lVert g_a \\rVert \\, \\lVert g_b \\rVert}

Near 1 the tasks agree on how to change the encoder; near 0 they are indifferent to each
other; below 0 a step for one task undoes part of the other's progress (a *conflict*).
History rows: ``kind="conflict"``, ``step``, ``epoch``, ``tasks`` (the pair), ``cosine``.

The measurement must not change training, so it

- uses its own *probe batches*: one fixed sample of each input group's training examples,
  drawn once with its own random generator (never the trainer's batches or data positions);
- takes gradients with :func:`torch.autograd.grad`, which returns them and leaves every
  parameter's ``.grad`` alone (the optimiser never sees them);
- runs without dropout (``eval()``) inside :func:`torch.random.fork_rng`, so the random
  stream of training is exactly as it would be without it.

When ``conflict_every`` is not set the trainer does not add the callback at all, so it
costs nothing. Taught in ``notebooks/06_sampling_and_loss_weighting.ipynb``.
"""

from __future__ import annotations

import math
from itertools import combinations

import torch
from torch import Tensor, nn

from .callbacks import Callback

__all__ = ["GradientConflict", "gradient_cosines"]


def gradient_cosines(losses: dict[str, Tensor], params: list[nn.Parameter]) -> dict[tuple[str, str], float]:
    """Cosine similarity of every pair of the losses' gradients with respect to ``params``.

    Parameters
    ----------
    losses : dict of str to Tensor, each of shape ()
        One loss per task, all on one autograd graph or several.
    params : list of Parameter
        The shared parameters; each gradient is their gradients flattened into one vector.

    Returns
    -------
    dict
        ``{(task_a, task_b): cosine}`` for each pair in the order of ``losses``; a pair with
        a zero gradient (a task with nothing to learn from its probe) is left out.
    """
    grads: dict[str, Tensor] = {}
    for task, loss in losses.items():
        found = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        grads[task] = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                 for g, p in zip(found, params, strict=True)])  # (P,)
    out = {}
    for a, b in combinations(grads, 2):
        norm = grads[a].norm() * grads[b].norm()
        if norm > 0:
            out[(a, b)] = float(grads[a] @ grads[b] / norm)
    return out


class GradientConflict(Callback):
    """Every ``every`` steps, log the cosine between each pair of tasks' encoder gradients.

    Parameters
    ----------
    every : int
        Steps between measurements (the trainer passes ``conflict_every``).
    probe_size : int, optional
        Training examples per input group in the probe batch (default: the batch size).
    seed : int
        Seed of the probe's draw (independent of the training seed's streams).
    """

    name = "gradient_conflict"

    def __init__(self, every: int, probe_size: int | None = None, seed: int = 0) -> None:
        self.every, self.probe_size, self.seed = every, probe_size, seed
        self.probes: list[tuple[list[str], dict]] = []  # (tasks, collated batch) per group

    def on_fit_start(self, trainer) -> None:
        size = self.probe_size or trainer.config.batch_size
        gen = torch.Generator().manual_seed(self.seed)
        self.probes = []
        for group in trainer.groups:
            feats = group.splits["train"]
            idx = torch.randperm(len(feats), generator=gen)[:size].tolist()
            self.probes.append((group.task_names, trainer.collate([feats[i] for i in idx])))

    def on_batch_end(self, trainer) -> None:
        if trainer.step % self.every:
            return
        epoch = trainer.step / trainer.steps_per_epoch
        for (a, b), cos in self.measure(trainer.model, trainer.device).items():
            trainer.history.append({"kind": "conflict", "step": trainer.step, "epoch": epoch,
                                    "tasks": [a, b], "cosine": cos})

    def measure(self, model, device: torch.device) -> dict[tuple[str, str], float]:
        """The cosines at the model's current weights, on the probe batches."""
        params = [p for p in model.encoder.parameters() if p.requires_grad]
        if not params:  # a frozen encoder: nothing shared to pull on
            return {}
        was_training = model.training
        model.eval()  # no dropout: no random numbers drawn
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                losses: dict[str, Tensor] = {}
                for tasks, batch in self.probes:
                    tt = batch.get("token_type_ids")
                    logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                   tt.to(device) if tt is not None else None, tasks=tasks)
                    labels = {t: v.to(device) for t, v in batch["labels"].items()}
                    losses |= model.compute_losses({t: v.float() for t, v in logits.items()}, labels)
                return {k: v for k, v in gradient_cosines(losses, params).items() if math.isfinite(v)}
        finally:
            model.train(was_training)
