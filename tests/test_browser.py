"""JupyterLab in headless Chromium: run lesson 05 from the Run menu, check widgets and plots.

This is what a student does: open the notebook in JupyterLab, *Run > Run All Cells*, wait.
The test starts JupyterLab on 127.0.0.1 with a random token over a temporary copy of
``notebooks/`` (so autosave cannot write outputs into the committed files), in fast mode
(``MTL_LIB_FAST=1``), drives Debian's Chromium through Playwright, and checks that no cell
failed, that the widget views rendered (live dashboard with its image, experiment panel) and
that the static plots are there. A screenshot of the page and of the two widgets goes to
``test-artifacts/browser/``.
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
    """A JupyterLab server over a copy of notebooks/; yields (base_url, token)."""
    workdir = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", workdir,
                    ignore=shutil.ignore_patterns("runs", "cache", ".ipynb_checkpoints", "__pycache__"))
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
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_for_kernel(page, base: str, token: str, timeout: float = 180) -> None:
    """Until the notebook's kernel runs on the server and the page shows it idle for 3 s.

    Before its kernel connects, the page's indicator also reads "idle"; running cells then
    would open the kernel-selection dialog.
    """
    deadline, steady = time.monotonic() + timeout, 0
    while steady < 3:
        if time.monotonic() > deadline:
            pytest.fail("the notebook's kernel did not start")
        sessions = json.loads(urllib.request.urlopen(f"{base}/api/sessions?token={token}").read())
        kernel_ready = any(s["path"].endswith(NOTEBOOK) and s.get("kernel") and
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


def test_lesson_05_runs_in_jupyterlab_and_widgets_render(jupyterlab):
    from playwright.sync_api import sync_playwright

    base, token = jupyterlab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("05_*.png"):
        old.unlink()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            _wait_for_kernel(page, base, token)
            # no kernel-selection dialog: the notebook names its kernel
            assert page.locator(".jp-Dialog").count() == 0, "a dialog blocks the notebook"
            _run_all_from_menu(page)

            deadline, steady = time.monotonic() + RUN_TIMEOUT_S, 0
            while steady < 3:  # every cell numbered, none queued, kernel idle: 3 polls in a row
                n_cells, done, busy = _progress(page)
                idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count()
                steady = steady + 1 if n_cells and done == n_cells and not busy and idle else 0
                if time.monotonic() > deadline:
                    page.screenshot(path=str(ARTIFACTS / "05_timeout.png"))
                    pytest.fail(f"timed out: {done} of {n_cells} cells ran, {busy} busy")
                time.sleep(2)

            outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
            failures = [t for t in outputs if "Traceback" in t or "Error displaying widget" in t]
            assert not failures, f"cell errors:\n{failures[0][:3000]}"
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
