"""What fine-tuning did to the shared encoder: PCA pictures of sentence vectors, before and after.

Each dev example's pooled vector (:func:`mtl_lib.evaluation.representations.pooled_vectors`)
is projected on its first two principal components (scikit-learn's ``PCA``) and drawn as a
point coloured by its gold label: once with the encoder's pretrained weights (the base
encoder the checkpoint names), once with the fine-tuned ones. Classes that form separate
clouds after training are classes the heads can tell apart with a straight line. The
silhouette score (cosine distance, on the full vectors) puts a number on it: from -1 (mixed)
to 1 (separate clouds). Taught in ``notebooks/05_multi_task_training.ipynb``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score

from ..evaluation.representations import pooled_vectors
from ..experiment import build_groups, resolve_encoder
from ..models.encoders import Encoder
from ..models.multitask import MultiTaskModel, load_model
from .plots import new_figure, task_colors

__all__ = ["plot_representations", "representation_points"]

OTHER = "(other)"


def _base_encoder(model: MultiTaskModel, before: str | Encoder | None) -> Encoder:
    """The encoder with its pretrained weights: ``before``, or the one the model names."""
    enc = before if isinstance(before, Encoder) else resolve_encoder(before or model.encoder.name)
    if enc.tokenizer.get_vocab() != model.encoder.tokenizer.get_vocab():
        raise ValueError(f"the 'before' encoder {enc.name!r} has another vocabulary than the model's "
                         f"encoder {model.encoder.name!r}; pass the encoder it was fine-tuned from as before=")
    return enc.to(next(model.parameters()).device)


def representation_points(model_or_checkpoint, group=None, task: str | None = None, split: str = "dev",
                          before: str | Encoder | None = None, max_points: int = 2000,
                          top_classes: int = 10, seed: int = 0) -> dict:
    """The data of :func:`plot_representations`: 2-d PCA points before and after, and labels.

    Returns
    -------
    dict
        ``task``, ``labels`` (list of str, one per point; classes beyond the ``top_classes``
        most frequent are ``"(other)"``), ``index`` (positions in the split), and for
        ``"before"`` and ``"after"``: ``{"vectors": (N, H), "points": (N, 2),
        "explained": (2,) variance ratios, "silhouette": float or None}``.
    """
    model = model_or_checkpoint if isinstance(model_or_checkpoint, MultiTaskModel) else \
        load_model(model_or_checkpoint)
    if group is None:
        max_length = int(model.training_config.get("max_length") or 128)
        groups = build_groups(list(model.tasks.values()), model.encoder.tokenizer, max_length, splits=(split,))
        group = next((g for g in groups if task is None or task in g.task_names), None)
    if group is None or task is not None and task not in group.task_names:
        raise ValueError(f"task {task!r} is not one of the model's tasks ({', '.join(model.tasks)})")
    task = task or group.task_names[0]
    if not group.splits.get(split):
        raise ValueError(f"the group {group.name!r} has no {split!r} split")
    tt = model.types[task]
    golds = [tt.gold(r) for r in group.records[split]]
    index = [i for i, g in enumerate(golds) if g is not None]
    if len(index) > max_points:  # a seeded sample: the picture stays readable and quick
        index = sorted(np.random.default_rng(seed).choice(index, max_points, replace=False).tolist())
    names = [" + ".join(tt.shown(golds[i])) or "(none)" for i in index]
    keep = {c for c, _ in Counter(names).most_common(top_classes)}
    labels = [n if n in keep else OTHER for n in names]
    out = {"task": task, "labels": labels, "index": index}
    for side, enc in (("before", _base_encoder(model, before)), ("after", model.encoder)):
        vectors = pooled_vectors(enc, group, split, index)
        pca = PCA(n_components=2, random_state=seed).fit(vectors)
        n_labels = len(set(labels))
        sil = float(silhouette_score(vectors, labels, metric="cosine")) if 2 <= n_labels < len(labels) else None
        out[side] = {"vectors": vectors, "points": pca.transform(vectors),
                     "explained": pca.explained_variance_ratio_, "silhouette": sil}
    return out


def plot_representations(model_or_checkpoint: MultiTaskModel | str | Path, group=None, task: str | None = None,
                         split: str = "dev", before: str | Encoder | None = None, max_points: int = 2000,
                         top_classes: int = 10) -> Figure:
    """Sentence vectors on ``split``, PCA to 2-d, coloured by ``task``'s gold label: the
    pretrained encoder (left) and the fine-tuned one (right).

    Parameters
    ----------
    model_or_checkpoint : MultiTaskModel, or a checkpoint / run directory
    group : InputGroup, optional
        Encoded data holding ``split`` (default: read from the model's task specs).
    task : str, optional
        The task whose labels colour the points (default: the group's first). For a tagger a
        sentence's label is the set of its entity types; for a hierarchy its leaf path.
    before : str or Encoder, optional
        The encoder before fine-tuning (default: the base encoder the model names, loaded
        afresh: ``"minilm"``, or for ``tiny-*`` encoders the same random initialisation).
    max_points : int
        A seeded sample of at most this many examples is drawn.
    top_classes : int
        Classes beyond the most frequent ones are grey, as ``(other)``.
    """
    data = representation_points(model_or_checkpoint, group, task, split, before, max_points, top_classes)
    classes = [c for c, _ in Counter(data["labels"]).most_common() if c != OTHER]
    colors = task_colors(classes) | {OTHER: (0.75, 0.75, 0.75, 1.0)}
    fig = new_figure(11, 5)
    labels = np.array(data["labels"])
    for ax, side, title in zip(fig.subplots(1, 2), ("before", "after"), ("before fine-tuning", "after")):
        d = data[side]
        for c in [OTHER, *classes[::-1]]:  # frequent classes drawn last, on top
            pts = d["points"][labels == c]
            if len(pts):
                ax.scatter(pts[:, 0], pts[:, 1], s=9, alpha=0.7, color=colors[c],
                           label=c if side == "after" else None, linewidths=0)
        sil = "n/a" if d["silhouette"] is None else f"{d['silhouette']:.2f}"
        ax.set(title=f"{title}: silhouette {sil}",
               xlabel=f"PC 1 ({d['explained'][0]:.0%} of variance)",
               ylabel=f"PC 2 ({d['explained'][1]:.0%})")
        ax.grid(alpha=0.2)
        ax.locator_params(nbins=5)  # small-scale axes of a random encoder stay legible
    handles, names = ax.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: names[i] == OTHER)  # "(other)" last
    fig.legend([handles[i] for i in order], [names[i] for i in order], loc="outside right center",
               fontsize="small", markerscale=2, title=data["task"])
    fig.suptitle(f"Pooled sentence vectors on {split} ({len(labels)} examples), PCA, coloured by "
                 f"{data['task']}")
    return fig
