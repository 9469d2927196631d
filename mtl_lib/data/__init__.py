"""Data layer: readers with validation, where each split is, tokenization, collation, batching.

Readers raise :class:`DataFormatError` (``path:line: what was expected``) for any problem
in a file. Real data sets live under :func:`data_root`.

Examples
--------
>>> from mtl_lib.data import data_root, read_jointbert
>>> dev = read_jointbert(data_root() / "snips" / "dev")        # doctest: +SKIP
>>> dev[0]["words"][:3], dev[0]["intent"]                       # doctest: +SKIP
(['i', 'd', 'like'], 'AddToPlaylist')
"""

from .batching import Collator, length_bucketed_batches
from .encoding import IGNORE_INDEX, align_word_labels, encode_example, encode_records
from .files import DataFormatError, data_root
from .readers import read_conll, read_jointbert, read_label_file, read_trec
from .sources import InputGroup, read_split
from .tables import read_hierarchical_table, read_table

__all__ = [
    "IGNORE_INDEX",
    "Collator",
    "DataFormatError",
    "InputGroup",
    "align_word_labels",
    "data_root",
    "encode_example",
    "encode_records",
    "length_bucketed_batches",
    "read_conll",
    "read_hierarchical_table",
    "read_jointbert",
    "read_label_file",
    "read_split",
    "read_table",
    "read_trec",
]
