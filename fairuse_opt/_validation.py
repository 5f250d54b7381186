"""Input checks, in one place.

Every public entry point (estimators, audit, command line) funnels its data through
these functions.  They never change data silently: they convert types where that
loses nothing, and raise :class:`~fairuse_opt.exceptions.InputError` (a
``ValueError``) naming what is wrong and where otherwise.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import pandas as pd

import scipy.sparse as sp
from sklearn.exceptions import DataConversionWarning

from .exceptions import (
    MSG_BAD_NDIM,
    MSG_COMPLEX,
    MSG_CONTINUOUS,
    MSG_DUPLICATE_FEATURES,
    MSG_DUPLICATE_GROUP_COLUMNS,
    MSG_GROUP_RECORDS,
    MSG_GROUP_VALUE_UNHASHABLE,
    MSG_GROUP_VALUES_AMBIGUOUS,
    MSG_SPARSE,
    MSG_TOO_LARGE,
    MSG_Y_SPREAD,
    MSG_BAD_PARAM,
    MSG_EMPTY_GROUP,
    MSG_GROUP_COLS_NEED_FRAME,
    MSG_GROUP_COLS_NOT_IN_X,
    MSG_GROUP_MISSING,
    MSG_GROUPS_TWICE,
    MSG_LENGTH_MISMATCH,
    MSG_NO_FEATURES,
    MSG_NO_GROUP_ATTRIBUTES,
    MSG_NO_ROWS,
    MSG_NOT_BINARY,
    MSG_NOT_FINITE,
    MSG_NOT_NUMERIC,
    MSG_ONE_CLASS,
    MSG_ONE_CLASS_GROUP,
    MSG_SMALL_GROUP,
    MSG_WEIGHT_BAD,
    MSG_WEIGHT_ZERO,
    MSG_Y_NOT_NUMERIC,
    InputError,
    SmallGroupWarning,
)

__all__ = [
    "split_group_columns",
    "check_features",
    "check_fit_magnitude",
    "check_groups",
    "check_classification_target",
    "check_regression_target",
    "check_target_spread",
    "check_sample_weight",
    "warn_small_groups",
    "check_param",
    "check_reports",
]


def _py(value: Any) -> Any:
    """Turn numpy scalars into Python scalars so that group keys hash, compare and
    serialise like the values users type (``np.int64(1) == 1``, ``"F"``)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def split_group_columns(X: Any, group_cols: list[str] | None, groups: Any):
    """Separate group attributes from features.

    With ``group_cols`` set, ``X`` must be a DataFrame holding those columns; they are
    returned as ``groups`` and dropped from the features.  Passing ``groups=`` as well
    is an error (one source of truth).
    """
    if group_cols is None:
        return X, groups
    if groups is not None:
        raise InputError(MSG_GROUPS_TWICE.format(cols=list(group_cols)))
    if not isinstance(X, pd.DataFrame):
        raise InputError(MSG_GROUP_COLS_NEED_FRAME)
    cols = [group_cols] if isinstance(group_cols, str) else list(group_cols)
    missing = [c for c in cols if c not in X.columns]
    if missing:
        raise InputError(MSG_GROUP_COLS_NOT_IN_X.format(missing=missing, columns=list(X.columns)))
    return X.drop(columns=cols), X[cols]


def _non_finite_message(what: str, bad: np.ndarray, values: np.ndarray, names: list[str]) -> str:
    cols = np.flatnonzero(bad.any(axis=0))
    kind = "NaN" if np.isnan(values[bad]).all() else (
        "infinite" if np.isinf(values[bad]).all() else "NaN or infinite")
    return MSG_NOT_FINITE.format(
        what=what, kind=kind, columns=[names[j] for j in cols], n_rows=int(bad.any(axis=1).sum()))


def check_features(X: Any, *, what: str = "X", allow_empty_columns: bool = False,
                   extremes: list | None = None):
    """Return ``(array float64 (n, d), feature names or None)``.

    Rejects non-numeric columns, NaN and infinite values (naming the columns and the
    number of rows), arrays that are not 2-D and empty inputs.  A list passed as
    ``extremes`` receives the smallest and the largest value ``(lo, hi)`` (for
    :func:`check_fit_magnitude`, which then needs no pass of its own).
    """
    names = None
    if sp.issparse(X):
        raise InputError(MSG_SPARSE)
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        dup = sorted({c for c in names if names.count(c) > 1})
        if dup:
            raise InputError(MSG_DUPLICATE_FEATURES.format(what=what, columns=dup))
        # the dtypes once (a column looked up by name per feature cost more than the fit
        # of a small model: fit_system checks thousands of frames)
        bad_cols = [str(c) for c, t in zip(X.columns, X.dtypes)
                    if not (pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t))]
        if bad_cols:
            raise InputError(MSG_NOT_NUMERIC.format(what=what, columns=bad_cols))
        arr = X.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise InputError(MSG_BAD_NDIM.format(what=what, expected="a 2-D array", shape="?")) from exc
        if arr.ndim != 2:
            raise InputError(MSG_BAD_NDIM.format(what=what, expected="a 2-D array (n_samples, n_features)",
                                                 shape=arr.shape))
        if arr.dtype.kind == "c":
            raise InputError(MSG_COMPLEX)
        if arr.dtype.kind not in "biuf":
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError(MSG_NOT_NUMERIC.format(what=what, columns="(array)")) from exc
        arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2:
        raise InputError(MSG_BAD_NDIM.format(what=what, expected="a 2-D array", shape=arr.shape))
    if arr.shape[0] == 0:
        raise InputError(MSG_NO_ROWS.format(what=what))
    if arr.shape[1] == 0 and not allow_empty_columns:
        raise InputError(MSG_NO_FEATURES)
    # NaN and infinity propagate to the extremes: two reductions without an n x d
    # temporary (a boolean array of every value only when something is not finite)
    hi, lo = (float(arr.max()), float(arr.min())) if arr.size else (0.0, 0.0)
    if extremes is not None:
        extremes[:] = [lo, hi]
    if not (np.isfinite(hi) and np.isfinite(lo)):
        bad = ~np.isfinite(arr)
        col_names = names if names is not None else [f"column {j}" for j in range(arr.shape[1])]
        raise InputError(_non_finite_message(what, bad, arr, col_names))
    return arr, names


#: Largest feature magnitude a fit accepts: squares (variances, Hessians) of values above
#: ~1.3e154 overflow float64, and 1e150 leaves room for sums over rows.
MAX_FEATURE_MAGNITUDE = 1e150


def check_fit_magnitude(X: np.ndarray, names: list[str], extremes=None) -> None:
    """Refuse features too large to be fitted in float64 (they would otherwise be dropped:
    their variance overflows to infinity and their standardised column to zero).
    ``extremes``: ``(lo, hi)`` of ``X`` when known (from :func:`check_features`)."""
    if not X.size:
        return
    # two reductions without the n x d temporary of np.abs (10x faster at 10^6 x 30), over
    # the whole array first (4x faster than by column), by column only to name them
    lo, hi = extremes if extremes else (float(X.min()), float(X.max()))
    if max(hi, -lo) <= MAX_FEATURE_MAGNITUDE:
        return
    top = np.maximum(X.max(axis=0), -X.min(axis=0))
    bad = np.flatnonzero(top > MAX_FEATURE_MAGNITUDE)
    if bad.size:
        raise InputError(MSG_TOO_LARGE.format(value=float(top[bad].max()), columns=[names[j] for j in bad]))


GROUP_VALUE_TYPES = (str, bool, int, float)


def _group_frame(groups: Any, n_rows: int) -> pd.DataFrame:
    """Group attributes in any accepted shape as a DataFrame, one column per attribute;
    checks the shape, the names and the length (shared by :func:`check_groups` and
    :func:`check_reports`)."""
    if isinstance(groups, pd.DataFrame):
        frame = groups.copy(deep=False)  # (its columns renamed; no value is written)
        frame.columns = [str(c) for c in frame.columns]
    elif isinstance(groups, pd.Series):
        frame = groups.to_frame(name=str(groups.name) if groups.name is not None else "group")
    elif isinstance(groups, (list, tuple)) and groups and all(isinstance(r, dict) for r in groups):
        keys = list(groups[0])
        for i, r in enumerate(groups):
            if list(r) != keys and sorted(map(str, r)) != sorted(map(str, keys)):
                raise InputError(MSG_GROUP_RECORDS.format(row=i, keys=sorted(map(str, r))))
        frame = pd.DataFrame.from_records(list(groups), columns=keys)
        frame.columns = [str(c) for c in frame.columns]
    else:
        # numeric numpy arrays keep their dtype (checked by distinct values downstream);
        # anything else becomes objects
        numeric = isinstance(groups, np.ndarray) and groups.dtype.kind in "biuf"
        arr = groups if numeric else np.asarray(groups, dtype=object)
        if arr.ndim == 1:
            frame = pd.DataFrame({"group": arr})
        elif arr.ndim == 2:
            frame = pd.DataFrame(arr, columns=[f"group_{j}" for j in range(arr.shape[1])])
        else:
            raise InputError(MSG_BAD_NDIM.format(what="groups", expected="1-D or 2-D", shape=arr.shape))
    if frame.shape[1] == 0:
        raise InputError(MSG_NO_GROUP_ATTRIBUTES)
    names = list(frame.columns)
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise InputError(MSG_DUPLICATE_GROUP_COLUMNS.format(columns=dup))
    if len(frame) != n_rows:
        raise InputError(MSG_LENGTH_MISMATCH.format(what="groups", n_other=len(frame), n_rows=n_rows))
    return frame


def check_groups(groups: Any, n_rows: int, *, fit: bool = True, codes_out: dict | None = None) -> pd.DataFrame:
    """Normalise group attributes to a DataFrame with one column per attribute.

    Accepts a DataFrame, a Series, a 1-D array or list (one attribute), a list of dicts
    (one record per row), or a 2-D array (columns named ``group_0``, ``group_1``, ...).
    Values are kept as given and must be strings, numbers or booleans (numeric columns
    keep their numpy dtype, other values become Python scalars).  Raises on duplicated attribute names, length mismatch, missing
    values and, at fit time, declared categorical levels with no rows and values of
    different types that Python treats as equal (``True``, ``1`` and ``1.0``), which
    would otherwise be merged into one group.  A dict passed as ``codes_out`` receives,
    for the columns numbered on the way (non-numeric columns of one type), ``name ->
    (codes, number of distinct values)`` (:meth:`GroupIndex.with_codes` then needs no
    second pass of hashing over them).
    """
    frame = _group_frame(groups, n_rows)
    # each non-numeric column of one type numbered once (pandas' hash table, in C): its
    # missing values, its distinct values and its Python scalars from that numbering
    # (10^6 rows of read_csv strings: a Python call per value took 1.9 s)
    coded = {name: _code_column(frame[name]) for name in frame.columns}
    for name in frame.columns:
        col = frame[name]
        missing = coded[name][0] < 0 if coded[name] is not None else col.isna().to_numpy()
        if missing.any():
            raise InputError(MSG_GROUP_MISSING.format(
                name=name, n_missing=int(missing.sum()), first=int(np.flatnonzero(missing)[0])))
        if fit and isinstance(col.dtype, pd.CategoricalDtype):
            used = set(col.unique())
            unused = [_py(v) for v in col.cat.categories if v not in used]
            if unused:
                raise InputError(MSG_EMPTY_GROUP.format(name=name, levels=unused))
    out = {}
    for name in frame.columns:
        col = frame[name]
        if col.dtype.kind in "biuf":
            # a numeric numpy column: every value is a bool, int or float of one type (no
            # two of different types can be equal), so only the distinct values need
            # checking, not every row; the column keeps its dtype (hashing numbers, not
            # Python objects: 1 ms against 4 ms a column of 100,000 rows), its values
            # become Python scalars wherever they are read (keys, reports)
            column = col.to_numpy()
            _check_group_values(name, [_py(v) for v in pd.unique(col)], fit=fit)
        elif coded[name] is not None:
            codes, uniques = coded[name]
            distinct = [_py(v) for v in uniques]
            _check_group_values(name, distinct, fit=fit)
            table = np.empty(len(distinct), dtype=object)  # np.array would unpack tuples
            table[:] = distinct
            column = table[codes]
            if codes_out is not None:
                codes_out[name] = (codes, len(distinct))
        else:
            values = [_py(v) for v in col.tolist()]
            _check_group_values(name, values, fit=fit)
            column = np.empty(len(values), dtype=object)
            column[:] = values
        out[name] = column
    return pd.DataFrame(out)


#: kinds of object columns (``pandas.api.types.infer_dtype``) whose values are all of one
#: accepted type up to numpy's scalars (which :func:`_py` turns into that type), missing
#: values aside: no two of them can be equal and of different types, so only the
#: distinct values need checking
_ONE_TYPE_KINDS = ("string", "boolean", "integer", "floating")


def _code_column(col: pd.Series):
    """``(codes, distinct values)`` of a non-numeric column whose values are of one type
    (pandas strings, categoricals, object columns of one kind), missing values coded -1;
    ``None`` for numeric columns and for mixed object columns (checked value by value:
    ``True``, ``1`` and ``1.0`` are equal in Python and must be told apart)."""
    if col.dtype.kind in "biuf":
        return None
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy(), list(col.cat.categories)
    if not isinstance(col.dtype, pd.StringDtype):
        values = col.to_numpy(dtype=object)
        if values.ndim != 1 or pd.api.types.infer_dtype(values, skipna=True) not in _ONE_TYPE_KINDS:
            return None
        col = values
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    return codes, list(uniques)


def _check_group_values(name: str, values: list, *, fit: bool) -> None:
    """Group values are hashable scalars; at fit time no two of different types are equal."""
    types: dict[Any, set] = {}
    for v in values:
        if not isinstance(v, GROUP_VALUE_TYPES):
            raise InputError(MSG_GROUP_VALUE_UNHASHABLE.format(name=name, type=type(v).__name__, value=v))
        types.setdefault(v, set()).add(type(v))
    if fit:
        for v, ts in types.items():
            if len(ts) > 1:
                shown = [t(v) for t in sorted(ts, key=lambda t: t.__name__)]
                raise InputError(MSG_GROUP_VALUES_AMBIGUOUS.format(name=name, values=shown))


def check_classification_target(y: Any, n_rows: int):
    """Return ``(y01 float array of 0/1, classes ndarray)`` for a binary target.

    Accepts {0, 1}, {-1, 1}, booleans or any two distinct values (strings included);
    ``classes`` is sorted as :func:`numpy.unique` sorts and ``classes[1]`` is the
    positive class.
    """
    arr = _as_1d(y, "y", n_rows)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(MSG_NOT_FINITE.format(what="y", kind="NaN or infinite", columns=["y"],
                                               n_rows=int((~np.isfinite(arr)).sum())))
    if arr.dtype == object and pd.isna(arr).any():
        raise InputError(MSG_NOT_FINITE.format(what="y", kind="missing", columns=["y"],
                                               n_rows=int(pd.isna(arr).sum())))
    if arr.dtype.kind == "c":
        raise InputError(MSG_COMPLEX)
    try:
        classes, codes = np.unique(arr, return_inverse=True)
    except TypeError as exc:  # mixed, unorderable types
        raise InputError(MSG_NOT_BINARY.format(n_classes="mixed types", classes=sorted(set(map(repr, arr)))[:5])) from exc
    if len(classes) == 1:
        raise InputError(MSG_ONE_CLASS.format(cls=_py(classes[0])))
    if len(classes) > 2 and arr.dtype.kind == "f" and not np.all(np.mod(classes, 1) == 0):
        raise InputError(MSG_CONTINUOUS.format(n_values=len(classes)))
    if len(classes) != 2:
        shown = [_py(c) for c in classes[:10]] + (["..."] if len(classes) > 10 else [])
        raise InputError(MSG_NOT_BINARY.format(n_classes=len(classes), classes=shown))
    return codes.astype(np.float64), classes


#: Largest rounding (eps * variance) of a squared error a regression fit accepts: beyond
#: it the solvers' tolerances and the verification are meaningless (measured: spreads of
#: 1e8 and more made the conic solvers report an unconstrained fit infeasible).
MAX_SQUARED_ROUNDING = 1.0


def check_target_spread(y: np.ndarray, w: np.ndarray) -> None:
    """Refuse regression targets whose squared errors float64 cannot resolve."""
    mean = float(np.average(y, weights=w))
    top = float(np.max(np.abs(y - mean))) or 1.0
    var = top ** 2 * float(np.average(((y - mean) / top) ** 2, weights=w))  # no overflow
    err = var * np.finfo(float).eps
    if err > MAX_SQUARED_ROUNDING:
        sd = float(np.sqrt(var))
        raise InputError(MSG_Y_SPREAD.format(sd=sd, var=var, err=err, unit=10.0 ** np.floor(np.log10(sd))))


def check_regression_target(y: Any, n_rows: int) -> np.ndarray:
    """Return a finite float64 vector."""
    arr = _as_1d(y, "y", n_rows)
    if arr.dtype.kind == "c":
        raise InputError(MSG_COMPLEX)
    if arr.dtype.kind not in "biuf":
        raise InputError(MSG_Y_NOT_NUMERIC.format(dtype=arr.dtype))
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputError(MSG_NOT_FINITE.format(what="y", kind="NaN or infinite", columns=["y"],
                                               n_rows=int((~np.isfinite(arr)).sum())))
    return arr


def _as_1d(y: Any, what: str, n_rows: int) -> np.ndarray:
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise InputError(MSG_BAD_NDIM.format(what=what, expected="1-D", shape=y.shape))
        y = y.iloc[:, 0]
    if isinstance(y, pd.Series):
        arr = y.to_numpy()
        if arr.dtype != object and arr.dtype.kind not in "biufU":
            arr = arr.astype(object)
    else:
        arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        if what == "y":
            warnings.warn("A column-vector y was passed when a 1d array was expected; it was raveled",
                          DataConversionWarning, stacklevel=4)
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InputError(MSG_BAD_NDIM.format(what=what, expected="1-D", shape=arr.shape))
    if len(arr) != n_rows:
        raise InputError(MSG_LENGTH_MISMATCH.format(what=what, n_other=len(arr), n_rows=n_rows))
    return arr


def check_sample_weight(sample_weight: Any, n_rows: int) -> np.ndarray:
    """Return finite, non-negative weights (ones when ``None``) with a positive sum."""
    if sample_weight is None:
        return np.ones(n_rows)
    w = _as_1d(sample_weight, "sample_weight", n_rows)
    if w.dtype.kind not in "biuf":
        raise InputError(MSG_WEIGHT_BAD.format(problem=f"got dtype {w.dtype}"))
    w = w.astype(np.float64)
    if not np.isfinite(w).all():
        raise InputError(MSG_WEIGHT_BAD.format(problem=f"{int((~np.isfinite(w)).sum())} value(s) are NaN or infinite"))
    if (w < 0).any():
        raise InputError(MSG_WEIGHT_BAD.format(problem=f"{int((w < 0).sum())} value(s) are negative"))
    if w.sum() <= 0:
        raise InputError(MSG_WEIGHT_ZERO)
    return w


def warn_small_groups(keys: list, codes: np.ndarray, y01: np.ndarray | None, weight: np.ndarray,
                      min_size: int) -> None:
    """Warn (:class:`SmallGroupWarning`) about groups with one class or few rows."""
    G = len(keys)
    kept = weight > 0
    kept_codes = codes[kept]
    sizes = np.bincount(kept_codes, minlength=G)
    # labels are 0/1: a group has one class when its 1s are none or all of its rows
    ones = np.bincount(kept_codes, weights=y01[kept], minlength=G) if y01 is not None else None
    for g, key in enumerate(keys):
        n = int(sizes[g])
        if ones is not None and n > 0 and ones[g] in (0, n):
            warnings.warn(MSG_ONE_CLASS_GROUP.format(group=key, cls=int(ones[g] == n), n=n),
                          SmallGroupWarning, stacklevel=3)
            continue
        if n < min_size:
            warnings.warn(MSG_SMALL_GROUP.format(group=key, n=n, detail=f" (fewer than {min_size})"),
                          SmallGroupWarning, stacklevel=3)


def check_param(name: str, value: Any, *, choices=None, low=None, high=None,
                integer: bool = False, allow_none: bool = False, reason: str | None = None):
    """Check one estimator parameter; raise ``InputError`` naming it otherwise."""
    if value is None and allow_none:
        return value
    if choices is not None:
        if value not in choices:
            raise InputError(MSG_BAD_PARAM.format(name=name, value=value,
                                                  reason=reason or f"choose one of {list(choices)!r}"))
        return value
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InputError(MSG_BAD_PARAM.format(name=name, value=value,
                                              reason=reason or ("an integer" if integer else "a number") + " is required"))
    if not np.isfinite(value):
        raise InputError(MSG_BAD_PARAM.format(name=name, value=value, reason="must be finite"))
    if low is not None and value < low:
        raise InputError(MSG_BAD_PARAM.format(name=name, value=value, reason=reason or f"must be >= {low}"))
    if high is not None and value > high:
        raise InputError(MSG_BAD_PARAM.format(name=name, value=value, reason=reason or f"must be <= {high}"))
    return value


def check_reports(groups: Any, n_rows: int) -> pd.DataFrame:
    """Group attributes as *reports*: like :func:`check_groups`, but a missing value
    (``None``, NaN, ``pd.NA``) is allowed and means "not reported".

    Used by :class:`~fairuse_opt.FairUseSystem`, where declining to report an attribute
    is a reporting option; the estimators keep rejecting missing values.

    Returns
    -------
    DataFrame
        One object column per attribute; Python scalars, ``None`` where not reported.
    """
    frame = _group_frame(groups, n_rows)
    # object Series, so that pandas does not infer a string dtype that turns None into NaN
    return pd.DataFrame({name: pd.Series([None if _missing(v) else _py(v) for v in frame[name].tolist()],
                                         dtype=object)
                         for name in frame.columns})


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        out = pd.isna(value)
    except (TypeError, ValueError):
        return False
    return bool(out) if np.ndim(out) == 0 else False
