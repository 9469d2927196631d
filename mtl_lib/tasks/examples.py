"""The example task files, found by name: ``mtl-lib train snips`` reads ``snips.yml``.

``examples/tasks/`` in the repository is the one source of these files. A source checkout
(or an editable install) reads them there; a wheel carries the same files as the data-only
package ``mtl_lib.example_tasks`` (``setup.py`` maps that folder into it), so an installed
mtl_lib finds them without the repository.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .spec import TaskFileError

__all__ = ["example_task_files", "resolve_task_file", "source_checkout"]

EXAMPLES_PACKAGE = "mtl_lib.example_tasks"


def source_checkout() -> Path | None:
    """The repository holding this copy of mtl_lib, or None for an installed package."""
    repo = Path(__file__).resolve().parents[2]  # mtl_lib/tasks/examples.py -> repo
    return repo if (repo / "pyproject.toml").is_file() and (repo / "mtl_lib").is_dir() else None


def _examples_dir() -> Path | None:
    repo = source_checkout()
    if repo is not None and (repo / "examples" / "tasks").is_dir():
        return repo / "examples" / "tasks"
    try:
        spec = importlib.util.find_spec(EXAMPLES_PACKAGE)
    except ModuleNotFoundError:
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def example_task_files() -> dict[str, Path]:
    """``{name: path}`` of the example task files (``{"snips": .../snips.yml, ...}``)."""
    folder = _examples_dir()
    return {p.stem: p for p in sorted(folder.glob("*.yml"))} if folder is not None else {}


def resolve_task_file(path: str | Path) -> Path:
    """``path`` when it exists; else, for a bare name (``snips`` or ``snips.yml``), the example
    task file of that name.

    Raises
    ------
    TaskFileError
        Nothing there, naming the example task files that can be given by name.
    """
    path = Path(path)
    if path.exists():
        return path
    examples = example_task_files()
    if len(path.parts) == 1:
        name = path.name[:-4] if path.suffix == ".yml" else path.name
        if name in examples:
            return examples[name]
    known = ", ".join(examples) or "none found"
    raise TaskFileError(f"{path}: task file not found (example task files, usable by name: {known})")
