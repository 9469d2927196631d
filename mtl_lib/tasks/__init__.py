"""The task layer, plain data and no torch: what a task is, before any model or data exists.

- :mod:`~mtl_lib.tasks.spec`: ``TaskSpec``, one task's settings, each value checked;
- :mod:`~mtl_lib.tasks.task_file`: reading YAML task files safely;
- :mod:`~mtl_lib.tasks.hierarchy`: ``PerLevelHierarchy``, the label tree of hierarchical tasks;
- :mod:`~mtl_lib.tasks.validation`: the one style of "bad option" error.

The package's ``__init__`` imports nothing, so reading one module never drags in another layer.
"""
