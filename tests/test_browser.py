"""JupyterLab in headless Chromium: run notebooks from the Run menu, check widgets and plots.

This is what a student does: open the notebook in JupyterLab, *Run > Run All Cells*, wait.
The test starts JupyterLab on 127.0.0.1 with a random token over a temporary copy of
``notebooks/`` (so autosave cannot write outputs into the committed files), in fast mode
(``MTL_LIB_FAST=1``), drives Debian's Chromium through Playwright, and checks that no cell
failed, that the widget views rendered (live dashboard with its image, experiment panel) and
that the static plots are there. A second test runs ``tests/notebooks/experiment_tools.ipynb``
(two runs compared, the experiment panel with two runs, the error browser), saves it and
checks that the saved file keeps each widget's final picture. Screenshots of the pages and of
the widgets go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
NOTEBOOK = "05_multi_task_training.ipynb"
TOOLS = "experiment_tools.ipynb"  # in tests/notebooks/, copied next to the lessons
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
RUN_TIMEOUT_S = 900  # the whole notebook, fast mode; ~1-2 min on an idle 2-core machine

pytestmark = [pytest.mark.browser, pytest.mark.timeout(RUN_TIMEOUT_S + 300)]


def _chromium() -> str:
    """Path of Debian's chromium; installs it with apt-get when possible (as `make browser-deps`)."""
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True,
                       timeout=900, check=False)
        if Path("/usr/bin/chromium").exists():
            return "/usr/bin/chromium"
    pytest.fail("chromium not found: run `make browser-deps` (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings: Path) -> None:
    """User settings: no news or update pop-ups; every cell kept in the page (no windowing)."""
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for rel, content in files.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(content))


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server over a copy of notebooks/ (and the test notebooks); yields
    (base_url, token, its root directory)."""
    workdir = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", workdir,
                    ignore=shutil.ignore_patterns("runs", "cache", ".ipynb_checkpoints", "__pycache__"))
    for nb in (ROOT / "tests" / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, workdir / nb.name)
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the notebooks read ../examples
    _write_settings(tmp_path / "settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, MTL_LIB_FAST="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir}",
         "--LabApp.news_url=None", "--ServerApp.allow_root=True"],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("JupyterLab did not start:\n" +
                                (tmp_path / "jupyterlab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield base, token, workdir
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_for_kernel(page, base: str, token: str, notebook: str, timeout: float = 180) -> None:
    """Until the notebook's kernel runs on the server and the page shows it idle for 3 s.

    Before its kernel connects, the page's indicator also reads "idle"; running cells then
    would open the kernel-selection dialog.
    """
    deadline, steady = time.monotonic() + timeout, 0
    while steady < 3:
        if time.monotonic() > deadline:
            pytest.fail("the notebook's kernel did not start")
        sessions = json.loads(urllib.request.urlopen(f"{base}/api/sessions?token={token}").read())
        kernel_ready = any(s["path"].endswith(notebook) and s.get("kernel") and
                           s["kernel"]["execution_state"] == "idle" for s in sessions)
        indicator = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count()
        steady = steady + 1 if kernel_ready and indicator else 0
        time.sleep(1)


def _run_all_from_menu(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()


def _progress(page) -> tuple[int, int, int]:
    """(code cells shown, cells with a number in their prompt, cells running or queued).

    A collapsed cell (the exercise's solution) shows no prompt at all: it is not counted.
    """
    prompts = [p for p in page.locator(".jp-CodeCell .jp-InputPrompt").evaluate_all(
        "els => els.map(e => e.textContent)") if p.strip()]
    done = sum(1 for p in prompts if any(ch.isdigit() for ch in p))
    busy = sum(1 for p in prompts if "*" in p)
    return len(prompts), done, busy


def _open_and_run_all(page, base: str, token: str, notebook: str) -> None:
    """Open ``notebook``, wait for its kernel, *Run All Cells*, wait until every cell ran."""
    page.goto(f"{base}/lab/tree/{notebook}?token={token}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    _wait_for_kernel(page, base, token, notebook)
    # no kernel-selection dialog: the notebook names its kernel
    assert page.locator(".jp-Dialog").count() == 0, "a dialog blocks the notebook"
    _run_all_from_menu(page)
    deadline, steady = time.monotonic() + RUN_TIMEOUT_S, 0
    while steady < 3:  # every cell numbered, none queued, kernel idle: 3 polls in a row
        n_cells, done, busy = _progress(page)
        idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count()
        steady = steady + 1 if n_cells and done == n_cells and not busy and idle else 0
        if time.monotonic() > deadline:
            page.screenshot(path=str(ARTIFACTS / f"{Path(notebook).stem[:2]}_timeout.png"))
            pytest.fail(f"timed out: {done} of {n_cells} cells ran, {busy} busy")
        time.sleep(2)
    outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
    failures = [t for t in outputs if "Traceback" in t or "Error displaying widget" in t]
    assert not failures, f"cell errors:\n{failures[0][:3000]}"


def _launch(p):
    return p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)


def test_lesson_05_runs_in_jupyterlab_and_widgets_render(jupyterlab):
    from playwright.sync_api import sync_playwright

    base, token, _ = jupyterlab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("05_*.png"):
        old.unlink()
    with sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _open_and_run_all(page, base, token, NOTEBOOK)
            outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
            # Run All skips the exercise's solution and says how to run it
            assert any("Not run: set RUN_SOLUTIONS = True" in t for t in outputs)
            assert any("FAST MODE" in t and "meaningless" in t for t in outputs)

            # widget views: the dashboard (status + image), the panel (its Run button)
            widgets = page.locator(".jp-OutputArea-output .jupyter-widgets")
            assert widgets.count() >= 2
            boards = page.locator(".jp-OutputArea-output .widget-vbox:has(> .widget-image)")
            assert boards.count() >= 1, "the live dashboard did not render"
            assert page.locator(".jupyter-widgets button", has_text="Run").count() >= 1
            drawn = page.locator(".jp-OutputArea-output .widget-image").evaluate_all(
                "imgs => imgs.filter(i => i.naturalWidth > 100).length")
            assert drawn >= 2, "the dashboards' curves were not drawn"
            # static figures: plot_losses and plot_metrics as PNG outputs
            plots = page.locator(".jp-RenderedImage img").evaluate_all(
                "imgs => imgs.filter(i => i.naturalWidth > 300).length")
            assert plots >= 2, f"expected the loss and metric plots, found {plots} images"

            # screenshots: the dashboard's cell at the top of the page, and each widget
            first_board = boards.first
            first_board.scroll_into_view_if_needed()
            page.evaluate("el => el.closest('.jp-Cell').scrollIntoView({block: 'start'})",
                          first_board.element_handle())
            time.sleep(1)
            page.screenshot(path=str(ARTIFACTS / "05_multi_task_training.png"), full_page=True)
            first_board.screenshot(path=str(ARTIFACTS / "05_live_dashboard.png"))
            panel = page.locator(".jp-OutputArea-output",
                                 has=page.locator("button", has_text="Stop")).last
            panel.scroll_into_view_if_needed()
            panel.screenshot(path=str(ARTIFACTS / "05_experiment_panel.png"))
        finally:
            browser.close()


def _shot(page, locator, name: str) -> None:
    """A screenshot of one output, whole: the notebook scrolls inside the page, so an output
    taller than the window would be cut; the window is made tall enough first."""
    height = locator.bounding_box()["height"]
    page.set_viewport_size({"width": 1400, "height": int(max(1000, height + 300))})
    time.sleep(0.5)
    page.evaluate("el => el.scrollIntoView({block: 'center'})", locator.element_handle())
    time.sleep(1)
    locator.screenshot(path=str(ARTIFACTS / name))
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_run_comparison_and_error_browser_in_jupyterlab(jupyterlab):
    """Two runs compared (table + figure), the panel's comparison of its two runs, the error
    browser on slots; then the notebook is saved and each widget's output keeps a PNG."""
    from playwright.sync_api import sync_playwright

    base, token, workdir = jupyterlab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("tools_*.png"):
        old.unlink()
    with sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _open_and_run_all(page, base, token, TOOLS)

            # compare_runs: an HTML table (differences in pp) with the overlay figure below
            compared = page.locator(".jp-OutputArea-output.jp-RenderedHTMLCommon",
                                    has=page.locator("th", has_text="vs 1st")).first
            text = compared.inner_text()
            assert "runs/lr_low" in text and "runs/lr_high" in text and "classification_accuracy" in text
            assert compared.locator("img").evaluate("i => i.naturalWidth") > 300
            _shot(page, compared, "tools_compare_runs.png")

            # the panel: its two runs named by what changed, compared below its dashboard
            panel = page.locator(".jp-OutputArea-output", has=page.locator("button", has_text="Forget runs"))
            assert panel.count() == 1
            box = panel.locator(".widget-vbox", has=page.locator("b", has_text="Runs of this session")).last
            assert box.is_visible()
            text = box.inner_text()
            assert "weighting=static" in text and "weighting=uncertainty" in text and " pp" in text
            assert box.locator(".widget-image").evaluate("i => i.naturalWidth") > 300
            _shot(page, panel, "tools_experiment_panel.png")
            _shot(page, box, "tools_run_comparison.png")

            # the error browser: spans coloured, errors named, the summary figure drawn
            errors = page.locator(".jp-OutputArea-output",
                                  has=page.locator(".widget-dropdown", has_text="error")).last
            text = errors.inner_text()
            assert "gold:" in text and "pred:" in text and "examples wrong" in text
            assert any(k in text for k in ("missed", "spurious", "wrong type", "wrong boundary"))
            assert errors.locator(".widget-image").first.evaluate("i => i.naturalWidth") > 300
            _shot(page, errors, "tools_error_browser.png")
            page.screenshot(path=str(ARTIFACTS / "tools_experiment_tools.png"), full_page=True)

            # saved, the notebook keeps each widget's final picture next to its view
            page.locator(".jp-NotebookPanel .jp-Cell").first.click()
            page.keyboard.press("Control+s")
            deadline = time.monotonic() + 60
            while True:
                saved = json.loads((workdir / TOOLS).read_text())
                outs = [o for c in saved["cells"] for o in c.get("outputs", []) if o["output_type"] == "display_data"]
                if outs or time.monotonic() > deadline:
                    break
                time.sleep(1)
            views = [o["data"] for o in outs if "application/vnd.jupyter.widget-view+json" in o["data"]]
            assert len(views) == 2, f"expected the panel and the browser, found {len(views)} widget outputs"
            assert all(d.get("image/png") for d in views), "a widget output has no static picture"
        finally:
            browser.close()
