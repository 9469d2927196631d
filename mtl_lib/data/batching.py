"""Dynamic padding (:class:`Collator`) and length-bucketed batch order.

Padding every batch only to its own longest sequence, and putting sequences of similar
length in the same batch, removes most of the padding a fixed ``max_length`` would add.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .encoding import IGNORE_INDEX

__all__ = ["Collator", "length_bucketed_batches"]


LABEL_KINDS = ("class", "token", "multi")


class Collator:
    """Pad a list of feature dicts into a batch of tensors, to the longest sequence in it.

    Parameters
    ----------
    pad_token_id : int
        The tokenizer's ``pad_token_id``, used to pad ``input_ids``.
    padding_side : {"right", "left"}
        Where padding goes; token-level labels are padded on the same side.
    label_kinds : dict of str to str, optional
        How each task's labels stack (the task type says, see ``TaskType.label_kind``):

        - ``"class"``: one ``int`` per example -> ``(B,)``, long;
        - ``"token"``: a ``list[int]`` of length T_i, one per token -> ``(B, T)``, long,
          padded with -100;
        - ``"multi"``: a ``list[float]`` of length C (0./1. targets) -> ``(B, C)``, float.

    Notes
    -----
    Each feature is a dict with ``input_ids``, ``attention_mask``, optionally
    ``token_type_ids``, and optionally ``labels: {task: value}``. An example without a label
    for some task gets -100 (a row of -100 for token and multi labels), which the losses mask.
    Other keys (e.g. ``word_ids``) are ignored.

    Returns (from ``__call__``) ``{"input_ids": (B, T), "attention_mask": (B, T),
    ["token_type_ids": (B, T)], "labels": {task: tensor}}`` with T = longest ``input_ids``.
    """

    def __init__(self, pad_token_id: int, padding_side: str = "right",
                 label_kinds: dict[str, str] | None = None) -> None:
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        if pad_token_id is None:
            raise ValueError("pad_token_id is None: the tokenizer has no padding token")
        bad = {t: k for t, k in (label_kinds or {}).items() if k not in LABEL_KINDS}
        if bad:
            raise ValueError(f"label kinds must be one of {LABEL_KINDS}, got {bad}")
        self.pad_token_id = int(pad_token_id)
        self.padding_side = padding_side
        self.label_kinds = dict(label_kinds or {})

    @classmethod
    def for_tokenizer(cls, tokenizer, label_kinds: dict[str, str] | None = None) -> Collator:
        """The collator for a tokenizer's padding token and side (left for XLNet)."""
        return cls(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
                   tokenizer.padding_side, label_kinds)

    def positions(self, n: int, width: int) -> slice:
        """Where an example of ``n`` tokens sits in a batch padded to ``width``."""
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
                out[i, self.positions(lengths[i], width)] = torch.as_tensor(f[key], dtype=torch.long)
            batch[key] = out
        batch["labels"] = self._collate_labels(features, lengths, width)
        return batch

    def _collate_labels(self, features, lengths, width) -> dict[str, torch.Tensor]:
        per_example = [f.get("labels") or {} for f in features]
        tasks = list(dict.fromkeys(task for labels in per_example for task in labels))
        out = {}
        for task in tasks:
            values = [labels.get(task) for labels in per_example]
            kind = self.label_kinds.get(task)
            if kind is None:
                raise ValueError(f"labels of task {task!r} found, but the collator was not told their "
                                 f"kind; pass label_kinds={{{task!r}: 'class' | 'token' | 'multi'}}")
            _check_kind(task, kind, values)
            if kind == "class":
                out[task] = torch.tensor([IGNORE_INDEX if v is None else v for v in values])
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
                    tensor[i, self.positions(lengths[i], width)] = torch.as_tensor(v)
                else:
                    tensor[i] = torch.as_tensor(v, dtype=torch.float)
            out[task] = tensor
        return out


_KIND_TEXT = {"class": "an int (a class id)", "token": "a list of ints (one per token)",
              "multi": "a list of 0./1. floats (one per label)"}


def _check_kind(task: str, kind: str, values: list) -> None:
    """Every label of ``task`` must be of the kind its task type declared."""
    for i, v in enumerate(values):
        if v is None:
            continue
        ok = isinstance(v, int) and not isinstance(v, bool) if kind == "class" else \
            isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        if not ok:
            raise TypeError(f"feature {i}: labels[{task!r}] must be {_KIND_TEXT[kind]}, got {v!r}")


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
