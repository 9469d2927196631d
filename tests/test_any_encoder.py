"""Any Hugging Face encoder: hub ids in the cache, paths, built models, new architectures.

Tiny random models of ELECTRA, XLM-R, DeBERTa-v2 (as DeBERTa-v3) and MPNet stand in for the
real checkpoints, which cannot be downloaded here; the hub ids are laid out in a fake cache.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, BertTokenizer

from mtl_lib.data.encoding import encode_records
from mtl_lib.evaluation.predict import Predictor
from mtl_lib.experiment import build_experiment, resolve_encoder, snips_tasks
from mtl_lib.models.architectures import default_pooling
from mtl_lib.models.encoders import Encoder, EncoderNotAvailable, load_encoder
from mtl_lib.models.multitask import MultiTaskModel, load_model
from mtl_lib.models.tiny import tiny_encoder
from mtl_lib.tasks.spec import TaskSpec

NEW = ["ELECTRA", "XLM-ROBERTA", "DEBERTA-V2", "MPNET"]


@pytest.fixture(scope="module")
def tiny():
    return {f: tiny_encoder(f) for f in ["BERT", "DISTILBERT", "ROBERTA", "ALBERT", *NEW]}


def same_weights(a, b, extra_pooler: bool = False) -> bool:
    """Every tensor equal; ``extra_pooler``: ``a`` may also hold a tanh pooler (AutoModel adds one)."""
    sa, sb = a.state_dict(), b.state_dict()
    keys = {k for k in sa if not (extra_pooler and k.startswith("pooler."))}
    return keys == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in keys)


# ------------------------------------------------------------------------ hub ids in the cache
@pytest.mark.parametrize("repo_id, family", [
    ("distilbert/distilbert-base-uncased", "DISTILBERT"), ("FacebookAI/roberta-base", "ROBERTA"),
    ("sentence-transformers/all-MiniLM-L6-v2", "BERT"), ("google/electra-small-discriminator", "ELECTRA"),
    ("FacebookAI/xlm-roberta-base", "XLM-ROBERTA"), ("microsoft/deberta-v3-small", "DEBERTA-V2"),
    ("sentence-transformers/all-mpnet-base-v2", "MPNET")])
def test_a_hub_id_in_the_cache_loads_offline(tiny, empty_hf_home, repo_id, family):
    empty_hf_home.add(repo_id, tiny[family])
    enc = load_encoder(repo_id)
    assert (enc.name, enc.family) == (repo_id, family)
    assert same_weights(enc.model, tiny[family].model)
    words = [["Play", "jazz", "in", "Lima"]]
    assert enc.tokenize(words, is_split_into_words=True)["input_ids"] == \
        tiny[family].tokenize(words, is_split_into_words=True)["input_ids"]


def test_the_minilm_hub_id_is_the_bundled_model_when_the_cache_is_empty(empty_hf_home):
    enc = load_encoder("sentence-transformers/all-MiniLM-L6-v2")
    assert enc.hidden_size == 384 and same_weights(enc.model, load_encoder("minilm").model)


def test_a_hub_id_not_in_the_cache_says_how_to_get_it(empty_hf_home):
    with pytest.raises(EncoderNotAvailable) as err:
        load_encoder("google/electra-small-discriminator")
    msg = str(err.value)
    for needle in ["not in the Hugging Face cache", "hf download google/electra-small-discriminator",
                   "load_encoder('google/electra-small-discriminator')", str(empty_hf_home.home)]:
        assert needle in msg


def test_the_missing_weights_hint_names_an_id_that_then_loads(tiny, empty_hf_home):
    with pytest.raises(EncoderNotAvailable) as err:
        load_encoder("roberta-base")
    assert "hf download FacebookAI/roberta-base" in str(err.value)
    assert "load_encoder('FacebookAI/roberta-base')" in str(err.value)
    empty_hf_home.add("FacebookAI/roberta-base", tiny["ROBERTA"])
    for name in ("FacebookAI/roberta-base", "roberta-base"):
        assert same_weights(load_encoder(name).model, tiny["ROBERTA"].model)


# ------------------------------------------------------------------------------ directories
@pytest.mark.parametrize("family", NEW)
def test_save_pretrained_of_a_new_family_opens_in_transformers_and_here(tiny, family, tmp_path):
    enc = tiny[family]
    enc.save_pretrained(tmp_path)
    ids = torch.tensor(enc.tokenize(["the film was a delight"])["input_ids"])
    with torch.no_grad():
        want = enc.model(input_ids=ids).last_hidden_state
        hf = AutoModel.from_pretrained(tmp_path, local_files_only=True).eval()
        assert torch.allclose(hf(input_ids=ids).last_hidden_state, want, atol=1e-6)
        ours = load_encoder(Path(tmp_path), pooling="mean")  # a Path, and a pooling override
        assert torch.allclose(ours.model(input_ids=ids).last_hidden_state, want, atol=1e-6)
    assert (ours.family, ours.pooling, ours.segments) == (family, "mean", enc.segments)


def test_a_path_that_is_not_a_directory_is_refused(tmp_path):
    with pytest.raises(EncoderNotAvailable, match="no such directory"):
        load_encoder(tmp_path / "missing")


def test_a_directory_without_tokenizer_files_is_refused_naming_the_files(tiny, tmp_path):
    tiny["BERT"].model.save_pretrained(tmp_path)  # weights and config only
    with pytest.raises(EncoderNotAvailable) as err:
        load_encoder(str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path) in msg and "no tokenizer files" in msg
    for name in ["tokenizer.json", "vocab.txt", "vocab.json + merges.txt", "spiece.model"]:
        assert name in msg


def test_degenerate_tokenizers_are_refused(tiny, tmp_path):
    model = tiny["BERT"].model
    tiny_vocab = tmp_path / "five"
    model.save_pretrained(tiny_vocab)
    BertTokenizer().save_pretrained(tiny_vocab)  # what transformers builds from no files: 5 tokens
    with pytest.raises(EncoderNotAvailable, match="vocabulary has only 5 tokens.*tokenizer.json"):
        load_encoder(str(tiny_vocab))
    all_unk = tmp_path / "all_unk"
    model.save_pretrained(all_unk)
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                                          [chr(0x4E00 + i) for i in range(60)])}
    BertTokenizer(vocab=vocab).save_pretrained(all_unk)
    with pytest.raises(EncoderNotAvailable, match=r"reads every word .* as \[UNK\]"):
        load_encoder(str(all_unk))


def test_a_tokenizer_larger_than_the_embedding_table_is_refused(tiny):
    with pytest.raises(EncoderNotAvailable, match="embedding table only"):
        Encoder.from_model(tiny["BERT"].model, tiny["ROBERTA"].tokenizer)  # 743 tokens, 506 rows


# ----------------------------------------------------------------------- models already built
def test_from_model_takes_a_task_model_and_its_tokenizer(tiny, tmp_path):
    tiny["ELECTRA"].save_pretrained(tmp_path)
    clf = AutoModelForSequenceClassification.from_pretrained(tmp_path, local_files_only=True, num_labels=3)
    enc = Encoder.from_model(clf, tiny["ELECTRA"].tokenizer, pooling="last")
    assert enc.model is clf.base_model and enc.pooling == "last" and enc.family == "ELECTRA"
    # without a tokenizer it is read from where the model came from
    bare = AutoModel.from_pretrained(tmp_path, local_files_only=True)
    enc = Encoder.from_model(bare)
    assert enc.tokenizer.get_vocab() == tiny["ELECTRA"].tokenizer.get_vocab()
    assert enc.name == str(tmp_path) and enc.pooling == "first"


def test_from_model_needs_a_tokenizer_when_the_model_has_no_origin(tiny):
    model = AutoModel.from_config(tiny["MPNET"].model.config)
    with pytest.raises(ValueError, match=r"pass its tokenizer"):
        Encoder.from_model(model)
    with pytest.raises(TypeError, match="expected a transformers model"):
        Encoder.from_model(torch.nn.Linear(2, 2), tiny["MPNET"].tokenizer)


def test_from_model_gives_byte_level_bpe_a_prefix_space(tiny, tmp_path):
    tiny["ROBERTA"].tokenizer.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(tmp_path, add_prefix_space=False)
    assert plain([["Play", "jazz"]], is_split_into_words=True).tokens(0)[1:3] != ["ĠPlay", "Ġjazz"]
    enc = Encoder.from_model(tiny["ROBERTA"].model, plain)
    assert enc.tokenize([["Play", "jazz"]], is_split_into_words=True).tokens(0)[1:3] == ["ĠPlay", "Ġjazz"]


def test_resolve_encoder_and_build_experiment_accept_every_form(tiny, tmp_path):
    source = tiny["XLM-ROBERTA"]
    source.save_pretrained(tmp_path / "xlmr")
    built = AutoModel.from_pretrained(tmp_path / "xlmr", local_files_only=True)
    forms = [Path(tmp_path / "xlmr"), str(tmp_path / "xlmr"), built, (built, source.tokenizer),
             Encoder.from_model(built, source.tokenizer)]
    for form in forms:
        enc = resolve_encoder(form)
        assert enc.family == "XLM-ROBERTA" and same_weights(enc.model, source.model, extra_pooler=True), form
    assert resolve_encoder("tiny-xlm-roberta").family == "XLM-ROBERTA"
    with pytest.raises(TypeError, match="encoder must be a name, a path"):
        resolve_encoder(42)
    enc = Encoder.from_model(built, source.tokenizer)
    model, groups = build_experiment(snips_tasks(max_examples=20), encoder=enc)
    assert model.encoder is enc and len(groups[0].splits["train"]) == 20


def test_default_pooling_follows_the_tokenizer_template(tiny):
    xlnet_tok = tiny_encoder("XLNET").tokenizer  # <cls> at the end, nothing special first
    assert default_pooling(tiny["BERT"].model.config, xlnet_tok) == "mean"
    assert default_pooling(tiny["BERT"].model.config, tiny["BERT"].tokenizer) == "first"


# ------------------------------------------------------------------- segment ids and checkpoints
def test_albert_pairs_get_segment_ids_in_the_data_pipeline(tiny):
    # transformers 5's ALBERT tokenizer makes no token_type_ids by default: pairs reached the
    # model as one segment although ALBERT was pretrained with two
    enc = tiny["ALBERT"]
    feats = encode_records([{"words": ["a", "film"], "words_b": ["a", "story"]}], enc.tokenizer)
    assert 1 in feats[0]["token_type_ids"] and enc.segments


@pytest.mark.parametrize("family", NEW)
def test_checkpoints_of_new_families_predict_the_same_after_loading(tiny, family, tmp_path):
    tasks = [TaskSpec(name="topic", task_type="classification", labels=["a", "b", "c"]),
             TaskSpec(name="tags", task_type="tagging", labels=["O", "B-X", "I-X"]),
             TaskSpec(name="para", task_type="pair_classification", labels=["0", "1"])]
    model = MultiTaskModel.from_tasks(copy.deepcopy(tiny[family]), tasks).eval()
    texts, pairs = ["play jazz in Lima", "book a table"], ["some jazz", "a table for two"]
    want = Predictor(model).predict(texts, text_pairs=pairs)
    loaded = load_model(model.save_pretrained(tmp_path / "ckpt"))
    assert loaded.encoder.config_dict() == model.encoder.config_dict()
    assert Predictor(loaded).predict(texts, text_pairs=pairs) == want


def test_a_built_model_keeps_its_tanh_pooler_through_a_checkpoint(tiny, tmp_path):
    tiny["BERT"].save_pretrained(tmp_path / "bert")
    with_pooler = AutoModel.from_pretrained(tmp_path / "bert", local_files_only=True)  # pooler random
    enc = Encoder.from_model(with_pooler, tiny["BERT"].tokenizer)
    assert enc.config_dict()["model_kwargs"] == {"add_pooling_layer": True}
    model = MultiTaskModel.from_tasks(enc, [TaskSpec(name="t", task_type="classification", labels=["a", "b"])])
    loaded = load_model(model.save_pretrained(tmp_path / "ckpt"))  # strict load: same tensors
    assert same_weights(loaded, model)
