"""A 2-process DDP run in which one rank's loss turns NaN (tests/test_reliability_crash.py).

Usage::

    torchrun --standalone --nproc_per_node=2 reliability_ddp.py OUT_DIR REPORT_DIR BAD_RANK BAD_STEP

Trains tiny-BERT SNIPS intent + slots with a checkpoint after every step; from step BAD_STEP
on, the intent head of rank BAD_RANK outputs NaN. Every rank writes ``REPORT_DIR/rank<R>.txt``
(``diverged: <message>`` or ``finished``) and exits 3 or 0.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from mtl_lib.experiment import build_groups, snips_tasks
from mtl_lib.models.multitask import MultiTaskModel
from mtl_lib.models.tiny import tiny_encoder
from mtl_lib.training.trainer import Trainer, TrainingDiverged


def main(out_dir: str, report_dir: str, bad_rank: int, bad_step: int) -> int:
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    enc = tiny_encoder("BERT")
    tasks = snips_tasks(max_examples=48)
    groups = build_groups(tasks, enc.tokenizer)
    model = MultiTaskModel.from_tasks(enc, tasks)
    trainer = Trainer(model, groups, max_steps=8, batch_size=8, save_every=1, output_dir=out_dir,
                      eval_every=10**6, progress=False)
    if rank == bad_rank:
        def poison(module, inputs, output):
            return output * float("nan") if trainer.step >= bad_step - 1 else output

        model.heads["intent"].register_forward_hook(poison)
    try:
        trainer.fit()
    except TrainingDiverged as err:
        report, code = f"diverged: {err}", 3
    else:
        report, code = "finished", 0
    Path(report_dir).mkdir(parents=True, exist_ok=True)
    (Path(report_dir) / f"rank{rank}.txt").write_text(report)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()  # both ranks have reported before either exits (torchrun then
        torch.distributed.destroy_process_group()  # stops the others when one exits non-zero)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
