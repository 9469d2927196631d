"""Trainer, samplers and loss weightings: hand computations and small training runs.

Samplers and weightings are checked against formulas worked out by hand; the trainer on the
tiny SNIPS fixture (tiny BERT, 200 utterances) for a few steps at a time.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mtl_lib.data import Collator
from mtl_lib.data.sources import InputGroup
from mtl_lib.experiment import build_groups
from mtl_lib.models.multitask import MultiTaskModel
from mtl_lib.tasks.spec import TaskSpec
from mtl_lib.training.config import TrainerConfig
from mtl_lib.training.sampling import SAMPLERS, AnnealedSampler, make_sampler
from mtl_lib.training.trainer import Trainer, TrainingDiverged
from mtl_lib.training.weighting import WEIGHTINGS, DWAWeighting, UncertaintyWeighting, make_weighting

SIZES = [100, 20, 5]


# --------------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------------
def test_sampler_probabilities_match_their_formulas():
    n = np.array(SIZES, dtype=float)
    prop = n / n.sum()
    assert np.allclose(make_sampler("proportional", SIZES).probabilities(0.3), prop)
    assert np.allclose(make_sampler("uniform", SIZES).probabilities(0.3), [1 / 3] * 3)
    assert np.allclose(make_sampler("round_robin", SIZES).probabilities(0.3), [1 / 3] * 3)
    # temperature: p ∝ n^(1/T); T = 1 is proportional, T = 2 square roots, huge T uniform
    assert np.allclose(make_sampler("temperature", SIZES, temperature=1.0).probabilities(0), prop)
    sq = np.sqrt(n) / np.sqrt(n).sum()
    assert np.allclose(make_sampler("temperature", SIZES, temperature=2.0).probabilities(0), sq)
    assert np.allclose(make_sampler("temperature", SIZES, temperature=1e6).probabilities(0), [1 / 3] * 3,
                       atol=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        make_sampler("temperature", SIZES, temperature=0.0)
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        make_sampler("nope", SIZES)


def test_annealed_sampler_moves_from_proportional_towards_uniform():
    s = AnnealedSampler(SIZES, total_steps=1000)
    n = np.array(SIZES, dtype=float)
    assert np.allclose(s.probabilities(0.0), n / n.sum())  # alpha = 1
    end = n**0.2 / (n**0.2).sum()  # alpha = 1 - 0.8 = 0.2
    assert np.allclose(s.probabilities(1.0), end)
    assert np.allclose(s.probabilities(0.5), n**0.6 / (n**0.6).sum())
    # "near uniform" at the end: the largest/smallest ratio drops from 20 to 20^0.2 ≈ 1.82
    assert s.probabilities(1.0).max() / s.probabilities(1.0).min() == pytest.approx(20**0.2)

    def entropy(p):
        return float(-(p * np.log(p)).sum())

    ents = [entropy(s.probabilities(x)) for x in np.linspace(0, 1, 11)]
    assert all(a < b for a, b in zip(ents, ents[1:]))  # strictly more uniform over time
    assert ents[-1] > 0.9 * math.log(3)


def test_round_robin_cycles_through_groups():
    s = make_sampler("round_robin", SIZES, seed=3)
    assert [s.choose(i) for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]


@pytest.mark.parametrize("name", ["proportional", "uniform", "temperature", "annealed"])
def test_sampler_draws_are_seeded_and_stateless(name):
    a = make_sampler(name, SIZES, seed=5, total_steps=200)
    b = make_sampler(name, SIZES, seed=5, total_steps=200)
    seq = [a.choose(i) for i in range(200)]
    assert seq == [b.choose(i) for i in range(200)]
    # stateless: a draw depends only on (seed, step), not on the draws before it (exact resume)
    assert [b.choose(i) for i in (150, 7, 99)] == [seq[150], seq[7], seq[99]]
    other = make_sampler(name, SIZES, seed=6, total_steps=200)
    assert [other.choose(i) for i in range(200)] != seq


@pytest.mark.parametrize("name", ["proportional", "uniform", "temperature", "annealed"])
def test_sampler_empirical_frequencies_match_probabilities(name):
    draws = 5000
    s = make_sampler(name, SIZES, seed=11, total_steps=draws)
    counts = np.bincount([s.choose(i) for i in range(draws)], minlength=3) / draws
    # annealed changes over training: compare with the probabilities averaged over the steps
    expected = np.mean([s.probabilities(i / draws) for i in range(draws)], axis=0)
    se = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(counts - expected) < 4 * se + 1e-9), (counts, expected)


# --------------------------------------------------------------------------------------------
# loss weightings
# --------------------------------------------------------------------------------------------
def _losses(a: float, b: float) -> dict[str, torch.Tensor]:
    return {"a": torch.tensor(a), "b": torch.tensor(b)}


def test_static_and_equal_weighting():
    static = make_weighting("static", ["a", "b"], {"a": 0.5, "b": 2.0})
    assert static.combine(_losses(2.0, 3.0)).item() == pytest.approx(0.5 * 2 + 2 * 3)
    assert static.weights() == {"a": 0.5, "b": 2.0}
    equal = make_weighting("equal", ["a", "b"], {"a": 0.5, "b": 2.0})
    assert equal.combine(_losses(2.0, 3.0)).item() == pytest.approx(5.0)
    # a task absent from the batch contributes nothing
    assert static.combine({"b": torch.tensor(3.0)}).item() == pytest.approx(6.0)
    with pytest.raises(ValueError, match="unknown loss weighting"):
        make_weighting("nope", ["a"])


def test_uncertainty_weighting_loss_and_gradient_by_hand():
    w = UncertaintyWeighting(["a", "b"])
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([0.3, -0.7]))
    la, lb = 2.0, 0.5
    total = w.combine(_losses(la, lb))
    # L = Σ ½ e^{-s_t} L_t + ½ s_t
    hand = 0.5 * math.exp(-0.3) * la + 0.5 * 0.3 + 0.5 * math.exp(0.7) * lb + 0.5 * -0.7
    assert total.item() == pytest.approx(hand, rel=1e-6)
    total.backward()
    # dL/ds_t = -½ e^{-s_t} L_t + ½
    grad = [-0.5 * math.exp(-0.3) * la + 0.5, -0.5 * math.exp(0.7) * lb + 0.5]
    assert w.log_vars.grad.tolist() == pytest.approx(grad, rel=1e-6)
    assert w.weights() == pytest.approx({"a": 0.5 * math.exp(-0.3), "b": 0.5 * math.exp(0.7)})


def test_uncertainty_weights_reach_their_optimum_in_the_trainers_optimizer(tiny_snips, make_snips_model):
    # with fixed task losses L_t, ½e^{-s}L + ½s is smallest at s = log L: weight ½e^{-s} = 1/(2L).
    # The trainer must let the log-variances get there within training: no weight decay pulling
    # them to 0, and no schedule decaying their step size to 0 at the end.
    _, (snips,) = tiny_snips
    trainer = Trainer(make_snips_model(), [snips], max_steps=300, weighting="uncertainty", progress=False)
    fixed = {"intent": 0.5, "slots": 2.0}
    for _ in range(trainer.total_steps):
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.weighting.combine({t: torch.tensor(v) for t, v in fixed.items()}).backward()
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert trainer.weighting.weights() == pytest.approx({t: 1 / (2 * v) for t, v in fixed.items()}, rel=0.02)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # while the encoder's rate decayed
    group = trainer.optimizer.param_groups[-1]
    assert group["name"] == "weighting" and group["weight_decay"] == 0.0
    assert group["params"] == [trainer.weighting.log_vars]


def test_layer_lr_decay_gives_each_encoder_depth_its_rate(tiny_snips, make_snips_model):
    _, (snips,) = tiny_snips
    model = make_snips_model()
    trainer = Trainer(model, [snips], max_steps=2, encoder_lr=1e-3, layer_lr_decay=0.5,
                      warmup_ratio=0.0, lr_schedule="constant", progress=False)
    by_depth = model.encoder.parameters_by_depth()  # embeddings, layer 0, layer 1
    groups = trainer.optimizer.param_groups
    assert [g["name"] for g in groups] == ["encoder", "encoder.depth1", "encoder.depth0", "heads"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 5e-4, 2.5e-4, trainer.config.classifier_lr])
    assert groups[0]["params"] == by_depth[2] and groups[2]["params"] == by_depth[0]
    # each group moves at its own rate: Adam's first step is about lr * sign(grad) per weight
    before = [p.detach().clone() for p in by_depth[0] + by_depth[2]]
    trainer.fit()
    plain = Trainer(make_snips_model(), [snips], max_steps=2, encoder_lr=1e-3, progress=False)
    assert [g["name"] for g in plain.optimizer.param_groups] == ["encoder", "heads"]
    moved = [(p - b).abs().max().item() for p, b in zip(by_depth[0] + by_depth[2], before)]
    n0 = len(by_depth[0])
    assert max(moved[:n0]) < max(moved[n0:])  # embeddings (rate / 4) move less than the top layer
    with pytest.raises(ValueError, match=r"layer_lr_decay must be a number \(0, 1\]"):
        TrainerConfig(layer_lr_decay=1.5)


def test_resume_refuses_a_changed_layer_lr_decay_and_takes_the_same_one(tiny_snips, make_snips_model, tmp_path):
    from mtl_lib.training.checkpoint import CheckpointError

    _, (snips,) = tiny_snips
    options = dict(max_steps=2, save_every=2, progress=False, output_dir=str(tmp_path))
    Trainer(make_snips_model(), [snips], layer_lr_decay=0.5, **options).fit()
    changed = Trainer(make_snips_model(), [snips], **{**options, "max_steps": 3})
    with pytest.raises(CheckpointError, match=r"parameter groups differ: encoder \(16 tensors\), encoder.depth1 "
                       r"\(16 tensors\), encoder.depth0 \(5 tensors\), heads \(4 tensors\) in the checkpoint, "
                       r"encoder \(37 tensors\), heads \(4 tensors\) now"):
        changed.fit(resume_from=tmp_path / "last")
    assert changed.step == 0

    same = Trainer(make_snips_model(), [snips], layer_lr_decay=0.5, **{**options, "max_steps": 3})
    same.fit(resume_from=tmp_path / "last")
    assert same.step == 3
    assert same.optimizer.param_groups[2]["initial_lr"] == pytest.approx(0.25 * same.config.encoder_lr)


def test_dwa_weights_by_hand_after_two_windows():
    w = DWAWeighting(["a", "b"], temperature=2.0, window=2)
    w.update({"a": 1.0, "b": 4.0})
    w.update({"a": 3.0, "b": 4.0})  # window 1 means: a 2.0, b 4.0
    assert w.weights() == {"a": 1.0, "b": 1.0}  # one window is not enough
    w.update({"a": 1.0, "b": 5.0})
    w.update({"a": 1.0, "b": 3.0})  # window 2 means: a 1.0, b 4.0
    r_a, r_b = 1.0 / 2.0, 4.0 / 4.0  # the falling task (a) gets less weight
    z = math.exp(r_a / 2) + math.exp(r_b / 2)
    expected = {"a": 2 * math.exp(r_a / 2) / z, "b": 2 * math.exp(r_b / 2) / z}
    assert w.weights() == pytest.approx(expected)
    assert sum(w.weights().values()) == pytest.approx(2.0)
    assert w.combine(_losses(1.0, 1.0)).item() == pytest.approx(2.0)
    # its state goes into trainer_state.json: it must survive JSON
    clone = DWAWeighting(["a", "b"], temperature=2.0, window=2)
    clone.load_extra_state(json.loads(json.dumps(w.extra_state())))
    for step_losses in ({"a": 0.5, "b": 2.0}, {"a": 0.5, "b": 1.0}):
        w.update(step_losses)
        clone.update(step_losses)
    assert clone.weights() == pytest.approx(w.weights())


# --------------------------------------------------------------------------------------------
# data for trainer tests
# --------------------------------------------------------------------------------------------
def _train_only(g: InputGroup) -> InputGroup:
    """The group without its dev split (no evaluation: faster, and no encoder calls)."""
    return InputGroup(g.name, g.tasks, {"train": g.splits["train"]}, g.records)


@pytest.fixture(scope="module")
def ner_group(tiny_snips):
    """A CoNLL-2003 NER subset (80 train / 16 dev sentences) encoded with the tiny tokenizer."""
    enc, _ = tiny_snips
    spec = TaskSpec(name="ner", task_type="tagging", format="conll", path="conll2003", max_examples=80)
    (group,) = build_groups([spec], enc.tokenizer)
    return group


def _grab_grads(trainer: Trainer) -> list[dict[str, torch.Tensor]]:
    """Record the gradients (and learning rates) each optimiser step is applied with."""
    seen = []

    def record(optimizer, args, kwargs):
        seen.append({"grads": {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters()
                               if p.grad is not None},
                     "lrs": [g["lr"] for g in optimizer.param_groups]})

    trainer.optimizer.register_step_pre_hook(record)
    return seen


# --------------------------------------------------------------------------------------------
# every sampler and weighting trains
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler,weighting",
                         [(s, "static") for s in SAMPLERS] + [("uniform", w) for w in WEIGHTINGS if w != "static"])
def test_every_sampler_and_weighting_trains(sampler, weighting, tiny_snips, ner_group):
    enc, (snips,) = tiny_snips
    groups = [_train_only(snips), _train_only(ner_group)]
    model = MultiTaskModel.from_tasks(copy.deepcopy(enc), [t for g in groups for t in g.tasks])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = Trainer(model, groups, max_steps=4, batch_size=8, sampler=sampler, weighting=weighting,
                      progress=False)
    history = trainer.fit()
    assert trainer.step == 4
    rows = history.train_rows()
    assert {r["step"] for r in rows} == {1, 2, 3, 4}
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in rows)
    assert all(math.isfinite(r["weight"]) for r in rows)
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    if sampler == "round_robin":  # group 0 (intent+slots), then group 1 (ner), ...
        assert [r["task"] for r in rows] == ["intent", "slots", "ner"] * 2
    if weighting == "uncertainty":  # the log-variances are learned with the heads
        assert not torch.equal(trainer.weighting.log_vars.detach(), torch.zeros(3))


def test_static_loss_weight_from_the_task_reaches_the_trainer(tiny_snips):
    enc, (snips,) = tiny_snips
    intent, slots = (dataclasses.replace(t) for t in snips.tasks)
    intent.loss_weight = 0.0  # switched off: its head gets exactly zero gradient
    group = InputGroup("g", [intent, slots], {"train": snips.splits["train"]})
    model = MultiTaskModel.from_tasks(copy.deepcopy(enc), [intent, slots])
    before = {n: h.linear.weight.detach().clone() for n, h in model.heads.items()}
    history = Trainer(model, [group], max_steps=3, batch_size=16, weight_decay=0.0, progress=False).fit()
    assert torch.equal(model.heads["intent"].linear.weight, before["intent"])
    assert not torch.equal(model.heads["slots"].linear.weight, before["slots"])
    assert {r["weight"] for r in history.train_rows("intent")} == {0.0}
    assert all(r["loss"] > 0 for r in history.train_rows("intent"))  # still computed and logged


# --------------------------------------------------------------------------------------------
# joint batches
# --------------------------------------------------------------------------------------------
def test_joint_group_runs_the_encoder_once_per_step_and_logs_both_losses(tiny_snips, make_snips_model):
    _, (snips,) = tiny_snips
    model = make_snips_model()
    train_calls = []
    model.encoder.register_forward_hook(lambda m, a, o: train_calls.append(m.training))
    history = Trainer(model, [snips], max_steps=5, batch_size=16, progress=False).fit()
    assert train_calls.count(True) == 5  # evaluation (eval mode) is not counted
    for task in ("intent", "slots"):
        assert [r["step"] for r in history.train_rows(task)] == [1, 2, 3, 4, 5]
    assert set(history.last_metrics()) == {"intent", "slots", "intent+slots"}


def test_examples_without_a_task_label_are_masked_out_of_its_loss(tiny_snips, make_snips_model, no_dropout):
    enc, (snips,) = tiny_snips
    intent, slots = snips.tasks
    records = [dict(r) for r in snips.records["train"][:16]]
    for r in records[1::2]:
        del r["intent"]  # half the utterances have slots only
    (group,) = build_groups([intent, slots], enc.tokenizer, splits=("train",), records={"train": records})
    feats = group.splits["train"]
    assert [("intent" in f["labels"]) for f in feats] == [True, False] * 8
    model = no_dropout(make_snips_model())
    reference = copy.deepcopy(model).eval()
    history = Trainer(model, [group], max_steps=1, batch_size=16, max_grad_norm=0.0, progress=False).fit()
    logged = {r["task"]: r["loss"] for r in history.train_rows()}

    collate = Collator.for_tokenizer(enc.tokenizer, {"intent": "class", "slots": "token"})
    with torch.no_grad():
        lab = collate(feats[0::2])
        logits = reference(lab["input_ids"], lab["attention_mask"], lab.get("token_type_ids"))["intent"]
        hand_intent = F.cross_entropy(logits, torch.tensor([f["labels"]["intent"] for f in feats[0::2]]))
        full = collate(feats)
        tag_logits = reference(full["input_ids"], full["attention_mask"], full.get("token_type_ids"))["slots"]
        gold = full["labels"]["slots"]
        keep = gold != -100  # word-start tokens of all 16 utterances
        hand_slots = F.cross_entropy(tag_logits[keep], gold[keep])
    assert logged["intent"] == pytest.approx(hand_intent.item(), rel=1e-5)
    assert logged["slots"] == pytest.approx(hand_slots.item(), rel=1e-5)


def test_a_batch_with_no_label_for_a_task_neither_diverges_nor_logs_a_fake_loss(tiny_snips, make_snips_model):
    enc, (snips,) = tiny_snips
    intent, slots = snips.tasks
    records = [{k: v for k, v in r.items() if k != "intent"} for r in snips.records["train"][:16]]
    (group,) = build_groups([intent, slots], enc.tokenizer, splits=("train",), records={"train": records})
    history = Trainer(make_snips_model(), [group], max_steps=2, batch_size=8, progress=False).fit()
    assert len(history.train_rows("slots")) == 2
    assert history.train_rows("intent") == []  # nothing to learn from, nothing logged


def test_two_tagging_tasks_on_different_datasets_train_together(tiny_snips, ner_group):
    enc, _ = tiny_snips
    slots = TaskSpec(name="slots", task_type="tagging", format="jointbert", path="snips",
                     label_map_or_file="snips/slot_label.txt", max_examples=60)
    (slots_group,) = build_groups([slots], enc.tokenizer)
    groups = [slots_group, ner_group]
    assert slots.labels != ner_group.tasks[0].labels
    model = MultiTaskModel.from_tasks(copy.deepcopy(enc), [slots, ner_group.tasks[0]])
    heads0 = {n: h.linear.weight.detach().clone() for n, h in model.heads.items()}
    trainer = Trainer(model, groups, max_steps=4, batch_size=8, sampler="round_robin", progress=False)
    history = trainer.fit()
    assert [r["step"] for r in history.train_rows("slots")] == [1, 3]
    assert [r["step"] for r in history.train_rows("ner")] == [2, 4]
    for name, head in model.heads.items():  # each head learned from its own dataset
        assert not torch.equal(head.linear.weight, heads0[name]), name
    metrics = history.last_metrics()
    assert set(metrics) == {"slots", "ner"}
    assert set(metrics["ner"]) == {"seqeval_f1_score", "seqeval_precision", "seqeval_recall"}


# --------------------------------------------------------------------------------------------
# optimisation details
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def intent16(tiny_snips):
    """16 SNIPS utterances with the intent task only (classification: the loss is a plain mean)."""
    enc, _ = tiny_snips
    spec = TaskSpec(name="intent", task_type="classification", format="jointbert", path="snips",
                    label_map_or_file="snips/intent_label.txt", max_examples=16, dropout_prob=0.0)
    (group,) = build_groups([spec], enc.tokenizer)
    assert len(group.splits["train"]) == 16
    return _train_only(group)


def test_gradient_accumulation_equals_one_big_batch(tiny_snips, intent16, no_dropout):
    enc, _ = tiny_snips
    base = no_dropout(MultiTaskModel.from_tasks(copy.deepcopy(enc), intent16.tasks))
    grads = {}
    for bs, accum in ((16, 1), (8, 2)):
        trainer = Trainer(copy.deepcopy(base), [intent16], max_steps=2, batch_size=bs, grad_accum_steps=accum,
                          bucketing=False, max_grad_norm=0.0, progress=False)
        assert trainer.steps_per_epoch == 1
        seen = _grab_grads(trainer)
        batches = []
        trainer.collate = (lambda f, c=trainer.collate, b=batches: b.append(len(f)) or c(f))
        trainer.fit()
        assert trainer.step == 2 and batches == [bs] * (2 * accum)
        grads[bs] = seen
    # same 16 examples per step (one shuffled epoch each): the averaged gradients agree; they
    # differ only by float rounding (padding to different lengths, summation order)
    for big, small in zip(grads[16], grads[8]):
        assert big["grads"].keys() == small["grads"].keys()
        for name, g in big["grads"].items():
            torch.testing.assert_close(small["grads"][name], g, rtol=1e-4, atol=1e-7, msg=name)


def test_logged_loss_with_accumulation_is_the_mean_over_the_micro_batches_of_that_task(
        tiny_snips, intent16, ner_group):
    enc, _ = tiny_snips
    groups = [intent16, _train_only(ner_group)]
    model = MultiTaskModel.from_tasks(copy.deepcopy(enc), [t for g in groups for t in g.tasks])
    trainer = Trainer(model, groups, max_steps=2, batch_size=4, grad_accum_steps=3, sampler="round_robin",
                      progress=False)
    micro = []
    compute = model.compute_losses

    def recording(logits, labels):
        out = compute(logits, labels)
        micro.append({t: v.item() for t, v in out.items()})
        return out

    model.compute_losses = recording
    history = trainer.fit()
    # round robin over 6 micro-batches: intent, ner, intent | ner, intent, ner
    assert [next(iter(m)) for m in micro] == ["intent", "ner", "intent", "ner", "intent", "ner"]
    logged = {(r["step"], r["task"]): r["loss"] for r in history.train_rows()}
    assert logged[(1, "intent")] == pytest.approx((micro[0]["intent"] + micro[2]["intent"]) / 2)
    assert logged[(1, "ner")] == pytest.approx(micro[1]["ner"])
    assert logged[(2, "intent")] == pytest.approx(micro[4]["intent"])
    assert logged[(2, "ner")] == pytest.approx((micro[3]["ner"] + micro[5]["ner"]) / 2)


def test_warmup_then_linear_decay_schedule(tiny_snips, intent16):
    enc, _ = tiny_snips
    model = MultiTaskModel.from_tasks(copy.deepcopy(enc), intent16.tasks)
    trainer = Trainer(model, [intent16], max_steps=10, warmup_ratio=0.2, batch_size=8, encoder_lr=1e-4,
                      classifier_lr=2e-3, progress=False)
    seen = _grab_grads(trainer)
    history = trainer.fit()
    # warm = 0.2 * 10 = 2 steps: (s+1)/(warm+1) while s < warm, then (10 - s)/(10 - warm)
    factors = [1 / 3, 2 / 3] + [(10 - s) / 8 for s in range(2, 10)]
    assert [x["lrs"][0] for x in seen] == pytest.approx([1e-4 * f for f in factors])
    assert [x["lrs"][1] for x in seen] == pytest.approx([2e-3 * f for f in factors])
    # the history reports the learning rate each step was taken with
    assert [r["lr"] for r in history.train_rows("intent")] == pytest.approx([1e-4 * f for f in factors])
    assert max(x["lrs"][0] for x in seen) == pytest.approx(1e-4)


def test_warmup_then_constant_schedule(tiny_snips, intent16):
    enc, _ = tiny_snips
    model = MultiTaskModel.from_tasks(copy.deepcopy(enc), intent16.tasks)
    trainer = Trainer(model, [intent16], max_steps=6, warmup_ratio=0.5, lr_schedule="constant", batch_size=8,
                      encoder_lr=1e-4, progress=False)
    history = trainer.fit()
    # warm = 3 steps at (s+1)/4, then the full rate to the end
    assert [r["lr"] for r in history.train_rows("intent")] == pytest.approx([1e-4 * f for f in
                                                                              (1 / 4, 2 / 4, 3 / 4, 1, 1, 1)])


def test_gradient_clipping(tiny_snips, intent16):
    enc, _ = tiny_snips
    norms = {}
    for clip in (0.0, 0.01):
        model = MultiTaskModel.from_tasks(copy.deepcopy(enc), intent16.tasks)
        trainer = Trainer(model, [intent16], max_steps=2, batch_size=8, max_grad_norm=clip, progress=False)
        seen = _grab_grads(trainer)
        trainer.fit()
        norms[clip] = [torch.linalg.vector_norm(torch.stack([g.norm() for g in s["grads"].values()])).item()
                       for s in seen]
    assert min(norms[0.0]) > 0.05  # unclipped gradients are well above the cap used below
    assert norms[0.01] == pytest.approx([0.01, 0.01], rel=1e-3)


# --------------------------------------------------------------------------------------------
# evaluation schedule, early stopping, callbacks
# --------------------------------------------------------------------------------------------
class Recorder:
    def __init__(self, stop_at: int | None = None):
        self.events, self.stop_at = [], stop_at

    def on_fit_start(self, trainer):
        self.events.append(("fit_start", trainer.step))

    def on_step_end(self, trainer, record):
        self.events.append(("step", record["step"], record["task"]))
        if self.stop_at is not None and trainer.step >= self.stop_at:
            trainer.should_stop = True

    def on_evaluate(self, trainer, metrics):
        self.events.append(("evaluate", trainer.step, tuple(metrics)))

    def on_fit_end(self, trainer, history):
        self.events.append(("fit_end", trainer.step, len(history.train_rows())))


def test_callbacks_fire_in_order(tiny_snips, make_snips_model):
    _, (snips,) = tiny_snips
    rec = Recorder()
    Trainer(make_snips_model(), [snips], max_steps=2, eval_every=1, batch_size=16, progress=False,
            callbacks=[rec]).fit()
    tasks = ("intent", "slots", "intent+slots")
    assert rec.events == [
        ("fit_start", 0),
        ("step", 1, "intent"), ("step", 1, "slots"), ("evaluate", 1, tasks),
        ("step", 2, "intent"), ("step", 2, "slots"), ("evaluate", 2, tasks),
        ("fit_end", 2, 4),
    ]


def test_should_stop_from_a_callback_stops_cleanly_with_a_checkpoint(tiny_snips, make_snips_model, tmp_path):
    _, (snips,) = tiny_snips
    rec = Recorder(stop_at=3)
    trainer = Trainer(make_snips_model(), [_train_only(snips)], max_steps=50, batch_size=16, progress=False,
                      output_dir=str(tmp_path), callbacks=[rec])
    history = trainer.fit()
    assert trainer.step == 3 and rec.events[-1] == ("fit_end", 3, 6)
    assert max(r["step"] for r in history.train_rows()) == 3
    state = json.loads((tmp_path / "last" / "trainer_state.json").read_text())
    assert state["step"] == 3


def test_early_stopping_after_patience_keeps_the_best_checkpoint(tiny_snips, make_snips_model, tmp_path):
    _, (snips,) = tiny_snips
    trainer = Trainer(make_snips_model(), [snips], max_steps=20, eval_every=1, early_stopping_patience=2,
                      batch_size=16, output_dir=str(tmp_path), progress=False)
    scores = iter([0.50, 0.60, 0.55, 0.60, 0.90])  # best at step 2; steps 3 and 4 do not beat it

    def scripted(split="dev"):
        s = next(scores)
        return {"intent": {"classification_accuracy": s, "classification_f1_score": 0.0},
                "slots": {"seqeval_f1_score": s}}

    trainer.evaluate = scripted
    trainer.fit()
    assert trainer.step == 4  # stopped after 2 evaluations without improvement
    assert trainer.state_dict()["callbacks"]["checkpoint"]["best_score"] == pytest.approx(0.60)
    best = json.loads((tmp_path / "best" / "config.json").read_text())["run"]
    last = json.loads((tmp_path / "last" / "trainer_state.json").read_text())
    assert (best["step"], best["dev_score"], last["step"]) == (2, pytest.approx(0.60), 4)
    assert not (tmp_path / "best" / "optimizer.safetensors").exists()  # best/ is weights + config


def test_nan_loss_raises_training_diverged_naming_task_and_step(tiny_snips, make_snips_model, tmp_path):
    _, (snips,) = tiny_snips
    model = make_snips_model()
    calls = []

    def poison(module, args, out):
        calls.append(1)
        return out * float("nan") if len(calls) == 3 else out

    model.heads["slots"].register_forward_hook(poison)
    trainer = Trainer(model, [snips], max_steps=10, batch_size=16, output_dir=str(tmp_path), save_every=1,
                      progress=False)
    with pytest.raises(TrainingDiverged, match=r"task 'slots'.* step 3"):
        trainer.fit()
    assert trainer.step == 2
    # the last good checkpoint (step 2) is intact
    assert json.loads((tmp_path / "last" / "trainer_state.json").read_text())["step"] == 2


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options,key", [
    ({"batch_size": -1}, "batch_size"),
    ({"batch_size": 0}, "batch_size"),
    ({"encoder_lr": float("nan")}, "encoder_lr"),
    ({"classifier_lr": -1e-3}, "classifier_lr"),
    ({"epochs": float("inf")}, "epochs"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"warmup_ratio": 1.0}, "warmup_ratio"),
    ({"warmup_ratio": float("nan")}, "warmup_ratio"),
    ({"max_grad_norm": -1.0}, "max_grad_norm"),
    ({"max_steps": 0}, "max_steps"),
    ({"max_steps": 2.5}, "max_steps"),
    ({"early_stopping_patience": -2}, "early_stopping_patience"),
    ({"sampler": "random"}, "sampler"),
    ({"weighting": "magic"}, "weighting"),
    ({"temperature": 0.0}, "temperature"),
    ({"batch_size": "abc"}, "batch_size"),
    ({"batch_size": 8.5}, "batch_size"),
    ({"max_steps": True}, "max_steps"),
    ({"progress": "yes"}, "progress"),
    ({"bogus_option": 1}, "bogus_option"),
])
def test_trainer_config_rejects_bad_options_naming_the_key(options, key):
    with pytest.raises(ValueError, match=key):
        TrainerConfig.from_dict(options)


def test_trainer_config_accepts_ints_for_floats_and_overrides(tiny_snips, make_snips_model):
    cfg = TrainerConfig.from_dict({"epochs": 1, "encoder_lr": 1, "max_steps": 3})
    assert cfg.epochs == 1 and cfg.max_steps == 3
    # YAML 1.1 reads "1e-4" (no dot) as a string; a number was meant
    assert TrainerConfig.from_dict({"encoder_lr": "1e-4"}).encoder_lr == 1e-4
    with pytest.raises(ValueError, match="encoder_lr must be a number"):
        TrainerConfig.from_dict({"encoder_lr": "fast"})
    _, (snips,) = tiny_snips
    with pytest.raises(ValueError, match="bogus"):
        Trainer(make_snips_model(), [snips], bogus=1)
    with pytest.raises(ValueError, match="save_every needs output_dir"):
        Trainer(make_snips_model(), [snips], save_every=5)
    trainer = Trainer(make_snips_model(), [snips], cfg, batch_size=8, progress=False)
    assert (trainer.config.batch_size, trainer.config.max_steps, trainer.total_steps) == (8, 3, 3)
