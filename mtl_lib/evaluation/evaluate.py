"""Evaluation: run a model over a split and score every task with its metrics.

Predictions are read back by each task's type (:mod:`mtl_lib.task_types`) and compared with
the gold labels *as written in the data*: a gold label the model does not know (a class that
train never had) counts as an error, it never stops the evaluation. Tagging is scored over
every word, words cut off by truncation included (read as ``"O"``).
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.batching import Collator
from ..models.devices import resolve_device
from ..task_types import group_metrics

__all__ = ["collect_predictions", "evaluate", "score_predictions"]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
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
    device = resolve_device(device) if device is not None else _device(model)
    model.to(device)
    feats, records = group.splits.get(split) or [], group.records.get(split) or []
    types = {t.name: model.types[t.name] for t in group.tasks}
    golds = {name: [tt.gold(r) for r in records] for name, tt in types.items()}
    out = {name: {"true": [], "pred": [], "index": []} for name in types}
    collate = Collator.for_tokenizer(model.encoder.tokenizer)
    was_training = model.training
    model.eval()
    order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))  # less padding
    preds: dict[str, dict[int, Any]] = {name: {} for name in types}
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
                if golds[name][i] is None:
                    continue
                own = lg[row, collate.positions(len(feats[i]["input_ids"]), width)] \
                    if tt.label_kind == "token" else lg[row]  # (T_i, C) or (C,)
                preds[name][i] = tt.decode(own, feats[i])
    model.train(was_training)
    for name in types:
        for i in sorted(preds[name]):
            out[name]["true"].append(golds[name][i])
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
