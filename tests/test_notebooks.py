"""The lesson notebooks: committed clean, structured as lessons, and runnable top to bottom.

The structural checks are fast. The execution test (``slow``) runs every notebook with
nbclient in fast mode (``MTL_LIB_FAST=1``: tiny random encoder, few steps), in ``notebooks/``
as the working directory, two kernels at a time (one per CPU core, each single-threaded so
they do not fight over the cores). Executed copies go to ``test-artifacts/notebooks/``.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

import mtl_lib

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts" / "notebooks"
LESSONS = ["00_tour", "01_encoders", "02_heads_and_losses", "03_metrics", "04_single_task_training",
           "05_multi_task_training", "06_sampling_and_loss_weighting",
           "07_hierarchical_classification", "08_save_load_predict"]
CELL_TIMEOUT = 300  # seconds per cell in fast mode; the slowest fast cell takes ~20 s
WORKERS = 2  # notebooks executed at once
NO_MATH = {"08_save_load_predict"}  # checkpoints and inference: no formula to teach


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)


def test_every_lesson_is_there_in_order():
    found = sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.ipynb"))
    assert found == LESSONS


def test_notebooks_are_generated_from_build_script():
    spec = importlib.util.spec_from_file_location("_build", NB_DIR / "_build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert build.main(["--check"]) == 0, "run `python notebooks/_build.py` and commit the result"


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
    if name not in NO_MATH:
        assert any("$$" in m for m in md), "lessons write out their math"
    assert any(re.search(r"^## Summary", m, re.M) for m in md)
    # an exercise, then a "Solution" heading, then the solution in a collapsed code cell
    i = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
             and c.source.startswith("## Exercise"))
    heading, solution = nb.cells[i + 1], nb.cells[i + 2]
    assert heading.cell_type == "markdown" and heading.source.startswith("### Solution")
    assert solution.cell_type == "code" and solution.metadata["jupyter"]["source_hidden"] is True
    # at least one picture: a figure from mtl_lib.ui.plots, matplotlib or a widget
    assert any(re.search(r"\bplot_\w+\(|plt\.|display\(", c.source) for c in code)


@pytest.mark.parametrize("name", LESSONS)
def test_notebook_uses_the_library_without_redefining_it(name):
    public = set(mtl_lib.__all__) | {"EncoderPicker", "LiveDashboard", "ClassMetricsExplorer",
                                     "ExperimentPanel", "DB_Linear", "PerLevelHierarchy"}
    for cell in _read(name).cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                assert node.name not in public, f"{name} redefines mtl_lib's {node.name}"
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mtl_lib"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{name} imports private names {private}"


# ------------------------------------------------------------------ execution (slow)
_results: dict[str, tuple[float, str | None]] = {}
_lock = threading.Lock()


def _execute(name: str) -> tuple[float, str | None]:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = _read(name)
    env = dict(os.environ, MTL_LIB_FAST="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               MPLBACKEND="module://matplotlib_inline.backend_inline")
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
def executed(request):
    """Run every notebook selected in this session, WORKERS at a time; {name: (s, error)}."""
    wanted = sorted({item.callspec.params["name"] for item in request.session.items
                     if item.originalname == "test_notebook_runs_in_fast_mode"})
    with _lock:
        todo = [n for n in wanted if n not in _results]
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for name, result in zip(todo, pool.map(_execute, todo)):
                _results[name] = result
    return _results


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", LESSONS)
def test_notebook_runs_in_fast_mode(name, executed):
    seconds, error = executed[name]
    print(f"{name}: {seconds:.0f} s")
    assert error is None, f"{name} failed after {seconds:.0f} s:\n{error}"
