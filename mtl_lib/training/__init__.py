"""Training: :class:`~mtl_lib.training.config.TrainerConfig` (plain data, no torch), the
:class:`~mtl_lib.training.trainer.Trainer` loop and its callbacks, task sampling, loss
weighting, distributed training, the History, and resumable checkpoints.

The package's ``__init__`` imports nothing: the task layer reads ``training.config`` without
pulling in torch.
"""
