"""A classical baseline for hierarchical classification: TF-IDF + linear SGD over leaves.

This is the seed's "Tfidf_LSGD": the text is vectorised with TF-IDF and one linear classifier
(scikit-learn's ``SGDClassifier``) picks a *leaf*; the prediction is that leaf's full path, so
it is consistent with the hierarchy by construction, exactly like
:class:`~mtl_lib.db_linear.DB_Linear`. DB_Linear is "the same thing with a transformer
doing the vectorising", which is why the two are benchmarked side by side
(``bench/hierarchical.py``). Taught in notebook ``07_hierarchical``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier

from ..tasks.hierarchy import PerLevelHierarchy, texts_and_paths
from .hierarchical_metrics import hierarchical_metrics

__all__ = ["TfidfSGDBaseline"]


class TfidfSGDBaseline:
    """TF-IDF features + ``SGDClassifier`` over leaf classes.

    Parameters
    ----------
    config : dict, optional
        Overrides of :attr:`DEFAULT_CONFIG`; unknown keys raise ``ValueError`` naming the key.
        ``loss`` / ``alpha`` / ``max_iter`` go to ``SGDClassifier`` (``modified_huber`` is the
        seed's choice: a smoothed hinge that also gives probability-like scores);
        ``min_df`` / ``ngram_range`` / ``sublinear_tf`` go to ``TfidfVectorizer`` (the seed
        used ``min_df=50`` on a 30k-row set; 1 suits a few thousand rows);
        ``class_weighting`` is ``"uniform"`` or ``"inverse_frequency"`` (scikit-learn's
        ``"balanced"``); ``seed`` fixes SGD's shuffling.
    hierarchy : PerLevelHierarchy, optional
        The label tree. If omitted, :meth:`fit` builds it from the training paths. Pass one
        built from all known label paths when the evaluation data may hold leaves that the
        training data lacks.
    """

    DEFAULT_CONFIG = {
        "loss": "modified_huber",
        "alpha": 1e-4,
        "max_iter": 1000,
        "min_df": 1,
        "ngram_range": [1, 2],
        "sublinear_tf": True,
        "class_weighting": "uniform",
        "seed": 0,
    }

    def __init__(self, config: dict | None = None, hierarchy: PerLevelHierarchy | None = None):
        config = dict(config or {})
        for key in config:
            if key not in self.DEFAULT_CONFIG:
                raise ValueError(
                    f"unknown TfidfSGDBaseline config key {key!r}; "
                    f"known keys: {sorted(self.DEFAULT_CONFIG)}"
                )
        self.config = {**self.DEFAULT_CONFIG, **config}
        if self.config["class_weighting"] not in ("uniform", "inverse_frequency"):
            raise ValueError(
                "config key 'class_weighting' must be 'uniform' or 'inverse_frequency', "
                f"got {self.config['class_weighting']!r}"
            )
        self.hierarchy = hierarchy
        self.vectorizer: TfidfVectorizer | None = None
        self.classifier: SGDClassifier | None = None
        self.train_time_s: float | None = None

    def fit(self, train_records: Sequence[dict]) -> TfidfSGDBaseline:
        """Fit on records ``{"text": str, "path": tuple[str, ...]}``; returns ``self``."""
        texts, paths = texts_and_paths(train_records)
        if self.hierarchy is None:
            self.hierarchy = PerLevelHierarchy.from_paths(paths)
        y = np.array([self.hierarchy.leaf_index(p) for p in paths])  # (N,)
        c = self.config
        start = time.perf_counter()
        self.vectorizer = TfidfVectorizer(
            min_df=c["min_df"], ngram_range=tuple(c["ngram_range"]), sublinear_tf=c["sublinear_tf"]
        )
        x = self.vectorizer.fit_transform(texts)  # (N, V) sparse
        self.classifier = SGDClassifier(
            loss=c["loss"],
            alpha=c["alpha"],
            max_iter=c["max_iter"],
            random_state=c["seed"],
            class_weight="balanced" if c["class_weighting"] == "inverse_frequency" else None,
        )
        self.classifier.fit(x, y)
        self.train_time_s = time.perf_counter() - start
        return self

    def predict(self, texts: Sequence[str]) -> list[tuple[str, ...]]:
        """Predicted full leaf path for each text."""
        if self.classifier is None or self.vectorizer is None:
            raise RuntimeError("call fit() before predict()")
        leaf_ids = self.classifier.predict(self.vectorizer.transform(list(texts)))  # (N,)
        return [self.hierarchy.expand(int(i)) for i in leaf_ids]

    def test(self, records: Sequence[dict]) -> dict[str, float]:
        """Predict ``records`` and score them with
        :func:`~mtl_lib.evaluation.hierarchical_metrics.hierarchical_metrics`."""
        texts, paths = texts_and_paths(records)
        return hierarchical_metrics(paths, self.predict(texts))
