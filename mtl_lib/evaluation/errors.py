"""Which examples a model gets wrong, and how: one record per example and task, worst first.

The error browser (:class:`~mtl_lib.ui.error_browser.ErrorBrowser`) and ``mtl-lib evaluate
--errors N`` show these records; here they are plain dicts (no pandas), so a notebook can
sort, filter and count them as it likes. Like fastai's ``plot_top_losses`` the examples are
ranked by their loss: a wrong prediction made with high confidence ranks above one the model
hesitated over, and a right prediction with a high loss (barely right) ranks above a sure one.

Each task type says what its records hold (:meth:`~mtl_lib.task_types.TaskType.diagnose`):
every kind of task gives ``correct`` and a list of ``errors`` with a ``kind`` each —
``wrong_label`` (classification, pairs), ``missed`` / ``spurious`` / ``wrong_type`` /
``wrong_boundary`` (tagging spans; multi-label labels are missed or spurious) and
``wrong_level_<k>`` (hierarchical, with ``first_wrong_level``, 0 = top).
Taught with the error browser in ``notebooks/03_metrics.ipynb``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import torch

from .evaluate import example_logits

__all__ = ["error_counts", "error_records", "filter_records", "format_errors", "most_confused",
           "worst"]


def error_records(model, groups, split: str = "dev", tasks: Iterable[str] | None = None,
                  batch_size: int = 64, device: str | torch.device | None = None) -> list[dict]:
    """One record per labelled example and task of ``groups`` on ``split``, worst first.

    Parameters
    ----------
    model : MultiTaskModel
    groups : list of InputGroup
        Encoded splits (``build_groups``); groups without ``split`` are skipped.
    tasks : iterable of str, optional
        Only these tasks (default: all).

    Returns
    -------
    list of dict
        Grouped by task (in the groups' order), each task's records sorted by ``loss``,
        highest first. Keys: ``task``, ``task_type``, ``index`` (position in the split),
        ``words`` (and ``words_b`` for pairs), ``text``, ``gold``, ``pred``, ``gold_shown``
        and ``pred_shown`` (class names, e.g. a tagger's entity types), ``gold_text`` and
        ``pred_text`` (one line each, a tagger's spans in brackets), ``loss`` (unweighted;
        ``inf`` for a gold label the model does not know), ``confidence`` (probability of
        the prediction; for tags and labels its weakest part), ``correct``, ``errors`` and
        whatever the task type adds (``first_wrong_level``).
    """
    wanted = None if tasks is None else set(tasks)
    known = [t.name for g in groups for t in g.tasks]
    if wanted is not None and wanted - set(known):
        raise ValueError(f"unknown task(s) {sorted(wanted - set(known))}; the model's tasks are {known}")
    out: list[dict] = []
    for g in groups:
        if not g.splits.get(split):
            continue
        feats, recs = g.splits[split], g.records[split]
        by_task: dict[str, list[dict]] = {t.name: [] for t in g.tasks if wanted is None or t.name in wanted}
        for name, i, logits in example_logits(model, g, split, batch_size, device):
            if name not in by_task:
                continue
            tt, rec = model.types[name], recs[i]
            gold = tt.gold(rec)
            pred = tt.decode(logits, feats[i])
            row = {"task": name, "task_type": tt.name, "index": i, "words": list(rec["words"])}
            if tt.reads_pairs:
                row["words_b"] = list(rec.get("words_b") or [])
            row["text"] = " ".join(row["words"]) + (" ||| " + " ".join(row["words_b"]) if tt.reads_pairs else "")
            row |= {"gold": gold, "pred": pred, "gold_shown": tt.shown(gold), "pred_shown": tt.shown(pred),
                    "gold_text": tt.as_text(gold, rec["words"]), "pred_text": tt.as_text(pred, rec["words"]),
                    "loss": tt.example_loss(logits, feats[i], gold),
                    "confidence": tt.confidence(logits, feats[i], pred)}
            by_task[name].append(row | tt.diagnose(gold, pred))
        for rows in by_task.values():
            out += sorted(rows, key=lambda r: (-r["loss"], r["index"]))
    return out


def filter_records(records: Iterable[dict], task: str | None = None, gold: str | None = None,
                   pred: str | None = None, kind: str | None = None,
                   only_errors: bool = False) -> list[dict]:
    """Records of ``task`` whose gold (or predicted) value shows class ``gold`` (``pred``),
    with an error of ``kind``, or wrong at all (``only_errors``); order kept."""
    return [r for r in records
            if task in (None, r["task"]) and (gold is None or gold in r["gold_shown"])
            and (pred is None or pred in r["pred_shown"])
            and (kind is None or any(e["kind"] == kind for e in r["errors"]))
            and not (only_errors and r["correct"])]


def worst(records: Iterable[dict], n: int, task: str | None = None) -> list[dict]:
    """The ``n`` wrong predictions of highest loss of each task (or of ``task``)."""
    out, seen = [], Counter()
    for r in sorted(filter_records(records, task, only_errors=True), key=lambda r: -r["loss"]):
        if seen[r["task"]] < n:
            seen[r["task"]] += 1
            out.append(r)
    order = list(dict.fromkeys(r["task"] for r in records))
    return sorted(out, key=lambda r: order.index(r["task"]))  # stable: by task, then by loss


def error_counts(records: Iterable[dict], task: str | None = None) -> dict[str, int]:
    """How many errors of each kind (``{"missed": 3, "wrong_type": 1, ...}``), most first."""
    counts = Counter(e["kind"] for r in filter_records(records, task) for e in r["errors"])
    return dict(counts.most_common())


def most_confused(records: Iterable[dict], task: str | None = None,
                  min_count: int = 1) -> list[tuple[str, str, int]]:
    """``(gold, predicted, count)`` for the pairs of classes most often confused, as fastai's
    ``most_confused``; a tagger's pairs are the entity types of its ``wrong_type`` errors."""
    pairs: Counter = Counter()
    for r in filter_records(records, task, only_errors=True):
        spans = [(e["gold"]["type"], e["pred"]["type"]) for e in r["errors"] if e["kind"] == "wrong_type"]
        if spans:
            pairs.update(spans)
        elif len(r["gold_shown"]) == 1 and len(r["pred_shown"]) == 1 and r["gold_shown"] != r["pred_shown"]:
            pairs[(r["gold_shown"][0], r["pred_shown"][0])] += 1
    return [(g, p, n) for (g, p), n in pairs.most_common() if n >= min_count]


def _span(words: list[str], s: dict | None) -> str:
    return f"{' '.join(words[s['start']:s['end']])!r}:{s['type']}" if s else "-"


def _describe(r: dict) -> str:
    """One line of what went wrong."""
    parts = []
    for e in r["errors"]:
        g, p = e.get("gold"), e.get("pred")
        if isinstance(g, dict) or isinstance(p, dict):  # a span on one side or both
            parts.append(f"{e['kind']} {_span(r['words'], g)} -> {_span(r['words'], p)}")
        elif "label" in e:
            parts.append(f"{e['kind']} {e['label']}")
        else:
            parts.append(e["kind"])
    return "; ".join(parts) or "right"


def format_errors(records: list[dict], n: int = 10) -> str:
    """The ``n`` worst errors of each task as text (what ``mtl-lib evaluate --errors`` prints)."""
    lines: list[str] = []
    for task in dict.fromkeys(r["task"] for r in records):
        mine = [r for r in records if r["task"] == task]
        wrong = [r for r in mine if not r["correct"]]
        counts = ", ".join(f"{k} {v}" for k, v in error_counts(mine).items()) or "none"
        lines += [f"{task}: {len(wrong)} of {len(mine)} examples wrong; errors by kind: {counts}"]
        for r in worst(mine, n):
            loss = "inf" if math.isinf(r["loss"]) else f"{r['loss']:.3f}"
            lines += [f"  #{r['index']:<5} loss {loss:>7}  confidence {r['confidence']:.0%}  {r['text']}",
                      f"         gold {r['gold_text']}",
                      f"         pred {r['pred_text']}",
                      f"         {_describe(r)}"]
    return "\n".join(lines)
