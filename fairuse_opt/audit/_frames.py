"""Group codes for many rows at once.

:meth:`fairuse_opt._groups.GroupIndex.codes` looks every row up in Python; here the
rows are first reduced to their distinct groups with pandas, and only those are looked
up, so the cost no longer grows with a Python loop over the rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._groups import GroupIndex

__all__ = ["distinct_rows", "group_codes"]


def distinct_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The distinct rows of ``frame`` and, for each row, the position of its distinct row."""
    inverse = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
    _, first = np.unique(inverse, return_index=True)
    return frame.iloc[first].reset_index(drop=True), inverse


def group_codes(index: GroupIndex, frame: pd.DataFrame) -> np.ndarray:
    """Same as ``index.codes(frame)`` (including its errors), computed per distinct row."""
    frame = index.check_names(frame)
    distinct, inverse = distinct_rows(frame)
    return index.codes(distinct)[inverse]
