"""Six training steps of tiny-BERT SNIPS intent with a global batch of 16 (tests/test_distributed.py).

Usage::

    torchrun --standalone --nproc_per_node=2 ddp_train.py OUT_DIR DIAG_DIR   # DDP, gloo on CPU
    python ddp_train.py OUT_DIR DIAG_DIR                                     # one process

OUT_DIR receives the run's checkpoints. DIAG_DIR receives, per rank: which checkpoints this
rank wrote (``writes-rank{r}.txt``), the examples of each step's global batch and of this
rank's share (``shards-rank{r}.json``), the gradients of the first step
(``grads-rank{r}.safetensors``), the initial and the final weights
(``initial-rank{r}.safetensors``, ``final-rank{r}.safetensors``) and the loss weighting's
learned log-variances (``weighting-rank{r}.safetensors``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from mtl_lib.experiment import build_groups
from mtl_lib.models.multitask import MultiTaskModel
from mtl_lib.models.tiny import tiny_encoder
from mtl_lib.tasks.spec import TaskSpec
from mtl_lib.training.trainer import Trainer


def _tensors(named) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in named}


def run(out_dir: str, diag_dir: str) -> None:
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    diag = Path(diag_dir)
    diag.mkdir(parents=True, exist_ok=True)

    enc = tiny_encoder("BERT")
    # intent only: a classification loss is a plain mean over examples, so the mean of the two
    # ranks' means over 8 examples each is exactly the mean over the global batch of 16
    spec = TaskSpec(name="intent", task_type="classification", format="jointbert", path="snips",
                    label_map_or_file="snips/intent_label.txt", max_examples=64)
    groups = build_groups([spec], enc.tokenizer)
    model = MultiTaskModel.from_tasks(enc, [spec])
    for m in model.modules():  # dropout masks would differ between a shard and the whole batch
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0

    save_file(_tensors(model.state_dict().items()), str(diag / f"initial-rank{rank}.safetensors"))

    original_write = MultiTaskModel.write_files

    def recording_write(self, directory, *args, **kwargs):
        # every checkpoint's files are written by this method, into ".<name>.tmp-<pid>"
        with open(diag / f"writes-rank{rank}.txt", "a") as fh:
            fh.write(f"{Path(directory).name.lstrip('.').split('.tmp-')[0]}\n")
        return original_write(self, directory, *args, **kwargs)

    MultiTaskModel.write_files = recording_write
    try:
        # uncertainty weighting: its log-variances live outside the DDP-wrapped model, so their
        # gradients must be averaged across ranks too
        trainer = Trainer(model, groups, max_steps=6, batch_size=16, seed=3, output_dir=out_dir,
                          weighting="uncertainty", progress=False)
        shards, shard = [], trainer.dist.shard

        def recording_shard(indices):
            part = shard(indices)
            shards.append({"global": list(indices), "mine": list(part)})
            return part

        trainer.dist.shard = recording_shard
        first_grads = {}

        def grab(optimizer, args, kwargs):
            if not first_grads:
                first_grads.update(_tensors((n, p.grad) for n, p in model.named_parameters() if p.grad is not None))

        trainer.optimizer.register_step_pre_hook(grab)
        trainer.fit()
    finally:
        MultiTaskModel.write_files = original_write

    (diag / f"shards-rank{rank}.json").write_text(json.dumps(shards))
    save_file(first_grads, str(diag / f"grads-rank{rank}.safetensors"))
    save_file(_tensors(model.state_dict().items()), str(diag / f"final-rank{rank}.safetensors"))
    save_file(_tensors(trainer.weighting.state_dict().items()), str(diag / f"weighting-rank{rank}.safetensors"))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
