"""Task conflict: cosines of hand-made gradients, the same numbers as backward() gives, and a
measurement that leaves training exactly as it is (same weights on and off)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from mtl_lib.experiment import build_groups
from mtl_lib.models.multitask import MultiTaskModel
from mtl_lib.tasks.spec import TaskSpec
from mtl_lib.training.config import TrainerConfig
from mtl_lib.training.conflict import GradientConflict, gradient_cosines
from mtl_lib.training.trainer import Trainer
from mtl_lib.ui.plots import plot_task_conflict


def test_cosines_of_known_gradient_directions():
    w = torch.nn.Parameter(torch.randn(3))
    m = torch.nn.Parameter(torch.randn(2, 2))
    # linear losses: each gradient is exactly its coefficient vector, spread over w and m
    coef = {"a": ([1.0, 0, 0], [[0, 0], [0, 0]]), "b": ([0, 1.0, 0], [[0, 0], [0, 0]]),
            "c": ([-2.0, 0, 0], [[0, 0], [0, 0]]), "d": ([1.0, 1.0, 0], [[0, 0], [0, 0]]),
            "e": ([0, 0, 1.0], [[1.0, 0], [0, 1.0]]), "zero": ([0, 0, 0], [[0, 0], [0, 0]])}
    losses = {t: w @ torch.tensor(u, dtype=torch.float) + (m * torch.tensor(v, dtype=torch.float)).sum()
              for t, (u, v) in coef.items()}
    cos = gradient_cosines(losses, [w, m])
    assert cos[("a", "b")] == pytest.approx(0.0)  # orthogonal: indifferent
    assert cos[("a", "c")] == pytest.approx(-1.0)  # opposite: a step for a undoes c
    assert cos[("a", "d")] == pytest.approx(1 / math.sqrt(2))  # 45 degrees
    flat = {t: np.concatenate([u, np.ravel(v)]) for t, (u, v) in coef.items()}
    expected = flat["d"] @ flat["e"] / np.linalg.norm(flat["d"]) / np.linalg.norm(flat["e"])
    assert cos[("d", "e")] == pytest.approx(expected)  # both parameters count, flattened together
    assert not any("zero" in pair for pair in cos)  # no direction: left out
    assert len(cos) == 10  # the other 5 tasks' pairs, in the order given
    assert w.grad is None and m.grad is None  # autograd.grad: nothing accumulated


@pytest.fixture(scope="module")
def two_groups(tiny_snips):
    """SNIPS intent + slots (one group) and CoNLL NER (another): three tasks, three pairs."""
    enc, (snips,) = tiny_snips
    ner = TaskSpec(name="ner", task_type="tagging", format="conll", path="conll2003", max_examples=40)
    (ner_group,) = build_groups([ner], enc.tokenizer)
    return enc, [snips, ner_group]


def _model(two_groups):
    enc, groups = two_groups
    return MultiTaskModel.from_tasks(copy.deepcopy(enc), [t for g in groups for t in g.tasks])


CONFIG = dict(max_steps=6, batch_size=8, weighting="uncertainty", classifier_lr=5e-3, progress=False)


def test_off_by_default_and_then_not_even_added(two_groups):
    trainer = Trainer(_model(two_groups), two_groups[1], **CONFIG)
    assert TrainerConfig().conflict_every is None
    assert not any(isinstance(cb, GradientConflict) for cb in trainer.callbacks)
    assert trainer.fit().conflict_rows() == []
    with pytest.raises(ValueError, match="conflict_every"):
        TrainerConfig(conflict_every=0)


def test_measuring_changes_nothing_in_training(two_groups):
    """Every step measured, dropout on, a learned weighting: still the very same weights."""
    runs = {}
    for every in (None, 1):
        trainer = Trainer(_model(two_groups), two_groups[1], conflict_every=every, **CONFIG)
        history = trainer.fit()
        runs[every] = (trainer, history)
    (off, h_off), (on, h_on) = runs[None], runs[1]
    for (name, a), (_, b) in zip(off.model.state_dict().items(), on.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(off.weighting.log_vars, on.weighting.log_vars)
    drop = ("samples_per_s",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in h_off.records] == \
        [{k: v for k, v in r.items() if k not in drop and r["kind"] != "conflict"}
         for r in h_on.records if r["kind"] != "conflict"]
    rows = h_on.conflict_rows()
    assert [r["step"] for r in rows] == [s for s in range(1, 7) for _ in range(3)]
    assert [tuple(r["tasks"]) for r in rows[:3]] == [("intent", "slots"), ("intent", "ner"), ("slots", "ner")]
    assert all(-1 <= r["cosine"] <= 1 for r in rows)


def test_cosines_equal_those_of_separate_backward_passes(two_groups):
    trainer = Trainer(_model(two_groups), two_groups[1], conflict_every=3, **(CONFIG | {"max_steps": 3}))
    history = trainer.fit()
    (callback,) = [cb for cb in trainer.callbacks if isinstance(cb, GradientConflict)]
    model = copy.deepcopy(trainer.model).eval()  # the weights at step 3, where it measured
    grads = {}
    for tasks, batch in callback.probes:
        for task in tasks:
            model.zero_grad()
            logits = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), tasks=[task])
            model.compute_losses(logits, batch["labels"])[task].backward()
            grads[task] = torch.cat([p.grad.reshape(-1) for p in model.encoder.parameters()])
    by_pair = {tuple(r["tasks"]): r["cosine"] for r in history.conflict_rows()}
    assert set(by_pair) == {("intent", "slots"), ("intent", "ner"), ("slots", "ner")}
    for (a, b), cos in by_pair.items():
        assert cos == pytest.approx(float(torch.nn.functional.cosine_similarity(grads[a], grads[b], dim=0)),
                                    abs=1e-5)
    # the probe is a fixed sample of each group's training examples, a batch's worth
    assert [len(batch["input_ids"]) for _, batch in callback.probes] == [8, 8]


def test_conflict_plot_draws_one_curve_per_pair(two_groups):
    trainer = Trainer(_model(two_groups), two_groups[1], conflict_every=2, **CONFIG)
    history = trainer.fit()
    fig = plot_task_conflict(history)
    ax = fig.axes[0]
    curves = [ln for ln in ax.lines if ln.get_label() in ("intent / slots", "intent / ner", "slots / ner")]
    assert len(curves) == 3
    for ln in curves:
        a, b = ln.get_label().split(" / ")
        want = [r["cosine"] for r in history.conflict_rows() if r["tasks"] == [a, b]]
        assert list(ln.get_xdata()) == [2, 4, 6] and list(ln.get_ydata()) == pytest.approx(want)
    assert ax.get_ylim()[0] <= -1 and ax.get_ylim()[1] >= 1
    empty = plot_task_conflict([])
    assert "no task-conflict" in empty.axes[0].texts[0].get_text()
