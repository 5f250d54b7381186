"""Reporting options: which group attributes a person reported, and their values.

An *option* is a tuple with one entry per group attribute (in the order of the system's
``group_names_``): the reported value, or ``None`` where the attribute was not reported.
The option with nothing reported is the *root*; it is always served the generic model.

A row is a *member* of option ``o`` when it reported every attribute that ``o`` reports,
with the same values (what it reported beyond that does not matter): the members of
``("F", None)`` are all rows that reported sex ``F``, whether or not they reported their
age.  Anyone can choose to report less, so an option's assignment evidence comes from
everyone who could have chosen it.

The *parents* of an option are the options with one of its reported attributes removed;
its *ancestors* are the options reachable by removing any of them.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._groups import sort_key
from .._validation import _missing, _py
from ..exceptions import MSG_SYSTEM_BAD_REPORT, MSG_SYSTEM_UNKNOWN_LEVEL, UnseenGroupError, InputError

__all__ = [
    "NOT_REPORTED",
    "row_options",
    "reported",
    "n_reported",
    "option_order",
    "sub_options",
    "parents",
    "ancestors_by_distance",
    "project",
    "option_label",
    "member_mask",
    "report_key",
    "check_levels",
]

#: The label of an attribute that was not reported.
NOT_REPORTED = "(not reported)"


def row_options(frame: pd.DataFrame) -> tuple[list[tuple], np.ndarray]:
    """Distinct row options of a checked report frame and each row's position in them."""
    keys = [tuple(r) for r in frame.itertuples(index=False, name=None)]
    distinct: dict[tuple, int] = {}
    codes = np.array([distinct.setdefault(k, len(distinct)) for k in keys], dtype=np.int64)
    return list(distinct), codes


def reported(option: tuple) -> tuple[int, ...]:
    """Positions of the attributes an option reports."""
    return tuple(j for j, v in enumerate(option) if v is not None)


def n_reported(option: tuple) -> int:
    return sum(v is not None for v in option)


def option_order(option: tuple):
    """Sort key: fewer reported attributes first, then by value (unreported first)."""
    return (n_reported(option),
            tuple((-1, 0.0, "") if v is None else sort_key(v) for v in option))


def sub_options(option: tuple) -> list[tuple]:
    """Every option obtained by reporting a non-empty subset of what ``option`` reports
    (``option`` itself included)."""
    rep = reported(option)
    out = []
    for k in range(1, len(rep) + 1):
        for keep in combinations(rep, k):
            out.append(tuple(v if j in keep else None for j, v in enumerate(option)))
    return out


def parents(option: tuple) -> list[tuple]:
    """Options with one reported attribute removed (the root for a single report)."""
    return [tuple(None if i == j else v for i, v in enumerate(option)) for j in reported(option)]


def ancestors_by_distance(option: tuple) -> list[list[tuple]]:
    """Ancestors grouped by how many reported attributes were removed (1, 2, ...)."""
    rep = reported(option)
    out = []
    for drop in range(1, len(rep) + 1):
        level = []
        for removed in combinations(rep, drop):
            level.append(tuple(None if j in removed else v for j, v in enumerate(option)))
        out.append(level)
    return out


def project(option: tuple, positions: Sequence[int]) -> tuple:
    """The values of ``option`` at ``positions`` (a candidate's attributes)."""
    return tuple(option[j] for j in positions)


def option_label(names: Sequence[str], option: tuple) -> str:
    """Readable label, e.g. ``Age=60+, Sex=(not reported)``; the root is
    ``(nothing reported)``."""
    if all(v is None for v in option):
        return "(nothing reported)"
    return ", ".join(f"{n}={NOT_REPORTED if v is None else v}" for n, v in zip(names, option))


def member_mask(option: tuple, row_keys: Sequence[tuple], row_codes: np.ndarray) -> np.ndarray:
    """Rows whose report agrees with every value ``option`` reports."""
    rep = reported(option)
    match = np.array([all(k[j] == option[j] for j in rep) for k in row_keys], dtype=bool)
    return match[row_codes] if len(row_keys) else np.zeros(len(row_codes), dtype=bool)


def report_key(report: Any, names: Sequence[str]) -> tuple:
    """Normalise a ``report=`` argument (tuple, list, dict or scalar; ``None`` entries
    for attributes not reported)."""
    if isinstance(report, Mapping):
        unknown = [k for k in map(str, report) if k not in names]
        if unknown:
            raise InputError(MSG_SYSTEM_BAD_REPORT.format(report=report, names=list(names)))
        values = {str(k): v for k, v in report.items()}
        key = tuple(None if _missing(values.get(n)) else _py(values.get(n)) for n in names)
    elif isinstance(report, (tuple, list, np.ndarray)):
        if len(report) != len(names):
            raise InputError(MSG_SYSTEM_BAD_REPORT.format(report=report, names=list(names)))
        key = tuple(None if _missing(v) else _py(v) for v in report)
    else:
        if len(names) != 1:
            raise InputError(MSG_SYSTEM_BAD_REPORT.format(report=report, names=list(names)))
        key = (None if _missing(report) else _py(report),)
    return key


def check_levels(keys: Iterable[tuple], names: Sequence[str], levels: Mapping[str, list]) -> None:
    """Raise :class:`UnseenGroupError` for a reported value the system never saw."""
    for j, name in enumerate(names):
        known = levels[name]
        bad = sorted({k[j] for k in keys if k[j] is not None and k[j] not in known}, key=sort_key)
        if bad:
            raise UnseenGroupError(MSG_SYSTEM_UNKNOWN_LEVEL.format(name=name, values=bad, known=known))
