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

import torch

from ..data.batching import Collator
from ..data.encoding import encode_records
from ..models.devices import resolve_device
from ..models.multitask import MultiTaskModel

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
    def predict(self, texts: str | list[str], text_pairs: list[str] | None = None) -> list[dict]:
        """Predict every task for each text.

        Returns
        -------
        list of dict
            One dict per text: ``{"text": str, "words": [...], task: result}``, each result as
            the task's type presents it: a class ``{"label", "score", "scores": {label: p}}``,
            tags ``{"tags": [one per word], "spans": [{type, start, end, text}]}``, labels
            ``{"labels": [...], "scores": {label: p}}``, a leaf ``{"label", "path", ...}``.
            Sentence-pair tasks run only when ``text_pairs`` are given.
        """
        single = isinstance(texts, str)
        if not single and (isinstance(texts, (bytes, bytearray, Mapping)) or not isinstance(texts, Iterable)):
            raise TypeError(f"predict expects a str or a list of str, got {type(texts).__name__}")
        texts = [texts] if single else list(texts)
        if text_pairs is not None and len(text_pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text_pairs")
        types = self.model.types
        pair_tasks = [n for n, tt in types.items() if tt.reads_pairs]
        other = [n for n in types if n not in pair_tasks]
        results = [{"text": t, "words": _words(t, i)} for i, t in enumerate(texts)]
        if other:
            self._run(results, None, other)
        if pair_tasks and text_pairs is not None:
            self._run(results, [_words(p, i) for i, p in enumerate(text_pairs)], pair_tasks)
        return results[0] if single else results

    @torch.no_grad()
    def logits(self, texts: list[str], text_pairs: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Raw scores of every sentence-level task, ``{task: (N, C)}`` (before softmax/sigmoid)."""
        types = self.model.types
        tasks = [n for n, tt in types.items()
                 if tt.label_kind != "token" and tt.reads_pairs == (text_pairs is not None)]
        words = [_words(t, i) for i, t in enumerate(texts)]
        pairs = [_words(p, i) for i, p in enumerate(text_pairs)] if text_pairs is not None else None
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

    def _run(self, results: list[dict], pairs: list[list[str]] | None, tasks: list[str]) -> None:
        for start, feats, logits in self._batches([r["words"] for r in results], pairs, tasks):
            width = max(len(f["input_ids"]) for f in feats)
            for i, f in enumerate(feats):
                res = results[start + i]
                if f["truncated"]:
                    warnings.warn(f"text {start + i} was truncated to {self.max_length} tokens; "
                                  "words past the cut are tagged 'O'", stacklevel=3)
                for name in tasks:
                    tt, lg = self.model.types[name], logits[name][i]  # (T, C) or (C,)
                    own = lg[self._collate.positions(len(f["input_ids"]), width)] \
                        if tt.label_kind == "token" else lg
                    res[name] = tt.present(own, f, res["words"])
