"""What differs between encoder architectures, read from the model's config and its tokenizer.

mtl_lib does not keep a list of supported families: any Hugging Face ``AutoModel`` with a fast
tokenizer is an encoder. The few things that do differ are decided here, each by one rule:

========================  ===================================================================
family                    ``config.model_type`` upper-cased (``BERT``, ``XLM-ROBERTA``, ...)
default pooling           ``last`` for XLNet (its ``<cls>`` token closes the sequence);
                          ``first`` when the tokenizer puts a special token first (``[CLS]``,
                          ``<s>``); ``mean`` when it puts none there (no summary token)
segment ids               used when ``config.type_vocab_size > 1`` (BERT, ALBERT, ELECTRA),
                          and by XLNet, whose segments are relative (no embedding table);
                          never sent to a model with one row or none (RoBERTa, XLM-R, DeBERTa-v3)
tanh pooler               left out (``add_pooling_layer=False``) wherever the model class
                          allows it: our pooling replaces it, so no weight starts random
padding side              the tokenizer's own (XLNet's tokenizer pads on the left)
words -> tokens           byte-level BPE (RoBERTa, GPT-2 style) gets ``add_prefix_space=True``,
                          so a pre-split word is tokenised as it is inside a sentence
========================  ===================================================================

A tokenizer that cannot serve word-level tasks is refused here too: a slow (Python) tokenizer
has no ``word_ids()``, and a directory without tokenizer files yields a "tokenizer" of a handful
of special tokens that reads every word as ``[UNK]``.
"""

from __future__ import annotations

import inspect
import json
import tempfile
from typing import Any

from transformers import AutoTokenizer
from transformers.models.auto.modeling_auto import MODEL_MAPPING

__all__ = ["TOKENIZER_FILES", "accepts_pooler_flag", "default_pooling", "family_of",
           "needs_prefix_space", "tokenizer_problem", "uses_segments", "word_ready_tokenizer"]

LAST_TOKEN_POOLING = {"xlnet"}  # model types whose summary token is the last one
RELATIVE_SEGMENTS = {"xlnet"}  # model types that read segment ids without an embedding table
#: Files one of which a directory must hold for its tokenizer (``save_pretrained`` writes the first).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "spm.model", "tokenizer.model")
MIN_VOCAB = 30  # fewer entries than this is the placeholder transformers builds from no files
PROBE = "The quick brown fox jumps over the lazy dog 0123456789"


def family_of(config) -> str:
    """The family name of a transformers config: its ``model_type``, upper-cased."""
    return str(config.model_type).upper()


def uses_segments(config) -> bool:
    """Whether the model reads segment (token type) ids; see the module table."""
    rows = getattr(config, "type_vocab_size", None) or 0
    return rows > 1 or config.model_type in RELATIVE_SEGMENTS


def default_pooling(config, tokenizer) -> str:
    """``"first"``, ``"last"`` or ``"mean"`` for this architecture; see the module table."""
    if config.model_type in LAST_TOKEN_POOLING:
        return "last"
    ids = tokenizer("a")["input_ids"]
    return "first" if ids and ids[0] in set(tokenizer.all_special_ids) else "mean"


def accepts_pooler_flag(config) -> bool:
    """Whether ``AutoModel`` of this config takes ``add_pooling_layer`` (BERT, RoBERTa, MPNet...)."""
    try:
        model_class = MODEL_MAPPING[type(config)]
    except KeyError:  # not an AutoModel architecture: AutoModel itself will say so
        return False
    return "add_pooling_layer" in inspect.signature(model_class.__init__).parameters


def _byte_level_without_prefix(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("type") == "ByteLevel" and node.get("add_prefix_space") is False:
            return True
        return any(_byte_level_without_prefix(v) for v in node.values())
    if isinstance(node, list):
        return any(_byte_level_without_prefix(v) for v in node)
    return False


def needs_prefix_space(tokenizer) -> bool:
    """A byte-level BPE pre-tokenizer without a prefix space: a pre-split word would be
    tokenised unlike the same word inside a sentence ("Play" -> "P", "lay" instead of "ĠPlay")."""
    if not getattr(tokenizer, "is_fast", False):
        return False
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    return _byte_level_without_prefix(state.get("pre_tokenizer"))


def word_ready_tokenizer(tokenizer):
    """``tokenizer``, or a copy with ``add_prefix_space=True`` when :func:`needs_prefix_space`."""
    if not needs_prefix_space(tokenizer):
        return tokenizer
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        copy = AutoTokenizer.from_pretrained(tmp, local_files_only=True, add_prefix_space=True)
    copy.padding_side = tokenizer.padding_side
    return copy


def tokenizer_problem(tokenizer) -> str | None:
    """Why ``tokenizer`` cannot serve mtl_lib's tasks, or None when it can."""
    if not getattr(tokenizer, "is_fast", False):
        return (f"{type(tokenizer).__name__} is not a fast tokenizer; word-level tasks need "
                "word_ids(), which only fast tokenizers (tokenizer.json) give")
    if len(tokenizer) < MIN_VOCAB:
        return f"its vocabulary has only {len(tokenizer)} tokens ({', '.join(tokenizer.get_vocab())})"
    tokens = tokenizer.tokenize(PROBE)
    if tokens and tokenizer.unk_token is not None and all(t == tokenizer.unk_token for t in tokens):
        return f"it reads every word of {PROBE!r} as {tokenizer.unk_token}"
    return None
