"""``EncoderPicker``: choose an encoder by family and config; see its size and tokenisation."""

from __future__ import annotations

import html

from ..experiment import resolve_encoder
from ..models.encoders import ENCODER_TABLE, Encoder, list_encoders
from .widget_utils import CELL_STYLE, StaticSnapshot, W, error_html, html_table

__all__ = ["EncoderPicker"]

# Pastel backgrounds: the pieces of one word share a colour, neighbouring words differ.
_PALETTE = ["#e3f2fd", "#fff3e0", "#e8f5e9", "#fce4ec", "#ede7f6", "#e0f7fa"]


def _encoder_names(family: str) -> list[str]:
    """A family's configs: the bundled default (BERT), the seed table, a tiny random one."""
    return ["minilm"] * (family == "BERT") + ENCODER_TABLE[family] + [f"tiny-{family.lower()}"]


def _family_of(name: str) -> str:
    families = [f for f in ENCODER_TABLE if name in _encoder_names(f)]
    if not families:
        raise ValueError(f"unknown encoder {name!r}; e.g. 'minilm', 'bert-base-cased', 'tiny-bert'")
    return families[0]


class EncoderPicker(StaticSnapshot, W.VBox):
    """Pick an encoder by family and config; see availability, size and tokenisation.

    Taught in ``notebooks/01_encoders.ipynb``. ``.value`` is the chosen name (settable),
    ``.encoder`` the loaded :class:`~mtl_lib.models.encoders.Encoder` (None until loaded) and
    ``.error`` the last loading error, also shown in the widget (``EncoderNotAvailable`` says
    how to provide the weights). A saved notebook keeps its tables as static HTML.

    Parameters
    ----------
    value : str
        Initial encoder, e.g. ``"minilm"`` or ``"tiny-roberta"``.
    sample : str
        Sentence whose tokenisation is shown (editable in the widget).
    auto_load : bool
        Load on selection (tiny ones and weights on this machine load in about a second;
        missing weights fail at once); otherwise only the "Load" button loads.
    """

    def __init__(self, value: str = "minilm", auto_load: bool = True,
                 sample: str = "Book a table at Gallagher's steakhouse for 7pm") -> None:
        self._infos = {i.name: i for i in list_encoders()}
        self._cache: dict[str, Encoder] = {}
        self.encoder: Encoder | None = None
        self.error: Exception | None = None
        self.auto_load, self._quiet = auto_load, False
        self.family = W.Dropdown(options=list(ENCODER_TABLE), value="BERT", description="family")
        self.config = W.Dropdown(options=self._options("BERT"), description="config")
        self.load_button = W.Button(description="Load", icon="download")
        self.sample = W.Text(sample, description="sentence", layout=W.Layout(width="90%"))
        self.info, self.tokens = W.HTML(), W.HTML()
        super().__init__([W.HBox([self.family, self.config, self.load_button]), self.info,
                          self.sample, self.tokens])
        self.family.observe(self._on_family, "value")
        self.config.observe(lambda c: self._quiet or self._select(c["new"]), "value")
        self.load_button.on_click(lambda _: self.load())
        self.sample.observe(lambda _: self._show(), "value")
        self.value = value

    def _options(self, family: str) -> list[tuple[str, str]]:
        return [(n + (" (random weights)" if n.startswith("tiny-") else
                      "" if self._infos[n].available else " (no weights here)"), n)
                for n in _encoder_names(family)]

    @property
    def value(self) -> str:
        return self.config.value

    @value.setter
    def value(self, name: str) -> None:
        family, self._quiet = _family_of(name), True  # no loading on the way...
        self.family.value = family
        self.config.value = name
        self._quiet = False
        self._select(name)  # ...only here, even if the value did not change

    def _on_family(self, change) -> None:
        quiet, self._quiet = self._quiet, True
        self.config.options = self._options(change["new"])  # selects the first config
        self._quiet = quiet
        if not quiet:
            self._select(self.config.value)

    def _select(self, name: str) -> None:
        self.encoder, self.error = self._cache.get(name), None
        if self.encoder is None and self.auto_load:
            self.load()
        else:
            self._show()

    def load(self) -> Encoder | None:
        """Load the selected encoder (once per name); None, and ``.error`` set, on failure."""
        name = self.value
        try:
            self.encoder = self._cache.get(name) or resolve_encoder(name)
            self._cache[name], self.error = self.encoder, None
        except Exception as err:  # shown, never raised
            self.encoder, self.error = None, err
        self._show()
        return self.encoder

    def _show(self) -> None:
        name, enc = self.value, self.encoder
        info = self._infos.get(name)
        where = ("random init, built here (for tests and fast runs)" if info is None else
                 f"yes: {info.location}" if info.available else "no weights on this machine")
        rows = [("family", self.family.value), ("weights here", where),
                ("pooling", enc.pooling if enc else info.pooling if info else "first"),
                ("parameters", f"{enc.num_parameters():,}" if enc else "load to count"),
                ("hidden size", enc.hidden_size if enc else "load to see"),
                ("vocabulary", f"{len(enc.tokenizer):,} tokens" if enc else "load to see")]
        self.info.value = (f"<b>{html.escape(name)}</b>" + html_table(
            [{"what": k, "value": str(v)} for k, v in rows], ["what", "value"])
            + (error_html(self.error) if self.error else ""))
        self.tokens.value = "" if enc is None else self._tokens_html(enc)
        self.refresh_snapshot()

    def snapshot_html(self) -> str:
        """What it shows, as static HTML: the encoder's table and the tokenisation."""
        return self.info.value + self.tokens.value

    def _tokens_html(self, enc: Encoder) -> str:
        """Tokens as chips over their ids and ``word_ids`` (the word each piece belongs to)."""
        words = self.sample.value.split()
        batch = enc.tokenize([words], is_split_into_words=True)  # as the data pipeline does
        ids, word_ids = batch["input_ids"][0], batch.word_ids(0)
        chips = ['<span style="padding:1px 5px;border-radius:8px;font-family:monospace;'
                 f'background:{"#e0e0e0" if w is None else _PALETTE[w % len(_PALETTE)]}">'
                 f"{html.escape(p)}</span>"
                 for p, w in zip(enc.tokenizer.convert_ids_to_tokens(ids), word_ids)]
        cols = [(c, i, "special" if w is None else f"{w}: {html.escape(words[w])}")
                for c, i, w in zip(chips, ids, word_ids)]
        rows = "".join(f'<tr><th style="{CELL_STYLE}">{name}</th>' + "".join(
            f'<td style="{CELL_STYLE}text-align:center">{c[j]}</td>' for c in cols) + "</tr>"
            for j, name in enumerate(["token", "id", "word_id"]))
        return (f"{len(words)} words &rarr; {len(ids)} tokens (special tokens grey; the pieces "
                'of one word share a colour)<div style="overflow-x:auto"><table style='
                f'"border-collapse:collapse;font-size:12px">{rows}</table></div>')


