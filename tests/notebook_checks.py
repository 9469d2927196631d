"""Does a notebook redefine or copy library code? Helpers for ``tests/test_notebooks.py``.

Lessons import mtl_lib; they must never carry their own version of it, because a copy drifts
from the library and then teaches something the library no longer does. Three checks:

* **names**: no ``def`` or ``class`` in a notebook has the name of a module-level function or
  class anywhere in ``mtl_lib`` (public or private), and no name imported from mtl_lib is
  assigned to again (``plot_losses = ...``), nor an attribute of an mtl_lib module
  (``mtl_lib.ui.plots.plot_losses = ...``: monkey-patching);
* **copies**: no notebook contains the statements of a library function, even renamed. Each
  statement is reduced to its syntax tree with the names the code binds itself (variables,
  arguments) replaced by their order of appearance (``total = f(x)`` and ``s = f(y)`` both
  become ``v0 = f(v1)``; the functions, modules, attributes and constants it uses stay); a
  library function with at
  least ``MIN_STATEMENTS`` substantial statements is a copy when ``COPY_SHARE`` of them appear,
  in order, in one notebook cell.
"""

from __future__ import annotations

import ast
import copy
import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mtl_lib"
MIN_STATEMENTS = 4  # shorter functions are too generic to call a match a copy
MIN_NODES = 6  # statements smaller than this (``i += 1``, ``return x``) carry no signature
COPY_SHARE = 0.75


@dataclass(frozen=True)
class LibraryFunction:
    where: str  # "mtl_lib/evaluation/decoding.py:viterbi_decode"
    statements: tuple[str, ...]  # fingerprints of its substantial statements, in order


class _Rename(ast.NodeTransformer):
    """Replace the unit's own names (its variables and arguments) by v0, v1, ... in order of
    appearance; names it only reads (functions, modules, globals) stay, they are the signature."""

    def __init__(self, local: set[str]) -> None:
        self.local, self.names = local, {}

    def _new(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}") if name in self.local else name

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(id=self._new(node.id), ctx=node.ctx), node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return ast.copy_location(ast.arg(arg=self._new(node.arg), annotation=None), node)


def _local_names(nodes: list[ast.AST]) -> set[str]:
    """Names a unit of code binds: assigned variables, loop targets, arguments, ``as`` names."""
    out = set()
    for node in (n for top in nodes for n in ast.walk(top)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            out.add(node.id)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            out.add(node.name)
    return out


def _flatten(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements in reading order; a compound statement counts as its header, then its body."""
    out: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
                and isinstance(stmt.value.value, str):
            continue  # docstrings and bare strings are prose, not code
        children = [f for f in ("body", "orelse", "finalbody", "handlers") if getattr(stmt, f, None)]
        if children and not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            header = type(stmt)(**{f: getattr(stmt, f) for f in stmt._fields if f not in children})
            for f in children:
                setattr(header, f, [])
            out.append(header)
            for f in children:
                nested = getattr(stmt, f)
                if f == "handlers":
                    nested = [s for h in nested for s in h.body]
                out += _flatten(nested)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out += _flatten(stmt.body)
        else:
            out.append(stmt)
    return out


def _fingerprints(body: list[ast.stmt], args: ast.arguments | None = None) -> tuple[str, ...]:
    local = _local_names([*body, *([args] if args else [])])
    prints = []
    for stmt in _flatten(body):
        if sum(1 for _ in ast.walk(stmt)) < MIN_NODES:
            continue
        renamed = _Rename(local).visit(copy.deepcopy(stmt))
        prints.append(hashlib.sha1(ast.dump(renamed).encode()).hexdigest()[:16])
    return tuple(prints)


def library_names() -> dict[str, str]:
    """Every module-level function and class of mtl_lib -> the file that defines it."""
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names[node.name] = str(path.relative_to(PACKAGE.parent))
    return names


def library_functions() -> list[LibraryFunction]:
    """Every function and method of mtl_lib long enough to recognise a copy of."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                prints = _fingerprints(node.body, node.args)
                if len(prints) >= MIN_STATEMENTS:
                    out.append(LibraryFunction(f"{path.relative_to(PACKAGE.parent)}:{node.name}", prints))
    return out


def copied_function(source: str, functions: list[LibraryFunction]) -> str | None:
    """The library function whose statements ``source`` (one cell) contains, if any."""
    cell = _fingerprints(ast.parse(source).body)
    for fn in functions:
        matcher = difflib.SequenceMatcher(None, fn.statements, cell, autojunk=False)
        found = sum(block.size for block in matcher.get_matching_blocks())
        if found >= COPY_SHARE * len(fn.statements):
            return fn.where
    return None


def redefinitions(cells: list[str], names: dict[str, str]) -> list[str]:
    """What a notebook's code cells redefine or rebind of mtl_lib, as readable messages."""
    trees = [ast.parse(source) for source in cells]
    imported, modules = set(), set()
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mtl_lib"):
            imported |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            modules |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("mtl_lib")}
    problems = []
    for i, node in ((i, n) for i, tree in enumerate(trees) for n in ast.walk(tree)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                and node.name in names and not node.name.startswith("__"):
            problems.append(f"code cell {i}: defines {node.name}, which {names[node.name]} defines")
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For)) else []
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store) and t.id in imported:
                    problems.append(f"code cell {i}: assigns to {t.id}, imported from mtl_lib")
                if isinstance(t, ast.Attribute) and isinstance(t.ctx, ast.Store):
                    root = t.value
                    while isinstance(root, ast.Attribute):
                        root = root.value
                    if isinstance(root, ast.Name) and root.id in modules:
                        problems.append(f"code cell {i}: patches {ast.unparse(t)}")
    return problems
