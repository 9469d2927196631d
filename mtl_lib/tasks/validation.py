"""Checking options: one style of error for task files, trainer configs and presets.

Options arrive from YAML, JSON, the command line or Python, so a value can be of any type.
Every check here reports a bad value the same way, naming where it came from::

    task 'intent': dropout_prob must be a number in [0, 1), got 1.5
    training options: sampler must be one of proportional, uniform, ..., got 'random'

A rule is a string (``"> 0"``, ``">= 0"``, ``"[0, 1)"``, ``"(0, 1)"``) or a tuple of allowed
values. Long values are cut in the message, so a huge (or maliciously expanded) value never
becomes a huge error line.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

__all__ = ["short", "check_value", "check_fields"]

_KINDS = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "a string",
          "list": "a list of strings", "dict": "a mapping of strings to strings"}


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to about ``limit`` characters."""
    text = repr(value) if not isinstance(value, (dict, list)) or _small(value) else _cut_repr(value)
    return text if len(text) <= limit else text[:limit - 5] + " ...)"


def _small(value, budget: int = 200) -> bool:
    # a YAML alias bomb is a tiny file whose lists expand to billions of items: never repr those
    stack, seen = [value], 0
    while stack:
        v = stack.pop()
        seen += 1
        if seen > budget:
            return False
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return True


def _cut_repr(value) -> str:
    return f"<{type(value).__name__} of {len(value)} items>"


def _in_range(value: float, rule: str) -> bool:
    if rule.startswith((">", "<")):
        op, bound = rule.split()
        bound = float(bound)
        return {">": value > bound, ">=": value >= bound, "<": value < bound, "<=": value <= bound}[op]
    low, high = (float(x) for x in rule[1:-1].split(","))
    return ((low <= value) if rule[0] == "[" else (low < value)) and \
        ((value <= high) if rule[-1] == "]" else (value < high))


def check_value(where: str, key: str, value: Any, kind: str, rule: str | tuple | None = None,
                optional: bool = False, error: type[Exception] = ValueError) -> Any:
    """Check one option and return it (a float written as a string, ``"1e-4"``, becomes a float).

    Parameters
    ----------
    where : str
        Who owns the option, e.g. ``"task 'intent'"`` or ``"training options"``.
    key : str
        The option's name.
    kind : {"float", "int", "bool", "str", "list", "dict"}
    rule : str or tuple, optional
        A range (``"> 0"``, ``"[0, 1)"``) or the allowed values.
    optional : bool
        None is allowed.
    error : exception class
        What to raise (``ValueError`` unless the caller has its own error type).
    """
    if value is None and optional:
        return None
    if kind == "float" and isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    ok = {"float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "int": isinstance(value, int) and not isinstance(value, bool),
          "bool": isinstance(value, bool),
          "str": isinstance(value, str),
          "list": isinstance(value, (list, tuple)),
          "dict": isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in value.items())}[kind]
    what = _KINDS[kind] if not isinstance(rule, str) else f"{_KINDS[kind]} {rule}"
    if isinstance(rule, tuple):
        what = f"one of {', '.join(map(str, rule))}"
    if ok and kind in ("float", "int") and not math.isfinite(value):
        ok, what = False, "a finite number"
    if ok and isinstance(rule, str):
        ok = _in_range(value, rule)
    elif ok and isinstance(rule, tuple):
        ok = value in rule
    if not ok:
        raise error(f"{where}: {key} must be {what}, got {short(value)}")
    return float(value) if kind == "float" else value


def check_fields(obj: Any, where: str, rules: dict[str, str | tuple], error: type[Exception] = ValueError) -> None:
    """Check every field of a dataclass instance by its annotation and ``rules``, in place.

    The kind comes from the annotation (``"float"``, ``"int | None"``, ``"list[str]"``, ...; the
    modules use ``from __future__ import annotations``, so annotations are strings).
    """
    for f in fields(obj):
        kind, _, rest = str(f.type).partition(" | ")
        kind = kind.split("[")[0]
        value = check_value(where, f.name, getattr(obj, f.name), kind, rules.get(f.name),
                            optional=rest == "None", error=error)
        setattr(obj, f.name, value)
