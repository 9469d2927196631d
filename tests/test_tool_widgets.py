"""The experiment tools as widgets, headless (set ``.value``, ``.click()``): the error browser,
the experiment panel's run comparison, and the static PNG each widget leaves in a saved
notebook (checked end to end with a real kernel)."""

from __future__ import annotations

import base64
import html
import io
import re

import nbformat
import pytest
import torch

from mtl_lib.evaluation.errors import error_records, filter_records
from mtl_lib.ui.error_browser import ANY, ErrorBrowser
from mtl_lib.ui.experiment_panel import ExperimentPanel
from mtl_lib.ui.live_dashboard import LiveDashboard

PNG = b"\x89PNG\r\n\x1a\n"
VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- ErrorBrowser ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(trained_run):
    _, trainer = trained_run
    return ErrorBrowser(trainer.model, trainer.groups, "dev", top=5)


def _listed(b: ErrorBrowser) -> list[int]:
    return [int(i) for i in re.findall(r"<tr><td[^>]*>(\d+)</td>", b.listing.value)]


def test_browser_lists_the_worst_first(browser, trained_run):
    _, trainer = trained_run
    assert browser.error is None and list(browser.task_dropdown.options) == ["intent", "slots"]
    records = error_records(trainer.model, trainer.groups, "dev")
    wrong = filter_records(records, "intent", only_errors=True)
    assert [r["index"] for r in browser.rows] == [r["index"] for r in wrong]  # highest loss first
    assert _listed(browser) == [r["index"] for r in wrong[:5]]
    assert f"{len(wrong)} of {len(filter_records(records, 'intent'))} examples wrong" in browser.summary.value
    browser.show.value = "all"
    assert len(browser.rows) == len(filter_records(records, "intent"))
    browser.show.value = "errors"
    assert bytes(browser.picture.value).startswith(PNG)


def test_browser_filters_by_gold_and_predicted_class(browser):
    browser.task_dropdown.value = "intent"
    gold = next(c for c in browser.gold_filter.options if c != ANY and any(c in r["gold_shown"] for r in browser.rows))
    browser.gold_filter.value = gold
    assert browser.rows and all(r["gold_shown"] == [gold] for r in browser.rows)
    pred = browser.rows[0]["pred_shown"][0]
    browser.pred_filter.value = pred
    assert browser.rows and all(r["pred_shown"] == [pred] and r["gold_shown"] == [gold] for r in browser.rows)
    assert f"predicted: <span style=\"color:#c62828\">{html.escape(pred)}</span>" in browser.listing.value
    browser.task_dropdown.value = "slots"  # a new task resets the filters
    assert browser.gold_filter.value == ANY and browser.pred_filter.value == ANY
    browser.task_dropdown.value = "intent"


def test_browser_shows_spans_and_error_kinds_for_tagging(browser):
    browser.task_dropdown.value = "slots"
    kinds = [k for k in browser.kind_filter.options if k != ANY]
    assert kinds and set(kinds) <= {"missed", "spurious", "wrong_type", "wrong_boundary"}
    browser.kind_filter.value = kinds[0]
    assert browser.rows and all(any(e["kind"] == kinds[0] for e in r["errors"]) for r in browser.rows)
    first = browser.rows[0]
    assert "gold: " in browser.listing.value and "pred: " in browser.listing.value
    for s in first["spans"]["gold"]:  # every gold span shaded, with its type
        words = html.escape(" ".join(first["words"][s["start"]:s["end"]]))
        assert re.search(rf">{re.escape(words)}<sub[^>]*> {re.escape(s['type'])}</sub>", browser.listing.value)
    assert kinds[0].replace("_", " ") in browser.listing.value
    browser.kind_filter.value = ANY
    browser.task_dropdown.value = "intent"


HIER = [{"task": "tree", "index": 0, "words": ["a", "dog"], "gold": ("animal", "dog"), "pred": ("animal", "cat"),
         "gold_shown": ["animal > dog"], "pred_shown": ["animal > cat"], "gold_text": "animal > dog",
         "pred_text": "animal > cat", "loss": 2.0, "confidence": 0.6, "correct": False,
         "errors": [{"kind": "wrong_level_2", "level": 1}], "first_wrong_level": 1},
        {"task": "tree", "index": 1, "words": ["an", "oak"], "gold": ("plant", "oak"), "pred": ("plant", "oak"),
         "gold_shown": ["plant > oak"], "pred_shown": ["plant > oak"], "gold_text": "plant > oak",
         "pred_text": "plant > oak", "loss": 0.1, "confidence": 0.9, "correct": True, "errors": [],
         "first_wrong_level": None},
        {"task": "labels", "index": 0, "words": ["x"], "gold": ["a", "b"], "pred": ["b", "c"],
         "gold_shown": ["a", "b"], "pred_shown": ["b", "c"], "gold_text": "a, b", "pred_text": "b, c",
         "loss": 1.0, "confidence": 0.5, "correct": False,
         "errors": [{"kind": "missed", "label": "a"}, {"kind": "spurious", "label": "c"}]}]


def test_browser_on_records_hierarchy_and_multilabel():
    b = ErrorBrowser(records=HIER)
    assert list(b.task_dropdown.options) == ["tree", "labels"]
    assert "animal &gt; <b style=\"color:#c62828\">cat</b>" in b.listing.value
    assert "wrong from level 2" in b.listing.value and _listed(b) == [0]
    b.show.value = "all"
    assert _listed(b) == [0, 1]
    b.task_dropdown.value = "labels"
    assert "missed a" in b.listing.value and "spurious c" in b.listing.value
    assert set(b.kind_filter.options) == {ANY, "missed", "spurious"}


def test_browser_error_is_shown_not_raised(trained_run):
    _, trainer = trained_run
    b = ErrorBrowser(trainer.model, None, "dev")  # no groups
    assert b.error is not None and "TypeError" in b.children[0].value
    assert list(b.task_dropdown.options) == []


# --- ExperimentPanel: every run of the session ------------------------------------------------------

def test_panel_keeps_every_run_and_compares_them():
    panel = ExperimentPanel(encoder="tiny-bert", max_examples=60, steps=6, batch_size=8)
    panel.run()
    assert panel.error is None and len(panel.runs) == 1
    assert panel.comparison() is None and panel.comparison_box.layout.display == "none"
    panel.weighting.value = "uncertainty"
    panel.run()
    assert panel.error is None and len(panel.runs) == 2
    found = panel.comparison()
    assert [r.name for r in found.runs] == ["weighting=static", "weighting=uncertainty"]
    assert panel.comparison_box.layout.display is None
    assert "weighting=uncertainty" in panel.comparison_table.value and " pp<" in panel.comparison_table.value
    assert bytes(panel.comparison_image.value).startswith(PNG)
    assert panel.runs[1].records == panel.history.records  # the latest run is the current one
    snap = panel.snapshot()  # dashboard and comparison, one above the other
    import io

    from PIL import Image
    h_board = Image.open(io.BytesIO(bytes(panel.dashboard.image.value))).size[1]
    h_cmp = Image.open(io.BytesIO(bytes(panel.comparison_image.value))).size[1]
    assert Image.open(io.BytesIO(snap)).size[1] == h_board + h_cmp + 8
    panel.forget_button.click()
    assert panel.runs == [] and panel.comparison_box.layout.display == "none" and panel.forget_button.disabled


# --- static snapshots ----------------------------------------------------------------------------------

def test_snapshot_bundle_has_the_widget_view_and_the_png(browser):
    board = LiveDashboard()
    bundle = board.snapshot_bundle()
    assert VIEW in bundle and "image/png" not in bundle  # nothing drawn yet
    board.image.value = browser.picture.value
    bundle = board.snapshot_bundle()
    assert base64.b64decode(bundle["image/png"]) == bytes(browser.picture.value)
    assert bundle[VIEW]["model_id"] == board.model_id and "widget" in bundle["text/plain"]
    assert base64.b64decode(browser.snapshot_bundle()["image/png"]).startswith(PNG)


NOTEBOOK = [
    "import torch; torch.set_num_threads(1)\n"
    "from mtl_lib import Trainer, build_experiment, snips_tasks\n"
    "from mtl_lib.ui.live_dashboard import LiveDashboard\n"
    "from mtl_lib.ui.error_browser import ErrorBrowser\n"
    "model, groups = build_experiment(snips_tasks(60), encoder='tiny-bert')",
    "board = LiveDashboard(every_n=2, min_interval=0)\nboard",
    "Trainer(model, groups, max_steps=6, batch_size=8, progress=False, callbacks=[board]).fit();",
    "ErrorBrowser(model, groups)",
    "from mtl_lib.ui.experiment_panel import ExperimentPanel\n"
    "panel = ExperimentPanel(encoder='tiny-bert', max_examples=60, steps=4, batch_size=8)\npanel",
    "panel.run();",  # trains in a thread: the snapshot is updated from there
]


@pytest.mark.slow
def test_saved_notebook_keeps_the_final_pictures(tmp_path):
    """Run a notebook with a real kernel: the dashboard's output (displayed before training)
    ends up holding the final curves as PNG, as do the error browser's and the experiment
    panel's (whose run ends in a background thread)."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    (board_out,) = [o for o in nb.cells[1].outputs if o.output_type == "display_data"]
    assert VIEW in board_out.data and "image/png" in board_out.data
    png = base64.b64decode(board_out.data["image/png"])
    import io

    from PIL import Image
    assert png.startswith(PNG) and Image.open(io.BytesIO(png)).size[0] > 400  # the final curves
    assert not [o for o in nb.cells[2].outputs if o.output_type == "display_data"]  # updated in place
    (browser_out,) = [o for o in nb.cells[3].outputs if o.output_type == "display_data"]
    assert base64.b64decode(browser_out.data["image/png"]).startswith(PNG)
    (panel_out,) = [o for o in nb.cells[4].outputs if o.output_type == "display_data"]
    assert base64.b64decode(panel_out.data["image/png"]).startswith(PNG)  # none before the run
    nbformat.write(nb, tmp_path / "executed.ipynb")  # what GitHub would render


def test_explorer_and_picker_snapshots():
    from PIL import Image

    from mtl_lib.ui.class_metrics import ClassMetricsExplorer
    from mtl_lib.ui.encoder_picker import EncoderPicker

    preds = {"intent": {"true": ["a", "b", "b", "c"], "pred": ["a", "b", "c", "c"]}}
    ex = ClassMetricsExplorer.from_predictions(preds)
    png = base64.b64decode(ex.snapshot_bundle()["image/png"])
    sizes = [Image.open(io.BytesIO(bytes(w.value))).size for w in (ex.bars, ex.confusion)]
    assert Image.open(io.BytesIO(png)).size == (max(w for w, _ in sizes), sum(h for _, h in sizes) + 8)
    picker = EncoderPicker("tiny-bert", sample="hello world")
    bundle = picker.snapshot_bundle()
    assert "image/png" not in bundle and VIEW in bundle
    assert bundle["text/html"] == picker.info.value + picker.tokens.value and "2 words" in bundle["text/html"]
