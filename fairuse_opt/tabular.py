"""How the columns of a raw table become a model's numeric features.

:class:`TabularEncoding` is what the ``fairuse`` command line uses to turn a CSV file into
the numeric features of a model, and what the model file records (key ``input.columns``,
see ``docs/model-file.md``) so that a raw row can be scored from the model file alone.

- A **numeric** column is used as it is (its value, as a float).
- A **categorical** column (text, or named in ``categorical=``) is one-hot encoded: one
  0/1 feature per level except the first level in sorted order (the *reference*, which
  sets every one of them to 0), so that the features stay linearly independent of an
  intercept.  The feature of level ``v`` of column ``c`` is named ``c=v``.

Levels are matched **by value**: when every cell of a categorical column is a number (or
text that reads as one, as a CSV cell does), its levels are numbers, sorted by value, and a
cell matches a level when it denotes the same number (``"1"``, ``"1.0"`` and ``1`` are one
level).  Otherwise the levels are text, sorted as text, matched exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .exceptions import (
    MSG_ENCODE_MISSING,
    MSG_FEATURE_NAME_COLLISION,
    MSG_LEVELS_AMBIGUOUS,
    MSG_MISSING_INPUT_COLUMNS,
    MSG_NOT_NUMBER,
    MSG_UNKNOWN_LEVEL,
    InputError,
)

__all__ = ["TabularEncoding", "level_text"]

#: Model-file problem message (the same template as :mod:`fairuse_opt.model_io`'s).
_MSG_BAD_FIELD = "model file {source}: {field} {problem}"


def _shown(items: Sequence, limit: int = 20, width: int = 60) -> list:
    """At most ``limit`` items for a message, long texts cut (an error stays one short line)."""
    out = [f"{v[:width - 3]}..." if isinstance(v, str) and len(v) > width else v for v in list(items)[:limit]]
    return out + [f"... {len(items) - limit} more ({len(items)} in all)"] if len(items) > limit else out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _canonical_number(x: float) -> int | float:
    """A level's number as the model file writes it: an integer when it is one."""
    if float(x).is_integer() and abs(x) < 2.0 ** 53:
        return int(x)
    return float(x)


def level_text(value: Any) -> str:
    """The text of a level: numbers as JSON writes them (``1``, ``2.5``), text as it is."""
    if isinstance(value, str):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if _is_number(value):
        value = _canonical_number(float(value))
        return str(value) if isinstance(value, int) else repr(value)
    return str(value)


def _as_number(v: Any) -> float | None:
    """The finite number a cell denotes, or ``None`` (text that is not a number, booleans)."""
    if isinstance(v, (bool, np.bool_)):
        return None
    if _is_number(v):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _numeric_levels(name: str, values: list) -> list | None:
    """Numeric levels of a column whose every cell is a number, else ``None``."""
    numbers = [_as_number(v) for v in values]
    if not values or any(x is None for x in numbers):
        return None
    spellings: dict[float, set] = {}
    for v, x in zip(values, numbers):
        spellings.setdefault(x, set()).add(v if isinstance(v, str) else level_text(v))
    clash = [sorted(s) for s in spellings.values() if len(s) > 1]
    if clash:
        raise InputError(MSG_LEVELS_AMBIGUOUS.format(column=name, values=_shown(clash[0])))
    return [_canonical_number(x) for x in sorted(spellings)]


@dataclass
class TabularEncoding:
    """How the columns of a raw table become a model's numeric features.

    Attributes
    ----------
    columns : list of dict
        One entry per input column, as written to the model file: ``{"name": c,
        "kind": "numeric", "feature": c}`` or ``{"name": c, "kind": "categorical",
        "levels": [...], "reference": levels[0], "features": {level text: feature
        name}}`` (levels are numbers or strings; see the module docstring).
    """

    columns: list[dict] = field(default_factory=list)

    @classmethod
    def fit(cls, frame: pd.DataFrame, categorical: Sequence[str] = ()) -> "TabularEncoding":
        """Learn the encoding of ``frame``'s columns.

        Parameters
        ----------
        frame : DataFrame
            The feature columns (no target, no group columns), without missing values.
        categorical : sequence of str
            Columns to treat as categorical even if numeric; every non-numeric,
            non-boolean column is categorical anyway.

        Returns
        -------
        TabularEncoding

        Raises
        ------
        InputError
            A categorical column has missing values or writes one number two ways, or
            two columns would make features of the same name.
        """
        cols: list[dict] = []
        forced = set(categorical)
        for name in frame.columns:
            col = frame[name]
            numeric = pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
            if numeric and name not in forced:
                cols.append({"name": str(name), "kind": "numeric", "feature": str(name)})
                continue
            n_missing = int(col.isna().sum())
            if n_missing:
                raise InputError(MSG_ENCODE_MISSING.format(column=str(name), n=n_missing))
            values = list(dict.fromkeys(v.item() if isinstance(v, np.generic) else v for v in col.tolist()))
            levels = _numeric_levels(str(name), values)
            if levels is None:
                levels = sorted({level_text(v) for v in values})
            feats = {level_text(lv): f"{name}={level_text(lv)}" for lv in levels[1:]}
            cols.append({"name": str(name), "kind": "categorical", "levels": levels,
                         "reference": levels[0] if levels else None, "features": feats})
        enc = cls(columns=cols)
        enc._check_unique_names()
        return enc

    def _check_unique_names(self) -> None:
        sources: dict[str, list[str]] = {}
        for c in self.columns:
            if c["kind"] == "numeric":
                sources.setdefault(c["feature"], []).append(f"numeric column {c['name']!r}")
            else:
                for lv, feat in c["features"].items():
                    sources.setdefault(feat, []).append(f"column {c['name']!r} level {lv!r}")
        for feat, src in sources.items():
            if len(src) > 1:
                raise InputError(MSG_FEATURE_NAME_COLLISION.format(name=feat, sources=" and ".join(src)))

    @property
    def input_columns(self) -> list[str]:
        """Raw column names, in order."""
        return [c["name"] for c in self.columns]

    @property
    def categorical(self) -> list[str]:
        """Names of the categorical input columns."""
        return [c["name"] for c in self.columns if c["kind"] == "categorical"]

    @property
    def feature_names(self) -> list[str]:
        """Names of the numeric features produced, in order."""
        out: list[str] = []
        for c in self.columns:
            out += [c["feature"]] if c["kind"] == "numeric" else list(c["features"].values())
        return out

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numeric features of ``frame`` (float64, columns :attr:`feature_names`).

        Raises
        ------
        InputError
            A needed column is absent, a categorical column has a level not seen in
            training, or a numeric column holds text.
        """
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise InputError(MSG_MISSING_INPUT_COLUMNS.format(missing=missing))
        out: dict[str, np.ndarray] = {}
        for c in self.columns:
            col = frame[c["name"]]
            if c["kind"] == "numeric":
                values = pd.to_numeric(col, errors="coerce")
                bad = values.isna() & col.notna()
                if bad.any():
                    raise InputError(MSG_NOT_NUMBER.format(column=c["name"],
                                                           values=_shown(sorted(set(map(str, col[bad]))), 5)))
                out[c["feature"]] = values.to_numpy(dtype=np.float64, na_value=np.nan)
                continue
            n_missing = int(col.isna().sum())
            if n_missing:
                raise InputError(MSG_ENCODE_MISSING.format(column=c["name"], n=n_missing))
            cells = [v.item() if isinstance(v, np.generic) else v for v in col.tolist()]
            if all(_is_number(lv) for lv in c["levels"]):  # numeric levels: match by value
                keys = [_as_number(v) for v in cells]
                known = {float(lv): level_text(lv) for lv in c["levels"]}
                text = np.array([known.get(k) if k is not None else None for k in keys], dtype=object)
                unknown = sorted({level_text(v) for v, t in zip(cells, text) if t is None})
            else:
                text = np.array([level_text(v) for v in cells], dtype=object)
                unknown = sorted(set(text) - set(c["levels"]))
            if unknown:
                raise InputError(MSG_UNKNOWN_LEVEL.format(column=c["name"], values=_shown(unknown, 5),
                                                          levels=_shown(c["levels"])))
            for level, feat in c["features"].items():
                out[feat] = (text == level).astype(np.float64)
        return pd.DataFrame(out, index=frame.index, columns=self.feature_names)

    def to_dict(self) -> list[dict]:
        """The ``input.columns`` entry of the model file."""
        return [dict(c) for c in self.columns]

    @classmethod
    def from_dict(cls, columns: Any, source: str = "<text>") -> "TabularEncoding":
        """Validate and rebuild an encoding read from a model file.

        Raises
        ------
        InputError
            An entry is malformed (the message names it).
        """
        def bad(where: str, problem: str) -> InputError:
            return InputError(_MSG_BAD_FIELD.format(source=source, field=where, problem=problem))

        if not isinstance(columns, list):
            raise bad("input.columns", "must be a list")
        out = []
        for i, c in enumerate(columns):
            where = f"input.columns[{i}]"
            if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                raise bad(where, "must be an object with a string 'name'")
            if c.get("kind") == "numeric":
                if not isinstance(c.get("feature"), str):
                    raise bad(where, "needs a string 'feature'")
            elif c.get("kind") == "categorical":
                levels, feats = c.get("levels"), c.get("features")
                ok_levels = isinstance(levels, list) and bool(levels) and (
                    all(isinstance(v, str) for v in levels)
                    or all(_is_number(v) and math.isfinite(float(v)) for v in levels))
                if (not ok_levels or not isinstance(feats, dict)
                        or not set(feats) <= {level_text(v) for v in levels}
                        or not all(isinstance(v, str) for v in feats.values())):
                    raise bad(where, "needs 'levels' (all strings or all numbers) and 'features' "
                                     "(level text -> feature name)")
                if len({level_text(v) for v in levels}) != len(levels):
                    raise bad(where + ".levels", "lists a level twice")
            else:
                raise bad(where + ".kind", "must be 'numeric' or 'categorical'")
            out.append(dict(c))
        enc = cls(columns=out)
        try:
            enc._check_unique_names()
        except InputError as exc:
            raise bad("input.columns", str(exc)) from None
        return enc
