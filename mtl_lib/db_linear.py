"""DB_Linear: a transformer encoder + dropout + one linear layer over the leaf classes.

The seed's "DistilBERT + Linear" model, with any registry encoder in place of DistilBERT
(default ``"minilm"``). It is the deep-learning twin of the TF-IDF + SGD baseline
(:class:`~mtl_lib.baselines.TfidfSGDBaseline`): the encoder does the vectorising, a single
linear layer scores every *leaf* of the hierarchy, and the prediction is the argmax leaf
expanded to its full path, so every level's label is consistent with the tree by
construction.

Forward returns the raw scores ``(B, n_leaves)`` with no nonlinearity, since argmax needs
none. Training passes them through LogSoftmax into the class-weighted averaged NLL
(:class:`~mtl_lib.losses.WeightedNLLLoss`)::

    L = Σ_n w[y_n] · (−log p[n, y_n]) / Σ_n w[y_n]

Checkpoint (a directory, written to a temporary sibling and renamed by
:func:`mtl_lib.checkpoint.atomic_directory`; no pickle)::

    config.json                          {"config": ..., "hierarchy": ...}
    encoder/                             HF config + tokenizer files, mtl_encoder.json
    encoder_state_dict.safetensors       encoder weights
    classifier_state_dict.safetensors    head weights
    optimizer_state_dict.safetensors     AdamW tensors (exp_avg, exp_avg_sq, step)
    optimizer_state_dict.json            AdamW param groups and any non-tensor state

Taught in notebook ``07_hierarchical``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor, nn
from tqdm.auto import tqdm

from mtl_lib.checkpoint import atomic_directory
from mtl_lib.data import Collator, length_bucketed_batches
from mtl_lib.encoders import POOLING_MODES, Encoder, load_encoder
from mtl_lib.heads import HierarchicalHead
from mtl_lib.hierarchical_metrics import hierarchical_metrics
from mtl_lib.hierarchy import PerLevelHierarchy, texts_and_paths
from mtl_lib.losses import WeightedNLLLoss, class_weights

__all__ = ["DB_Linear", "DEFAULT_CONFIG"]

TASK = "hierarchical"  # the key of our labels in the Collator's {task: tensor} dict

DEFAULT_CONFIG: dict = {
    # --- the seed's three keys
    "encoder_lr": 5e-5,  # small: the encoder is pretrained
    "classifier_lr": 1e-3,  # large: the leaf layer starts from scratch
    "dropout": 0.1,  # before the leaf layer (the encoder keeps its own dropout config)
    # --- training keys (optional)
    "encoder": "minilm",  # registry name or directory for load_encoder()
    "pooling": None,  # None = the encoder family's default; or "first" / "last" / "mean"
    "max_length": 128,  # tokens, special tokens included; longer texts are truncated
    "batch_size": 32,
    "eval_batch_size": 64,
    "epochs": 3,  # total epochs that fit() trains up to
    "class_weighting": "uniform",  # or "inverse_frequency" (w_c = N / (C n_c))
    "weight_decay": 0.01,  # AdamW, both groups
    "max_grad_norm": 1.0,  # gradient clipping; None to disable
    "seed": 0,  # head init, batch order and dropout masks
}


def _check_config(config: dict | None) -> dict:
    config = dict(config or {})
    for key in config:
        if key not in DEFAULT_CONFIG:
            raise ValueError(f"unknown DB_Linear config key {key!r}; known keys: "
                             f"{', '.join(DEFAULT_CONFIG)}")
    config = {**DEFAULT_CONFIG, **config}
    for key in ("encoder_lr", "classifier_lr"):
        if not isinstance(config[key], (int, float)) or config[key] < 0:
            raise ValueError(f"config key {key!r} must be a number >= 0, got {config[key]!r}")
    if not 0 <= config["dropout"] < 1:
        raise ValueError(f"config key 'dropout' must be in [0, 1), got {config['dropout']!r}")
    for key in ("max_length", "batch_size", "eval_batch_size", "epochs"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise ValueError(f"config key {key!r} must be a positive int, got {config[key]!r}")
    if config["class_weighting"] not in ("uniform", "inverse_frequency"):
        raise ValueError("config key 'class_weighting' must be 'uniform' or "
                         f"'inverse_frequency', got {config['class_weighting']!r}")
    if config["pooling"] is not None and config["pooling"] not in POOLING_MODES:
        raise ValueError(f"config key 'pooling' must be None or one of {POOLING_MODES}, "
                         f"got {config['pooling']!r}")
    return config


class DB_Linear(nn.Module):
    """Encoder + Dropout + Linear over leaves, with fit / test / save / load.

    Parameters
    ----------
    hierarchy : PerLevelHierarchy
        The label tree; the output columns are ``hierarchy.leaves``.
    config : dict, optional
        The seed keys ``encoder_lr``, ``classifier_lr``, ``dropout`` plus the optional
        training keys of :data:`DEFAULT_CONFIG`; missing keys take those defaults, unknown
        keys raise ``ValueError`` naming the key. :attr:`config` holds the resolved dict.
    encoder : Encoder, optional
        Use this encoder (e.g. ``tiny_encoder("BERT")`` in tests) instead of loading
        ``config["encoder"]``; ``config["encoder"]`` then records its name. A non-None
        ``config["pooling"]`` is applied to this encoder (it sets ``encoder.pooling``).

    Examples
    --------
    Train on TREC, predict, save and reload (a few minutes on a CPU)::

        records = read_trec(data_root() / "trec" / "train_5500.label")
        tree = PerLevelHierarchy.from_paths(r["path"] for r in records)
        model = DB_Linear(tree, {"encoder_lr": 1e-4, "classifier_lr": 3e-3, "dropout": 0.1})
        model.fit(records[:4900], dev_records=records[4900:])
        model.predict(["What is the capital of Peru ?"])  # full paths, e.g. [("LOC", "city")]
        model.save("runs/trec_db_linear")
        same = DB_Linear.from_checkpoint("runs/trec_db_linear")
    """

    def __init__(self, hierarchy: PerLevelHierarchy, config: dict | None = None,
                 encoder: Encoder | None = None) -> None:
        super().__init__()
        self.config = _check_config(config)
        if encoder is None:
            encoder = load_encoder(self.config["encoder"], pooling=self.config["pooling"])
        elif self.config["pooling"] is not None:
            encoder.pooling = self.config["pooling"]
        self.config["encoder"], self.config["pooling"] = encoder.name, encoder.pooling
        self.hierarchy = hierarchy
        self.encoder = encoder
        with torch.random.fork_rng(devices=[]):  # seeded head, caller's RNG untouched
            torch.manual_seed(self.config["seed"])
            self.classifier = HierarchicalHead(encoder.hidden_size, hierarchy,
                                               dropout=self.config["dropout"])
        self.optimizer = torch.optim.AdamW(
            [{"params": list(self.encoder.parameters()), "lr": self.config["encoder_lr"]},
             {"params": list(self.classifier.parameters()), "lr": self.config["classifier_lr"]}],
            weight_decay=self.config["weight_decay"])
        self.history: list[dict] = []

    # ------------------------------------------------------------------ model
    def forward(self, input_ids: Tensor, attention_mask: Tensor,
                token_type_ids: Tensor | None = None) -> Tensor:
        """Raw leaf scores.

        Parameters
        ----------
        input_ids, attention_mask, token_type_ids : LongTensor (B, T)

        Returns
        -------
        Tensor (B, n_leaves)
        """
        hidden, pooled = self.encoder(input_ids, attention_mask, token_type_ids)  # (B,T,H) (B,H)
        return self.classifier(hidden, pooled, attention_mask)  # (B, n_leaves)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _features(self, texts: Sequence[str], leaf_ids: Sequence[int] | None = None) -> list:
        enc = self.encoder.tokenize(list(texts), max_length=self.config["max_length"])
        features = []
        for i in range(len(texts)):
            f = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids")
                 if k in enc}
            f["labels"] = {} if leaf_ids is None else {TASK: int(leaf_ids[i])}
            features.append(f)
        return features

    def _collate(self, features: list[dict]) -> dict:
        tok = self.encoder.tokenizer
        batch = Collator(tok.pad_token_id, padding_side=tok.padding_side)(features)
        return {k: (v.to(self.device) if torch.is_tensor(v) else
                    {t: x.to(self.device) for t, x in v.items()}) for k, v in batch.items()}

    def _leaf_ids(self, paths: Sequence[tuple[str, ...]]) -> list[int]:
        ids = []
        for i, p in enumerate(paths):
            try:
                ids.append(self.hierarchy.leaf_index(p))
            except KeyError:
                raise ValueError(f"record {i}: label path {p!r} is not a leaf of the hierarchy "
                                 "(build it from all known label paths)") from None
        return ids

    # ------------------------------------------------------------------ training
    def _epoch_batches(self, lengths: list[int], epoch: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.config["seed"] * 100_003 + epoch)
        return length_bucketed_batches(lengths, self.config["batch_size"], generator)

    def epochs_done(self, steps_per_epoch: int) -> int:
        """Whole epochs already trained, read from the optimizer's step count."""
        steps = [int(s["step"]) for s in self.optimizer.state.values() if "step" in s]
        done = max(steps, default=0)
        if done % steps_per_epoch:
            raise ValueError(f"the optimizer has taken {done} steps, not a whole number of "
                             f"epochs of {steps_per_epoch} steps on this data; "
                             "pass start_epoch explicitly")
        return done // steps_per_epoch

    def fit(self, train_records: Sequence[dict], dev_records: Sequence[dict] | None = None,
            epochs: int | None = None, start_epoch: int | None = None,
            progress: bool = True) -> list[dict]:
        """Train on records ``{"text": str, "path": tuple}`` up to ``epochs`` in total.

        Every epoch's batch order and dropout masks depend only on ``(seed, epoch)``, so a
        model restored with :meth:`from_checkpoint` after epoch ``k`` and trained on
        continues exactly like an uninterrupted run. ``start_epoch`` defaults to the number
        of whole epochs the optimizer has already taken (0 for a fresh model).

        Returns
        -------
        list of dict
            One record per epoch trained: ``epoch``, ``train_loss`` (mean over batches),
            ``train_time_s``, and ``dev_<metric>`` for each metric when ``dev_records`` are
            given. Also appended to :attr:`history`.
        """
        texts, paths = texts_and_paths(train_records)
        leaf_ids = self._leaf_ids(paths)
        features = self._features(texts, leaf_ids)
        lengths = [len(f["input_ids"]) for f in features]
        weight = class_weights(leaf_ids, self.hierarchy.n_leaves, self.config["class_weighting"])
        loss_fn = WeightedNLLLoss(weight).to(self.device)
        epochs = epochs or self.config["epochs"]
        steps_per_epoch = len(self._epoch_batches(lengths, 0))
        start = self.epochs_done(steps_per_epoch) if start_epoch is None else start_epoch
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        records = []
        for epoch in range(start, epochs):
            batches = self._epoch_batches(lengths, epoch)
            t0, total = time.perf_counter(), 0.0
            with torch.random.fork_rng(devices=[]):  # dropout masks from (seed, epoch) only
                torch.manual_seed(self.config["seed"] * 100_003 + epoch)
                self.train()
                bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress)
                for batch_ids in bar:
                    batch = self._collate([features[i] for i in batch_ids])
                    scores = self(batch["input_ids"], batch["attention_mask"],
                                  batch.get("token_type_ids"))  # (B, n_leaves)
                    loss = loss_fn(scores, batch["labels"][TASK])
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.config["max_grad_norm"] is not None:
                        nn.utils.clip_grad_norm_(params, self.config["max_grad_norm"])
                    self.optimizer.step()
                    total += loss.item()
                    bar.set_postfix(loss=f"{loss.item():.4f}")
            record = {"epoch": epoch + 1, "train_loss": total / len(batches),
                      "train_time_s": time.perf_counter() - t0}
            if dev_records is not None:
                dev = self.test(dev_records, progress=progress)
                record.update({f"dev_{k}": v for k, v in dev.items()})
            records.append(record)
        self.history.extend(records)
        return records

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_scores(self, texts: Sequence[str], progress: bool = False) -> Tensor:
        """Raw leaf scores ``(N, n_leaves)`` for ``texts`` (eval mode, batched by length)."""
        features = self._features(texts)
        order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
        size = self.config["eval_batch_size"]
        scores = torch.empty(len(features), self.hierarchy.n_leaves)  # (N, n_leaves)
        was_training = self.training
        self.eval()
        chunks = [order[i:i + size] for i in range(0, len(order), size)]
        for ids in tqdm(chunks, desc="predict", disable=not progress):
            batch = self._collate([features[i] for i in ids])
            scores[ids] = self(batch["input_ids"], batch["attention_mask"],
                               batch.get("token_type_ids")).float().cpu()
        self.train(was_training)
        return scores

    def predict(self, texts: Sequence[str], progress: bool = False) -> list[tuple[str, ...]]:
        """Full predicted path for each text: the argmax leaf, expanded."""
        leaf_ids = self.predict_scores(texts, progress=progress).argmax(dim=-1)  # (N,)
        return [self.hierarchy.expand(int(i)) for i in leaf_ids]

    def test(self, records: Sequence[dict], progress: bool = False) -> dict[str, float]:
        """Score ``records`` with :func:`~mtl_lib.hierarchical_metrics.hierarchical_metrics`."""
        texts, paths = texts_and_paths(records)
        return hierarchical_metrics(paths, self.predict(texts, progress=progress))

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint directory atomically (temporary sibling, then rename)."""
        path = Path(path)
        with atomic_directory(path) as tmp:
            (tmp / "config.json").write_text(json.dumps(
                {"config": self.config, "hierarchy": self.hierarchy.to_dict()}, indent=1))
            self.encoder.save_pretrained(tmp / "encoder")
            (tmp / "encoder" / "mtl_encoder.json").write_text(
                json.dumps(self.encoder.config_dict()))
            # save_model copes with tied/shared tensors, which save_file refuses.
            save_model(self.encoder.model, str(tmp / "encoder_state_dict.safetensors"))
            save_file({k: v.contiguous() for k, v in self.classifier.state_dict().items()},
                      str(tmp / "classifier_state_dict.safetensors"))
            tensors, meta = _flatten_optimizer(self.optimizer.state_dict())
            save_file(tensors, str(tmp / "optimizer_state_dict.safetensors"))
            (tmp / "optimizer_state_dict.json").write_text(json.dumps(meta))
        return path

    def load(self, path: str | os.PathLike) -> DB_Linear:
        """Load a checkpoint's weights and optimizer state into this (same-shaped) model."""
        path = Path(path)
        saved = _read_config(path)
        if PerLevelHierarchy.from_dict(saved["hierarchy"]) != self.hierarchy:
            raise ValueError(f"{path}: the checkpoint's hierarchy differs from this model's")
        load_model(self.encoder.model, str(path / "encoder_state_dict.safetensors"), strict=True,
                   device=str(self.device))
        self.classifier.load_state_dict(
            load_file(str(path / "classifier_state_dict.safetensors"), device=str(self.device)),
            strict=True)
        meta = json.loads((path / "optimizer_state_dict.json").read_text())
        tensors = load_file(str(path / "optimizer_state_dict.safetensors"))
        self.optimizer.load_state_dict(_unflatten_optimizer(tensors, meta))
        return self

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> DB_Linear:
        """Rebuild a model (architecture from files, weights strictly) from :meth:`save`."""
        path = Path(path)
        saved = _read_config(path)
        info = json.loads((path / "encoder" / "mtl_encoder.json").read_text())
        encoder = Encoder.from_config_dir(path / "encoder", info["family"], info["pooling"],
                                          info["name"])
        model = cls(PerLevelHierarchy.from_dict(saved["hierarchy"]), saved["config"], encoder)
        return model.load(path)


def _read_config(path: Path) -> dict:
    file = path / "config.json"
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not a DB_Linear checkpoint (no config.json)")
    saved = json.loads(file.read_text())
    missing = {"config", "hierarchy"} - set(saved)
    if missing:
        raise ValueError(f"{file}: missing keys {sorted(missing)}")
    return saved


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, Tensor], dict]:
    """Split ``optimizer.state_dict()`` into named tensors and a JSON-able rest."""
    tensors, state_meta = {}, {}
    for pid, entries in state_dict["state"].items():
        state_meta[str(pid)] = {}
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{key}"] = value.contiguous()
                state_meta[str(pid)][key] = {"tensor": f"state.{pid}.{key}"}
            else:
                state_meta[str(pid)][key] = {"value": value}
    return tensors, {"state": state_meta, "param_groups": state_dict["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, Tensor], meta: dict) -> dict:
    state = {
        int(pid): {key: tensors[v["tensor"]] if "tensor" in v else v["value"]
                   for key, v in entries.items()}
        for pid, entries in meta["state"].items()
    }
    # JSON turned tuples (AdamW's betas) into lists; give them back their type.
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v
               for k, v in group.items()} for group in meta["param_groups"]]
    return {"state": state, "param_groups": groups}
