"""The shared-encoder multi-task model.

One transformer encoder sits in the centre; each task owns a small head on top of it. A batch
of inputs goes through the encoder once, and every requested head reads the same hidden
states, so tasks that share inputs (SNIPS intent + slots) cost a single encoder pass.
Taught in ``notebooks/02_heads_and_losses.ipynb`` and ``05_multi_task_training.ipynb``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .encoders import Encoder
from .heads import make_head
from .losses import LOSSES
from .tasks import TaskSpec

__all__ = ["MultiTaskModel"]


class MultiTaskModel(nn.Module):
    """A shared ``Encoder`` under a ``ModuleDict`` of task heads.

    Parameters
    ----------
    encoder : Encoder
        The shared encoder. Its pretrained weights are used as they are: building the model
        only creates heads, it never re-initialises the encoder.
    heads : dict of str to nn.Module
        One head per task, each with ``forward(hidden (B, T, H), pooled (B, H)) -> logits``.
    tasks : list of TaskSpec, optional
        The task specifications (labels, loss type, weights), kept for losses, checkpoints
        and prediction.
    """

    def __init__(self, encoder: Encoder, heads: dict[str, nn.Module],
                 tasks: Iterable[TaskSpec] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)
        self.tasks = {t.name: t for t in (tasks or [])}
        self.losses = nn.ModuleDict({n: LOSSES[t.loss_type]() for n, t in self.tasks.items()})

    @classmethod
    def from_tasks(cls, encoder: Encoder, tasks: Iterable[TaskSpec], seed: int = 0) -> MultiTaskModel:
        """Build one head per task (labels must be resolved), seeded for reproducible heads."""
        tasks = list(tasks)
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            heads = {t.name: make_head(t.task_type, encoder.hidden_size, t.num_labels, t.dropout_prob)
                     for t in tasks}
        finally:
            torch.random.set_rng_state(gen_state)  # don't disturb the caller's random stream
        return cls(encoder, heads, tasks)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None,
                tasks: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Run the encoder once and the requested heads on its output.

        Parameters
        ----------
        input_ids, attention_mask, token_type_ids : LongTensor, shape (B, T)
        tasks : iterable of str, optional
            Heads to run; all heads by default.

        Returns
        -------
        dict of str to Tensor
            ``{task: logits}``, logits of shape (B, C) for sequence-level heads and (B, T, C)
            for token-level heads.
        """
        hidden, pooled = self.encoder(input_ids, attention_mask, token_type_ids)  # (B,T,H), (B,H)
        names = list(tasks) if tasks is not None else list(self.heads)
        return {name: self.heads[name](hidden, pooled) for name in names}

    def compute_losses(self, logits: dict[str, torch.Tensor],
                       labels: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each task's loss (a 0-d tensor) for the tasks present in both dicts."""
        return {name: self.losses[name](logits[name], labels[name])
                for name in logits if name in labels and name in self.losses}

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(encoder parameters, head parameters): they get different learning rates."""
        return list(self.encoder.parameters()), list(self.heads.parameters())
