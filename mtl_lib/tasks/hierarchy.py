"""Label hierarchies for hierarchical classification (``PerLevelHierarchy``).

A hierarchy is built from the label *paths* seen in the data, e.g. TREC's
``("LOC", "city")`` or amazon's ``("pet supplies", "dogs", "food")``. Every path has the
same depth ``L``. A class at level ``k`` (0-based) is identified by its full prefix path
``path[: k + 1]``, never by its name alone: amazon has 18 leaf names ("food", "toys", ...)
that occur under several parents, and those are different classes.

Classes are numbered in two ways:

* *level-local* index ``i`` in ``levels[k]`` (sorted, so the numbering does not depend on the
  order of the data);
* *global* index ``level_offsets[k] + i`` into one vector of all ``total_classes`` classes,
  the column layout of ``leaf_to_ancestors`` and ``ancestor_to_descendants``.

The leaves are the classes of the last level, so ``leaf_index(path)`` is simply the
level-local index at level ``L - 1``. Taught in notebook ``07_hierarchical``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["PerLevelHierarchy", "texts_and_paths"]

Path = tuple[str, ...]


class PerLevelHierarchy:
    """Per-level class lists of a fixed-depth label tree.

    Parameters
    ----------
    level_paths
        ``level_paths[k]`` is the sorted list of distinct prefix paths of length ``k + 1``.
        Prefer :meth:`from_paths`; this constructor is what :meth:`from_dict` uses.

    Attributes
    ----------
    depth : int
        Number of levels ``L``.
    level_paths : list[list[tuple[str, ...]]]
        Class identities per level (full prefix paths).
    levels : list[list[str]]
        Display names per level (last element of each prefix path). Names may repeat
        within a level when the same name lives under different parents.
    level_sizes : list[int]
        ``len(levels[k])``.
    level_offsets : list[int]
        Start of level ``k`` in the global class vector; has ``L + 1`` entries, the last one
        is ``total_classes`` so that level ``k`` is ``[offsets[k], offsets[k + 1])``.
    parent : list[list[int]]
        ``parent[k][i]`` is the level-local index at level ``k - 1`` of class ``i`` of level
        ``k``; ``-1`` for the top level (its parent is the implicit root).
    leaves : list[tuple[str, ...]]
        Full paths of the leaves (= ``level_paths[-1]``); the order of the model's outputs.
    leaf_to_ancestors : numpy.ndarray
        ``(n_leaves, total_classes)`` float 0/1: row ``j`` marks leaf ``j`` and every ancestor
        of it (one class per level), in global indices.
    ancestor_to_descendants : numpy.ndarray
        ``(total_classes, total_classes)`` float 0/1: ``[a, d] = 1`` when ``a`` is ``d`` or an
        ancestor of ``d`` (reflexive).
    """

    def __init__(self, level_paths: Sequence[Sequence[Sequence[str]]]):
        if not level_paths:
            raise ValueError("a hierarchy needs at least one level")
        self.level_paths: list[list[Path]] = [
            [tuple(p) for p in level] for level in level_paths
        ]
        self._index: list[dict[Path, int]] = []
        for k, level in enumerate(self.level_paths):
            if not level:
                raise ValueError(f"level {k} has no classes")
            index = {p: i for i, p in enumerate(level)}
            if len(index) != len(level):
                raise ValueError(f"level {k} lists a class twice")
            for p in level:
                if len(p) != k + 1:
                    raise ValueError(f"class {p!r} at level {k} should be a path of length {k + 1}")
            self._index.append(index)
        self.parent: list[list[int]] = [[-1] * len(self.level_paths[0])]
        for k in range(1, self.depth):
            try:
                self.parent.append([self._index[k - 1][p[:-1]] for p in self.level_paths[k]])
            except KeyError as err:
                raise ValueError(f"level {k} has a class whose parent {err} is missing") from None
        self._build_matrices()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_paths(cls, paths: Iterable[Sequence[str]]) -> PerLevelHierarchy:
        """Build the hierarchy from label paths (duplicates are fine; order does not matter).

        Raises
        ------
        ValueError
            If there are no paths, paths have different depths, or a name is empty.
        """
        unique = {tuple(str(x) for x in p) for p in paths}
        if not unique:
            raise ValueError("no label paths given")
        depths = {len(p) for p in unique}
        if len(depths) != 1:
            raise ValueError(
                f"all label paths must have the same depth, got depths {sorted(depths)}"
            )
        depth = depths.pop()
        if depth == 0:
            raise ValueError("label paths must not be empty")
        for p in unique:
            if any(name == "" for name in p):
                raise ValueError(f"empty class name in label path {p!r}")
        level_paths = [sorted({p[: k + 1] for p in unique}) for k in range(depth)]
        return cls(level_paths)

    def _build_matrices(self) -> None:
        n_leaves, total = self.n_leaves, self.total_classes
        self.leaf_to_ancestors = np.zeros((n_leaves, total), dtype=np.float32)  # (n_leaves, total_classes)
        for j, leaf in enumerate(self.leaves):
            for k in range(self.depth):
                self.leaf_to_ancestors[j, self.global_index(leaf[: k + 1])] = 1.0
        self.ancestor_to_descendants = np.eye(total, dtype=np.float32)  # (total_classes, total_classes)
        for k in range(1, self.depth):
            for path in self.level_paths[k]:
                d = self.global_index(path)
                for a_level in range(k):
                    self.ancestor_to_descendants[self.global_index(path[: a_level + 1]), d] = 1.0

    # ------------------------------------------------------------------ sizes
    @property
    def depth(self) -> int:
        return len(self.level_paths)

    @property
    def levels(self) -> list[list[str]]:
        return [[p[-1] for p in level] for level in self.level_paths]

    @property
    def level_sizes(self) -> list[int]:
        return [len(level) for level in self.level_paths]

    @property
    def level_offsets(self) -> list[int]:
        offsets = [0]
        for size in self.level_sizes:
            offsets.append(offsets[-1] + size)
        return offsets

    @property
    def total_classes(self) -> int:
        return sum(self.level_sizes)

    @property
    def leaves(self) -> list[Path]:
        return list(self.level_paths[-1])

    @property
    def n_leaves(self) -> int:
        return len(self.level_paths[-1])

    # ------------------------------------------------------------------ lookups
    def class_index(self, path: Sequence[str]) -> int:
        """Level-local index of the class with prefix path ``path`` (its level is ``len - 1``)."""
        key = tuple(path)
        k = len(key) - 1
        if not 0 <= k < self.depth or key not in self._index[k]:
            raise KeyError(f"unknown class path {key!r}")
        return self._index[k][key]

    def global_index(self, path: Sequence[str]) -> int:
        """Index of the class ``path`` in the global vector of all classes."""
        return self.level_offsets[len(path) - 1] + self.class_index(path)

    def leaf_index(self, path: Sequence[str]) -> int:
        """Index of a full leaf path among :attr:`leaves` (the model's output column).

        Raises
        ------
        KeyError
            If the path is not a leaf of this hierarchy (e.g. a label never seen when the
            hierarchy was built, or a path of the wrong depth).
        """
        key = tuple(path)
        if len(key) != self.depth:
            raise KeyError(
                f"leaf path {key!r} has depth {len(key)}, hierarchy depth is {self.depth}"
            )
        return self.class_index(key)

    def expand(self, leaf_index: int) -> Path:
        """Full path ``(level 0 name, ..., leaf name)`` of leaf number ``leaf_index``."""
        return self.level_paths[-1][leaf_index]

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, (tuple, list)):
            return False
        key = tuple(path)
        return 0 < len(key) <= self.depth and key in self._index[len(key) - 1]

    def __repr__(self) -> str:
        return f"PerLevelHierarchy(depth={self.depth}, level_sizes={self.level_sizes})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PerLevelHierarchy) and self.level_paths == other.level_paths

    __hash__ = None  # mutable-looking container semantics; equality is structural

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        """A JSON-ready dict. The matrices are derived data, so only the classes are stored.

        Keys: ``depth``, ``level_sizes``, ``level_offsets``, ``levels`` (display names),
        ``level_paths`` (lists of names), ``parent``. :meth:`from_dict` rebuilds from
        ``level_paths`` and checks the rest agrees.
        """
        return {
            "depth": self.depth,
            "level_sizes": self.level_sizes,
            "level_offsets": self.level_offsets,
            "levels": self.levels,
            "level_paths": [[list(p) for p in level] for level in self.level_paths],
            "parent": [list(p) for p in self.parent],
        }

    @classmethod
    def from_dict(cls, data: dict) -> PerLevelHierarchy:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on an inconsistent dict."""
        if not isinstance(data, dict) or "level_paths" not in data:
            raise ValueError("hierarchy dict must have a 'level_paths' key (see to_dict())")
        hierarchy = cls(data["level_paths"])
        derived = hierarchy.to_dict()
        for key in ("depth", "level_sizes", "level_offsets", "levels", "parent"):
            if key in data and data[key] != derived[key]:
                raise ValueError(
                    f"hierarchy dict is inconsistent: {key!r} does not match level_paths"
                )
        return hierarchy


def texts_and_paths(records: Iterable[dict]) -> tuple[list[str], list[Path]]:
    """Split hierarchical records ``{"text": str, "path": sequence of str}`` into two lists.

    Raises
    ------
    ValueError
        Naming the record number when a record lacks ``text`` or ``path``.
    """
    texts: list[str] = []
    paths: list[Path] = []
    for i, rec in enumerate(records):
        if "text" not in rec or "path" not in rec:
            raise ValueError(
                f"record {i} needs keys 'text' and 'path', has {sorted(rec)}"
            )
        texts.append(str(rec["text"]))
        paths.append(tuple(rec["path"]))
    return texts, paths
