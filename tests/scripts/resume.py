"""Continue a tiny SNIPS run from a checkpoint, in a fresh process (see tests/test_checkpoint.py).

Usage: python resume.py CHECKPOINT OUT_DIR CONFIG_JSON

Builds the experiment exactly as a user resuming with ``mtl-lib train --resume`` would (a new
tiny encoder, data re-read and re-encoded), resumes, trains to the end and writes the final
weights (``weights.safetensors``) and the History (``history.json``) into OUT_DIR.
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from mtl_lib.experiment import build_experiment, snips_tasks
from mtl_lib.training.trainer import Trainer

torch.set_num_threads(1)
checkpoint, out, config = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
max_examples = config.pop("max_examples")
model, groups = build_experiment(snips_tasks(max_examples=max_examples), "tiny-bert")
trainer = Trainer(model, groups, config)
history = trainer.fit(resume_from=checkpoint)
out.mkdir(parents=True, exist_ok=True)
save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(out / "weights.safetensors"))
history.to_json(out / "history.json")
print(f"resumed to step {trainer.step}")
