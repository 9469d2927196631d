"""What the widgets share: figures as PNG bytes, HTML tables, the red error box, and the
static picture a widget leaves in a saved notebook.

Widgets show figures as PNG bytes in a ``widgets.Image``: replacing the image's value redraws
in place, without the flicker (and the wiped cell) of ``clear_output``. Errors are caught and
shown inside the widget as a red box, never raised into the kernel.

A widget is only a reference to live kernel state: GitHub, nbconvert and a notebook reopened
without its kernel cannot draw it. :class:`StaticSnapshot` makes each widget's output carry a
PNG of its current picture as well (next to the widget view, which JupyterLab prefers), and
replace it when the widget finishes (a run ends) or changes, so the saved notebook shows the
final plots.
"""

from __future__ import annotations

import base64
import html
import io
import uuid

try:
    import ipywidgets as W
except ModuleNotFoundError as err:  # a plain `pip install mtl_lib` leaves the notebook extras out
    if err.name != "ipywidgets":
        raise
    raise ModuleNotFoundError("mtl_lib's widgets (mtl_lib.ui) need ipywidgets, which a plain "
                              "`pip install mtl_lib` leaves out: pip install 'mtl_lib[notebooks]' "
                              "(ipywidgets and JupyterLab)", name="ipywidgets") from None

__all__ = ["CELL_STYLE", "StaticSnapshot", "W", "error_html", "html_table", "image", "png_bytes", "stack_pngs"]

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




def stack_pngs(images: list[bytes], gap: int = 8) -> bytes | None:
    """PNG images one above the other (left-aligned, white background), as one PNG."""
    from PIL import Image

    found = [Image.open(io.BytesIO(bytes(b))).convert("RGB") for b in images if b]
    if not found:
        return None
    if len(found) == 1:
        return bytes(images[0]) if images[0] else png_of(found[0])
    out = Image.new("RGB", (max(i.width for i in found), sum(i.height for i in found) + gap * (len(found) - 1)),
                    "white")
    y = 0
    for im in found:
        out.paste(im, (0, y))
        y += im.height + gap
    return png_of(out)


def png_of(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


class StaticSnapshot:
    """Mixin for widgets: their cell output also holds a PNG (or HTML) of what they show.

    A widget subclass defines :meth:`snapshot` (PNG bytes of its current picture, or None)
    or :meth:`snapshot_html`, and calls :meth:`refresh_snapshot` when its picture is final
    (a run ended) or changed. Displaying the widget publishes the widget view *and* the
    snapshot under one display id; a refresh replaces the snapshot of every output that
    shows the widget, in whichever cell runs at the time (update messages go by display id).
    """

    def snapshot(self) -> bytes | None:
        return None

    def snapshot_html(self) -> str | None:
        return None

    def snapshot_bundle(self) -> dict:
        """The display data: widget view, plain text and the PNG (base64) or HTML snapshot."""
        data = W.Widget._repr_mimebundle_(self)  # widget view + text/plain
        data["text/plain"] = f"{type(self).__name__} (a widget: run the notebook to use it)"
        png = self.snapshot()
        if png:
            data["image/png"] = base64.b64encode(bytes(png)).decode("ascii")
        elif (text := self.snapshot_html()) is not None:
            data["text/html"] = text
        return data

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if getattr(self, "_snapshot_id", None) is None:
            self._snapshot_id = uuid.uuid4().hex
        display(self.snapshot_bundle(), raw=True, display_id=self._snapshot_id)

    def refresh_snapshot(self) -> None:
        """Replace the snapshot in the outputs showing this widget (if it was displayed)."""
        if getattr(self, "_snapshot_id", None) is None:
            return
        from IPython.display import update_display

        update_display(self.snapshot_bundle(), display_id=self._snapshot_id, raw=True)
