"""Inference: ``Predictor.from_checkpoint(dir).predict(texts)``.

One encoder pass per batch of texts feeds every single-sentence task's head; sentence-pair
tasks run only when ``text_pairs`` are given (their input is different, so they need their
own pass). Texts are split on whitespace into words, and each word's tag is read at its first
sub-token, exactly as in training. Taught in ``notebooks/08_save_load_predict.ipynb``.
"""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from .data import Collator
from .decoding import decode_tags
from .metrics import conll_chunks

__all__ = ["Predictor"]


def _words(text: str, index: int = 0) -> list[str]:
    """Whitespace words, with control characters (other than whitespace) removed."""
    if not isinstance(text, str):
        raise TypeError(f"text {index} is a {type(text).__name__}; expected a str to predict on")
    try:
        text.encode("utf-8")  # the tokenizer needs valid UTF-8; say so rather than crash inside it
    except UnicodeEncodeError as err:
        raise ValueError(f"text {index} is not valid Unicode: lone surrogate {text[err.start]!r} at "
                         f"position {err.start}") from None
    clean = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    return clean.split()


def _truncated(enc, i: int, n_words: int, max_length: int) -> bool:
    """Was example ``i`` cut at ``max_length``? The fast tokenizer keeps what it cut off (also
    inside one long word, which the word count alone would miss)."""
    if enc.encodings is not None:
        return bool(enc.encodings[i].overflowing)
    seen = {w for w in enc.word_ids(i) if w is not None}
    return len(seen) < n_words and len(enc["input_ids"][i]) >= max_length


def _spans(words: list[str], tags: list[str]) -> list[dict[str, Any]]:
    """Entity spans ``{type, start, end (exclusive), text}`` over word positions."""
    valid = [t if t == "O" or t[:2] in ("B-", "I-") else "O" for t in tags]
    return [{"type": ty, "start": s, "end": e + 1, "text": " ".join(words[s:e + 1])}
            for ty, s, e in conll_chunks(valid)]


class Predictor:
    """Run a trained ``MultiTaskModel`` on raw text.

    Parameters
    ----------
    model : MultiTaskModel
    max_length : int
        Longer inputs are truncated (with a warning); words past the cut get tag ``"O"``.
    batch_size : int
    """

    def __init__(self, model, max_length: int = 128, batch_size: int = 32) -> None:
        self.model = model.eval()
        self.max_length, self.batch_size = max_length, batch_size
        tok = model.encoder.tokenizer
        self._collate = Collator(pad_token_id=tok.pad_token_id or 0, padding_side=tok.padding_side)
        self.encoder_calls = 0  # counted so tests can check one pass serves all heads

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> Predictor:
        """Load a checkpoint directory (or a run directory's ``best``/``last``)."""
        from .checkpoint_io import load_model

        return cls(load_model(path), **kwargs)

    @property
    def tasks(self) -> dict:
        return self.model.tasks

    @torch.no_grad()
    def predict(self, texts: str | list[str], text_pairs: list[str] | None = None) -> list[dict]:
        """Predict every task for each text.

        Returns
        -------
        list of dict
            One dict per text: ``{"text": str, "words": [...], task: result}`` where a
            classification result is ``{"label", "score", "scores": {label: p}}``, a tagging
            result ``{"tags": [one per word], "spans": [{type, start, end, text}]}`` and a
            multilabel result ``{"labels": [...], "scores": {label: p}}``.
        """
        single = isinstance(texts, str)
        if not single and (isinstance(texts, (bytes, bytearray, Mapping)) or not isinstance(texts, Iterable)):
            raise TypeError(f"predict expects a str or a list of str, got {type(texts).__name__}")
        texts = [texts] if single else list(texts)
        if text_pairs is not None and len(text_pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text_pairs")
        pair_tasks = [n for n, t in self.tasks.items() if t.task_type == "pair_classification"]
        other = [n for n in self.tasks if n not in pair_tasks]
        results = [{"text": t, "words": _words(t, i)} for i, t in enumerate(texts)]
        if other:
            self._run(results, [r["words"] for r in results], None, other)
        if pair_tasks and text_pairs is not None:
            pairs = [_words(p, i) for i, p in enumerate(text_pairs)]
            self._run(results, [r["words"] for r in results], pairs, pair_tasks)
        return results[0] if single else results

    def _run(self, results: list[dict], words: list[list[str]], pairs, tasks: list[str]) -> None:
        tok = self.model.encoder.tokenizer
        for start in range(0, len(words), self.batch_size):
            chunk = words[start:start + self.batch_size]
            args = (chunk, pairs[start:start + self.batch_size]) if pairs else (chunk,)
            enc = tok(*args, is_split_into_words=True, truncation=True, max_length=self.max_length)
            feats = [{k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
                     | {"labels": {}} for i in range(len(chunk))]
            batch = self._collate(feats)
            device = next(self.model.parameters()).device
            tt = batch.get("token_type_ids")
            logits = self.model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                tt.to(device) if tt is not None else None, tasks=tasks)
            logits = {k: v.float().cpu() for k, v in logits.items()}
            self.encoder_calls += 1
            for i in range(len(chunk)):
                res, word_ids = results[start + i], enc.word_ids(i)
                if _truncated(enc, i, len(chunk[i]), self.max_length):
                    warnings.warn(f"text {start + i} was truncated to {self.max_length} tokens; "
                                  "words past the cut are tagged 'O'", stacklevel=3)
                offset = len(enc["input_ids"][i]) - len(word_ids)
                for name in tasks:
                    res[name] = self._decode(name, logits[name][i], word_ids, len(chunk[i]),
                                             chunk[i], batch["attention_mask"][i], offset)

    def _decode(self, name: str, logits: torch.Tensor, word_ids, n_words: int, words,
                mask: torch.Tensor, offset: int) -> dict[str, Any]:
        spec = self.tasks[name]
        labels = spec.labels
        if spec.task_type == "tagging":  # logits (T, C); left padding shifts real tokens right
            shift = int((mask == 0).sum()) if self.model.encoder.tokenizer.padding_side == "left" else 0
            first = {}
            for pos, w in enumerate(word_ids):
                if w is not None and w not in first:
                    first[w] = pos + shift
            seen = [w for w in range(n_words) if w in first]
            read = dict(zip(seen, decode_tags(logits[[first[w] for w in seen]], labels, spec.tag_decoding)))
            tags = [read.get(w, "O") for w in range(n_words)]
            return {"tags": tags, "spans": _spans(words, tags)}
        if spec.task_type == "multilabel":  # logits (C,)
            p = torch.sigmoid(logits.float())
            return {"labels": [labels[j] for j in range(len(labels)) if p[j] > 0.5],
                    "scores": {lab: float(p[j]) for j, lab in enumerate(labels)}}
        p = torch.softmax(logits.float(), -1)  # (C,)
        j = int(p.argmax())
        return {"label": labels[j], "score": float(p[j]),
                "scores": {lab: float(p[k]) for k, lab in enumerate(labels)}}
