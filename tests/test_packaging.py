"""Installing anywhere, the fast part: example task files by name, the data root outside a
checkout, the optional notebook extra. The wheel itself is built and run in tests/test_install.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mtl_lib.data.files as files
from mtl_lib.cli import main
from mtl_lib.experiment import load_task_file
from mtl_lib.tasks.examples import example_task_files, resolve_task_file
from mtl_lib.tasks.spec import TaskFileError

ROOT = Path(__file__).resolve().parents[1]


def test_example_task_files_are_found_by_name(tmp_path, monkeypatch):
    examples = example_task_files()
    assert set(examples) == {p.stem for p in (ROOT / "examples" / "tasks").glob("*.yml")} >= {"snips"}
    monkeypatch.chdir(tmp_path)  # not from the current directory: from the package
    for name in ("snips", "snips.yml"):
        assert resolve_task_file(name) == ROOT / "examples" / "tasks" / "snips.yml"
    assert load_task_file("snips").source == str(ROOT / "examples" / "tasks" / "snips.yml")
    (tmp_path / "snips").write_text("mine: {task_type: classification, path: x}\n")
    assert resolve_task_file("snips") == Path("snips")  # a file of that name wins
    names = ", ".join(sorted(examples))
    with pytest.raises(TaskFileError, match=rf"nope.yml: task file not found \(example task files, usable "
                                            rf"by name: {names}\)"):
        resolve_task_file("nope.yml")
    with pytest.raises(TaskFileError, match="task file not found"):
        resolve_task_file("somewhere/snips")  # a path is never swapped for an example


def test_outside_a_checkout_the_data_root_says_how_to_get_the_data(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("MTL_LIB_DATA", raising=False)
    monkeypatch.setattr(files, "source_checkout", lambda: None)
    with pytest.raises(FileNotFoundError) as err:
        files.data_root()
    msg = str(err.value)
    for needle in ("installed outside its repository", "MTL_LIB_DATA", "snips/, conll2003/", "'The data'"):
        assert needle in msg
    rc = main(["train", "snips", "--out", str(tmp_path / "run"), "--encoder", "tiny-bert"])
    err_lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err_lines) == 1 and "MTL_LIB_DATA" in err_lines[0]


def test_pyproject_keeps_jupyter_in_the_notebooks_extra():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [r.split(">")[0].split("=")[0].strip() for r in project["dependencies"]]
    assert "jupyterlab" not in names and "ipywidgets" not in names
    assert {"ipywidgets>=8", "jupyterlab>=4"} <= set(project["optional-dependencies"]["notebooks"])
    assert "dev,notebooks" in (ROOT / "Makefile").read_text()  # make demo / make test install both


def test_widgets_without_ipywidgets_say_how_to_install_them():
    # in a fresh interpreter, where None in sys.modules makes `import ipywidgets` fail as a
    # missing package does; the figures the command line saves (ui.plots) still import
    code = ("import sys; sys.modules['ipywidgets'] = None; import mtl_lib.ui.plots\n"
            "try:\n    import mtl_lib.ui.encoder_picker\nexcept ModuleNotFoundError as err:\n    print(err)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "pip install 'mtl_lib[notebooks]'" in out.stdout
