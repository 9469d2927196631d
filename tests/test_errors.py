"""The error browser's data: span errors against hand-made cases, every task type's per-example
loss and confidence against torch, and the records of a model on a split."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F

from mtl_lib.cli import main
from mtl_lib.evaluation.error_analysis import SPAN_ERROR_KINDS, first_wrong_level, label_set_errors, span_errors
from mtl_lib.evaluation.errors import (
    error_counts,
    error_records,
    filter_records,
    format_errors,
    most_confused,
    worst,
)
from mtl_lib.evaluation.evaluate import collect_predictions
from mtl_lib.experiment import build_groups
from mtl_lib.models.multitask import MultiTaskModel, load_model
from mtl_lib.tasks.spec import TaskSpec


def S(ty, start, end):
    return {"type": ty, "start": start, "end": end}


def kinds(gold, pred):
    return [(e["kind"], e["gold"], e["pred"]) for e in span_errors(gold.split(), pred.split())]


# --- span errors: one hand-made case per category, and the awkward ones --------------------------

def test_a_right_sentence_has_no_errors():
    assert kinds("B-PER I-PER O B-LOC", "B-PER I-PER O B-LOC") == []
    assert kinds("O O", "O O") == []


def test_missed_and_spurious():
    assert kinds("B-PER O O", "O O O") == [("missed", S("PER", 0, 1), None)]
    assert kinds("O O O", "O B-LOC I-LOC") == [("spurious", None, S("LOC", 1, 3))]


def test_wrong_type_same_boundaries():
    assert kinds("O B-PER I-PER", "O B-ORG I-ORG") == [("wrong_type", S("PER", 1, 3), S("ORG", 1, 3))]


def test_wrong_boundary_same_type():
    # too short, too long, shifted: all overlap with the right type
    assert kinds("B-LOC I-LOC I-LOC", "B-LOC I-LOC O") == [("wrong_boundary", S("LOC", 0, 3), S("LOC", 0, 2))]
    assert kinds("O B-LOC O", "B-LOC I-LOC O") == [("wrong_boundary", S("LOC", 1, 2), S("LOC", 0, 2))]
    assert kinds("B-LOC I-LOC O", "O B-LOC I-LOC") == [("wrong_boundary", S("LOC", 0, 2), S("LOC", 1, 3))]


def test_wrong_type_and_boundary_counts_as_wrong_type():
    # MUC's type axis: an overlapping span of another type is a type error, boundaries aside
    assert kinds("B-PER I-PER O", "B-ORG O O") == [("wrong_type", S("PER", 0, 2), S("ORG", 0, 1))]


def test_a_span_cut_in_two_gives_one_boundary_error_and_one_spurious():
    # gold "new york city" LOC; predicted "new york" LOC + "city" LOC: the larger overlap pairs
    assert kinds("B-LOC I-LOC I-LOC", "B-LOC I-LOC B-LOC") == [
        ("wrong_boundary", S("LOC", 0, 3), S("LOC", 0, 2)), ("spurious", None, S("LOC", 2, 3))]


def test_two_gold_spans_under_one_prediction():
    assert kinds("B-LOC O B-LOC", "B-LOC I-LOC I-LOC") == [
        ("wrong_boundary", S("LOC", 0, 1), S("LOC", 0, 3)), ("missed", S("LOC", 2, 3), None)]


def test_pairing_prefers_the_same_type_then_the_larger_overlap():
    # same overlap, one of the right type: it wins, the other is spurious
    assert kinds("B-PER I-PER I-PER I-PER", "B-ORG I-ORG B-PER I-PER") == [
        ("wrong_boundary", S("PER", 0, 4), S("PER", 2, 4)), ("spurious", None, S("ORG", 0, 2))]
    # both of another type: the larger overlap pairs (a wrong type), the other is spurious
    assert kinds("B-PER I-PER I-PER I-PER", "B-ORG B-LOC I-LOC I-LOC") == [
        ("wrong_type", S("PER", 0, 4), S("LOC", 1, 4)), ("spurious", None, S("ORG", 0, 1))]


def test_conlleval_chunks_and_unknown_tags():
    # an I- after O opens a chunk (conlleval), and a non-IOB label such as PAD reads as O
    assert kinds("O I-PER I-PER", "O B-PER I-PER") == []
    assert kinds("B-PER O", "PAD O") == [("missed", S("PER", 0, 1), None)]


def test_every_kind_in_one_sentence_and_counts():
    gold = "B-A O B-B I-B O B-C I-C O O"
    pred = "O O B-X I-X O B-C O O B-D"
    found = kinds(gold, pred)
    assert [k for k, _, _ in found] == ["missed", "wrong_type", "wrong_boundary", "spurious"]
    assert {k for k, _, _ in found} == set(SPAN_ERROR_KINDS)


def test_first_wrong_level_and_label_sets():
    assert first_wrong_level(("a", "b", "c"), ("a", "b", "c")) is None
    assert first_wrong_level(("a", "b", "c"), ("x", "b", "c")) == 0
    assert first_wrong_level(("a", "b", "c"), ("a", "b", "x")) == 2
    assert first_wrong_level(("a", "b"), ("a", "b", "c")) == 2
    assert label_set_errors(["a", "b"], ["b", "c"]) == {"missed": ["a"], "spurious": ["c"]}
    assert label_set_errors([], []) == {"missed": [], "spurious": []}


# --- task types: per-example loss and confidence ---------------------------------------------------

@pytest.fixture(scope="module")
def five_types(tiny_snips):
    """One model with a task of every type (random heads) and its dev records, two groups."""
    enc, (snips,) = tiny_snips
    recs = snips.records["dev"][:12]
    topics = ["music", "food", "travel"]
    paths = [("animal", "cat"), ("animal", "dog"), ("plant", "tree")]
    single = [{"words": r["words"], "topic": topics[i % 3], "slots": r["slots"],
               "labels": [topics[i % 3]] + (["urgent"] if i % 2 else []), "path": list(paths[i % 3])}
              for i, r in enumerate(recs)]
    single[0]["topic"] = "unseen"  # a gold label the model does not know: loss inf, always wrong
    pairs = [{"words": r["words"], "words_b": recs[(i + 1) % 12]["words"], "same": str(i % 2)}
             for i, r in enumerate(recs)]
    slots = copy.deepcopy(snips.tasks[1])
    tasks = [TaskSpec(name="topic", task_type="classification", label_field="topic", labels=topics),
             slots,
             TaskSpec(name="tags", task_type="multilabel", label_field="labels", labels=[*topics, "urgent"]),
             TaskSpec(name="tree", task_type="hierarchical", label_field="path", labels=paths)]
    para = [TaskSpec(name="para", task_type="pair_classification", label_field="same", labels=["0", "1"])]
    with pytest.warns(UserWarning, match="unseen"):
        (g1,) = build_groups(tasks, enc.tokenizer, splits=("dev",), records={"dev": single})
    (g2,) = build_groups(para, enc.tokenizer, splits=("dev",), records={"dev": pairs})
    model = MultiTaskModel.from_tasks(copy.deepcopy(enc), tasks + para, seed=3).eval()
    return model, [g1, g2]


def _forward_one(model, group, i, task):
    f = group.splits["dev"][i]
    ids = torch.tensor([f["input_ids"]])
    tt = torch.tensor([f["token_type_ids"]]) if "token_type_ids" in f else None
    with torch.no_grad():
        return model(ids, torch.ones_like(ids), tt, tasks=[task])[task][0]


def test_records_of_every_type_match_a_direct_forward(five_types):
    model, groups = five_types
    records = error_records(model, groups, "dev")
    assert [r["task"] for r in records] == ["topic"] * 12 + ["slots"] * 12 + ["tags"] * 12 + \
        ["tree"] * 12 + ["para"] * 12
    for r in records:
        g = groups[1] if r["task"] == "para" else groups[0]
        logits, tt = _forward_one(model, g, r["index"], r["task"]), model.types[r["task"]]
        if r["task"] in ("topic", "tree", "para"):
            gold = tt.gold(g.records["dev"][r["index"]])
            if gold in tt.index:
                assert r["loss"] == pytest.approx(F.cross_entropy(logits[None], torch.tensor([tt.index[gold]])).item(),
                                                  rel=1e-5)
            assert r["confidence"] == pytest.approx(torch.softmax(logits, -1).max().item(), rel=1e-5)
        elif r["task"] == "tags":
            target = torch.tensor(tt.encode(r["gold"], None))
            assert r["loss"] == pytest.approx(F.binary_cross_entropy_with_logits(logits, target).item(), rel=1e-5)
            p = torch.sigmoid(logits)
            assert r["confidence"] == pytest.approx(torch.maximum(p, 1 - p).min().item(), rel=1e-5)
            assert r["pred"] == [lab for lab, z in zip(tt.spec.labels, logits) if z > 0]
        else:  # tagging: mean NLL over word starts, as NERLoss on this one sentence
            labels = torch.tensor([g.splits["dev"][r["index"]]["labels"]["slots"]])
            ner = model.losses["slots"](logits[None], labels)
            assert r["loss"] == pytest.approx(ner.item(), rel=1e-5)
        assert r["correct"] == (r["gold"] == r["pred"] if r["task"] != "slots" else not r["errors"])
    first = records[0]
    assert first["task"] == "topic" and first["gold"] == "unseen" and math.isinf(first["loss"])
    assert not first["correct"] and first["errors"] == [{"kind": "wrong_label"}]
    assert all(a["loss"] >= b["loss"] for a, b in zip(records, records[1:]) if a["task"] == b["task"])


def test_records_carry_each_types_diagnosis(five_types):
    model, groups = five_types
    records = error_records(model, groups, "dev")
    for r in filter_records(records, "tree"):
        assert r["first_wrong_level"] == first_wrong_level(r["gold"], r["pred"])
        assert r["gold_text"] == " > ".join(r["gold"]) and r["gold_shown"] == [r["gold_text"]]
        level = r["first_wrong_level"]
        assert [e["kind"] for e in r["errors"]] == ([] if r["correct"] else [f"wrong_level_{level + 1}"])
    for r in filter_records(records, "tags"):
        def labels(kind, r=r):
            return sorted(e["label"] for e in r["errors"] if e["kind"] == kind)
        assert labels("missed") == sorted(set(r["gold"]) - set(r["pred"]))
        assert labels("spurious") == sorted(set(r["pred"]) - set(r["gold"]))
    for r in filter_records(records, "slots"):
        assert r["errors"] == span_errors(r["gold"], r["pred"])
    para = filter_records(records, "para")
    assert all(r["words_b"] and " ||| " in r["text"] for r in para)
    assert "words_b" not in records[0]


def test_records_agree_with_collect_predictions(trained_run, tiny_snips):
    _, trainer = trained_run
    model, groups = trainer.model, trainer.groups
    preds = collect_predictions(model, groups[0], "dev")
    records = error_records(model, groups, "dev")
    for task in ("intent", "slots"):
        mine = sorted(filter_records(records, task), key=lambda r: r["index"])
        assert [r["index"] for r in mine] == preds[task]["index"]
        assert [r["pred"] for r in mine] == preds[task]["pred"]
        assert [r["gold"] for r in mine] == preds[task]["true"]
    assert error_records(model, groups, "dev", tasks=["slots"]) == filter_records(records, "slots")
    with pytest.raises(ValueError, match="unknown task"):
        error_records(model, groups, "dev", tasks=["nope"])
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['nope'\]"):
        error_records(model, groups, "dev", tasks=["slots", "nope"])


# --- queries over records ----------------------------------------------------------------------------

def _rec(task, gold, pred, loss, errors=(), index=0):
    return {"task": task, "index": index, "gold_shown": [gold], "pred_shown": [pred], "loss": loss,
            "correct": not errors, "errors": list(errors)}


RECS = [_rec("intent", "a", "b", 3.0, [{"kind": "wrong_label"}], 0),
        _rec("intent", "a", "a", 2.5, [], 1),
        _rec("intent", "c", "b", 2.0, [{"kind": "wrong_label"}], 2),
        _rec("intent", "a", "b", 1.0, [{"kind": "wrong_label"}], 3),
        _rec("slots", "X", "Y", 4.0, [{"kind": "wrong_type", "gold": S("X", 0, 1), "pred": S("Y", 0, 1)},
                                     {"kind": "missed", "gold": S("Z", 2, 3), "pred": None}], 0),
        _rec("slots", "X", "X", 0.5, [{"kind": "missed", "gold": S("X", 0, 1), "pred": None}], 1)]


def test_filter_worst_counts_and_most_confused():
    assert [r["index"] for r in filter_records(RECS, "intent", gold="a")] == [0, 1, 3]
    assert [r["index"] for r in filter_records(RECS, "intent", pred="b", only_errors=True)] == [0, 2, 3]
    assert [r["index"] for r in filter_records(RECS, kind="missed")] == [0, 1]
    assert [(r["task"], r["index"]) for r in worst(RECS, 2)] == [("intent", 0), ("intent", 2), ("slots", 0),
                                                               ("slots", 1)]
    assert error_counts(RECS, "slots") == {"missed": 2, "wrong_type": 1}
    assert error_counts(RECS, "intent") == {"wrong_label": 3}
    assert most_confused(RECS, "intent") == [("a", "b", 2), ("c", "b", 1)]
    assert most_confused(RECS, "intent", min_count=2) == [("a", "b", 2)]
    assert most_confused(RECS, "slots") == [("X", "Y", 1)]


def test_format_errors_prints_the_worst_with_their_kinds(trained_run):
    _, trainer = trained_run
    records = error_records(trainer.model, trainer.groups, "dev")
    text = format_errors(records, 2)
    slots = filter_records(records, "slots")
    n_wrong = sum(not r["correct"] for r in slots)
    counts = ", ".join(f"{k} {v}" for k, v in error_counts(slots).items())
    assert f"slots: {n_wrong} of {len(slots)} examples wrong; errors by kind: {counts}" in text
    top = worst(records, 1, "slots")[0]
    assert f"#{top['index']:<5} loss {top['loss']:7.3f}" in text and top["gold_text"] in text
    assert text.count("\n  #") == len(worst(records, 2))


def test_tagging_text_brackets_spans(tiny_snips):
    _, (snips,) = tiny_snips
    tt = MultiTaskModel.from_tasks(tiny_snips[0], snips.tasks).types["slots"]
    words = "play jazz by miles davis".split()
    assert tt.as_text(["O", "B-genre", "O", "B-artist", "I-artist"], words) == \
        "play [jazz]:genre by [miles davis]:artist"
    assert tt.shown(["O", "B-genre", "O", "B-artist", "I-artist"]) == ["artist", "genre"]


def test_error_records_leave_the_model_as_it_was(trained_run):
    _, trainer = trained_run
    model = trainer.model
    model.train()
    try:
        error_records(model, trainer.groups, "dev")
        assert model.training
    finally:
        model.eval()


# --- mtl-lib evaluate --errors N -----------------------------------------------------------------------

def test_cli_evaluate_errors_prints_the_worst(trained_run, capsys):
    run_dir, _ = trained_run
    assert main(["evaluate", str(run_dir), "--errors", "3"]) == 0
    out = capsys.readouterr().out
    model = load_model(run_dir)
    groups = build_groups(list(model.tasks.values()), model.encoder.tokenizer, splits=("dev",))
    expected = format_errors(error_records(model, groups, "dev"), 3)
    assert "classification_accuracy" in out  # the metrics table first...
    assert out.rstrip().endswith(expected)  # ...then the errors
    assert "intent: " in expected and "slots: " in expected and "errors by kind" in expected


def test_cli_evaluate_errors_json(trained_run, capsys):
    run_dir, _ = trained_run
    assert main(["evaluate", str(run_dir), "--errors", "2", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got) == {"metrics", "errors"} and "intent" in got["metrics"]
    model = load_model(run_dir)
    groups = build_groups(list(model.tasks.values()), model.encoder.tokenizer, splits=("dev",))
    want = worst(error_records(model, groups, "dev"), 2)
    assert [(r["task"], r["index"]) for r in got["errors"]] == [(r["task"], r["index"]) for r in want]
    assert all(not r["correct"] for r in got["errors"])


def test_cli_evaluate_errors_must_not_be_negative(trained_run, capsys):
    run_dir, _ = trained_run
    assert main(["evaluate", str(run_dir), "--errors", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--errors -1" in err
