"""Losses against hand computations and against torch.nn.functional."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from mtl_lib.models.losses import (
    LOSSES,
    CrossEntropyLoss,
    MultiLabelLoss,
    NERLoss,
    WeightedNLLLoss,
    class_weights,
)

LN3 = math.log(3.0)
# Handy rows: softmax([ln 3, 0, 0]) = [3/5, 1/5, 1/5]; softmax([0, 0, 0]) = [1/3, 1/3, 1/3];
# softmax([ln 3, 0]) = [3/4, 1/4]; softmax([0, 0]) = [1/2, 1/2].


def leaf(values):
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


# --- CrossEntropyLoss ------------------------------------------------------------------------


def test_cross_entropy_by_hand():
    logits = leaf([[LN3, 0.0, 0.0], [0.0, 0.0, 0.0]])  # (B=2, C=3)
    labels = torch.tensor([0, 2])
    # -log(3/5) and -log(1/3); their mean is (ln(5/3) + ln 3) / 2 = ln(5) / 2
    loss = CrossEntropyLoss()(logits, labels)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(math.log(5) / 2)


def test_cross_entropy_class_weights_by_hand():
    logits = leaf([[LN3, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    weight = torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64)
    # weighted mean: (2 * ln(5/3) + 1 * ln 3) / (2 + 1)
    expected = (2 * math.log(5 / 3) + LN3) / 3
    assert CrossEntropyLoss(weight)(logits, labels).item() == pytest.approx(expected)


def test_cross_entropy_ignores_minus_100():
    logits = leaf([[LN3, 0.0, 0.0], [5.0, -3.0, 1.0]])
    loss = CrossEntropyLoss()(logits, torch.tensor([0, -100]))
    assert loss.item() == pytest.approx(math.log(5 / 3))


def test_cross_entropy_matches_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g)
    labels = torch.randint(0, 5, (16,), generator=g)
    labels[[1, 7]] = -100
    weight = torch.rand(5, generator=g) + 0.1
    for w in (None, weight):
        ours = CrossEntropyLoss(w)(logits, labels)
        torch.testing.assert_close(ours, F.cross_entropy(logits, labels, weight=w))


# --- NERLoss ---------------------------------------------------------------------------------


def ner_example():
    # B=2 sentences, T=3 positions, C=2 tags.
    # sentence 0: [CLS]=-100, word-start tag 0, continuation sub-token -100
    # sentence 1: word-start tag 1, word-start tag 0, padding -100
    logits = leaf(
        [
            [[9.0, 9.0], [LN3, 0.0], [5.0, -5.0]],
            [[LN3, 0.0], [0.0, 0.0], [0.0, 0.0]],
        ]
    )  # (B, T, C)
    labels = torch.tensor([[-100, 0, -100], [1, 0, -100]])  # (B, T)
    return logits, labels


def test_ner_loss_by_hand_mean_over_counted_tokens():
    logits, labels = ner_example()
    # counted tokens: -log(3/4), -log(1/4), -log(1/2); mean over the 3 tokens of the batch
    per_token = [math.log(4 / 3), math.log(4), math.log(2)]
    loss = NERLoss()(logits, labels)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(sum(per_token) / 3)
    # ... which is not the mean of per-sentence means
    per_sentence = (per_token[0] + (per_token[1] + per_token[2]) / 2) / 2
    assert loss.item() != pytest.approx(per_sentence)


def test_ner_loss_matches_torch_flattened():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 7, 4, generator=g)  # (B, T, C)
    labels = torch.randint(0, 4, (3, 7), generator=g)
    labels[:, 0] = -100  # [CLS]
    labels[0, 4:] = -100  # padding
    labels[2, 3] = -100  # continuation sub-token
    expected = F.cross_entropy(logits.reshape(-1, 4), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(NERLoss()(logits, labels), expected)


def test_ner_loss_ignored_positions_do_not_matter():
    logits, labels = ner_example()
    loss = NERLoss()(logits, labels)
    loss.backward()
    ignored = labels == -100
    assert torch.all(logits.grad[ignored] == 0)  # no gradient at excluded tokens
    assert torch.all(logits.grad[~ignored].abs().sum(-1) > 0)  # gradient at counted ones
    changed = logits.detach().clone()
    changed[ignored] = torch.tensor([-50.0, 50.0], dtype=torch.float64)
    assert NERLoss()(changed, labels).item() == pytest.approx(loss.item())


def test_ner_loss_attention_mask_also_masks():
    logits, labels = ner_example()
    # Labels without -100 at padding; the attention mask excludes (1, 2) instead.
    labels_no_pad_marker = labels.clone()
    labels_no_pad_marker[1, 2] = 1
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    with_mask = NERLoss()(logits, labels_no_pad_marker, attention_mask=mask)
    torch.testing.assert_close(with_mask, NERLoss()(logits, labels))
    without_mask = NERLoss()(logits, labels_no_pad_marker)
    assert without_mask.item() != pytest.approx(with_mask.item())


# --- WeightedNLLLoss -------------------------------------------------------------------------


def test_weighted_nll_by_hand_seed_formula():
    logits = leaf([[LN3, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, LN3, 0.0]])  # (N=3, C=3)
    labels = torch.tensor([0, 2, 1])
    weight = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    # -log p of the true class: ln(5/3), ln 3, ln(5/3); w_{y_n}: 0.5, 1.0, 2.0
    # L = sum_n w_{y_n} * (-log p_{n, y_n}) / sum_n w_{y_n}
    expected = (0.5 * math.log(5 / 3) + 1.0 * LN3 + 2.0 * math.log(5 / 3)) / (0.5 + 1.0 + 2.0)
    loss = WeightedNLLLoss(weight)(logits, labels)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected)
    # Dividing by N instead of by the weight sum would give another number.
    assert loss.item() != pytest.approx(expected * 3.5 / 3)


def test_weighted_nll_equals_torch_weighted_nll_mean():
    # torch's nll_loss(weight=w, reduction="mean") is exactly the seed's formula.
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(20, 6, generator=g)
    labels = torch.randint(0, 6, (20,), generator=g)
    labels[[3, 11]] = -100
    weight = torch.rand(6, generator=g) * 3 + 0.1
    ours = WeightedNLLLoss(weight)(logits, labels)
    torch.testing.assert_close(ours, F.nll_loss(F.log_softmax(logits, -1), labels, weight=weight))
    # and by hand with the same tensors
    keep = labels != -100
    nll = -F.log_softmax(logits[keep], -1)[torch.arange(int(keep.sum())), labels[keep]]
    w = weight[labels[keep]]
    torch.testing.assert_close(ours, (w * nll).sum() / w.sum())


def test_weighted_nll_without_weight_is_plain_mean_and_scale_invariant():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(10, 4, generator=g)
    labels = torch.randint(0, 4, (10,), generator=g)
    plain = WeightedNLLLoss(None)(logits, labels)
    torch.testing.assert_close(plain, F.cross_entropy(logits, labels))
    torch.testing.assert_close(plain, WeightedNLLLoss(torch.ones(4))(logits, labels))
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    torch.testing.assert_close(
        WeightedNLLLoss(w)(logits, labels), WeightedNLLLoss(10 * w)(logits, labels)
    )


def test_class_weights():
    assert torch.equal(class_weights([0, 1, 1], 3), torch.ones(3))
    # labels [0, 0, 0, 1], C=2, N=4: w_c = N / (C * n_c) -> 4/(2*3) = 2/3 and 4/(2*1) = 2
    w = class_weights([0, 0, 0, 1, -100], 2, scheme="inverse_frequency")
    torch.testing.assert_close(w, torch.tensor([2 / 3, 2.0]))
    labels = [0, 2, 2, 1, 2, 2, 0, 1, 1, 2]
    sk = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=labels)
    torch.testing.assert_close(
        class_weights(torch.tensor(labels), 3, "inverse_frequency"),
        torch.tensor(sk, dtype=torch.float32),
    )
    # An absent class counts as seen once: N=3, C=3 -> 3/(3*2), 3/(3*1), 3/(3*1)
    w = class_weights([0, 0, 1], 3, "inverse_frequency")
    torch.testing.assert_close(w, torch.tensor([0.5, 1.0, 1.0]))
    torch.testing.assert_close(class_weights([-100], 2, "inverse_frequency"), torch.ones(2))
    with pytest.raises(ValueError, match="scheme"):
        class_weights([0], 2, "balanced-ish")
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        class_weights([0, 5], 2, "inverse_frequency")


# --- MultiLabelLoss --------------------------------------------------------------------------


def test_multilabel_by_hand_with_masking():
    logits = leaf([[0.0, LN3], [7.0, 0.0], [1.0, 2.0]])  # (B=3, C=2)
    labels = torch.tensor([[1.0, 0.0], [-100.0, 1.0], [-100.0, -100.0]])
    # counted: sigmoid(0)=1/2 with target 1 -> ln 2; sigmoid(ln 3)=3/4 with target 0 -> ln 4;
    # sigmoid(0)=1/2 with target 1 -> ln 2. Mean over the 3 counted entries.
    expected = (math.log(2) + math.log(4) + math.log(2)) / 3
    loss = MultiLabelLoss()(logits, labels)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected)


def test_multilabel_matches_torch_on_counted_entries():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(6, 5, generator=g)
    labels = torch.randint(0, 2, (6, 5), generator=g).float()
    labels[2] = -100  # example not labelled for this task
    labels[0, 1] = -100
    keep = (labels != -100).float()
    per_entry = F.binary_cross_entropy_with_logits(logits, labels.clamp(min=0), reduction="none")
    expected = (per_entry * keep).sum() / keep.sum()
    torch.testing.assert_close(MultiLabelLoss()(logits, labels), expected)
    # integer 0/1 labels work too
    torch.testing.assert_close(MultiLabelLoss()(logits, labels.long()), expected)


# --- Shared behaviour ------------------------------------------------------------------------

ALL_MASKED = [
    (CrossEntropyLoss(), (4, 3), torch.full((4,), -100)),
    (CrossEntropyLoss(torch.ones(3)), (4, 3), torch.full((4,), -100)),
    (NERLoss(), (2, 5, 3), torch.full((2, 5), -100)),
    (WeightedNLLLoss(torch.ones(3)), (4, 3), torch.full((4,), -100)),
    (MultiLabelLoss(), (4, 3), torch.full((4, 3), -100.0)),
]


@pytest.mark.parametrize(("loss_fn", "shape", "labels"), ALL_MASKED)
def test_all_masked_batch_gives_zero_with_grad(loss_fn, shape, labels):
    logits = torch.randn(*shape, requires_grad=True)
    loss = loss_fn(logits, labels)
    assert loss.shape == ()
    assert loss.item() == 0.0  # not NaN
    assert loss.requires_grad
    # In a multi-task sum the other task still trains and nothing becomes NaN.
    other = torch.randn(2, 3, requires_grad=True)
    total = loss + F.cross_entropy(other, torch.tensor([0, 1]))
    total.backward()
    assert torch.all(logits.grad == 0)
    assert torch.isfinite(other.grad).all() and other.grad.abs().sum() > 0


def test_torch_would_give_nan_for_all_masked():
    # Why the guard exists: torch's own mean over zero targets is 0/0.
    loss = F.cross_entropy(torch.randn(3, 2), torch.full((3,), -100))
    assert torch.isnan(loss)


@pytest.mark.parametrize(
    ("name", "shape", "labels"),
    [
        ("CrossEntropyLoss", (4, 3), torch.tensor([0, 2, 1, 1])),
        ("NERLoss", (2, 3, 3), torch.tensor([[-100, 0, 2], [1, -100, -100]])),
        ("WeightedNLLLoss", (4, 3), torch.tensor([0, 2, 1, 1])),
        ("BCEWithLogitsLoss", (2, 3), torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, -100.0]])),
    ],
)
def test_registry_and_gradient_flow(name, shape, labels):
    assert set(LOSSES) == {"CrossEntropyLoss", "NERLoss", "WeightedNLLLoss", "BCEWithLogitsLoss"}
    logits = torch.randn(*shape, requires_grad=True)
    loss = LOSSES[name]()(logits, labels)
    assert loss.shape == () and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_weight_is_a_non_persistent_buffer_that_follows_dtype():
    loss_fn = WeightedNLLLoss(torch.tensor([1.0, 2.0]))
    assert loss_fn.state_dict() == {}  # does not add keys to a model's checkpoint
    loss_fn = loss_fn.double()
    assert loss_fn.weight.dtype == torch.float64
    logits = torch.zeros(2, 2, dtype=torch.float64)
    assert loss_fn(logits, torch.tensor([0, 1])).item() == pytest.approx(math.log(2))
