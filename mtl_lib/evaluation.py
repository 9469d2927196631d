"""Evaluation: run a model over encoded examples and score every task with its metrics.

Word-level tags are read back at each word's first sub-token (where the labels were put),
so tagging metrics are computed on words, as seqeval and conlleval expect; the task's
``tag_decoding`` says how (valid-BIO Viterbi by default, or per-word argmax).
"""

from __future__ import annotations

from typing import Any

import torch

from .data import Collator
from .decoding import decode_tags
from .hierarchical_metrics import hierarchical_metrics
from .metrics import METRICS, sentence_accuracy

__all__ = ["collect_predictions", "evaluate", "score_predictions"]


@torch.no_grad()
def collect_predictions(model, group, split: str = "dev", batch_size: int = 64,
                        device: str | torch.device = "cpu") -> dict[str, dict[str, list]]:
    """Gold and predicted labels (as strings) of every task of ``group`` on ``split``.

    Returns
    -------
    dict
        ``{task: {"true": [...], "pred": [...]}}``; for tagging tasks each item is a list of
        word tags; examples without a label for a task are left out of that task's lists,
        and ``"index"`` lists the example positions kept.
    """
    feats = group.splits.get(split) or []
    tasks = {t.name: t for t in group.tasks}
    out = {n: {"true": [], "pred": [], "index": []} for n in tasks}
    collate = Collator(pad_token_id=model.encoder.tokenizer.pad_token_id or 0,
                       padding_side=model.encoder.tokenizer.padding_side)
    was_training = model.training
    model.eval()
    order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))  # less padding
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = collate([feats[i] for i in idx])
        logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                       batch.get("token_type_ids", None) if "token_type_ids" not in batch
                       else batch["token_type_ids"].to(device), tasks=list(tasks))
        for name, spec in tasks.items():
            gold = batch["labels"][name]
            lg = logits[name].float().cpu()
            for row, i in enumerate(idx):
                if name not in feats[i]["labels"]:
                    continue
                t, p = _decode(spec, gold[row], lg[row])
                out[name]["true"].append(t)
                out[name]["pred"].append(p)
                out[name]["index"].append(i)
    model.train(was_training)
    # restore the split's own order so indices line up with records
    for d in out.values():
        perm = sorted(range(len(d["index"])), key=d["index"].__getitem__)
        for k in d:
            d[k] = [d[k][j] for j in perm]
    return out


def _decode(spec, gold: torch.Tensor, logits: torch.Tensor) -> tuple[Any, Any]:
    labels = spec.labels
    if spec.task_type == "tagging":  # gold (T,), logits (T, C)
        keep = gold != -100
        return ([labels[j] for j in gold[keep].tolist()],
                decode_tags(logits[keep], labels, spec.tag_decoding))
    if spec.task_type == "multilabel":  # gold (C,), logits (C,)
        return ([int(v) for v in gold.tolist()], [int(v > 0) for v in logits.tolist()])
    return labels[int(gold)], labels[int(logits.argmax(-1))]


def score_predictions(group, preds: dict[str, dict[str, list]]) -> dict[str, dict[str, float]]:
    """Apply each task's metrics; add sentence accuracy for a classification + tagging pair."""
    scores: dict[str, dict[str, float]] = {}
    for spec in group.tasks:
        p = preds[spec.name]
        if not p["true"]:
            continue
        scores[spec.name] = {m: float(METRICS[m](p["true"], p["pred"])) for m in spec.metrics}
        if spec.task_type == "hierarchical":  # leaves are "top > ... > leaf" paths
            paths = [[tuple(x.split(" > ")) for x in p[k]] for k in ("true", "pred")]
            scores[spec.name].update(hierarchical_metrics(*paths))
    kinds = {t.task_type: t.name for t in group.tasks}
    if len(group.tasks) == 2 and {"classification", "tagging"} <= set(kinds):
        c, t = preds[kinds["classification"]], preds[kinds["tagging"]]
        if c["index"] == t["index"] and c["true"]:
            scores[group.name] = {"sentence_accuracy": float(
                sentence_accuracy(c["true"], c["pred"], t["true"], t["pred"]))}
    return scores


def evaluate(model, groups, split: str = "dev", batch_size: int = 64,
             device: str | torch.device = "cpu") -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` (values in [0, 1]) over all groups that have ``split``."""
    scores: dict[str, dict[str, float]] = {}
    for g in groups:
        if g.splits.get(split):
            scores.update(score_predictions(g, collect_predictions(model, g, split, batch_size, device)))
    return scores
