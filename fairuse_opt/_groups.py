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


def _distinct_rows(frame: pd.DataFrame, coded: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct rows of ``frame`` in order of first appearance: the number of
    every row ``(n,)`` and the position of each distinct row's first appearance.  Each
    column by pandas' hash table (missing values are a value; ``coded``: ``name ->
    (codes, number of values)`` of columns already numbered), the columns combined a pair
    at a time and renumbered (so that the combined numbers stay below n)."""
    key = np.zeros(len(frame), dtype=np.int64)
    for name in frame.columns:
        if coded is not None and name in coded:
            k, n_values = coded[name]
        else:
            k, uniques = pd.factorize(frame[name], use_na_sentinel=False)
            n_values = len(uniques)
        key = pd.factorize(key * n_values + k)[0]
    key = key.astype(np.int64, copy=False)
    # factorize numbers in order of first appearance: a row appears first when its
    # number exceeds every number before it
    seen = np.maximum.accumulate(key)
    first = np.flatnonzero(np.concatenate([[True], key[1:] > seen[:-1]])) if len(key) else np.empty(0, np.int64)
    return key, first


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
        return cls.with_codes(frame)[0]

    @classmethod
    def with_codes(cls, frame: pd.DataFrame, coded: dict | None = None) -> tuple["GroupIndex", np.ndarray]:
        """The index of the groups in ``frame`` and the code of each of its rows (one
        pass of hashing for both; ``coded``: columns already numbered, from
        :func:`~fairuse_opt._validation.check_groups`)."""
        names = [str(c) for c in frame.columns]
        which, first = _distinct_rows(frame, coded)
        rows = [tuple(_py(v) for v in r) for r in frame.iloc[first].itertuples(index=False, name=None)]
        keys = sorted(set(rows), key=sort_key)
        # every level of a column appears in some distinct row
        levels = {n: sorted({r[j] for r in rows}, key=sort_key) for j, n in enumerate(names)}
        index = cls(names=names, keys=keys, levels=levels)
        lookup = index._lookup()
        codes_of = np.array([lookup[r] for r in rows], dtype=np.int64)
        return index, codes_of[which] if len(frame) else np.empty(0, dtype=np.int64)

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
        # one lookup per distinct row (numbered in order of first appearance, the same
        # equality as the dictionary); each row takes its row's code
        which, first = _distinct_rows(frame)
        distinct = frame.iloc[first].itertuples(index=False, name=None)
        codes_of = np.empty(len(first), dtype=np.int64)
        unseen = []
        for j, row in enumerate(distinct):
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
