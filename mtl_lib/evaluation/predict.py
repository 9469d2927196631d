"""Inference: ``Predictor.from_checkpoint(dir).predict(texts)``.

One encoder pass per batch of texts feeds every single-sentence task's head; sentence-pair
tasks run only on texts given a second sentence (``text_pairs``): their input is different,
so they need their own pass. Each word's tag is read at its first sub-token, exactly as in
training. Taught in ``notebooks/08_save_load_predict.ipynb``.

**Words.** Raw text is split into words by one rule, the same for every encoder (so that a
checkpoint's answers do not depend on its tokenizer's pre-tokenizer), close to how the
training sets were tokenised (CoNLL, SNIPS):

- whitespace and control characters separate words;
- a punctuation character is a word of its own — Unicode category P*, plus the ASCII symbols
  ``$ + < = > ^ ` | ~`` as in BERT's basic tokenizer: ``"Lima."`` gives ``Lima``, ``.``;
- except between two letters or digits, where it stays inside the word: ``don't``, ``3.5``,
  ``7:30``, ``e-mail``.

Every word keeps its character offsets into the original text (Python string indices), and
tagging spans carry them as ``start_char`` / ``end_char``.
"""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from ..data.batching import Collator
from ..data.encoding import encode_records
from ..models.devices import resolve_device
from ..models.multitask import MultiTaskModel

__all__ = ["Predictor", "split_words"]

_ASCII_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _is_punct(c: str) -> bool:
    return c in _ASCII_PUNCT or unicodedata.category(c).startswith("P")


def _is_word_char(c: str) -> bool:
    return unicodedata.category(c)[0] in "LNM"  # letters, digits, combining marks


def split_words(text: str, index: int = 0) -> list[tuple[str, int, int]]:
    """The words of ``text`` by the module's rule, as ``(word, start_char, end_char)``.

    Examples
    --------
    >>> [w for w, _, _ in split_words("Fly to Lima. Don't stop at 7:30!")]
    ['Fly', 'to', 'Lima', '.', "Don't", 'stop', 'at', '7:30', '!']
    >>> split_words("Lima.")
    [('Lima', 0, 4), ('.', 4, 5)]
    """
    if not isinstance(text, str):
        raise TypeError(f"text {index} is a {type(text).__name__}; expected a str to predict on")
    try:
        text.encode("utf-8")  # the tokenizer needs valid UTF-8; say so rather than crash inside it
    except UnicodeEncodeError as err:
        raise ValueError(f"text {index} is not valid Unicode: lone surrogate {text[err.start]!r} at "
                         f"position {err.start}") from None
    words: list[tuple[str, int, int]] = []
    start = None
    for i, c in enumerate(text):
        if c.isspace() or unicodedata.category(c) == "Cc":
            boundary, alone = True, False
        elif _is_punct(c):
            inner = 0 < i < len(text) - 1 and _is_word_char(text[i - 1]) and _is_word_char(text[i + 1])
            boundary, alone = not inner, not inner
        else:
            boundary, alone = False, False
        if boundary and start is not None:
            words.append((text[start:i], start, i))
            start = None
        if alone:
            words.append((c, i, i + 1))
        elif not boundary and start is None:
            start = i
    if start is not None:
        words.append((text[start:], start, len(text)))
    return words


class Predictor:
    """Run a trained ``MultiTaskModel`` on raw text.

    Parameters
    ----------
    model : MultiTaskModel
    max_length : int, optional
        Longer inputs are truncated (with a warning); words past the cut get tag ``"O"``.
        Default: the ``max_length`` the model was trained with (128 if unknown).
    batch_size : int
    device : str or torch.device, optional
        Where to run: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda:1"``, ...; the
        model is moved there. Default: wherever the model is.
    """

    def __init__(self, model, max_length: int | None = None, batch_size: int = 32,
                 device: str | torch.device | None = None) -> None:
        if device is not None:
            model = model.to(resolve_device(device))
        self.model = model.eval()
        trained = getattr(model, "training_config", {}) or {}
        self.max_length = max_length or int(trained.get("max_length") or 128)
        self.batch_size = batch_size
        self._collate = Collator.for_tokenizer(model.encoder.tokenizer)
        self.encoder_calls = 0  # counted so tests can check one pass serves all heads

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> Predictor:
        """Load a checkpoint directory (or a run directory's ``best``/``last``)."""
        return cls(MultiTaskModel.from_pretrained(path), **kwargs)

    @property
    def tasks(self) -> dict:
        return self.model.tasks

    @torch.no_grad()
    def predict(self, texts: str | list[str], text_pairs: str | list[str | None] | None = None
                ) -> dict | list[dict]:
        """Predict every task for each text.

        Parameters
        ----------
        texts : str or list of str
        text_pairs : str or list of (str or None), optional
            The second sentence of each text, for sentence-pair tasks; None for a text that
            has none (its pair tasks are left out).

        Returns
        -------
        list of dict (a dict for a single str)
            One dict per text: ``{"text": str, "words": [...], task: result}``, each result as
            the task's type presents it: a class ``{"label", "score", "scores": {label: p}}``,
            tags ``{"tags": [one per word], "spans": [{type, start, end, start_char, end_char,
            text}]}`` (``start``/``end`` count words, ``*_char`` index the text), labels
            ``{"labels": [...], "scores": {label: p}}``, a leaf ``{"label", "path", ...}``.

        Raises
        ------
        ValueError
            A text for which no task can run (every task reads pairs and it has no second
            sentence), or a task whose scores are not finite (a broken model).
        """
        single = isinstance(texts, str)
        if not single and (isinstance(texts, (bytes, bytearray, Mapping)) or not isinstance(texts, Iterable)):
            raise TypeError(f"predict expects a str or a list of str, got {type(texts).__name__}")
        texts = [texts] if single else list(texts)
        if isinstance(text_pairs, str):
            text_pairs = [text_pairs]
        if text_pairs is not None and len(text_pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text_pairs")
        types = self.model.types
        pair_tasks = [n for n, tt in types.items() if tt.reads_pairs]
        other = [n for n in types if n not in pair_tasks]
        pairs = list(text_pairs) if text_pairs is not None else [None] * len(texts)
        if not other and pair_tasks and (missing := [i for i, p in enumerate(pairs) if p is None]):
            raise ValueError(f"text {missing[0]} has no second sentence, and every task of this model "
                             f"({', '.join(pair_tasks)}) reads sentence pairs: pass text_pairs")
        split = [split_words(t, i) for i, t in enumerate(texts)]
        results = [{"text": t, "words": [w for w, _, _ in ws]} for t, ws in zip(texts, split)]
        offsets = [[(a, b) for _, a, b in ws] for ws in split]
        if other:
            self._run(results, offsets, None, other)
        with_pair = [i for i, p in enumerate(pairs) if p is not None]
        if pair_tasks and with_pair:
            second = [[w for w, _, _ in split_words(pairs[i], i)] for i in with_pair]
            self._run([results[i] for i in with_pair], [offsets[i] for i in with_pair], second, pair_tasks,
                      with_pair)
        return results[0] if single else results

    @torch.no_grad()
    def logits(self, texts: list[str], text_pairs: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Raw scores of every sentence-level task, ``{task: (N, C)}`` (before softmax/sigmoid)."""
        types = self.model.types
        tasks = [n for n, tt in types.items()
                 if tt.label_kind != "token" and tt.reads_pairs == (text_pairs is not None)]
        words = [[w for w, _, _ in split_words(t, i)] for i, t in enumerate(texts)]
        pairs = [[w for w, _, _ in split_words(p, i)] for i, p in enumerate(text_pairs)] \
            if text_pairs is not None else None
        out: dict[str, list[torch.Tensor]] = {n: [] for n in tasks}
        for _, _, logits in self._batches(words, pairs, tasks):
            for n in tasks:
                out[n].append(logits[n])
        return {n: torch.cat(v) if v else torch.empty(0, types[n].spec.num_labels) for n, v in out.items()}

    def _batches(self, words: list[list[str]], pairs: list[list[str]] | None, tasks: list[str]):
        """Yield ``(start, features, {task: logits on the CPU})`` per batch of texts."""
        tok, device = self.model.encoder.tokenizer, next(self.model.parameters()).device
        for start in range(0, len(words), self.batch_size):
            records = [{"words": w} | ({"words_b": pairs[start + i]} if pairs else {})
                       for i, w in enumerate(words[start:start + self.batch_size])]
            feats = encode_records(records, tok, self.max_length)
            batch = self._collate(feats)
            tt_ids = batch.get("token_type_ids")
            logits = self.model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                tt_ids.to(device) if tt_ids is not None else None, tasks=tasks)
            self.encoder_calls += 1
            yield start, feats, {n: v.float().cpu() for n, v in logits.items()}

    def _run(self, results: list[dict], offsets: list[list[tuple[int, int]]],
             pairs: list[list[str]] | None, tasks: list[str], ids: list[int] | None = None) -> None:
        """Fill ``results`` (texts number ``ids``, default 0..n-1) with the answers of ``tasks``."""
        ids = ids or list(range(len(results)))
        for start, feats, logits in self._batches([r["words"] for r in results], pairs, tasks):
            width = max(len(f["input_ids"]) for f in feats)
            for i, f in enumerate(feats):
                res, index = results[start + i], ids[start + i]
                f["text"], f["char_offsets"] = res["text"], offsets[start + i]  # for spans
                if f["truncated"]:
                    warnings.warn(f"text {index} was truncated to {self.max_length} tokens; "
                                  "words past the cut are tagged 'O'", stacklevel=3)
                for name in tasks:
                    tt, lg = self.model.types[name], logits[name][i]  # (T, C) or (C,)
                    if not torch.isfinite(lg).all():
                        raise ValueError(f"task {name!r} gave non-finite scores (NaN or inf) for text "
                                         f"{index}: the model's weights are broken")
                    own = lg[self._collate.positions(len(f["input_ids"]), width)] \
                        if tt.label_kind == "token" else lg
                    res[name] = tt.present(own, f, res["words"])
