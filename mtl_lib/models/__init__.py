"""The model layer: encoders (:mod:`~mtl_lib.models.registry`, :mod:`~mtl_lib.models.architectures`,
:mod:`~mtl_lib.models.encoders`, :mod:`~mtl_lib.models.tiny`),
heads, losses, the shared-encoder :class:`~mtl_lib.models.multitask.MultiTaskModel` with its
checkpoint directory, and safe file handling (:mod:`~mtl_lib.models.safe_files`,
:mod:`~mtl_lib.models.legacy` for older checkpoints).
"""
