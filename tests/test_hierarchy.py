"""PerLevelHierarchy, hierarchical metrics and the TF-IDF baseline.

Hand-computed expectations on tiny synthetic trees; scikit-learn is the reference for F1.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from mtl_lib.evaluation.hierarchical_metrics import (
    hierarchical_metrics,
    hierarchical_precision_recall_f1,
    leaf_macro_f1,
    per_level_accuracy,
    per_level_report,
)
from mtl_lib.tasks.hierarchy import PerLevelHierarchy

# Two parents share the leaf name "food": they must be two different leaves.
PATHS = [
    ("pets", "dogs", "food"),
    ("pets", "cats", "food"),
    ("pets", "cats", "toys"),
    ("baby", "feeding", "bottles"),
    ("pets", "dogs", "food"),  # duplicate: ignored
]


@pytest.fixture
def h() -> PerLevelHierarchy:
    return PerLevelHierarchy.from_paths(reversed(PATHS))  # order must not matter


def test_levels_sizes_offsets(h):
    assert h.depth == 3
    assert h.level_paths[0] == [("baby",), ("pets",)]
    assert h.level_paths[1] == [("baby", "feeding"), ("pets", "cats"), ("pets", "dogs")]
    assert h.levels[2] == ["bottles", "food", "toys", "food"]  # display names repeat
    assert h.level_sizes == [2, 3, 4]
    assert h.level_offsets == [0, 2, 5, 9]
    assert h.total_classes == 9
    assert h.n_leaves == 4


def test_leaves_distinct_by_full_path(h):
    assert h.leaves == [
        ("baby", "feeding", "bottles"),
        ("pets", "cats", "food"),
        ("pets", "cats", "toys"),
        ("pets", "dogs", "food"),
    ]
    assert h.leaf_index(("pets", "dogs", "food")) == 3
    assert h.leaf_index(["pets", "cats", "food"]) == 1
    for i in range(h.n_leaves):
        assert h.leaf_index(h.expand(i)) == i
    with pytest.raises(KeyError):
        h.leaf_index(("pets", "dogs", "toys"))
    with pytest.raises(KeyError):
        h.leaf_index(("pets", "dogs"))


def test_parent(h):
    assert h.parent[0] == [-1, -1]
    assert h.parent[1] == [0, 1, 1]  # feeding->baby, cats->pets, dogs->pets
    assert h.parent[2] == [0, 1, 1, 2]  # bottles->feeding, cat food/toys->cats, dog food->dogs


def test_leaf_to_ancestors(h):
    r = h.leaf_to_ancestors
    assert r.shape == (4, 9)
    # global order: baby pets | feeding cats dogs | bottles catfood cattoys dogfood
    expected = np.array([
        [1, 0, 1, 0, 0, 1, 0, 0, 0],
        [0, 1, 0, 1, 0, 0, 1, 0, 0],
        [0, 1, 0, 1, 0, 0, 0, 1, 0],
        [0, 1, 0, 0, 1, 0, 0, 0, 1],
    ], dtype=r.dtype)
    assert np.array_equal(r, expected)


def test_ancestor_to_descendants(h):
    m = h.ancestor_to_descendants
    assert m.shape == (9, 9)
    assert np.array_equal(np.diagonal(m), np.ones(9))
    pets = h.global_index(("pets",))
    assert np.flatnonzero(m[pets]).tolist() == [1, 3, 4, 6, 7, 8]
    # Leaf rows of M restricted to leaf columns are the identity, and the leaf columns of M
    # are the transposed leaf-to-ancestor matrix.
    assert np.array_equal(m[:, 5:].T, h.leaf_to_ancestors)


def test_json_round_trip(h):
    text = json.dumps(h.to_dict())
    h2 = PerLevelHierarchy.from_dict(json.loads(text))
    assert h2 == h
    assert h2.leaves == h.leaves
    assert np.array_equal(h2.leaf_to_ancestors, h.leaf_to_ancestors)
    bad = h.to_dict()
    bad["level_sizes"] = [2, 3, 5]
    with pytest.raises(ValueError, match="level_sizes"):
        PerLevelHierarchy.from_dict(bad)


def test_bad_paths():
    with pytest.raises(ValueError, match="same depth"):
        PerLevelHierarchy.from_paths([("a", "b"), ("a",)])
    with pytest.raises(ValueError, match="no label paths"):
        PerLevelHierarchy.from_paths([])
    with pytest.raises(ValueError, match="empty class name"):
        PerLevelHierarchy.from_paths([("a", "")])


def test_one_level_and_deep():
    flat = PerLevelHierarchy.from_paths([("x",), ("y",)])
    assert flat.leaves == [("x",), ("y",)] and np.array_equal(flat.leaf_to_ancestors, np.eye(2))
    deep = PerLevelHierarchy.from_paths([tuple("abcde"), tuple("abcdf")])
    assert deep.level_sizes == [1, 1, 1, 1, 2]
    assert deep.leaf_to_ancestors.sum(1).tolist() == [5.0, 5.0]


# ---------------------------------------------------------------- metrics (hand computed)
TRUE = [("A", "a1"), ("A", "a2"), ("B", "b1"), ("B", "b1")]
PRED = [("A", "a1"), ("A", "a1"), ("A", "a1"), ("B", "b1")]


def test_per_level_accuracy():
    # level 1: A A B B vs A A A B -> 3/4 ; level 2: a1 a2 b1 b1 vs a1 a1 a1 b1 -> 2/4
    assert per_level_accuracy(TRUE, PRED) == [0.75, 0.5]


def test_level_accuracy_needs_right_parent():
    # Same leaf *name* under a wrong parent is wrong at level 2 as well.
    assert per_level_accuracy([("p", "food")], [("q", "food")]) == [0.0, 0.0]


def test_leaf_macro_f1():
    # a1: tp1 fp2 fn0 -> P 1/3 R 1 F 0.5 ; a2: F 0 ; b1: tp1 fn1 -> P1 R.5 F 2/3
    assert leaf_macro_f1(TRUE, PRED) == pytest.approx((0.5 + 0 + 2 / 3) / 3)
    as_str = ["/".join(p) for p in TRUE], ["/".join(p) for p in PRED]
    assert leaf_macro_f1(TRUE, PRED) == pytest.approx(f1_score(*as_str, average="macro"))


def test_hierarchical_prf():
    # augmented overlaps: 2, 1, 0, 2 -> 5 of 8 predicted, 5 of 8 true
    assert hierarchical_precision_recall_f1(TRUE, PRED) == pytest.approx((5 / 8, 5 / 8, 5 / 8))
    # paths of different depths make precision and recall differ
    p, r, f = hierarchical_precision_recall_f1([("A", "a1", "x")], [("A", "a1")])
    assert (p, r) == (1.0, pytest.approx(2 / 3)) and f == pytest.approx(0.8)


def test_per_level_report():
    rows = per_level_report(TRUE, PRED)
    by = {(r["level"], r["path"]): r for r in rows}
    assert set(by) == {(1, "A"), (1, "B"), (2, "A > a1"), (2, "A > a2"), (2, "B > b1")}
    a = by[(1, "A")]  # true A A B B, pred A A A B: tp 2 fp 1 fn 0
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(2 / 3), 1.0, 2)
    assert a["f1"] == pytest.approx(0.8) and a["label"] == "A"
    b1 = by[(2, "B > b1")]
    assert (b1["precision"], b1["recall"], b1["f1"], b1["support"]) == (
        1.0, 0.5, pytest.approx(2 / 3), 2)
    assert by[(2, "A > a2")]["f1"] == 0.0


def test_hierarchical_metrics_keys():
    m = hierarchical_metrics(TRUE, PRED)
    assert m["level1_accuracy"] == 0.75 and m["leaf_accuracy"] == 0.5
    assert m["hierarchical_f1"] == pytest.approx(5 / 8)
    assert set(m) == {"level1_accuracy", "level2_accuracy", "leaf_accuracy", "leaf_macro_f1",
                      "hierarchical_precision", "hierarchical_recall", "hierarchical_f1"}
    with pytest.raises(ValueError, match="paths"):
        hierarchical_metrics(TRUE, PRED[:2])


# ---------------------------------------------------------------- TF-IDF + SGD baseline
def _synthetic_records(n_per_leaf: int = 6) -> list[dict]:
    """Each leaf has its own keyword; "food" under dogs and cats differ only by the animal."""
    words = {
        ("pets", "dogs", "food"): "kibble for my dog",
        ("pets", "cats", "food"): "kibble for my cat",
        ("pets", "cats", "toys"): "feather wand cat",
        ("baby", "feeding", "bottles"): "bottle nipple milk",
    }
    return [
        {"text": f"{text} item {i}", "path": path}
        for path, text in words.items()
        for i in range(n_per_leaf)
    ]


def test_baseline_fits_and_matches_sklearn_pipeline():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier

    from mtl_lib.evaluation.baselines import TfidfSGDBaseline

    records = _synthetic_records()
    model = TfidfSGDBaseline().fit(records)
    texts = [r["text"] for r in records]
    pred = model.predict(texts)
    assert pred == [r["path"] for r in records]  # separable: perfect on train
    assert model.test(records)["leaf_accuracy"] == 1.0
    # Reference: the same two scikit-learn steps, built by hand.
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    clf = SGDClassifier(loss="modified_huber", alpha=1e-4, max_iter=1000, random_state=0)
    clf.fit(vec.fit_transform(texts), [model.hierarchy.leaf_index(r["path"]) for r in records])
    ref = [model.hierarchy.expand(int(i)) for i in clf.predict(vec.transform(["dog kibble"]))]
    assert model.predict(["dog kibble"]) == ref


def test_baseline_config_and_errors():
    from mtl_lib.evaluation.baselines import TfidfSGDBaseline

    with pytest.raises(ValueError, match="'alhpa'"):
        TfidfSGDBaseline({"alhpa": 0.1})
    with pytest.raises(ValueError, match="class_weighting"):
        TfidfSGDBaseline({"class_weighting": "balanced"})
    with pytest.raises(RuntimeError, match="fit"):
        TfidfSGDBaseline().predict(["x"])
    with pytest.raises(ValueError, match="record 0"):
        TfidfSGDBaseline().fit([{"text": "no path"}])
    m = TfidfSGDBaseline({"class_weighting": "inverse_frequency"}).fit(_synthetic_records())
    assert m.classifier.class_weight == "balanced"
