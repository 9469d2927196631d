"""What the widgets share: figures as PNG bytes, HTML tables and the red error box.

Widgets show figures as PNG bytes in a ``widgets.Image``: replacing the image's value redraws
in place, without the flicker (and the wiped cell) of ``clear_output``. Errors are caught and
shown inside the widget as a red box, never raised into the kernel.
"""

from __future__ import annotations

import html
import io

try:
    import ipywidgets as W
except ModuleNotFoundError as err:  # a plain `pip install mtl_lib` leaves the notebook extras out
    if err.name != "ipywidgets":
        raise
    raise ModuleNotFoundError("mtl_lib's widgets (mtl_lib.ui) need ipywidgets, which a plain "
                              "`pip install mtl_lib` leaves out: pip install 'mtl_lib[notebooks]' "
                              "(ipywidgets and JupyterLab)", name="ipywidgets") from None

__all__ = ["CELL_STYLE", "W", "error_html", "html_table", "image", "png_bytes"]

CELL_STYLE = "padding:2px 8px;border:1px solid #ddd;"


def png_bytes(fig, dpi: int = 80) -> bytes:
    """Render a matplotlib Figure to PNG bytes (for ``widgets.Image``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def image() -> W.Image:
    """An empty PNG image widget that shrinks to fit narrow cells."""
    return W.Image(format="png", layout=W.Layout(max_width="100%"))  # shrinks in narrow cells


def error_html(err: BaseException) -> str:
    """The red box a widget shows instead of raising ``err`` into the kernel."""
    return ('<div style="border:1px solid #c62828;background:#ffebee;color:#7f0000;'
            f'padding:6px 10px;border-radius:4px"><b>{type(err).__name__}</b>'
            f'<pre style="white-space:pre-wrap;margin:4px 0 0">{html.escape(str(err))}</pre></div>')


def html_table(rows: list[dict], cols: list[str], highlight=None, key: str = "label") -> str:
    """An HTML table: floats as %, numbers right-aligned, the row with ``key == highlight`` shaded."""
    def cell(v) -> str:
        align = "right" if isinstance(v, int | float) else "left"
        text = f"{v:.1%}" if isinstance(v, float) else html.escape(str(v))
        return f'<td style="{CELL_STYLE}text-align:{align}">{text}</td>'
    head = "".join(f'<th style="{CELL_STYLE}background:#f5f5f5">{c}</th>' for c in cols)
    body = "".join('<tr style="background:{}">{}</tr>'.format(
        "#fff59d" if highlight is not None and r.get(key) == highlight else "white",
        "".join(cell(r[c]) for c in cols)) for r in rows)
    return f'<table style="border-collapse:collapse;font-size:13px">{head}{body}</table>'


