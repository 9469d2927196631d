"""Predictor: every task from one encoder pass per batch, word-level tags and consistent spans."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from seqeval.metrics.sequence_labeling import get_entities

from mtl_lib.evaluation.evaluate import collect_predictions
from mtl_lib.evaluation.predict import Predictor, split_words
from mtl_lib.models.multitask import MultiTaskModel, save_model
from mtl_lib.tasks.spec import TaskSpec

TEXTS = ["play some jazz by miles davis on spotify", "will it rain in paris tomorrow",
         "book a table for two at an italian restaurant", "rate this novel five stars",
         "add this song to my   road trip playlist"]


@pytest.fixture(scope="module")
def predictor(trained_run):
    run_dir, _ = trained_run
    return Predictor.from_checkpoint(run_dir, batch_size=2)


def _count_encoder_passes(predictor: Predictor) -> list[int]:
    calls: list[int] = []
    predictor.model.encoder.register_forward_hook(lambda m, a, out: calls.append(out[0].shape[0]))
    return calls


def test_predicts_every_task_with_one_encoder_pass_per_batch(predictor):
    calls = _count_encoder_passes(predictor)
    before = predictor.encoder_calls
    results = predictor.predict(TEXTS)
    assert predictor.encoder_calls - before == 3  # 5 texts, batches of 2
    assert calls == [2, 2, 1]
    intents = predictor.tasks["intent"].labels
    for text, res in zip(TEXTS, results):
        assert res["text"] == text and res["words"] == text.split()
        intent = res["intent"]
        assert intent["label"] in intents and set(intent["scores"]) == set(intents)
        assert intent["score"] == max(intent["scores"].values())
        assert intent["label"] == max(intent["scores"], key=intent["scores"].get)
        assert sum(intent["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        slots = res["slots"]
        assert len(slots["tags"]) == len(res["words"])  # one tag per word, whatever the sub-tokens
        assert set(slots["tags"]) <= set(predictor.tasks["slots"].labels)


def test_spans_agree_with_the_tags(predictor):
    # the heads are barely trained, so tags are varied and often ill-formed (I- after O):
    # a good test of the chunking; seqeval's get_entities is the reference
    # spans also carry character offsets into the text (TEXTS[4] holds a run of spaces)
    results = predictor.predict(TEXTS)
    n_spans = 0
    for text, res in zip(TEXTS, results):
        tags = res["slots"]["tags"]
        where = [m.span() for m in re.finditer(r"\S+", text)]  # no punctuation in TEXTS
        expected = [{"type": ty, "start": s, "end": e + 1, "start_char": where[s][0],
                     "end_char": where[e][1], "text": text[where[s][0]:where[e][1]]}
                    for ty, s, e in get_entities(tags)]
        assert res["slots"]["spans"] == expected
        n_spans += len(expected)
    assert n_spans > 0


def test_predictions_match_evaluation_on_dev(predictor, trained_run):
    # the same model through two code paths: evaluation (pre-encoded features) and the
    # Predictor (raw text) must give identical intents and word tags
    # Compared on the utterances whose words the Predictor's split gives back: SNIPS keeps some
    # punctuation on words ("curtain call: the hits"), which the Predictor separates.
    _, trainer = trained_run
    group = trainer.groups[0]
    preds = collect_predictions(predictor.model, group, "dev")
    texts = [" ".join(r["words"]) for r in group.records["dev"]]
    results = predictor.predict(texts)
    same = [i for i, (t, r) in enumerate(zip(texts, group.records["dev"])) if t.split() == r["words"]
            and [w for w, _, _ in split_words(t)] == r["words"]]
    assert len(same) >= 0.8 * len(texts)
    assert [results[i]["intent"]["label"] for i in same] == [preds["intent"]["pred"][i] for i in same]
    assert [results[i]["slots"]["tags"] for i in same] == [preds["slots"]["pred"][i] for i in same]


def test_single_string_and_control_characters(predictor):
    one = predictor.predict("play\tsome\x00 jazz")
    assert isinstance(one, dict) and one["words"] == ["play", "some", "jazz"]
    assert len(one["slots"]["tags"]) == 3


@pytest.fixture(scope="module")
def pair_checkpoint(tiny_snips, tmp_path_factory):
    enc, _ = tiny_snips
    tasks = [TaskSpec(name="topic", task_type="classification", labels=["a", "b", "c"]),
             TaskSpec(name="tags", task_type="tagging", labels=["O", "B-X", "I-X"]),
             TaskSpec(name="para", task_type="pair_classification", labels=["0", "1"])]
    model = MultiTaskModel.from_tasks(copy.deepcopy(enc), tasks)
    return save_model(model, tmp_path_factory.mktemp("pair") / "ckpt")


def test_pair_task_runs_only_with_text_pairs(pair_checkpoint):
    p = Predictor.from_checkpoint(pair_checkpoint, batch_size=8)
    seen_tasks = []
    forward = p.model.forward
    p.model.forward = lambda *a, tasks=None, **kw: seen_tasks.append(list(tasks)) or forward(*a, tasks=tasks, **kw)
    calls = _count_encoder_passes(p)
    texts = ["is this the same", "a second sentence", "and a third"]
    alone = p.predict(texts)
    assert all("para" not in r and "topic" in r and "tags" in r for r in alone)
    assert p.encoder_calls == 1 and calls == [3] and seen_tasks == [["topic", "tags"]]

    pairs = ["is that the same", "another one", "a third one"]
    both = p.predict(texts, text_pairs=pairs)
    # one pass for the single-sentence heads, one for the pair head (its input differs)
    assert p.encoder_calls == 3 and calls == [3, 3, 3]
    assert seen_tasks[1:] == [["topic", "tags"], ["para"]]
    for r in both:
        assert r["para"]["label"] in ("0", "1")
        assert sum(r["para"]["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    # single-sentence results do not depend on whether pairs were given
    assert [r["topic"] for r in both] == [r["topic"] for r in alone]
    with pytest.raises(ValueError, match="3 texts but 2 text_pairs"):
        p.predict(texts, text_pairs=pairs[:2])


def test_pair_scores_match_a_direct_forward(pair_checkpoint):
    p = Predictor.from_checkpoint(pair_checkpoint)
    tok = p.model.encoder.tokenizer
    res = p.predict(["is this the same"], text_pairs=["is that the same"])[0]
    enc = tok([["is", "this", "the", "same"]], [["is", "that", "the", "same"]], is_split_into_words=True,
              return_tensors="pt")
    with torch.no_grad():
        logits = p.model(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"), tasks=["para"])
    probs = torch.softmax(logits["para"][0], -1)
    assert [res["para"]["scores"][lab] for lab in ("0", "1")] == pytest.approx(probs.tolist(), abs=1e-6)


@pytest.mark.parametrize("family", ["XLNET", "ROBERTA", "ALBERT"])
def test_predictor_agrees_with_evaluation_for_other_tokenizers(family, tiny_snips):
    # XLNet pads on the left and ends with <cls>; RoBERTa's byte-level BPE and ALBERT's
    # SentencePiece split words differently from WordPiece: the first-sub-token bookkeeping of
    # the Predictor must still match the one used to build training labels
    from mtl_lib.experiment import build_groups
    from mtl_lib.models.tiny import tiny_encoder

    _, (snips,) = tiny_snips
    enc = tiny_encoder(family)
    records = snips.records["dev"][:24]
    (group,) = build_groups(snips.tasks, enc.tokenizer, splits=("dev",), records={"dev": records})
    model = MultiTaskModel.from_tasks(enc, snips.tasks, seed=1).eval()
    preds = collect_predictions(model, group, "dev", batch_size=8)
    results = Predictor(model, batch_size=5).predict([" ".join(r["words"]) for r in records])
    assert len({t for r in results for t in r["slots"]["tags"]}) > 3  # varied tags: a real check
    assert [r["slots"]["tags"] for r in results] == preds["slots"]["pred"]
    assert [r["intent"]["label"] for r in results] == preds["intent"]["pred"]
