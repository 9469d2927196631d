"""Distributed data parallel under ``torchrun``: a thin layer over ``torch.distributed``.

Launched with ``torchrun --nproc_per_node=K``, each process trains on its share of every
global batch and DDP averages the gradients (gloo on CPU, nccl on GPU). Only rank 0 writes
files. Without ``torchrun`` everything here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..models.devices import resolve_device

__all__ = ["DistributedContext"]


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @classmethod
    def from_env(cls, device: str = "auto") -> DistributedContext:
        """The launch's rank and world size, and the device to train on (``device`` as in
        :func:`~mtl_lib.models.devices.resolve_device`; under torchrun each process takes the
        GPU of its local rank)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = resolve_device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device(f"cuda:{local}")
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return cls(dist.get_rank() if world > 1 else 0, world, device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world_size == 1:
            return model
        # heads of tasks absent from a batch get no gradient: DDP must be told
        return torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)

    def shard(self, indices: list[int]) -> list[int]:
        """This rank's contiguous share of a global batch (the whole batch on one process)."""
        if self.world_size == 1:
            return indices
        per = -(-len(indices) // self.world_size)
        part = indices[self.rank * per:(self.rank + 1) * per]
        return part or indices[-1:]  # never an empty batch

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Average the gradients of parameters outside the DDP-wrapped model across ranks.

        DDP only reduces the gradients of the module it wraps; the uncertainty weighting's
        log-variances are trained too, and without this each rank would learn its own.
        """
        if self.world_size == 1:
            return
        for p in params:
            if p.grad is None:  # every rank must join the all-reduce, even with nothing to add
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= self.world_size

    def any_each(self, flags: list[bool]) -> list[bool]:
        """Element-wise "true on any rank?" (a collective: every rank calls it with as many flags).

        Used to stop every rank together: a rank that raised alone would leave the others
        waiting in DDP's next all-reduce, or dying of a lost peer.
        """
        if self.world_size == 1 or not flags:
            return list(flags)
        t = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(x) for x in t.tolist()]

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()
