"""The CRF tagging option: likelihood and Viterbi against brute force, packing, training, loading."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch

from mtl_lib import MultiTaskModel, Predictor, TaskFileError, TaskSpec, Trainer, load_model
from mtl_lib.evaluation.decoding import bio_constraints
from mtl_lib.experiment import build_groups
from mtl_lib.models.crf import CRF
from mtl_lib.models.losses import CRFLoss
from mtl_lib.task_types import task_type

LABELS = ["O", "B-x", "I-x", "B-y", "I-y"]


def random_crf(c: int, seed: int = 0) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(c)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


@torch.no_grad()
def path_score(crf: CRF, em: torch.Tensor, tags: list[int]) -> float:
    s = crf.start[tags[0]] + em[0, tags[0]] + crf.end[tags[-1]]
    for w in range(1, len(tags)):
        s = s + crf.transitions[tags[w - 1], tags[w]] + em[w, tags[w]]
    return float(s)


def test_negative_log_likelihood_equals_brute_force_with_ragged_sentences():
    c, lengths = 3, [3, 1, 2]
    crf = random_crf(c)
    em = torch.randn(len(lengths), max(lengths), c)
    tags = torch.randint(0, c, (len(lengths), max(lengths)))
    mask = torch.arange(max(lengths)) < torch.tensor(lengths).unsqueeze(1)
    expected = []
    for n, w in enumerate(lengths):
        log_z = math.log(sum(math.exp(path_score(crf, em[n], list(p)))
                             for p in itertools.product(range(c), repeat=w)))
        expected.append(log_z - path_score(crf, em[n], tags[n, :w].tolist()))
    got = crf.neg_log_likelihood(em, tags, mask)
    assert got.item() == pytest.approx(sum(expected) / len(expected), rel=1e-5)
    got.backward()  # and it trains: every parameter gets a gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in crf.parameters())


@pytest.mark.parametrize("seed", range(20))
def test_viterbi_is_the_best_valid_sequence(seed):
    crf, em = random_crf(len(LABELS), seed), torch.randn(4, len(LABELS))
    allowed, start = bio_constraints(LABELS)
    best = max((p for p in itertools.product(range(len(LABELS)), repeat=4)
                if start[p[0]] and all(allowed[a, b] for a, b in zip(p, p[1:]))),
               key=lambda p: path_score(crf, em, list(p)))
    assert crf.decode(em, allowed, start) == list(best)
    free = max(itertools.product(range(len(LABELS)), repeat=4), key=lambda p: path_score(crf, em, list(p)))
    assert crf.decode(em) == list(free)


def test_crf_loss_reads_tags_at_word_starts_only():
    crf = random_crf(3)
    logits = torch.randn(2, 6, 3, requires_grad=True)
    labels = torch.tensor([[-100, 2, -100, 0, 1, -100], [-100, 1, -100, -100, -100, -100]])
    packed_em = torch.stack([logits[0, [1, 3, 4]], torch.cat([logits[1, [1]], torch.zeros(2, 3)])])
    packed_tags = torch.tensor([[2, 0, 1], [1, 0, 0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    assert CRFLoss(crf)(logits, labels).item() == pytest.approx(
        crf.neg_log_likelihood(packed_em, packed_tags, mask).item(), rel=1e-6)
    none = CRFLoss(crf)(logits, torch.full((2, 6), -100))
    assert none.item() == 0.0 and none.requires_grad  # nothing labelled: zero, still in the graph


def test_use_crf_is_a_tagging_option_with_its_own_loss():
    spec = TaskSpec(name="slots", task_type="NER", use_crf=True)
    task_type(spec)
    assert spec.loss_type == "CRFLoss"
    with pytest.raises(TaskFileError, match="use_crf applies to tagging tasks, not to classification"):
        task_type(TaskSpec(name="intent", task_type="classification", use_crf=True))
    with pytest.raises(TaskFileError, match="use_crf trains with the CRF likelihood"):
        task_type(TaskSpec(name="slots", task_type="NER", use_crf=True, loss_type="NERLoss"))


def test_training_with_a_crf_learns_saves_and_decodes_valid_bio(tiny_snips, tmp_path):
    enc, (snips,) = tiny_snips
    slots = TaskSpec(name="slots", task_type="tagging", format="jointbert", path="snips",
                     label_map_or_file="snips/slot_label.txt", max_examples=200, use_crf=True)
    (group,) = build_groups([slots], enc.tokenizer)
    model = MultiTaskModel.from_tasks(copy.deepcopy(enc), [slots])
    transitions = model.heads["slots"].crf.transitions.detach().clone()
    history = Trainer(model, [group], max_steps=30, batch_size=16, classifier_lr=1e-2, output_dir=str(tmp_path),
                      progress=False).fit()
    losses = [r["loss"] for r in history.train_rows("slots")]
    assert sum(losses[-5:]) < sum(losses[:5])
    assert not torch.equal(model.heads["slots"].crf.transitions, transitions)  # transitions were trained
    loaded = load_model(tmp_path / "last")
    assert torch.equal(loaded.heads["slots"].crf.transitions, model.heads["slots"].crf.transitions)
    texts = [" ".join(r["words"]) for r in group.records["dev"][:20]]
    for result in Predictor(loaded).predict(texts):
        tags = result["slots"]["tags"]
        assert not any(t.startswith("I-") and (i == 0 or tags[i - 1][2:] != t[2:]) for i, t in enumerate(tags))
