"""Shared fixtures: a tiny SNIPS experiment (tiny BERT, 200 utterances) built once per session.

Building a tiny encoder trains a tokenizer (a few seconds), so the encoder and the encoded
data are session-scoped; tests that train get their own model (a deep copy of the encoder and
freshly seeded heads) so no test sees another's weights.
"""

from __future__ import annotations

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# One intra-op thread: the models here are tiny, and on a shared 2-core machine torch's thread
# pool spends far longer waiting for busy cores than computing (a 4-step run: 7 s -> 0.1 s).
torch.set_num_threads(1)

SNIPS_EXAMPLES = 200  # train utterances; dev gets a fifth of that (40)


@pytest.fixture(scope="session")
def tiny_snips():
    """``(encoder, groups)``: tiny BERT and one ``intent+slots`` group (train 200, dev 40).

    Treat both as read-only; use ``make_snips_model`` for a model to train.
    """
    from mtl_lib.experiment import build_groups, snips_tasks
    from mtl_lib.models.tiny import tiny_encoder

    enc = tiny_encoder("BERT")  # what build_experiment(..., "tiny-bert") uses
    groups = build_groups(snips_tasks(max_examples=SNIPS_EXAMPLES), enc.tokenizer)
    return enc, groups


@pytest.fixture
def make_snips_model(tiny_snips):
    """Factory: a fresh ``MultiTaskModel`` (same initial weights every call) over the fixture's tasks."""
    from mtl_lib.models.multitask import MultiTaskModel

    enc, groups = tiny_snips

    def make(tasks=None, seed: int = 0):
        tasks = tasks if tasks is not None else [t for g in groups for t in g.tasks]
        return MultiTaskModel.from_tasks(copy.deepcopy(enc), tasks, seed=seed)

    return make


@pytest.fixture(scope="session")
def trained_run(tiny_snips, tmp_path_factory):
    """A 4-step training run on tiny SNIPS with checkpoints: ``(run_dir, trainer)``.

    ``run_dir`` holds ``best/`` and ``last/`` (both at step 4: the only evaluation is at the
    end). Read-only for tests.
    """
    from mtl_lib.models.multitask import MultiTaskModel
    from mtl_lib.training.trainer import Trainer

    enc, groups = tiny_snips
    model = MultiTaskModel.from_tasks(copy.deepcopy(enc), [t for g in groups for t in g.tasks])
    run_dir = tmp_path_factory.mktemp("run")
    trainer = Trainer(model, groups, max_steps=4, batch_size=16, classifier_lr=5e-3,
                      output_dir=str(run_dir), progress=False)
    trainer.fit()
    return run_dir, trainer


@pytest.fixture
def no_dropout():
    """Function that switches off every dropout of a model (heads, encoder, attention)."""

    def switch_off(model: torch.nn.Module) -> torch.nn.Module:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0  # BERT's SDPA attention reads its dropout rate from this module too
        return model

    return switch_off


class _HubCache:
    """An empty Hugging Face cache (``HF_HOME``) that tests fill with tiny encoders."""

    def __init__(self, home):
        self.home = home

    def add(self, repo_id: str, encoder):
        """Lay out ``encoder`` (model + tokenizer) the way huggingface_hub caches a downloaded repo."""
        repo = self.home / "hub" / ("models--" + repo_id.replace("/", "--"))
        snapshot = repo / "snapshots" / ("0" * 40)
        encoder.model.save_pretrained(snapshot)
        encoder.tokenizer.save_pretrained(snapshot)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text("0" * 40)
        return snapshot


@pytest.fixture
def empty_hf_home(tmp_path, monkeypatch):
    """An empty HF cache in ``HF_HOME``; ``.add(repo_id, encoder)`` puts an encoder in it."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return _HubCache(tmp_path / "hf")
