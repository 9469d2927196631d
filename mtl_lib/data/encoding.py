"""Turning words or text into model features, and word labels into token labels.

Word-level tags (NER, slots) are aligned to sub-tokens with the fast tokenizer's
``word_ids()``: the first sub-token of each word carries the word's label; continuation
sub-tokens and special tokens get ``-100``, which every loss ignores.

Truncation: sequences longer than ``max_length`` tokens are cut. The words that were cut
off simply have no token, so they get no label: they are neither trained on nor scored
at the token level (a word cut in the middle keeps its label on its first piece).
Raise ``max_length`` when that matters: with the default MiniLM tokenizer every SNIPS
utterance fits in 128 tokens, but 1 CoNLL-2003 train and 3 dev sentences do not
(longest: 164 and 146 tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["IGNORE_INDEX", "encode_example", "encode_records", "align_word_labels"]

#: Label value ignored by the losses (PyTorch's cross-entropy default ``ignore_index``).
IGNORE_INDEX = -100


def encode_example(
    tokenizer,
    words_or_text: str | Sequence[str],
    text_pair: str | Sequence[str] | None = None,
    is_split_into_words: bool | None = None,
    max_length: int = 128,
) -> dict:
    """Tokenize one example (no padding; that is the :class:`Collator`'s job).

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerFast
        Must be a fast tokenizer, since ``word_ids()`` is needed for tag alignment.
    words_or_text : str or list of str
        Raw text, or a list of words (e.g. the ``"words"`` of :func:`read_jointbert`).
    text_pair : str or list of str, optional
        Second sentence for pair classification (MRPC).
    is_split_into_words : bool, optional
        Default: True when ``words_or_text`` is a list or tuple.
    max_length : int
        Truncate to this many tokens, special tokens included (pairs: longest first).

    Returns
    -------
    dict
        ``input_ids`` (T,), ``attention_mask`` (T,), ``token_type_ids`` (T,) if the tokenizer
        makes them, and ``word_ids`` (T,): the word index of each token, None for special
        tokens. All plain Python lists.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("encode_example needs a fast tokenizer (word_ids() is required to "
                        "align word labels); load it with AutoTokenizer(..., use_fast=True)")
    if is_split_into_words is None:
        is_split_into_words = isinstance(words_or_text, (list, tuple))
    if is_split_into_words:
        words_or_text = list(words_or_text)
        if text_pair is not None:
            text_pair = list(text_pair)
    enc = tokenizer(words_or_text, text_pair, is_split_into_words=is_split_into_words,
                    truncation=True, max_length=max_length)
    features = {"input_ids": list(enc["input_ids"]),
                "attention_mask": list(enc["attention_mask"])}
    if "token_type_ids" in enc:
        features["token_type_ids"] = list(enc["token_type_ids"])
    features["word_ids"] = enc.word_ids()
    return features


def encode_records(records: Sequence[dict], tokenizer, max_length: int = 128) -> list[dict]:
    """Tokenize read records (pre-split ``words``, optional ``words_b``) in one batch call.

    Returns
    -------
    list of dict
        One feature per record, as :func:`encode_example`, plus ``n_words`` (of the first
        sentence), ``truncated`` (was anything cut at ``max_length``) and ``labels: {}`` for
        the task types to fill. For a pair, ``word_ids`` keeps only the first sentence's words
        (the second sentence's tokens map to None): word labels belong to the first.
    """
    if not records:
        return []
    words = [r["words"] for r in records]
    pairs = [r.get("words_b") for r in records]
    kw = dict(is_split_into_words=True, truncation=True, max_length=max_length)
    if any(p is not None for p in pairs):
        enc = tokenizer(words, [p or [] for p in pairs], **kw)
    else:
        enc = tokenizer(words, **kw)
    features = []
    for i in range(len(records)):
        f = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        word_ids = enc.word_ids(i)
        sequence = _sequence_ids(enc, i, len(word_ids))
        f["word_ids"] = [w if s in (0, None) else None for w, s in zip(word_ids, sequence)]
        f["n_words"] = len(words[i])
        # the fast tokenizer keeps what it cut off, also inside one long word
        f["truncated"] = bool(enc.encodings[i].overflowing) if enc.encodings is not None else False
        f["labels"] = {}
        features.append(f)
    return features


def _sequence_ids(enc, i: int, n: int) -> list[int | None]:
    try:
        return enc.sequence_ids(i)
    except (ValueError, AttributeError):  # slow tokenizers have no sequence_ids
        return [0] * n


def align_word_labels(word_ids: Sequence[int | None], word_label_ids: Sequence[int]) -> list[int]:
    """Spread word labels over sub-tokens: first sub-token gets the label, others ``-100``.

    Parameters
    ----------
    word_ids : list of int or None, shape (T,)
        From :func:`encode_example` (``None`` = special token).
    word_label_ids : list of int, shape (n_words,)
        One label id per word. Words cut off by truncation have no token and are dropped.

    Returns
    -------
    list of int, shape (T,)

    Examples
    --------
    >>> align_word_labels([None, 0, 1, 1, 2, None], [5, 6, 7])
    [-100, 5, 6, -100, 7, -100]
    """
    labels, previous = [], None
    for word in word_ids:
        if word is None or word == previous:
            labels.append(IGNORE_INDEX)
        elif not 0 <= word < len(word_label_ids):
            raise ValueError(f"word_ids refers to word {word} but only {len(word_label_ids)} "
                             "word labels were given")
        else:
            labels.append(int(word_label_ids[word]))
        previous = word
    return labels
