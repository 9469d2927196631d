"""DB_Linear: loss by hand, config, training, checkpoints (round trip, resume, atomicity)."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from mtl_lib import CheckpointError, Predictor
from mtl_lib.data import Collator
from mtl_lib.db_linear import DEFAULT_CONFIG, DB_Linear, seed_view
from mtl_lib.models.encoders import Encoder
from mtl_lib.models.losses import WeightedNLLLoss, class_weights
from mtl_lib.models.tiny import tiny_encoder
from mtl_lib.tasks.hierarchy import PerLevelHierarchy

LEAF_TEXT = {
    ("pets", "dogs", "food"): "dog kibble with beef",
    ("pets", "cats", "food"): "tuna pate for kittens",
    ("pets", "cats", "toys"): "feather wand and laser",
    ("baby", "feeding", "bottles"): "bottle nipple and warm milk",
}
RECORDS = [{"text": f"{t} number {i}", "path": p} for p, t in LEAF_TEXT.items() for i in range(5)]
HIER = PerLevelHierarchy.from_paths(LEAF_TEXT)
FAST = {"batch_size": 4, "epochs": 2, "max_length": 16, "encoder_lr": 1e-3,
        "classifier_lr": 1e-2, "dropout": 0.1}


_ENCODER = None


def tiny() -> Encoder:
    """A fresh copy of one tiny encoder (tiny_encoder's tokenizer training is not exactly
    reproducible between calls, and the resume test needs identical starting points)."""
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = tiny_encoder("BERT", texts=[r["text"] for r in RECORDS])
    return copy.deepcopy(_ENCODER)


def make_model(**config) -> DB_Linear:
    return DB_Linear(HIER, {**FAST, **config}, encoder=tiny())


# ---------------------------------------------------------------- loss by hand (3 leaves)
def test_weighted_nll_by_hand():
    # Softmax of these rows: [1/4, 1/2, 1/4], [3/5, 1/5, 1/5], [1/3, 1/3, 1/3].
    logits = torch.tensor([[0.0, math.log(2), 0.0], [math.log(3), 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([1, 0, 2])
    w = torch.tensor([2.0, 1.0, 0.5])
    # L = sum_n w_yn * (-log p_n,yn) / sum_n w_yn, with w_y = 1, 2, 0.5
    expected = (1 * math.log(2) + 2 * math.log(5 / 3) + 0.5 * math.log(3)) / 3.5
    assert WeightedNLLLoss(w)(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    # Unweighted: the plain mean.
    plain = (math.log(2) + math.log(5 / 3) + math.log(3)) / 3
    assert WeightedNLLLoss(None)(logits, labels).item() == pytest.approx(plain, rel=1e-6)
    # inverse_frequency on labels [0, 0, 1, 2]: N / (C n_c) = 4/6, 4/3, 4/3
    assert class_weights([0, 0, 1, 2], 3, "inverse_frequency").tolist() == pytest.approx(
        [2 / 3, 4 / 3, 4 / 3])


def test_model_loss_is_the_seed_formula():
    """The scores DB_Linear feeds its loss are raw; LogSoftmax happens inside the loss."""
    torch.manual_seed(0)
    model = make_model(class_weighting="inverse_frequency")
    model.eval()
    texts = [r["text"] for r in RECORDS[:6]]
    enc = model.encoder.tokenize(texts, max_length=16)
    batch = Collator.for_tokenizer(model.encoder.tokenizer)([{k: enc[k][i] for k in enc} for i in range(6)])
    scores = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    assert scores.shape == (6, HIER.n_leaves)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = torch.tensor([0, 0, 1, 1, 1, 2])
    log_p = torch.log_softmax(scores, dim=-1)
    by_hand = sum(-w[y[n]] * log_p[n, y[n]] for n in range(6)) / w[y].sum()
    assert WeightedNLLLoss(w)(scores, y).item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_training_uses_the_weighted_nll_with_inverse_frequency_weights():
    records = RECORDS[:5] + RECORDS[5:7] + RECORDS[10:20]  # leaf counts 5, 2, 5, 5
    model = make_model(class_weighting="inverse_frequency", epochs=1)
    model.fit(records, progress=False)
    loss = model.model.losses["hierarchical"]
    assert isinstance(loss, WeightedNLLLoss)
    ids = [HIER.leaf_index(r["path"]) for r in records]
    assert torch.equal(loss.weight, class_weights(ids, HIER.n_leaves, "inverse_frequency"))
    assert loss.weight.tolist() == pytest.approx([17 / 20, 17 / 8, 17 / 20, 17 / 20])  # cat food: 2 of 17


# ---------------------------------------------------------------- config
def test_config_keys():
    assert {"encoder_lr", "classifier_lr", "dropout"} <= set(DEFAULT_CONFIG)
    with pytest.raises(ValueError, match="'encoder_learning_rate'"):
        DB_Linear(HIER, {"encoder_learning_rate": 1e-5}, encoder=tiny())
    with pytest.raises(ValueError, match="class_weighting"):
        DB_Linear(HIER, {"class_weighting": "balanced"}, encoder=tiny())
    with pytest.raises(ValueError, match="dropout"):
        DB_Linear(HIER, {"dropout": 1.5}, encoder=tiny())
    model = make_model(pooling="mean")
    assert model.config["encoder"] == "tiny-bert" and model.encoder.pooling == "mean"
    assert set(model.config) == set(DEFAULT_CONFIG)


def test_two_param_groups():
    model = make_model(epochs=1)
    assert model.optimizer is None  # the trainer's, made by fit
    model.fit(RECORDS, progress=False)
    enc_group, head_group = model.optimizer.param_groups
    assert enc_group["initial_lr"] == FAST["encoder_lr"] and head_group["initial_lr"] == FAST["classifier_lr"]
    assert len(enc_group["params"]) == len(list(model.encoder.parameters()))
    assert [p.shape for p in head_group["params"]] == [(HIER.n_leaves, 32), (HIER.n_leaves,)]


# ---------------------------------------------------------------- training and prediction
def test_fit_learns_and_predicts_full_paths():
    model = make_model(epochs=6, pooling="mean", encoder_lr=3e-3, classifier_lr=3e-2)
    history = model.fit(RECORDS, dev_records=RECORDS[:8], progress=False)
    assert [h["epoch"] for h in history] == list(range(1, 7))
    assert history[-1]["train_loss"] < history[0]["train_loss"] * 0.5
    assert "dev_leaf_accuracy" in history[-1]
    pred = model.predict([r["text"] for r in RECORDS])
    assert all(p in HIER.leaves for p in pred)  # consistent with the tree by construction
    metrics = model.test(RECORDS)
    assert metrics["leaf_accuracy"] >= 0.9
    with pytest.raises(ValueError, match="not a leaf"):
        model.fit([{"text": "x", "path": ("pets", "dogs", "toys")}], progress=False)


def test_fit_on_trec_slice():
    from mtl_lib.data import data_root, read_trec

    records = read_trec(data_root() / "trec" / "train_5500.label")[:120]
    hierarchy = PerLevelHierarchy.from_paths(r["path"] for r in records)
    enc = tiny_encoder("BERT", texts=[r["text"] for r in records])
    model = DB_Linear(hierarchy, {**FAST, "epochs": 1}, encoder=enc)
    model.fit(records[:100], progress=False)
    metrics = model.test(records[100:])
    assert set(metrics) >= {"level1_accuracy", "level2_accuracy", "leaf_macro_f1",
                            "hierarchical_f1"}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())


# ---------------------------------------------------------------- checkpoints
def _flat(sd):
    return sd["param_groups"], {(int(p), k): v for p, s in sd["state"].items() for k, v in s.items()}


def test_checkpoint_is_the_one_format_and_seed_view_reads_the_seed_schema(tmp_path):
    model = make_model(epochs=1)
    model.fit(RECORDS, progress=False)
    path = model.save(tmp_path / "ckpt")
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    top = [f for f in files if "/" not in f]
    assert top == ["config.json", "history.json", "model.safetensors", "optimizer.safetensors",
                   "trainer_state.json"]  # a resumable mtl_lib checkpoint like any run's last/
    assert not any(f.endswith((".bin", ".pt", ".pkl", ".pth")) for f in files)  # no pickle
    assert list(tmp_path.iterdir()) == [path]  # no temporary directory left behind

    view = seed_view(path)
    assert set(view) == {"config", "hierarchy", "encoder_state_dict", "classifier_state_dict",
                         "optimizer_state_dict"}
    assert view["config"] == model.config
    assert PerLevelHierarchy.from_dict(view["hierarchy"]) == HIER
    for k, v in model.encoder.model.state_dict().items():
        assert torch.equal(view["encoder_state_dict"][k], v), k
    assert all(torch.equal(view["classifier_state_dict"][k], v) for k, v in model.classifier.state_dict().items())
    groups_a, state_a = _flat(model.optimizer.state_dict())
    groups_b, state_b = _flat(view["optimizer_state_dict"])
    assert [g["lr"] for g in groups_a] == [g["lr"] for g in groups_b] and len(state_a) > 0
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(torch.as_tensor(state_a[k]), state_b[k]) for k in state_a)

    loaded = DB_Linear.from_checkpoint(path)
    texts = [r["text"] for r in RECORDS]
    assert torch.equal(loaded.predict_scores(texts), model.predict_scores(texts))
    assert loaded.predict(texts) == model.predict(texts)
    assert loaded.hierarchy == model.hierarchy and loaded.config == model.config


def test_mtl_lib_evaluate_and_predict_read_a_db_linear_run(tmp_path, capsys):
    from mtl_lib.cli import main

    model = make_model(epochs=1)
    model.fit(RECORDS, progress=False)
    run = model.save(tmp_path / "run")
    p = Predictor.from_checkpoint(run).predict(RECORDS[3]["text"])
    assert tuple(p["hierarchical"]["path"]) == model.predict([RECORDS[3]["text"]])[0]
    (tmp_path / "in.txt").write_text("dog kibble with beef\nfeather wand\n")
    assert main(["predict", str(run), "-i", str(tmp_path / "in.txt")]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [tuple(r["hierarchical"]["path"]) for r in lines] == model.predict(["dog kibble with beef", "feather wand"])
    data = tmp_path / "dev.csv"
    data.write_text("text,level1,level2,level3\n" + "".join(f"{r['text']},{','.join(r['path'])}\n" for r in RECORDS))
    assert main(["evaluate", str(run), "--data", f"hierarchical={data}", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)["hierarchical"]
    assert scores["leaf_accuracy"] == pytest.approx(model.test(RECORDS)["leaf_accuracy"])


def test_resume_continues_identically(tmp_path):
    straight = make_model(epochs=2)
    straight.fit(RECORDS, progress=False)

    first = make_model(epochs=2)
    first.fit(RECORDS, epochs=1, progress=False)
    first.save(tmp_path / "after_epoch_1")
    resumed = DB_Linear.from_checkpoint(tmp_path / "after_epoch_1")
    records = resumed.fit(RECORDS, progress=False)  # infers start_epoch=1 from the optimizer
    assert [r["epoch"] for r in records] == [2]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_save_is_atomic(tmp_path, monkeypatch):
    import mtl_lib.models.multitask as multitask

    model = make_model(epochs=1)
    path = model.save(tmp_path / "ckpt")
    before = (path / "model.safetensors").read_bytes()
    model.fit(RECORDS, progress=False)  # change the weights

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(multitask, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert (path / "model.safetensors").read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]
    monkeypatch.undo()
    model.save(path)  # overwriting an existing checkpoint works
    assert (path / "model.safetensors").read_bytes() != before
    assert list(tmp_path.iterdir()) == [path]


def test_load_refuses_other_hierarchy(tmp_path):
    model = make_model()
    model.save(tmp_path / "c")
    other = DB_Linear(PerLevelHierarchy.from_paths([("a", "b"), ("a", "c")]), FAST,
                      encoder=tiny())
    with pytest.raises(ValueError, match="hierarchy"):
        other.load(tmp_path / "c")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        DB_Linear.from_checkpoint(tmp_path)


def test_default_encoder_is_minilm():
    model = DB_Linear(HIER)
    assert model.config["encoder"] == "minilm" and model.encoder.hidden_size == 384
    assert len(model.predict(["dog food"])[0]) == 3
