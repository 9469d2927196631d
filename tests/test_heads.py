"""Task heads: shapes, inputs used, dropout, initialisation, registry."""

import pytest
import torch
from torch import nn

from mtl_lib.models.heads import (
    ClassificationHead,
    HierarchicalHead,
    MultiLabelHead,
    PairClassificationHead,
    TaggingHead,
)
from mtl_lib.task_types import TASK_TYPES as REGISTRY
from mtl_lib.task_types import make_head

B, T, H, C = 3, 5, 16, 4
TASK_TYPES = ["classification", "pair_classification", "tagging", "multilabel", "hierarchical"]


@pytest.fixture
def encoder_outputs():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(B, T, H, generator=g)  # (B, T, H)
    pooled = torch.randn(B, H, generator=g)  # (B, H)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, 3:] = 0
    return hidden, pooled, mask


def test_registry_covers_the_five_task_types():
    assert set(REGISTRY) == set(TASK_TYPES)
    assert REGISTRY["classification"].head is ClassificationHead
    assert REGISTRY["pair_classification"].head is PairClassificationHead
    assert REGISTRY["tagging"].head is TaggingHead
    assert REGISTRY["multilabel"].head is MultiLabelHead
    assert REGISTRY["hierarchical"].head is HierarchicalHead


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_shapes_and_level(task_type, encoder_outputs):
    hidden, pooled, mask = encoder_outputs
    head = make_head(task_type, H, C, dropout=0.1)
    assert isinstance(head, REGISTRY[task_type].head)
    expected_level = "token" if task_type == "tagging" else "sequence"
    assert type(head).level == expected_level
    expected_shape = (B, T, C) if expected_level == "token" else (B, C)
    assert head(hidden, pooled).shape == expected_shape
    assert head(hidden, pooled, mask).shape == expected_shape  # mask accepted


def test_sequence_heads_read_pooled_and_tagging_reads_every_token(encoder_outputs):
    hidden, pooled, _ = encoder_outputs
    head = ClassificationHead(H, C).eval()
    W, b = head.linear.weight, head.linear.bias  # (C, H), (C,)
    torch.testing.assert_close(head(hidden, pooled), pooled @ W.T + b)
    # Changing the token states does not change a sequence head's output.
    torch.testing.assert_close(head(hidden + 1.0, pooled), head(hidden, pooled))

    tagger = TaggingHead(H, C).eval()
    W, b = tagger.linear.weight, tagger.linear.bias
    torch.testing.assert_close(tagger(hidden, pooled), hidden @ W.T + b)  # (B, T, C)
    torch.testing.assert_close(tagger(hidden, pooled + 1.0), tagger(hidden, pooled))


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_dropout_only_in_training(task_type, encoder_outputs):
    hidden, pooled, _ = encoder_outputs
    torch.manual_seed(0)
    head = make_head(task_type, H, C, dropout=0.5)
    head.eval()
    torch.testing.assert_close(head(hidden, pooled), head(hidden, pooled))  # deterministic
    head.train()
    torch.manual_seed(1)
    first = head(hidden, pooled)
    second = head(hidden, pooled)
    assert not torch.allclose(first, second)  # dropout is active in training mode


def test_initialisation_like_transformers():
    torch.manual_seed(0)
    head = ClassificationHead(384, 200)
    weight = head.linear.weight
    assert torch.all(head.linear.bias == 0)
    assert weight.mean().abs().item() < 0.002
    assert weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_initialisation_follows_the_callers_seed():
    torch.manual_seed(123)
    a = TaggingHead(H, C)
    torch.manual_seed(123)
    b = TaggingHead(H, C)
    torch.manual_seed(124)
    c = TaggingHead(H, C)
    torch.testing.assert_close(a.linear.weight, b.linear.weight)
    assert not torch.allclose(a.linear.weight, c.linear.weight)


def test_hierarchical_head_counts_leaves():
    class FakeHierarchy:
        leaves = [("a", "x"), ("a", "y"), ("b", "z")]

    assert HierarchicalHead(H, 7).num_labels == 7
    assert HierarchicalHead(H, FakeHierarchy()).linear.out_features == 3
    assert make_head("hierarchical", H, 5).linear.out_features == 5


def test_gradient_reaches_the_head(encoder_outputs):
    hidden, pooled, _ = encoder_outputs
    head = make_head("tagging", H, C)
    head(hidden, pooled).sum().backward()
    assert head.linear.weight.grad is not None and head.linear.weight.grad.abs().sum() > 0


def test_make_head_errors_and_attributes():
    with pytest.raises(ValueError, match="known types"):
        make_head("regression", H, C)
    assert isinstance(make_head("NER", H, C), TaggingHead)  # multi-task-NLP's name for tagging
    with pytest.raises(ValueError, match="num_labels"):
        make_head("classification", H, 0)
    head = make_head("multilabel", H, C, dropout=0.25)
    assert (head.hidden_size, head.num_labels) == (H, C)
    assert isinstance(head.dropout, nn.Dropout) and head.dropout.p == 0.25
    assert "level='sequence'" in repr(head)
