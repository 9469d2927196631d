"""The one thing pyproject.toml cannot say: the example task files ship inside the package.

``examples/tasks/*.yml`` stay the single source, where people browsing the repository find
them; the wheel installs that folder as the data-only package ``mtl_lib.example_tasks``, so an
installed ``mtl-lib train snips`` finds ``snips.yml`` by name. Everything else is declared in
pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["mtl_lib", "mtl_lib.*"]), "mtl_lib.example_tasks"],
    package_dir={"mtl_lib.example_tasks": "examples/tasks"},
    package_data={"mtl_lib.example_tasks": ["*.yml"]},
)
