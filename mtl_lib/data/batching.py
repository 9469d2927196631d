"""Dynamic padding (:class:`Collator`) and length-bucketed batch order.

Padding every batch only to its own longest sequence, and putting sequences of similar
length in the same batch, removes most of the padding a fixed ``max_length`` would add.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

from .encoding import IGNORE_INDEX

__all__ = ["Collator", "length_bucketed_batches"]


def _label_kind(value, task: str) -> str:
    """"class" for an int, "token" for a list of ints, "multi" for a list of floats."""
    if isinstance(value, numbers.Integral):
        return "class"
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(v, numbers.Integral) for v in value):
            return "token"
        if all(isinstance(v, numbers.Real) for v in value):
            return "multi"
    raise TypeError(f"labels[{task!r}] must be an int, a non-empty list of ints (token labels) "
                    f"or a list of floats (multilabel targets); got {value!r}")


class Collator:
    """Pad a list of feature dicts into a batch of tensors, to the longest sequence in it.

    Parameters
    ----------
    pad_token_id : int
        The tokenizer's ``pad_token_id``, used to pad ``input_ids``.
    padding_side : {"right", "left"}
        Where padding goes; token-level labels are padded on the same side.

    Notes
    -----
    Each feature is a dict with ``input_ids``, ``attention_mask``, optionally
    ``token_type_ids``, and optionally ``labels: {task: value}`` where value is

    - an ``int`` (classification) -> tensor ``(B,)``, long;
    - a ``list[int]`` of length T_i, one per token (tagging) -> ``(B, T)``, long, padded -100;
    - a ``list[float]`` of length C (multilabel 0./1. targets) -> ``(B, C)``, float.
      Multilabel targets must be floats, so that they cannot be mistaken for token labels.

    An example without a label for some task gets -100 (a row of -100 for tagging and
    multilabel), which the losses mask. Other keys (e.g. ``word_ids``) are ignored.

    Returns (from ``__call__``) ``{"input_ids": (B, T), "attention_mask": (B, T),
    ["token_type_ids": (B, T)], "labels": {task: tensor}}`` with T = longest ``input_ids``.
    """

    def __init__(self, pad_token_id: int, padding_side: str = "right") -> None:
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        if pad_token_id is None:
            raise ValueError("pad_token_id is None: the tokenizer has no padding token")
        self.pad_token_id = int(pad_token_id)
        self.padding_side = padding_side

    def _span(self, n: int, width: int) -> slice:
        return slice(0, n) if self.padding_side == "right" else slice(width - n, width)

    def __call__(self, features: Sequence[dict]) -> dict:
        if not features:
            raise ValueError("cannot collate an empty list of features")
        lengths = [len(f["input_ids"]) for f in features]
        batch_size, width = len(features), max(lengths)
        keys = {"input_ids": self.pad_token_id, "attention_mask": 0}
        has_types = ["token_type_ids" in f for f in features]
        if any(has_types):
            if not all(has_types):
                raise ValueError("token_type_ids present in some features but not others")
            keys["token_type_ids"] = 0
        batch = {}
        for key, pad in keys.items():
            out = torch.full((batch_size, width), pad, dtype=torch.long)
            for i, f in enumerate(features):
                if len(f[key]) != lengths[i]:
                    raise ValueError(f"feature {i}: {key} has {len(f[key])} entries but "
                                     f"input_ids has {lengths[i]}")
                out[i, self._span(lengths[i], width)] = torch.as_tensor(f[key], dtype=torch.long)
            batch[key] = out
        batch["labels"] = self._collate_labels(features, lengths, width)
        return batch

    def _collate_labels(self, features, lengths, width) -> dict[str, torch.Tensor]:
        per_example = [f.get("labels") or {} for f in features]
        tasks = list(dict.fromkeys(task for labels in per_example for task in labels))
        out = {}
        for task in tasks:
            values = [labels.get(task) for labels in per_example]
            kinds = {_label_kind(v, task) for v in values if v is not None}
            if len(kinds) > 1:
                raise TypeError(f"labels[{task!r}] mixes kinds across the batch: {sorted(kinds)}")
            kind = kinds.pop()
            if kind == "class":
                out[task] = torch.tensor([IGNORE_INDEX if v is None else int(v) for v in values])
                continue
            if kind == "token":
                tensor = torch.full((len(values), width), IGNORE_INDEX, dtype=torch.long)
            else:
                sizes = {len(v) for v in values if v is not None}
                if len(sizes) > 1:
                    raise ValueError(f"multilabel targets of {task!r} have different lengths "
                                     f"{sorted(sizes)}")
                tensor = torch.full((len(values), sizes.pop()), float(IGNORE_INDEX))
            for i, v in enumerate(values):
                if v is None:
                    continue
                if kind == "token":
                    if len(v) != lengths[i]:
                        raise ValueError(f"feature {i}: labels[{task!r}] has {len(v)} token "
                                         f"labels but input_ids has {lengths[i]} tokens")
                    tensor[i, self._span(lengths[i], width)] = torch.as_tensor(v)
                else:
                    tensor[i] = torch.as_tensor(v, dtype=torch.float)
            out[task] = tensor
        return out


def length_bucketed_batches(
    lengths: Sequence[int],
    batch_size: int,
    generator: torch.Generator | None,
    bucket_size_multiplier: int = 50,
    shuffle: bool = True,
) -> list[list[int]]:
    """Group example indices into batches of similar length.

    The indices are shuffled, cut into chunks of ``batch_size * bucket_size_multiplier``,
    each chunk is sorted by length and cut into batches, and the batch order is shuffled.
    Batches stay random (which examples meet, and in what order) but padding shrinks.

    Parameters
    ----------
    lengths : sequence of int
        Length (e.g. number of tokens) of each example.
    batch_size : int
    generator : torch.Generator or None
        Source of randomness; the same generator state gives the same batches.
        None uses torch's global generator.
    bucket_size_multiplier : int
        Chunk size in batches; larger = less padding but less randomness.
    shuffle : bool
        False keeps the original order of chunks and batches (for evaluation):
        each chunk is only sorted by length.

    Returns
    -------
    list of list of int
        Every index exactly once; all batches have ``batch_size`` indices except possibly
        the last batch of the last chunk.
    """
    if batch_size < 1 or bucket_size_multiplier < 1:
        raise ValueError("batch_size and bucket_size_multiplier must be >= 1")
    n = len(lengths)
    if shuffle:
        order = torch.randperm(n, generator=generator).tolist()
    else:
        order = list(range(n))
    chunk = batch_size * bucket_size_multiplier
    batches = []
    for start in range(0, n, chunk):
        # The index breaks ties, so the result never depends on sort stability quirks.
        ranked = sorted(order[start:start + chunk], key=lambda i: (lengths[i], i))
        batches.extend(ranked[j:j + batch_size] for j in range(0, len(ranked), batch_size))
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches
