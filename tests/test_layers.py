"""The import graph of mtl_lib: every import points down a layer (or stays in its own), no circles.

The table below is the architecture (docs/architecture.rst draws it). A module may import from
its own layer and the layers below, never from above; imports inside functions count too, since
they are how circles usually hide. The task layer must stay importable without torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mtl_lib"

LAYERS = [  # bottom first: (name, module prefixes)
    ("spec", ["tasks", "training.config"]),
    ("data", ["data"]),
    ("models, metrics, decoding", ["models.registry", "models.architectures", "models.encoders", "models.tiny",
                                   "models.heads", "models.losses",
                                   "models.safe_files", "models.legacy", "evaluation.metrics",
                                   "evaluation.hierarchical_metrics", "evaluation.decoding",
                                   "evaluation.baselines", "models", "evaluation"]),
    ("task types", ["task_types"]),
    ("the multi-task model", ["models.multitask"]),
    ("training, evaluation, prediction", ["training", "evaluation.evaluate", "evaluation.predict",
                                          "evaluation.errors", "evaluation.representations"]),
    ("presets", ["experiment", "db_linear", "lessons"]),
    ("ui, cli, public API", ["ui", "cli", ""]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def layer_of(module: str) -> int:
    """The layer of a module: its longest matching prefix in LAYERS."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".") or p == "") and len(p) > best_len:
                best, best_len = i, len(p)
    assert best is not None, f"mtl_lib.{module} is in no layer; add it to LAYERS"
    return best


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """mtl_lib modules that ``path`` imports, anywhere in the file."""
    me = module_name(path)
    package = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif (node.module or "").startswith("mtl_lib"):
                target = node.module[len("mtl_lib"):].lstrip(".")
            else:
                continue
            names = [f"{target}.{a.name}".lstrip(".") for a in node.names]
            found |= {n for n in names if n in modules} or {target}
        elif isinstance(node, ast.Import):
            found |= {a.name[len("mtl_lib"):].lstrip(".") for a in node.names if a.name.startswith("mtl_lib")}
    return {m for m in found if m != me}


GRAPH = {module_name(p): p for p in PACKAGE.rglob("*.py")}
EDGES = {m: imports_of(p, set(GRAPH)) for m, p in GRAPH.items()}


def test_every_module_has_a_layer():
    for m in GRAPH:
        layer_of(m)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    mine = layer_of(module)
    up = [f"{t} ({LAYERS[layer_of(t)][0]})" for t in sorted(EDGES[module]) if layer_of(t) > mine]
    assert not up, f"mtl_lib.{module} ({LAYERS[mine][0]}) imports from a higher layer: {', '.join(up)}"


def test_no_import_circles():
    def reach(start: str) -> set[str]:
        seen, stack = set(), [start]
        while stack:
            for nxt in EDGES.get(stack.pop(), ()):
                if nxt in GRAPH and nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    circles = sorted(m for m in GRAPH if m in reach(m) and GRAPH[m].name != "__init__.py")
    assert not circles, f"modules on an import circle: {circles}"


def test_the_checks_catch_an_upward_import_and_a_circle():
    # the machinery itself: a model module importing the trainer would be caught
    assert layer_of("models.heads") < layer_of("training.trainer")
    assert layer_of("tasks.task_file") == layer_of("training.config") == 0
    assert layer_of("ui.plots") == layer_of("") == len(LAYERS) - 1
    fake = PACKAGE / "models" / "heads.py"
    tree = ast.parse("from ..training.trainer import Trainer\nfrom . import losses\n")
    original = ast.parse
    try:
        ast.parse = lambda _text: tree
        assert imports_of(fake, set(GRAPH)) == {"training.trainer", "models.losses"}
    finally:
        ast.parse = original


def test_the_task_layer_imports_without_torch():
    code = ("import sys, importlib.abc\n"
            "class NoTorch(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch' or name.startswith('torch.'):\n"
            "            raise ImportError('torch is blocked in this test')\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "import mtl_lib.tasks.task_file, mtl_lib.tasks.hierarchy, mtl_lib.training.config\n"
            "tf = mtl_lib.tasks.task_file.parse_tasks({'t': {'task_type': 'NER'}, 'training': {'epochs': 1}})\n"
            "assert 'torch' not in sys.modules\n"
            "print(tf.tasks[0].name)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "t"
