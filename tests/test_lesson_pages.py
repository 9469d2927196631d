"""The lessons as the docs show them: executed copies in ``docs/lessons/``, written by
``make lessons`` (``notebooks/make_lessons.py``) and rendered without executing anything.

Fast checks: every lesson has an executed copy, made from the lesson as it is now (a hash of
its cells), in full mode (MiniLM) within the time budget, with its outputs and plots; no
widget is left that a page without a kernel could not show. Slow: the fast variant of
``make lessons`` on one run and one lesson, from an empty cache.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
PAGES = ROOT / "docs" / "lessons"
LESSONS = sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.ipynb"))

_spec = importlib.util.spec_from_file_location("make_lessons", NB_DIR / "make_lessons.py")
make_lessons = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_lessons)


def _copy(name: str) -> nbformat.NotebookNode:
    return nbformat.read(PAGES / f"{name}.ipynb", as_version=4)


def _outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def test_every_lesson_has_an_executed_copy():
    assert len(LESSONS) == 9
    assert sorted(p.stem for p in PAGES.glob("*.ipynb")) == LESSONS


@pytest.mark.parametrize("name", LESSONS)
def test_executed_copy_was_made_from_the_lesson_as_it_is(name):
    recorded = _copy(name).metadata["mtl_lib"]["source_sha256"]
    current = make_lessons.source_hash(nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4))
    assert recorded == current, (
        f"notebooks/{name}.ipynb changed since docs/lessons/{name}.ipynb was executed: run "
        f"`make lessons` (with the cache warm: python notebooks/make_lessons.py --execute-only "
        f"--lessons {name})")


def test_all_lessons_fit_the_15_minute_budget():
    assert sum(_copy(name).metadata["mtl_lib"]["seconds"] for name in LESSONS) <= 15 * 60


def test_the_hash_sees_edits_and_ignores_outputs():
    nb = nbformat.read(NB_DIR / "05_multi_task_training.ipynb", as_version=4)
    before = make_lessons.source_hash(nb)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="hello")]
    code.execution_count, code.id = 3, "another-id"
    assert make_lessons.source_hash(nb) == before  # executing or re-pairing changes nothing
    code.source += "\n# edited"
    assert make_lessons.source_hash(nb) != before
    code.source = code.source.removesuffix("\n# edited")
    code.metadata["tags"] = []
    assert make_lessons.source_hash(nb) != before


@pytest.mark.parametrize("name", LESSONS)
def test_executed_copy_shows_outputs_and_plots(name):
    nb = _copy(name)
    meta = nb.metadata["mtl_lib"]
    # the pages in the docs are the real lessons (MiniLM, `make lessons`), each within its
    # 3-minute budget on 2 cores with the cache warm; fast placeholders are for checkouts only
    assert meta["mode"] == "full", f"docs/lessons/{name}.ipynb is a fast placeholder: run `make lessons`"
    assert 0 < meta["seconds"] <= 180
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every cell ran"
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the lesson's plots are in the copy"
    # widgets need a kernel: the copy shows what they showed, as images and text
    assert "widgets" not in nb.metadata
    assert not [o for o in outputs if make_lessons.WIDGET_VIEW in o.get("data", {})]
    assert not [c for c in nb.cells if "fast-mode-banner" in c.metadata.get("tags", [])]


def test_widgets_become_their_images_and_texts():
    png = "iVBORw0KGgo="
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("board")
    cell.outputs = [nbformat.v4.new_output("display_data", {
        make_lessons.WIDGET_VIEW: {"model_id": "box", "version_major": 2, "version_minor": 0},
        "text/plain": "LiveDashboard(children=...)"})]
    nb.cells = [cell]
    nb.metadata["widgets"] = {make_lessons.WIDGET_STATE: {"state": {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_html", "IPY_MODEL_img"]}},
        "html": {"model_name": "HTMLModel", "state": {"value": "<b>step 10</b>"}},
        "img": {"model_name": "ImageModel", "state": {"format": "png"},
                "buffers": [{"path": ["value"], "data": png, "encoding": "base64"}]}}}}
    make_lessons.static_widgets(nb)
    kinds = [list(o["data"]) for o in cell.outputs]
    assert "LiveDashboard" in cell.outputs[0]["data"]["text/html"]
    assert cell.outputs[1]["data"]["text/html"] == "<b>step 10</b>"
    assert cell.outputs[2]["data"]["image/png"] == png
    assert all(make_lessons.WIDGET_VIEW not in k for k in kinds) and "widgets" not in nb.metadata


@pytest.mark.slow
def test_make_lessons_fast_trains_the_run_once_and_the_lesson_loads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_LIB_LESSON_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "pages"
    assert make_lessons.main(["--fast", "--runs", "04_intent", "--lessons", "04_single_task_training",
                              "--out", str(out)]) == 0
    stored = json.loads((tmp_path / "cache" / "fast" / "04_intent" / "run.json").read_text())
    assert stored["settings"]["training"]["max_steps"] == 150
    nb = nbformat.read(out / "04_single_task_training.ipynb", as_version=4)
    text = "".join(o.get("text", "") for o in _outputs(nb))
    assert "04_intent: loaded from" in text and "training it now" not in text
    assert "Not run: set RUN_SOLUTIONS = True" in text  # like Run All: the solution is skipped
    assert nb.metadata["mtl_lib"]["source_sha256"] == make_lessons.source_hash(
        nbformat.read(NB_DIR / "04_single_task_training.ipynb", as_version=4))
    assert nb.metadata["mtl_lib"]["mode"] == "fast"
    banner = [c for c in nb.cells if "fast-mode-banner" in c.metadata.get("tags", [])]
    assert banner and nb.cells.index(banner[0]) == 1 and "meaningless" in banner[0].source
    assert any("Interactive widget <code>LiveDashboard</code>" in o.get("data", {}).get("text/html", "")
               for o in _outputs(nb))


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(900)
def test_rendered_lesson_pages_show_their_plots_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright
    from test_browser import ARTIFACTS, CHROMIUM_ARGS, _chromium
    from test_docs import _build, _copy_docs

    out = tmp_path / "html"
    result = _build(_copy_docs(tmp_path), out)
    assert result.returncode == 0, result.stderr[-3000:]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for name in ("05_multi_task_training", "06_sampling_and_loss_weighting",
                         "07_hierarchical_classification"):
                page.goto((out / "lessons" / f"{name}.html").as_uri(), wait_until="load")
                sizes = page.locator("div.cell_output img").evaluate_all(
                    "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
                assert len(sizes) >= 2 and min(sizes) > 100, f"{name}: plots not drawn: {sizes}"
                nav = page.locator(".sidebar-tree a").all_inner_texts()
                assert sum(1 for t in nav if t[:2].isdigit()) == len(LESSONS), "lessons in the navigation"
                page.screenshot(path=str(ARTIFACTS / f"docs_{name}.png"))
                page.locator("div.cell_output img").first.scroll_into_view_if_needed()
                page.screenshot(path=str(ARTIFACTS / f"docs_{name}_plot.png"))
        finally:
            browser.close()
