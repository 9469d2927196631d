"""Tests for mtl_lib.models.encoders: registry, offline loading, pooling, tiny encoders."""

import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer

from mtl_lib.models.encoders import (
    DEFAULT_ENCODER,
    ENCODER_TABLE,
    POOLING,
    Encoder,
    EncoderNotAvailable,
    list_encoders,
    load_encoder,
)
from mtl_lib.models.tiny import TINY_FAMILIES, tiny_encoder

SEED_FAMILIES = list(POOLING)
FAMILIES = TINY_FAMILIES  # the seed's five, plus ELECTRA, XLM-ROBERTA, DEBERTA-V2, MPNET
SEGMENTS = {"BERT", "ALBERT", "XLNET", "ELECTRA"}  # type_vocab_size > 1, and XLNet's relative segments
WORDS = [["Book", "a", "flight", "to", "Denver"], ["Play", "jazz"],
         ["Peter", "Blackburn", "reported", "from", "Brussels", "on", "Thursday", "."]]
SEED_NAMES = [
    "distilbert-base-uncased", "distilbert-base-cased", "bert-base-uncased", "bert-base-cased",
    "bert-large-uncased", "bert-large-cased", "roberta-base", "roberta-large",
    "albert-base-v1", "albert-large-v1", "albert-xlarge-v1", "albert-xxlarge-v1",
    "albert-base-v2", "albert-large-v2", "albert-xlarge-v2", "albert-xxlarge-v2",
    "xlnet-base-cased", "xlnet-large-cased",
]


@pytest.fixture(scope="module")
def tiny():
    return {family: tiny_encoder(family) for family in FAMILIES}


@pytest.fixture(scope="module")
def minilm():
    return load_encoder("minilm")


def batch_of(encoder, enc):
    """Pad a BatchEncoding on the family's padding side -> dict of (B, T) tensors."""
    return dict(encoder.tokenizer.pad(enc, return_tensors="pt"))


def run(encoder, batch):
    with torch.no_grad():
        return encoder(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))


# ---------------------------------------------------------------- tiny encoders, every family
@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_forward_shapes_and_padding_invariance(tiny, family):
    enc = tiny[family]
    batch = batch_of(enc, enc.tokenize(WORDS, is_split_into_words=True))
    B, T = batch["input_ids"].shape
    hidden, pooled = run(enc, batch)
    assert hidden.shape == (B, T, enc.hidden_size) == (3, T, 32)
    assert pooled.shape == (B, enc.hidden_size)
    assert (batch["attention_mask"] == 0).any()  # the batch really is padded
    # Padding must not change a sequence's states: compare with each sequence run alone.
    for i, words in enumerate(WORDS):
        alone = batch_of(enc, enc.tokenize([words], is_split_into_words=True))
        h1, p1 = run(enc, alone)
        real = batch["attention_mask"][i].bool()  # (T,)
        torch.testing.assert_close(hidden[i, real], h1[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(pooled[i], p1[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_word_ids_align_with_words(tiny, family):
    enc = tiny[family]
    out = enc.tokenize(WORDS, is_split_into_words=True)
    for i, words in enumerate(WORDS):
        word_ids, tokens = out.word_ids(i), out.tokens(i)
        assert sorted(set(w for w in word_ids if w is not None)) == list(range(len(words)))
        for w, word in enumerate(words):
            pieces = [t for t, wid in zip(tokens, word_ids, strict=True) if wid == w]
            text = "".join(p.replace("##", "").replace("Ġ", "").replace("▁", "") for p in pieces)
            assert text.lower() == word.lower(), (family, pieces, word)
        specials = [t for t, wid in zip(tokens, word_ids, strict=True) if wid is None]
        assert set(specials) <= set(enc.tokenizer.all_special_tokens)


@pytest.mark.parametrize("family", FAMILIES)
def test_pairs_use_family_template(tiny, family):
    enc = tiny[family]
    tok = enc.tokenizer
    out = enc.tokenize(["the film was a delight"], text_pair=["a dull story"])
    ids = out["input_ids"][0]
    a = tok("the film was a delight", add_special_tokens=False)["input_ids"]
    b = tok("a dull story", add_special_tokens=False)["input_ids"]
    cls, sep = tok.cls_token_id, tok.sep_token_id
    expected = {
        "BERT": [cls, *a, sep, *b, sep], "DISTILBERT": [cls, *a, sep, *b, sep],
        "ALBERT": [cls, *a, sep, *b, sep], "ROBERTA": [cls, *a, sep, sep, *b, sep],
        "XLNET": [*a, sep, *b, sep, cls], "ELECTRA": [cls, *a, sep, *b, sep],
        "XLM-ROBERTA": [cls, *a, sep, sep, *b, sep], "DEBERTA-V2": [cls, *a, sep, *b, sep],
        "MPNET": [cls, *a, sep, sep, *b, sep],
    }[family]
    assert ids == expected
    assert enc.segments == (family in SEGMENTS)
    if family in {"BERT", "ALBERT", "ELECTRA"}:
        assert out["token_type_ids"][0] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    elif family == "XLNET":
        assert out["token_type_ids"][0] == [0] * (len(a) + 1) + [1] * (len(b) + 1) + [2]
    else:  # no segment embeddings to feed
        assert "token_type_ids" not in out
    batch = batch_of(enc, out)
    hidden, pooled = run(enc, batch)
    assert hidden.shape == (1, len(expected), 32) and pooled.shape == (1, 32)
    # A collator may send segment ids to every family; those without segments ignore them.
    segments = torch.tensor([[0] * (len(a) + 2) + [1] * (len(expected) - len(a) - 2)])
    with torch.no_grad():
        h_none, _ = enc(batch["input_ids"], batch["attention_mask"], None)
        h_seg, _ = enc(batch["input_ids"], batch["attention_mask"], segments)
    assert torch.equal(h_none, h_seg) == (family not in SEGMENTS)


@pytest.mark.parametrize("family", FAMILIES)
def test_parameters_by_depth_holds_every_parameter_once_from_the_input_up(tiny, family):
    enc = tiny[family]
    groups = enc.parameters_by_depth()
    flat = [id(p) for g in groups for p in g]
    assert sorted(flat) == sorted(id(p) for p in enc.parameters())  # every one, exactly once
    names = {id(p): n for n, p in enc.model.named_parameters()}
    assert all("emb" in names[id(p)] for p in groups[0]) and groups[0]
    if family == "ALBERT":  # one layer shared by all depths: embeddings, then the rest
        assert len(groups) == 2
        return
    assert len(groups) == 2 + 1  # tiny encoders have 2 layers
    for depth, group in enumerate(groups[1:]):
        in_layer = [names[id(p)] for p in group if ".layer." in f".{names[id(p)]}"]
        assert in_layer and all(f"layer.{depth}." in n for n in in_layer)


def test_xlnet_pads_left_and_pools_its_cls_token(tiny):
    enc = tiny["XLNET"]
    assert enc.tokenizer.padding_side == "left" and enc.pooling == "last"
    batch = batch_of(enc, enc.tokenize(WORDS, is_split_into_words=True))
    assert (batch["input_ids"][:, -1] == enc.tokenizer.cls_token_id).all()
    hidden, pooled = run(enc, batch)
    torch.testing.assert_close(pooled, hidden[:, -1])


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_encoder_is_deterministic_fast_and_leaves_global_rng(family):
    state = torch.get_rng_state()
    start = time.perf_counter()
    a, b, c = (tiny_encoder(family, seed=3) for _ in range(3))
    assert time.perf_counter() - start < 6.0  # three encoders, < 2 s each
    assert torch.equal(torch.get_rng_state(), state)
    # tokenizer training is repeatable too (the `tokenizers` trainers alone are not)
    assert a.tokenizer.get_vocab() == b.tokenizer.get_vocab() == c.tokenizer.get_vocab()
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), key
    other = tiny_encoder(family, seed=4)
    emb = other.model.get_input_embeddings().weight
    assert not torch.equal(a.model.get_input_embeddings().weight, emb)
    bigger = tiny_encoder(family, texts=["zyzzyva quixotic zyzzyva quixotic"] * 3)
    # the given texts are used for training: the new words get fewer, longer pieces
    new_words = ["zyzzyva", "quixotic"]
    assert len(bigger.tokenize([new_words], is_split_into_words=True)["input_ids"][0]) < len(
        a.tokenize([new_words], is_split_into_words=True)["input_ids"][0])


# ---------------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("side", ["right", "left"])
def test_pooling_matches_hand_computation(tiny, side):
    enc = tiny["BERT"]
    lengths = [5, 2, 1, 4]
    T, H = 5, 3
    hidden = torch.randn(len(lengths), T, H, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for i, n in enumerate(lengths):
        if side == "right":
            mask[i, :n] = 1
        else:
            mask[i, T - n:] = 1
    for mode in ["first", "last", "mean"]:
        enc.pooling = mode
        got = enc.pool(hidden, mask)
        for i, n in enumerate(lengths):
            rows = [t for t in range(T) if mask[i, t] == 1]
            want = {"first": hidden[i, 0], "last": hidden[i, rows[-1]],
                    "mean": sum(hidden[i, t] for t in rows) / n}[mode]
            torch.testing.assert_close(got[i], want)
    enc.pooling = "first"


def test_pooling_defaults_and_validation(tiny):
    assert {f: tiny[f].pooling for f in SEED_FAMILIES} == POOLING
    assert POOLING["XLNET"] == "last" and set(POOLING.values()) == {"first", "last"}
    # beyond the seed table the rule reads the tokenizer: a special token first -> "first"
    assert {f: tiny[f].pooling for f in FAMILIES if f not in POOLING} == dict.fromkeys(
        ["ELECTRA", "XLM-ROBERTA", "DEBERTA-V2", "MPNET"], "first")
    with pytest.raises(ValueError, match="pooling"):
        Encoder(tiny["BERT"].model, tiny["BERT"].tokenizer, "x", "BERT", pooling="max")


# ------------------------------------------------------------------------ save / rebuild
@pytest.mark.parametrize("family", FAMILIES)
def test_save_config_from_config_dir_round_trip(tiny, family, tmp_path):
    enc = tiny[family]
    enc.save_config(tmp_path)
    assert (tmp_path / "config.json").is_file()
    assert not list(tmp_path.glob("*.safetensors")) and not list(tmp_path.glob("*.bin"))
    save_file(enc.state_dict(), tmp_path / "model.safetensors")  # what a checkpoint does
    meta = enc.config_dict()
    assert meta == {"name": f"tiny-{family.lower()}", "family": family, "pooling": POOLING.get(family, "first"),
                    "segments": family in SEGMENTS,
                    # the tanh pooler is left out wherever the model class allows it
                    "model_kwargs": {"add_pooling_layer": False} if family in
                    {"BERT", "ROBERTA", "ALBERT", "XLM-ROBERTA", "MPNET"} else {}}
    rebuilt = Encoder.from_config_dir(tmp_path, **meta)
    assert not hasattr(rebuilt.model, "pooler") or rebuilt.model.pooler is None
    assert rebuilt.config_dict() == meta and rebuilt.num_parameters() == enc.num_parameters()
    rebuilt.load_state_dict(load_file(tmp_path / "model.safetensors"), strict=True)
    rebuilt.eval()
    pair = rebuilt.tokenize(["the film was a delight"], text_pair=["a dull story"])
    assert pair["input_ids"] == enc.tokenize(["the film was a delight"],
                                              text_pair=["a dull story"])["input_ids"]
    words = enc.tokenize(WORDS, is_split_into_words=True)
    words2 = rebuilt.tokenize(WORDS, is_split_into_words=True)
    assert words["input_ids"] == words2["input_ids"]
    assert [words.word_ids(i) for i in range(3)] == [words2.word_ids(i) for i in range(3)]
    assert rebuilt.tokenizer.padding_side == enc.tokenizer.padding_side
    h1, p1 = run(enc, batch_of(enc, words))
    h2, p2 = run(rebuilt, batch_of(rebuilt, words2))
    torch.testing.assert_close(h1, h2, rtol=0, atol=0)
    torch.testing.assert_close(p1, p2, rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_pretrained_writes_a_directory_transformers_and_load_encoder_open(tiny, family, tmp_path):
    enc = tiny[family]
    enc.save_pretrained(tmp_path)  # like transformers' method of the same name: weights included
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    ids = torch.tensor([enc.tokenize(["the film was a delight"])["input_ids"][0]])
    mask = torch.ones_like(ids)
    want = enc.model(input_ids=ids, attention_mask=mask).last_hidden_state
    hf = AutoModel.from_pretrained(tmp_path, local_files_only=True).eval()
    assert torch.allclose(hf(input_ids=ids, attention_mask=mask).last_hidden_state, want, atol=1e-6)
    ours = load_encoder(str(tmp_path))
    assert ours.family == family
    assert torch.allclose(ours.model(input_ids=ids, attention_mask=mask).last_hidden_state, want, atol=1e-6)
    assert ours.tokenizer("the film was a delight")["input_ids"] == enc.tokenizer("the film was a delight")["input_ids"]


# ------------------------------------------------------------------ minilm (real weights)
def test_minilm_matches_transformers_reference(minilm):
    path = Path(next(i.location for i in list_encoders() if i.name == "minilm"))
    ref_model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    ref_tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    texts = ["A man is playing a guitar.", "Book a flight from Boston to Denver tomorrow."]
    ref_batch = ref_tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = ref_model(**ref_batch).last_hidden_state  # (B, T, 384)
    batch = batch_of(minilm, minilm.tokenize(texts))
    assert torch.equal(batch["input_ids"], ref_batch["input_ids"])
    hidden, pooled = run(minilm, batch)
    assert minilm.family == "BERT" and minilm.hidden_size == 384 and minilm.pooling == "first"
    torch.testing.assert_close(hidden, want, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(pooled, want[:, 0], atol=1e-5, rtol=1e-4)
    assert 22_000_000 < minilm.num_parameters() < 23_000_000


def test_minilm_mean_embeddings_are_semantic(minilm):
    """Real weights: a paraphrase is closer than an unrelated sentence (random init fails)."""
    enc = load_encoder("minilm", pooling="mean")
    texts = ["A man is playing a guitar.", "Someone plays the guitar.",
             "Stock markets fell sharply on Friday."]
    _, pooled = run(enc, batch_of(enc, enc.tokenize(texts)))
    sim = torch.nn.functional.cosine_similarity(pooled[0:1], pooled[1:])
    assert sim[0] > 0.6 and sim[0] > sim[1] + 0.3


def test_load_encoder_keeps_safetensors_weights_bit_identical(minilm):
    path = Path(next(i.location for i in list_encoders() if i.name == "minilm"))
    params = minilm.model.state_dict()
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        assert set(params) <= set(f.keys())
        for key, value in params.items():
            assert torch.equal(value, f.get_tensor(key)), key


# ------------------------------------------------------------------ registry / availability
def test_list_encoders_covers_registry(empty_hf_home):
    infos = list_encoders()
    assert [i.name for i in infos] == [DEFAULT_ENCODER] + SEED_NAMES
    assert [n for names in ENCODER_TABLE.values() for n in names] == SEED_NAMES
    by_name = {i.name: i for i in infos}
    assert by_name["minilm"].available and by_name["minilm"].family == "BERT"
    assert (Path(by_name["minilm"].location) / "model.safetensors").is_file()
    assert not any(i.available for i in infos[1:])
    defaults = [i.name for i in infos if i.is_family_default]
    assert defaults == ["distilbert-base-uncased", "bert-base-uncased", "roberta-base",
                        "albert-base-v1", "xlnet-base-cased"]
    assert by_name["xlnet-large-cased"].pooling == "last"


def test_missing_registry_encoder_raises_with_instructions(empty_hf_home):
    with pytest.raises(EncoderNotAvailable) as err:
        load_encoder("bert-large-cased")
    msg = str(err.value)
    for needle in ["bert-large-cased", "HF_HOME", "hf download", "load_encoder(", "minilm"]:
        assert needle in msg


def test_unknown_name_or_bogus_path_lists_known_encoders(tmp_path):
    for bogus in ["bert-huge-uncased", str(tmp_path / "no" / "such" / "dir")]:
        with pytest.raises(EncoderNotAvailable, match="Known encoders: minilm, distilbert"):
            load_encoder(bogus)


@pytest.mark.parametrize("repo_id", ["bert-base-uncased", "google-bert/bert-base-uncased"])
def test_registry_name_loads_from_hf_cache(tiny, empty_hf_home, repo_id):
    source = tiny["BERT"]
    snapshot = empty_hf_home.add(repo_id, source)
    info = next(i for i in list_encoders() if i.name == "bert-base-uncased")
    assert info.available and Path(info.location) == snapshot
    loaded = load_encoder("bert-base-uncased")
    assert loaded.family == "BERT" and loaded.name == "bert-base-uncased"
    for key, value in source.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_local_directory_loads_and_incomplete_weights_are_refused(tiny, tmp_path):
    source = tiny["ROBERTA"]
    source.model.save_pretrained(tmp_path / "ok")
    source.tokenizer.save_pretrained(tmp_path / "ok")
    loaded = load_encoder(str(tmp_path / "ok"), pooling="mean")
    assert (loaded.family, loaded.pooling) == ("ROBERTA", "mean")
    assert loaded.tokenize([["Play", "jazz"]], is_split_into_words=True).tokens(0)[1] == "ĠPlay"
    # config without weights, and weights with a tensor missing: never a silent random init
    source.model.config.save_pretrained(tmp_path / "no_weights")
    with pytest.raises(EncoderNotAvailable, match="no_weights"):
        load_encoder(str(tmp_path / "no_weights"))
    partial = tmp_path / "partial"
    source.model.save_pretrained(partial)
    source.tokenizer.save_pretrained(partial)
    tensors = load_file(partial / "model.safetensors")
    dropped = next(k for k in tensors if "layer.1" in k)
    del tensors[dropped]
    save_file(tensors, partial / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(EncoderNotAvailable, match="random init"):
        load_encoder(str(partial))
