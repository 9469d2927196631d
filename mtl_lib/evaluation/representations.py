"""Sentence vectors: what the shared encoder makes of each example of a split.

The pooled vector ``(H,)`` of an example is what every sequence-level head reads (see
``Encoder.pool``). Comparing these vectors before and after fine-tuning shows what training
did to the encoder: examples of one class drawn together, or not
(:func:`mtl_lib.ui.representations.plot_representations`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.batching import Collator

__all__ = ["pooled_vectors"]


@torch.no_grad()
def pooled_vectors(encoder, group, split: str = "dev", indices: list[int] | None = None,
                   batch_size: int = 64) -> np.ndarray:
    """The encoder's pooled vector of each example of ``group``'s ``split``.

    Parameters
    ----------
    encoder : Encoder
        Run in eval mode (no dropout) on its own device; its training mode is restored.
    group : InputGroup
        Encoded with a tokenizer that has the encoder's vocabulary.
    indices : list of int, optional
        Examples to encode (default: all), in this order.

    Returns
    -------
    np.ndarray, shape (N, H)
    """
    feats = group.splits.get(split) or []
    indices = list(range(len(feats))) if indices is None else list(indices)
    device = next(encoder.parameters()).device
    collate = Collator.for_tokenizer(encoder.tokenizer)
    out = np.zeros((len(indices), encoder.hidden_size), dtype=np.float32)
    order = sorted(range(len(indices)), key=lambda k: len(feats[indices[k]]["input_ids"]))  # less padding
    was_training = encoder.training
    encoder.eval()
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = collate([{k: v for k, v in feats[indices[r]].items() if k != "labels"} for r in rows])
            tt = batch.get("token_type_ids")
            _, pooled = encoder(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                tt.to(device) if tt is not None else None)  # (B, H)
            out[rows] = pooled.float().cpu().numpy()
    finally:
        encoder.train(was_training)
    return out
