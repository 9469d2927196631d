"""Evaluation: the seed's metrics (:mod:`~mtl_lib.evaluation.metrics`), hierarchical metrics,
tag decoding, the TF-IDF + SGD baseline — and, one layer up, scoring a model on a split
(:mod:`~mtl_lib.evaluation.evaluate`) and the :class:`~mtl_lib.evaluation.predict.Predictor`.
"""
