"""``make lessons``: the lessons with real results, without the wait in class.

Two steps:

1. **runs**: train every run of ``notebooks/lesson_runs.yml`` once into the lessons' cache
   (``notebooks/cache/``, git-ignored), through :func:`mtl_lib.lessons.cached_run`; a run
   already there with the same settings is only loaded;
2. **execute**: run every lesson top to bottom (in ``notebooks/``, as a student would) and write
   the executed copy to ``docs/lessons/``, which the docs render without executing anything.
   Each copy records in its metadata (``mtl_lib``) the SHA-256 of the lesson it was made from,
   the mode, how long it took and when; ``tests/test_lesson_pages.py`` fails when a lesson has
   changed since. Widgets become static (their images and text) for the docs.

::

    python notebooks/make_lessons.py                    # full mode: MiniLM (train once, then fast)
    python notebooks/make_lessons.py --fast             # tiny encoders: placeholder pages, minutes
    python notebooks/make_lessons.py --lessons 05_multi_task_training --execute-only

Fast mode writes placeholders, marked as such at the top of each page: a tiny random
encoder's numbers are meaningless.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS_FILE = HERE / "lesson_runs.yml"
OUT = ROOT / "docs" / "lessons"
CELL_TIMEOUT = 1800  # seconds: a lesson whose run is not in the cache trains in a cell
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
FAST_BANNER = """```{warning}
**Fast-mode placeholder.** This page was executed in fast mode (`MTL_LIB_FAST=1`): a tiny random
encoder trained for a few steps, so every number and plot on it is meaningless. `make lessons`
replaces it with the real outputs (MiniLM).
```"""


def lesson_names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("[0-9][0-9]_*.ipynb"))


def source_hash(nb: nbformat.NotebookNode) -> str:
    """SHA-256 of a lesson's cells (type, source, metadata), what an executed copy is made from.

    Outputs, execution counts and cell ids are left out: stripping outputs or re-pairing the
    notebook with its Markdown does not change it; editing a cell does.
    """
    cells = [[c.cell_type, c.source, c.get("metadata", {})] for c in nb.cells]
    return hashlib.sha256(json.dumps(cells, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# --------------------------------------------------------------------------- step 1: runs
def train_runs(names: list[str] | None, fast: bool) -> list[tuple[str, float]]:
    """Load or train each run (all of the runs file when ``names`` is None); (name, seconds)."""
    from mtl_lib.lessons import cached_run, lesson_runs

    runs = lesson_runs(RUNS_FILE, fast=fast)
    unknown = sorted(set(names or []) - set(runs))
    if unknown:
        raise SystemExit(f"{RUNS_FILE}: no run {unknown[0]!r} (known: {', '.join(runs)})")
    times = []
    for name in names or list(runs):
        start = time.perf_counter()
        cached_run(runs[name])
        times.append((name, time.perf_counter() - start))
    return times


# --------------------------------------------------------------------------- step 2: execute
def execute(name: str, fast: bool, out: Path, run_solutions: bool = False) -> float:
    """Execute one lesson into ``out/<name>.ipynb``; the seconds it took."""
    from nbclient import NotebookClient

    source = nbformat.read(HERE / f"{name}.ipynb", as_version=4)
    nb = nbformat.from_dict(source)
    if run_solutions:  # as papermill injects parameters: a cell after the parameters cell
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        cell = nbformat.v4.new_code_cell("RUN_SOLUTIONS = True")
        cell.metadata["tags"] = ["injected-parameters", "remove-cell"]
        nb.cells.insert(at + 1, cell)
    env = {k: v for k, v in os.environ.items() if k != "MTL_LIB_FAST"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               MPLBACKEND="module://matplotlib_inline.backend_inline")
    if fast:
        env["MTL_LIB_FAST"] = "1"
    start = time.perf_counter()
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute(env=env)
    seconds = time.perf_counter() - start
    static_widgets(nb)
    if fast:
        banner = nbformat.v4.new_markdown_cell(FAST_BANNER)
        banner.metadata["tags"] = ["fast-mode-banner"]
        nb.cells.insert(1, banner)  # under the title
    nb.metadata["mtl_lib"] = {"source_sha256": source_hash(source), "mode": "fast" if fast else "full",
                              "seconds": round(seconds, 1), "solutions_run": run_solutions,
                              "executed": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    nb.metadata.pop("jupytext", None)  # a copy, not one of the paired lesson files
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / f"{name}.ipynb")
    return seconds


def static_widgets(nb: nbformat.NotebookNode) -> None:
    """Replace each widget output by what it showed: its images, texts and inner outputs.

    A page of the docs has no kernel (and ipywidgets' scripts would come from a CDN), so a
    widget there is a static picture of its state when the lesson ran, with a note saying so.
    """
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(output)
                continue
            kind = output["data"].get("text/plain", "widget").split("(")[0].strip()
            note = (f"<p class=\"mtl-widget-note\">Interactive widget <code>{kind}</code>: open the "
                    "notebook in JupyterLab to use it. Here, what it showed when this page was made.</p>")
            outputs.append(nbformat.v4.new_output("display_data", {"text/html": note,
                                                                   "text/plain": f"[{kind}]"}))
            outputs += _widget_outputs(state, view["model_id"])
        cell.outputs = outputs


def _widget_outputs(state: dict, model_id: str, seen: set | None = None) -> list:
    """Static outputs of a widget and its children, depth first."""
    seen = set() if seen is None else seen
    model = state.get(model_id)
    if model is None or model_id in seen:
        return []
    seen.add(model_id)
    name, values = model["model_name"], model["state"]
    if name == "ImageModel":
        data = next((b["data"] for b in model.get("buffers", []) if b.get("path") == ["value"]), "")
        return [nbformat.v4.new_output("display_data", {"image/png": data, "text/plain": "[image]"})] \
            if data and values.get("format", "png") == "png" else []
    if name in ("HTMLModel", "HTMLMathModel") and values.get("value"):
        return [nbformat.v4.new_output("display_data", {"text/html": values["value"],
                                                        "text/plain": "[html]"})]
    if name == "OutputModel":
        return [nbformat.from_dict(o) for o in values.get("outputs", [])]
    out = []
    for child in values.get("children", []):
        out += _widget_outputs(state, child.removeprefix("IPY_MODEL_"), seen)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="tiny encoders: placeholder pages")
    parser.add_argument("--lessons", nargs="+", metavar="NAME", help="execute only these lessons")
    parser.add_argument("--runs", nargs="+", metavar="NAME", help="train only these runs")
    step = parser.add_mutually_exclusive_group()
    step.add_argument("--runs-only", action="store_true", help="only step 1: fill the cache")
    step.add_argument("--execute-only", action="store_true", help="only step 2: execute the lessons")
    parser.add_argument("--run-solutions", action="store_true", help="execute the solutions too")
    parser.add_argument("--out", type=Path, default=OUT, help=f"executed copies (default {OUT})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.lessons or []) - set(lesson_names()))
    if unknown:
        parser.error(f"no lesson {unknown[0]!r} in {HERE} (known: {', '.join(lesson_names())})")
    mode = "fast" if args.fast else "full"
    if not args.execute_only:
        start = time.perf_counter()
        times = train_runs(args.runs, args.fast)
        print(f"\nruns ({mode} mode), cache ready in {time.perf_counter() - start:.0f} s:")
        for name, seconds in times:
            print(f"  {name:28} {seconds:7.0f} s")
    if not args.runs_only:
        start, times = time.perf_counter(), []
        for name in args.lessons or lesson_names():
            print(f"executing {name} ({mode} mode) ...", flush=True)
            times.append((name, execute(name, args.fast, args.out, args.run_solutions)))
        print(f"\nlessons ({mode} mode, cache warm), executed into {args.out} "
              f"in {time.perf_counter() - start:.0f} s:")
        for name, seconds in times:
            print(f"  {name:34} {seconds:6.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
