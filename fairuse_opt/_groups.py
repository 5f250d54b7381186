"""Intersectional groups: the bookkeeping between attribute values and group codes.

A row's *intersectional group* is the tuple of its attribute values, in the order of
the attribute names.  :class:`GroupIndex` remembers the groups seen in training (sorted,
so that the order does not depend on row order) and the levels of every attribute, and
maps rows or reports to integer codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ._validation import _py
from .exceptions import (
    MSG_BAD_REPORT,
    MSG_REPORT_VALUE,
    MSG_GROUP_NAMES_MISMATCH,
    MSG_UNSEEN_GROUP,
    InputError,
    UnseenGroupError,
)

__all__ = ["GroupIndex", "sort_key"]


def sort_key(value: Any):
    """Order values of mixed types deterministically (numbers before strings)."""
    if isinstance(value, tuple):
        return tuple(sort_key(v) for v in value)
    if isinstance(value, (bool, int, float)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


@dataclass
class GroupIndex:
    """Groups seen in training.

    Attributes
    ----------
    names : list of str
        Group attribute names, in order.
    keys : list of tuple
        Intersectional groups seen in training, sorted.
    levels : dict
        For each attribute, its sorted levels seen in training.
    """

    names: list[str]
    keys: list[tuple]
    levels: dict[str, list] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "GroupIndex":
        names = [str(c) for c in frame.columns]
        # distinct rows and values by pandas' hash tables (the same equality as a set of
        # tuples), not a Python loop over every row
        rows = list(frame.drop_duplicates().itertuples(index=False, name=None))
        keys = sorted({tuple(_py(v) for v in r) for r in rows}, key=sort_key)
        levels = {n: sorted({_py(v) for v in pd.unique(frame[n])}, key=sort_key) for n in names}
        return cls(names=names, keys=keys, levels=levels)

    @property
    def n_groups(self) -> int:
        return len(self.keys)

    def _lookup(self) -> dict:
        if not hasattr(self, "_code_of"):
            self._code_of = {k: i for i, k in enumerate(self.keys)}
        return self._code_of

    def check_names(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return ``frame`` with columns in training order; error if they differ."""
        got = [str(c) for c in frame.columns]
        if sorted(got) != sorted(self.names):
            # groups given without names (a list or an array: columns "group" or group_0,
            # group_1, ... in order) match the trained attributes by position; named
            # columns match by name only
            unnamed = ["group"] if len(self.names) == 1 else [f"group_{j}" for j in range(len(self.names))]
            if got == unnamed or (len(self.names) == 1 and got == ["group_0"]):
                return frame.set_axis(self.names, axis=1)
            raise InputError(MSG_GROUP_NAMES_MISMATCH.format(got=got, expected=self.names))
        return frame[self.names]

    def codes(self, frame: pd.DataFrame) -> np.ndarray:
        """Integer code of every row's intersectional group; unseen groups raise."""
        frame = self.check_names(frame)
        lookup = self._lookup()
        if len(frame) == 0:
            return np.empty(0, dtype=np.int64)
        frame = frame.reset_index(drop=True)
        # one lookup per distinct row: pandas numbers the distinct rows (first appearance
        # order, the same equality as the dictionary) and each row takes its row's code
        by = frame.groupby(list(frame.columns), sort=False, dropna=False)
        which = by.ngroup().to_numpy()
        distinct = list(by.head(1).itertuples(index=False, name=None))
        order = by.head(1).index
        # head(1) keeps the first row of each distinct row, in frame order = ngroup order
        first_group = which[frame.index.get_indexer(order)]
        codes_of = np.empty(len(distinct), dtype=np.int64)
        unseen = []
        for j, row in zip(first_group, distinct):
            key = tuple(_py(v) for v in row)
            code = lookup.get(key)
            if code is None:
                unseen.append(key)
                codes_of[j] = -1
            else:
                codes_of[j] = code
        out = codes_of[which]
        if unseen:
            shown = sorted(set(unseen), key=sort_key)
            raise UnseenGroupError(MSG_UNSEEN_GROUP.format(groups=shown, known=self.keys))
        return out

    def report_key(self, report: Any) -> tuple:
        """Normalise a report (tuple, list, dict or a scalar for one attribute)."""
        if isinstance(report, Mapping):
            if sorted(map(str, report)) != sorted(self.names):
                raise InputError(MSG_BAD_REPORT.format(report=report, names=self.names))
            key = tuple(_py(report[n]) for n in self.names)
        elif isinstance(report, (tuple, list, np.ndarray)):
            if len(report) != len(self.names):
                raise InputError(MSG_BAD_REPORT.format(report=report, names=self.names))
            key = tuple(_py(v) for v in report)
        else:
            if len(self.names) != 1:
                raise InputError(MSG_BAD_REPORT.format(report=report, names=self.names))
            key = (_py(report),)
        for name, v in zip(self.names, key):
            if not isinstance(v, (str, bool, int, float)):
                raise InputError(MSG_REPORT_VALUE.format(report=report, value=v, name=name,
                                                         type=type(v).__name__))
        if key not in self._lookup():
            raise UnseenGroupError(MSG_UNSEEN_GROUP.format(groups=[key], known=self.keys))
        return key

    def report_code(self, report: Any) -> int:
        return self._lookup()[self.report_key(report)]

    def level_codes(self, keys: Sequence[tuple] | None = None) -> np.ndarray:
        """For each intersectional group, the index of each attribute's level:
        an array (n_groups, n_attributes) of level positions in ``levels``."""
        keys = self.keys if keys is None else keys
        pos = {n: {v: j for j, v in enumerate(self.levels[n])} for n in self.names}
        return np.array([[pos[n][k[a]] for a, n in enumerate(self.names)] for k in keys],
                        dtype=np.int64).reshape(len(keys), len(self.names))

    def label(self, key: tuple) -> str:
        """Readable label of a group, e.g. ``Sex=F, Age=<30``."""
        return ", ".join(f"{n}={v}" for n, v in zip(self.names, key))

    def to_frame(self) -> pd.DataFrame:
        """One row per intersectional group, one column per attribute."""
        return pd.DataFrame(self.keys, columns=self.names)
