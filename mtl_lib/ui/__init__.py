"""What people look at: static figures (:mod:`~mtl_lib.ui.plots`) and notebook widgets, one per
module — :mod:`~mtl_lib.ui.encoder_picker`, :mod:`~mtl_lib.ui.live_dashboard`,
:mod:`~mtl_lib.ui.class_metrics`, :mod:`~mtl_lib.ui.experiment_panel`.

Widgets are ipywidgets 8 objects whose state notebooks and tests drive directly (set
``.value``, call ``.click()``); they import ipywidgets, so the rest of mtl_lib never imports
this package.
"""
