"""Evaluation: run a model over a split and score every task with its metrics.

Predictions are read back by each task's type (:mod:`mtl_lib.task_types`) and compared with
the gold labels *as written in the data*: a gold label the model does not know (a class that
train never had) counts as an error, it never stops the evaluation. Tagging is scored over
every word, words cut off by truncation included (read as ``"O"``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ..data.batching import Collator
from ..models.devices import resolve_device
from ..task_types import group_metrics

__all__ = ["collect_predictions", "evaluate", "example_logits", "score_predictions"]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def example_logits(model, group, split: str = "dev", batch_size: int = 64,
                   device: str | torch.device | None = None) -> Iterator[tuple[str, int, torch.Tensor]]:
    """Each labelled example's own logits, task by task: ``(task, index, logits)``.

    ``logits`` is ``(C,)`` for sequence-level tasks and ``(T_i, C)`` over the example's own
    tokens for token-level ones (float32, on the CPU). Examples without a gold label for a
    task are skipped for it. Batches are formed from examples of similar length (less
    padding), so the order is not the split's; ``index`` is the position in the split.
    """
    device = resolve_device(device) if device is not None else _device(model)
    model.to(device)
    feats, records = group.splits.get(split) or [], group.records.get(split) or []
    types = {t.name: model.types[t.name] for t in group.tasks}
    labelled = {name: [tt.gold(r) is not None for r in records] for name, tt in types.items()}
    collate = Collator.for_tokenizer(model.encoder.tokenizer)
    was_training = model.training
    model.eval()
    try:
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = collate([{k: v for k, v in feats[i].items() if k != "labels"} for i in idx])
            tt_ids = batch.get("token_type_ids")
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                           tt_ids.to(device) if tt_ids is not None else None, tasks=list(types))
            width = batch["input_ids"].shape[1]
            for name, tt in types.items():
                lg = logits[name].float().cpu()  # (B, C) or (B, T, C)
                for row, i in enumerate(idx):
                    if labelled[name][i]:
                        yield name, i, (lg[row, collate.positions(len(feats[i]["input_ids"]), width)]
                                        if tt.label_kind == "token" else lg[row])  # (T_i, C) or (C,)
    finally:
        model.train(was_training)


def collect_predictions(model, group, split: str = "dev", batch_size: int = 64,
                        device: str | torch.device | None = None) -> dict[str, dict[str, list]]:
    """Gold and predicted labels of every task of ``group`` on ``split``.

    Returns
    -------
    dict
        ``{task: {"true": [...], "pred": [...], "index": [...]}}`` in the split's order; labels
        are as each task type reads them (a class name, a list of word tags, a list of labels,
        a leaf path). Examples without a gold label for a task are left out of its lists;
        ``"index"`` gives the positions of the examples kept.
    """
    feats, records = group.splits.get(split) or [], group.records.get(split) or []
    types = {t.name: model.types[t.name] for t in group.tasks}
    preds: dict[str, dict[int, Any]] = {name: {} for name in types}
    for name, i, own in example_logits(model, group, split, batch_size, device):
        preds[name][i] = types[name].decode(own, feats[i])
    out = {name: {"true": [], "pred": [], "index": []} for name in types}
    for name, tt in types.items():
        for i in sorted(preds[name]):
            out[name]["true"].append(tt.gold(records[i]))
            out[name]["pred"].append(preds[name][i])
            out[name]["index"].append(i)
    return out


def score_predictions(model, group, preds: dict[str, dict[str, list]]) -> dict[str, dict[str, float]]:
    """Each task's metrics, plus the group's joint metrics (sentence accuracy for intent + slots)."""
    types = [model.types[t.name] for t in group.tasks]
    scores = {tt.spec.name: tt.score(preds[tt.spec.name]["true"], preds[tt.spec.name]["pred"])
              for tt in types if preds[tt.spec.name]["true"]}
    joint = group_metrics(types, {n: p["true"] for n, p in preds.items()},
                          {n: p["pred"] for n, p in preds.items()},
                          {n: p["index"] for n, p in preds.items()})
    if joint:
        scores[group.name] = joint
    return scores


def evaluate(model, groups, split: str = "dev", batch_size: int = 64,
             device: str | torch.device | None = None) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` (values in [0, 1]) over all groups that have ``split``.

    Runs on the model's own device unless ``device`` says otherwise (``"auto"``, ``"cpu"``,
    ``"cuda"``, ...: the model is moved there).
    """
    scores: dict[str, dict[str, float]] = {}
    for g in groups:
        if g.splits.get(split):
            scores.update(score_predictions(model, g, collect_predictions(model, g, split, batch_size, device)))
    return scores
