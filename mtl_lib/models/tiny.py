"""Tiny, randomly initialised encoders of every family, for tests and the fast notebook mode.

A tiny encoder has the family's real architecture (2 layers, hidden 32 by default) and the
family's real kind of tokenizer (WordPiece, byte-level BPE or SentencePiece-style Unigram),
trained in seconds with the ``tokenizers`` library. It learns nothing useful: it exists so that
every code path runs in a fraction of a second.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import torch
import transformers
from tokenizers import pre_tokenizers, trainers
from transformers import AutoModel

from .architectures import accepts_pooler_flag
from .encoders import Encoder

__all__ = ["TINY_FAMILIES", "tiny_encoder"]

_CORPUS = [  # a few sentences in the style of the bundled tasks (intents, NER, reviews, pairs)
    "Book a flight from Boston to Denver tomorrow morning.", "Wake me up at 7:30 AM on Monday.",
    "Play the latest album by Miles Davis on Spotify.", "Add this song to my jazz playlist.",
    "What is the weather like in Paris this weekend?", "Rate this novel four out of six stars.",
    "Find me a table for two at an Italian restaurant.", "Show the movie schedule nearby.",
    "EU rejects German call to boycott British lamb.", "Turn off the lights, please.",
    "Peter Blackburn reported from Brussels on Thursday.", "The cat sat on the windowsill.",
    "The European Commission said it disagreed with the advice of the committee.",
    "Apple shares rose 3.5 percent after the earnings report of $1.2 billion.",
    "The film was a delight from start to finish.", "A dull, lifeless and painfully slow story.",
    "I loved the acting but the plot made no sense.", "A man is playing a guitar on stage.",
    'Referring to him as only "the witness", Amrozi accused his brother of lying.',
    "They had published an advertisement on the Internet on June 10.",
    "How do I learn Python programming quickly?", "Is this question a duplicate of another?",
    "Schedule a meeting with Dr. Smith next Tuesday at 3 pm.", "Two dogs run through snow.",
    "The quick brown fox jumps over the lazy dog.", "Stock markets in Tokyo closed lower.",
]


_TOKENIZER_CLASSES = {  # family -> its transformers tokenizer class (which fixes the kind)
    "DISTILBERT": transformers.DistilBertTokenizer, "BERT": transformers.BertTokenizer,
    "ROBERTA": transformers.RobertaTokenizer, "ALBERT": transformers.AlbertTokenizer,
    "XLNET": transformers.XLNetTokenizer, "ELECTRA": transformers.ElectraTokenizer,
    "XLM-ROBERTA": transformers.XLMRobertaTokenizer, "DEBERTA-V2": transformers.DebertaV2Tokenizer,
    "MPNET": transformers.MPNetTokenizer,
}


#: The families :func:`tiny_encoder` builds.
TINY_FAMILIES = list(_TOKENIZER_CLASSES)


def _sorted_unigram(vocab: list, n_special: int) -> list[tuple[str, float]]:
    """Unigram pieces in a run-independent order.

    The trainer appends characters kept only for coverage with scores 1e-4 apart in hash-set
    order; within each run of scores closer than 2e-4 we sort pieces alphabetically.
    """
    out, group = [tuple(v) for v in vocab[:n_special]], []

    def flush():
        pieces, scores = sorted(p for p, _ in group), sorted((s for _, s in group), reverse=True)
        out.extend(zip(pieces, scores, strict=True))
        group.clear()

    for piece, score in sorted(vocab[n_special:], key=lambda v: -v[1]):
        if group and group[-1][1] - score > 2e-4:
            flush()
        group.append((piece, score))
    flush()
    return out


def _train_tokenizer(family: str, corpus: list[str], vocab_size: int):
    """Train the family's kind of tokenizer on ``corpus`` and wrap it in the family's class.

    The class supplies the normaliser, pre-tokenizer, special tokens and pair template, and
    its (empty) model says the kind: WordPiece, byte-level BPE or Unigram. We train only the
    vocabulary, then rebuild the class from it. Deterministic across runs.
    """
    tok_class = _TOKENIZER_CLASSES[family]
    base = tok_class(add_prefix_space=True) if family == "ROBERTA" else tok_class()
    specials = sorted(base.get_vocab(), key=base.get_vocab().get)  # keep the class's order
    backend = base.backend_tokenizer
    kind = type(backend.model).__name__
    if kind == "WordPiece":
        # WordPiece numbers "##x" pieces in hash-map order, and that order breaks ties
        # between equally frequent merges; registering them up front makes runs repeatable.
        chars = sorted({c for text in corpus for c in backend.normalizer.normalize_str(text)
                        if not c.isspace()})
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=specials + [f"##{c}" for c in chars],
            show_progress=False)
    elif kind == "BPE":  # byte-level BPE: all 256 bytes are in the vocabulary, no <unk>
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
    else:  # Unigram over Metaspace ("▁word") pieces, SentencePiece-style
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials,
                                          unk_token=base.unk_token, show_progress=False)
    backend.train_from_iterator(corpus, trainer)
    model = json.loads(backend.to_str())["model"]
    if kind == "BPE":
        return tok_class(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]],
                         add_prefix_space=True)
    if kind == "Unigram":
        vocab = _sorted_unigram(model["vocab"], len(specials))
        if family == "DEBERTA-V2":  # it takes the position of its unknown token as an argument
            return tok_class(vocab=vocab, unk_id=specials.index(base.unk_token))
        return tok_class(vocab=vocab)
    return tok_class(vocab=model["vocab"])


def _tiny_config(family: str, tok, hidden_size: int, num_layers: int, num_heads: int):
    """A small config of the family's architecture; FFN width 4 * hidden as in BERT."""
    h, ffn = hidden_size, 4 * hidden_size
    common = {"vocab_size": len(tok), "pad_token_id": tok.pad_token_id}
    if family == "DISTILBERT":
        return transformers.DistilBertConfig(dim=h, n_layers=num_layers, n_heads=num_heads,
                                             hidden_dim=ffn, **common)
    if family == "XLNET":
        return transformers.XLNetConfig(d_model=h, n_layer=num_layers, n_head=num_heads,
                                        d_inner=ffn, **common)
    sizes = {"hidden_size": h, "num_hidden_layers": num_layers, "num_attention_heads": num_heads,
             "intermediate_size": ffn, **common}
    if family == "BERT":
        return transformers.BertConfig(**sizes)
    if family in {"ALBERT", "ELECTRA"}:  # both factor the embedding size out of the hidden size
        config_class = transformers.AlbertConfig if family == "ALBERT" else transformers.ElectraConfig
        return config_class(embedding_size=h, **sizes)
    if family == "DEBERTA-V2":  # as DeBERTa-v3: relative attention only, no segment embeddings
        return transformers.DebertaV2Config(
            relative_attention=True, position_buckets=32, pos_att_type=["p2c", "c2p"],
            position_biased_input=False, norm_rel_ebd="layer_norm", share_att_key=True,
            max_relative_positions=-1, type_vocab_size=0, **sizes)
    # RoBERTa, XLM-R and MPNet number positions from pad_token_id + 1: 512 + 2 position rows.
    if family == "MPNET":
        return transformers.MPNetConfig(max_position_embeddings=514, **sizes)
    config_class = transformers.RobertaConfig if family == "ROBERTA" else transformers.XLMRobertaConfig
    return config_class(max_position_embeddings=514, type_vocab_size=1, bos_token_id=tok.cls_token_id,
                        eos_token_id=tok.sep_token_id, **sizes)


def tiny_encoder(family: str, texts: Iterable[str] | None = None, hidden_size: int = 32,
                 num_layers: int = 2, num_heads: int = 2, vocab_size: int = 1000,
                 seed: int = 0) -> Encoder:
    """A small randomly initialised encoder of ``family``'s architecture, for tests.

    ``family`` is one of :data:`TINY_FAMILIES`: the seed's five (BERT, DISTILBERT, ROBERTA,
    ALBERT, XLNET) and ELECTRA, XLM-ROBERTA, DEBERTA-V2 (as DeBERTa-v3) and MPNET; any case.
    The tokenizer is the family's own transformers class (WordPiece for BERT, DistilBERT,
    ELECTRA and MPNet; byte-level BPE for RoBERTa; SentencePiece-style Unigram for ALBERT,
    XLNet, XLM-R and DeBERTa-v2), trained in-process with ``tokenizers`` on a built-in corpus
    plus ``texts``; ``vocab_size`` is an upper bound (a small corpus yields fewer tokens).
    Same arguments, same encoder.
    """
    family = family.upper()
    if family not in _TOKENIZER_CLASSES:
        raise ValueError(f"family must be one of {TINY_FAMILIES}, got {family!r}")
    tokenizer = _train_tokenizer(family, _CORPUS + list(texts or []), vocab_size)
    config = _tiny_config(family, tokenizer, hidden_size, num_layers, num_heads)
    kwargs = {"add_pooling_layer": False} if accepts_pooler_flag(config) else {}
    with torch.random.fork_rng():  # seed the init without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = AutoModel.from_config(config, dtype=torch.float32, **kwargs)
    return Encoder(model, tokenizer, f"tiny-{family.lower()}").eval()
