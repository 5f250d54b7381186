"""Group labels such as ``Age=60+, Sex=Female``: unambiguous, and checked to be unique.

A label joins ``name=value`` pairs with ``", "``.  A name or value that is empty, has
leading or trailing spaces, or contains ``,``, ``=``, ``"`` or ``\\`` is written in double
quotes with ``"`` and ``\\`` escaped, so a label reads back into exactly one sequence of
pairs: the groups (``x``, ``y, B=z``) and (``x, B=y``, ``z``) of attributes ``A, B`` are
``A=x, B="y, B=z"`` and ``A="x, B=y", B=z``.  Values that print alike but differ (``1``
and ``"1"``, ``1`` and ``1.0``, ``True`` and ``1``) would still share a label, so
:func:`group_labels` checks the labels of all keys and, if two coincide, writes every
value by its ``repr`` (``1``, ``'1'``, ``1.0``, ``True``), then numbers any that are
still equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["group_label", "group_labels", "short_labels"]

_SPECIAL = (",", "=", '"', "\\")


def _quote(text: str) -> str:
    if text == "" or text != text.strip() or any(ch in text for ch in _SPECIAL):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def group_label(names: Sequence[Any], key: Sequence[Any], *, exact: bool = False) -> str:
    """The label of one group: ``name=value`` pairs joined by ``", "``, quoted as needed.

    Parameters
    ----------
    names : sequence
        Attribute names.
    key : sequence
        The group's values, in the order of ``names``.
    exact : bool, default False
        Write values by ``repr`` (distinguishes ``1`` from ``"1"`` and ``1.0``).
    """
    return ", ".join(f"{_quote(str(n))}={_quote(repr(v) if exact else str(v))}"
                     for n, v in zip(names, key))


def group_labels(names: Sequence[Any], keys: Iterable[tuple]) -> dict[tuple, str]:
    """Unique labels of distinct group keys (see the module docstring)."""
    keys = list(dict.fromkeys(keys))
    labels = {k: group_label(names, k) for k in keys}
    if len(set(labels.values())) == len(labels):
        return labels
    labels = {k: group_label(names, k, exact=True) for k in keys}
    seen: dict[str, int] = {}
    for k in keys:
        label = labels[k]
        count = seen.get(label, 0)
        seen[label] = count + 1
        if count:
            labels[k] = f"{label} #{count + 1}"
    return labels


def short_labels(keys: Iterable[tuple], labels: dict[tuple, str]) -> dict[str, str]:
    """Display labels without the attribute names (``60+, Female``), quoted as in
    :func:`group_label`, keyed by the full label; the full labels if two would coincide."""
    keys = list(dict.fromkeys(keys))
    short = {k: ", ".join(_quote(str(v)) for v in k) for k in keys}
    if len(set(short.values())) < len(short):
        short = {k: labels[k] for k in keys}
    return {labels[k]: short[k] for k in keys}
