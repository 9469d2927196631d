"""The lesson notebooks: paired with their Markdown, committed clean, structured as lessons,
free of copies of the library, and runnable top to bottom.

Each lesson is two files kept in step by jupytext: ``NN_name.ipynb`` (opened in JupyterLab,
committed without outputs) and ``NN_name.md`` (MyST Markdown, reviewed in diffs). The
structural checks are fast. The execution test (``slow``) runs every notebook with nbclient in
fast mode (``MTL_LIB_FAST=1``: tiny random encoder, few steps), in ``notebooks/`` as the
working directory, two kernels at a time (one per CPU core, each single-threaded so they do not
fight over the cores). Executed copies go to ``test-artifacts/notebooks/``.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jupytext
import nbformat
import notebook_checks
import pytest
from jupytext.compare import NotebookDifference, compare_notebooks

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts" / "notebooks"
LESSONS = ["00_tour", "01_encoders", "02_heads_and_losses", "03_metrics", "04_single_task_training",
           "05_multi_task_training", "06_sampling_and_loss_weighting",
           "07_hierarchical_classification", "08_save_load_predict"]
CELL_TIMEOUT = 300  # seconds per cell in fast mode; the slowest fast cell takes ~20 s
WORKERS = 2  # notebooks executed at once
NO_MATH = {"08_save_load_predict"}  # checkpoints and inference: no formula to teach
PAIRING = "ipynb,md:myst"


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_every_lesson_is_there_in_order():
    assert sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.ipynb")) == LESSONS
    assert sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.md")) == LESSONS
    assert not (NB_DIR / "_build.py").exists(), "the lessons are edited as notebooks now"


def test_jupytext_pairs_every_notebook_in_the_folder():
    config = (NB_DIR / "jupytext.toml").read_text(encoding="utf-8")
    assert re.search(rf'^formats = "{re.escape(PAIRING)}"$', config, re.M)


@pytest.mark.parametrize("name", LESSONS)
def test_notebook_and_markdown_are_in_sync(name):
    nb = _read(name)
    assert nb.metadata["jupytext"]["formats"] == PAIRING
    text = jupytext.read(NB_DIR / f"{name}.md")
    assert text.metadata["jupytext"]["formats"] == PAIRING
    try:  # cell by cell: type, source and metadata (tags, the collapsed solution)
        compare_notebooks(text, nb, fmt="md:myst")
    except NotebookDifference as err:
        pytest.fail(f"{name}.md and {name}.ipynb differ; run `jupytext --sync notebooks/{name}.ipynb`"
                    f"\n{str(err)[:1500]}")


def test_the_sync_check_sees_an_edit(tmp_path):
    nb = _read("05_multi_task_training")
    text = jupytext.read(NB_DIR / "05_multi_task_training.md")
    compare_notebooks(text, nb, fmt="md:myst")
    text.cells[1].source += "\nAn edit made in the Markdown file only."
    with pytest.raises(NotebookDifference):
        compare_notebooks(text, nb, fmt="md:myst")
    text = jupytext.read(NB_DIR / "05_multi_task_training.md")
    text.cells[-1].metadata = {}  # the solution no longer collapsed
    with pytest.raises(NotebookDifference):
        compare_notebooks(text, nb, fmt="md:myst")


@pytest.mark.parametrize("name", LESSONS)
def test_committed_notebook_is_clean(name):
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"  # no kernel dialog in JupyterLab
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs: strip them before committing"
            assert cell.execution_count is None, f"cell {i} has an execution count"


@pytest.mark.parametrize("name", LESSONS)
def test_notebook_is_a_lesson(name):
    nb = _read(name)
    md = [c.source for c in nb.cells if c.cell_type == "markdown"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    # title, learning goals and measured times come first
    assert md[0].startswith(f"# {name[:2]} ")
    assert "**Learning goals.**" in md[0] and "fast mode" in md[0] and "full mode" in md[0]
    # the papermill parameters cell is the first code cell and has the fast switch
    assert "parameters" in code[0].metadata.get("tags", [])
    assert 'FAST = os.environ.get("MTL_LIB_FAST") == "1"' in code[0].source
    assert re.search(r"^RUN_SOLUTIONS = False\b", code[0].source, re.M)
    if name not in NO_MATH:
        assert any("$$" in m for m in md), "lessons write out their math"
    assert any(re.search(r"^## Summary", m, re.M) for m in md)
    # an exercise, then a "Solution" heading, then the solution in a collapsed code cell
    i = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
             and c.source.startswith("## Exercise"))
    heading, solution = nb.cells[i + 1], nb.cells[i + 2]
    assert heading.cell_type == "markdown" and heading.source.startswith("### Solution")
    assert solution.cell_type == "code" and solution.metadata["jupyter"]["source_hidden"] is True
    assert _solution_is_switched_off(solution.source), "the solution must run only if RUN_SOLUTIONS"
    # at least one picture: a figure from mtl_lib.ui.plots, matplotlib or a widget
    assert any(re.search(r"\bplot_\w+\(|plt\.|display\(", c.source) for c in code)


def _solution_is_switched_off(source: str) -> bool:
    """The whole cell is ``if not RUN_SOLUTIONS: print(<a hint naming the switch>) else: ...``."""
    body = ast.parse(source).body
    stmt = body[0] if len(body) == 1 else None
    if not (isinstance(stmt, ast.If) and ast.unparse(stmt.test) == "not RUN_SOLUTIONS" and stmt.orelse):
        return False
    hint = stmt.body[0] if len(stmt.body) == 1 else None
    return isinstance(hint, ast.Expr) and ast.unparse(hint.value).startswith("print(") \
        and "RUN_SOLUTIONS = True" in ast.unparse(hint.value)


def test_the_solution_check_sees_a_solution_that_always_runs():
    assert _solution_is_switched_off(
        "if not RUN_SOLUTIONS:\n    print('Not run: set RUN_SOLUTIONS = True')\nelse:\n    x = 1")
    assert not _solution_is_switched_off("x = 1")
    assert not _solution_is_switched_off("if RUN_SOLUTIONS:\n    x = 1")  # no hint
    assert not _solution_is_switched_off(
        "if not RUN_SOLUTIONS:\n    print('Not run: set RUN_SOLUTIONS = True')\nelse:\n    x = 1\ny = 2")


# A cell that shows what a trained model scores or predicts; in fast mode those numbers come
# from a tiny random encoder, and the cell must say so (fast_mode_note prints one line).
RESULT = re.compile(r"\b(last_metrics|evaluate|plot_metrics|plot_per_class|plot_confusion_matrix|"
                    r"hierarchical_metrics)\(|\.predict\(")


@pytest.mark.parametrize("name", LESSONS)
def test_fast_mode_results_say_they_are_meaningless(name):
    for i, source in enumerate(_code(_read(name))):
        if RESULT.search(source) and "def " not in source.split("\n")[0]:
            assert "fast_mode_note(FAST)" in source, f"{name}, code cell {i}: call fast_mode_note(FAST)"


# ------------------------------------------------------------------ no copy of the library
_NAMES = notebook_checks.library_names()
_FUNCTIONS = notebook_checks.library_functions()


@pytest.mark.parametrize("name", LESSONS)
def test_notebook_uses_the_library_without_redefining_it(name):
    cells = _code(_read(name))
    assert notebook_checks.redefinitions(cells, _NAMES) == []
    for i, source in enumerate(cells):
        copied = notebook_checks.copied_function(source, _FUNCTIONS)
        assert copied is None, f"{name}, code cell {i}: a copy of {copied}; import it instead"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mtl_lib"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{name} imports private names {private}"


def test_the_copy_checks_catch_renamed_and_inlined_copies():
    from mtl_lib.evaluation import decoding
    from mtl_lib.models import losses

    names, functions = _NAMES, _FUNCTIONS
    # a library name defined again, a library name rebound, a library module patched
    assert notebook_checks.redefinitions(["def plot_losses(h):\n    pass"], names)
    assert notebook_checks.redefinitions(["from mtl_lib import evaluate", "evaluate = print"], names)
    assert notebook_checks.redefinitions(["import mtl_lib.ui.plots", "mtl_lib.ui.plots.plot_losses = print"],
                                         names)
    assert notebook_checks.redefinitions(["def fresh_encoder():\n    pass", "x = 1"], names) == []
    # a whole function pasted under another name, with every variable renamed
    tree = ast.parse(textwrap.dedent(inspect.getsource(decoding.viterbi_decode)))
    local = notebook_checks._local_names([tree])
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in local:
            node.id += "_mine"
        elif isinstance(node, ast.arg):
            node.arg += "_mine"
    tree.body[0].name = "decode_tags"
    assert notebook_checks.copied_function(ast.unparse(tree), functions) == \
        "mtl_lib/evaluation/decoding.py:viterbi_decode"
    # the body of a function pasted into a cell, its arguments set by hand above it
    fn = ast.parse(textwrap.dedent(inspect.getsource(losses.class_weights))).body[0]
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    cell = "label_ids, num_classes, scheme = [0, 1, 1], 2, 'inverse_frequency'\n" + \
        ast.unparse(ast.Module(body=body, type_ignores=[])).replace("return ", "weights = ")
    assert notebook_checks.copied_function(cell, functions) == "mtl_lib/models/losses.py:class_weights"
    # using the library is not copying it
    assert notebook_checks.copied_function(
        "from mtl_lib.models.losses import class_weights\nw = class_weights([0, 1], 2)", functions) is None


# ------------------------------------------------------------------ execution (slow)
_results: dict[str, tuple[float, str | None]] = {}
_lock = threading.Lock()


def with_parameters(nb: nbformat.NotebookNode, **values) -> nbformat.NotebookNode:
    """A copy of ``nb`` with a cell setting ``values`` right after the parameters cell, as
    papermill injects parameters."""
    nb = nbformat.from_dict(nb)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, cell)
    return nb


def _execute(name: str, cache: Path) -> tuple[float, str | None]:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    # the solutions run too (Run All skips them), so that CI sees them work
    nb = with_parameters(_read(name), RUN_SOLUTIONS=True)
    env = dict(os.environ, MTL_LIB_FAST="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               MPLBACKEND="module://matplotlib_inline.backend_inline",
               MTL_LIB_LESSON_CACHE=str(cache))  # empty at first: the lessons train their runs
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(NB_DIR)}})
    start, error = time.perf_counter(), None
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError) as err:
        error = str(err)[-4000:]
    seconds = time.perf_counter() - start
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, ARTIFACTS / f"{name}.ipynb")
    return seconds, error


@pytest.fixture(scope="module")
def executed(request, tmp_path_factory):
    """Run every notebook selected in this session, WORKERS at a time; {name: (s, error)}."""
    wanted = sorted({item.callspec.params["name"] for item in request.session.items
                     if item.originalname == "test_notebook_runs_in_fast_mode"})
    cache = tmp_path_factory.mktemp("lesson_cache")
    with _lock:
        todo = [n for n in wanted if n not in _results]
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for name, result in zip(todo, pool.map(lambda n: _execute(n, cache), todo)):
                _results[name] = result
    return _results


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", LESSONS)
def test_notebook_runs_in_fast_mode(name, executed):
    seconds, error = executed[name]
    print(f"{name}: {seconds:.0f} s")
    assert error is None, f"{name} failed after {seconds:.0f} s:\n{error}"
    nb = nbformat.read(ARTIFACTS / f"{name}.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Not run: set RUN_SOLUTIONS" not in text, "the injected RUN_SOLUTIONS = True did not reach it"
    if any(RESULT.search(c.source) for c in nb.cells if c.cell_type == "code"):
        assert "meaningless" in text, "a fast-mode result was shown without saying it is meaningless"
