"""Sentence vectors before and after fine-tuning: the encoder's own pooled output, scikit-learn's
PCA and silhouette, and "before" = the base encoder the checkpoint names."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score

from mtl_lib.evaluation.representations import pooled_vectors
from mtl_lib.models.tiny import tiny_encoder
from mtl_lib.ui.representations import OTHER, plot_representations, representation_points


def test_pooled_vectors_are_the_encoders_own(tiny_snips):
    enc, (group,) = tiny_snips
    idx = [5, 0, 17, 3]
    got = pooled_vectors(enc, group, "dev", idx, batch_size=3)
    for row, i in zip(got, idx):
        f = group.splits["dev"][i]
        ids = torch.tensor([f["input_ids"]])
        with torch.no_grad():
            _, pooled = enc(ids, torch.ones_like(ids), torch.tensor([f["token_type_ids"]]))
        np.testing.assert_allclose(row, pooled[0].numpy(), rtol=1e-5, atol=1e-6)
    assert pooled_vectors(enc, group, "dev").shape == (len(group.splits["dev"]), enc.hidden_size)


def test_before_is_the_base_encoder_and_after_the_trained_one(trained_run, tiny_snips):
    run_dir, trainer = trained_run
    enc, (group,) = tiny_snips  # the same initial weights the run started from
    data = representation_points(run_dir, task="intent")
    index = data["index"]
    assert index == list(range(len(group.splits["dev"])))  # every dev example has an intent
    np.testing.assert_allclose(data["before"]["vectors"], pooled_vectors(enc, group, "dev", index), atol=1e-5)
    np.testing.assert_allclose(data["after"]["vectors"], pooled_vectors(trainer.model.encoder, group, "dev", index),
                               atol=1e-5)
    assert not np.allclose(data["before"]["vectors"], data["after"]["vectors"])  # training moved it
    intents = [r["intent"] for r in group.records["dev"]]
    assert data["labels"] == intents and data["task"] == "intent"
    for side in ("before", "after"):
        pca = PCA(n_components=2, random_state=0).fit(data[side]["vectors"])
        np.testing.assert_allclose(data[side]["points"], pca.transform(data[side]["vectors"]), atol=1e-5)
        np.testing.assert_allclose(data[side]["explained"], pca.explained_variance_ratio_)
        assert data[side]["silhouette"] == pytest.approx(
            silhouette_score(data[side]["vectors"], intents, metric="cosine"))


def test_rare_classes_grey_and_sampling(trained_run):
    _, trainer = trained_run
    data = representation_points(trainer.model, trainer.groups[0], "slots", top_classes=2, max_points=15)
    assert len(data["index"]) == 15 and data["index"] == sorted(data["index"])
    assert len(set(data["labels"]) - {OTHER}) == 2 and OTHER in data["labels"]
    again = representation_points(trainer.model, trainer.groups[0], "slots", top_classes=2, max_points=15)
    assert again["index"] == data["index"]  # a seeded sample


def test_plot_and_errors(trained_run):
    run_dir, trainer = trained_run
    fig = plot_representations(trainer.model, trainer.groups[0], "intent")
    scatter_axes = [ax for ax in fig.axes if ax.collections]
    assert len(scatter_axes) == 2 and "before fine-tuning" in scatter_axes[0].get_title()
    n = sum(len(c.get_offsets()) for c in scatter_axes[1].collections)
    assert n == len(trainer.groups[0].splits["dev"])
    with pytest.raises(ValueError, match="not one of the model's tasks"):
        representation_points(run_dir, task="nope")
    other = tiny_encoder("ROBERTA")  # another vocabulary: not the encoder it was trained from
    with pytest.raises(ValueError, match="another vocabulary"):
        representation_points(trainer.model, trainer.groups[0], "intent", before=other)
    same = copy.deepcopy(trainer.model.encoder)  # an explicit "before": used as given
    data = representation_points(trainer.model, trainer.groups[0], "intent", before=same)
    np.testing.assert_allclose(data["before"]["vectors"], data["after"]["vectors"], atol=1e-6)
