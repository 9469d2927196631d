"""What people look at: static figures (:mod:`~mtl_lib.ui.plots`) and notebook widgets, one per
module — :mod:`~mtl_lib.ui.encoder_picker`, :mod:`~mtl_lib.ui.live_dashboard`,
:mod:`~mtl_lib.ui.class_metrics`, :mod:`~mtl_lib.ui.experiment_panel`.

Widgets are ipywidgets 8 objects whose state notebooks and tests drive directly (set
``.value``, call ``.click()``). ipywidgets is an optional dependency (``pip install
'mtl_lib[notebooks]'``): the widget modules import it and say how to install it when it is
missing; ``plots`` does not need it, and nothing below this layer imports a widget.
"""
