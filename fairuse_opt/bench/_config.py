"""The benchmark's settings: defaults, the config file (TOML or JSON) and dataset specs."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import InputError
from ._errors import (
    MSG_CONFIG_DATASET,
    MSG_CONFIG_DATASET_NAME,
    MSG_CONFIG_DATASET_TWICE,
    MSG_CONFIG_KEY,
    MSG_CONFIG_UNREADABLE,
    MSG_CONFIG_VALUE,
    MSG_CONFIG_SUFFIX,
    MSG_CSV_COLUMNS,
    MSG_CSV_MISSING,
    MSG_CSV_UNREADABLE,
    MSG_FOLDS,
    MSG_UNKNOWN_CHOICE,
)

__all__ = ["BenchConfig", "DatasetSpec", "load_config", "load_dataset", "DEFAULT_DATASETS"]

#: Datasets of the default grid: apnea (``FAIRUSE_DATA_DIR``), the clinical datasets the
#: ``datasets`` extra provides, and scikit-learn's diabetes data (regression, core install).
DEFAULT_DATASETS = ("apnea", "support2", "nhefs", "framingham", "pima", "birthwt", "diabetes")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the grid.

    Attributes
    ----------
    name : str
        Name in the results.
    loader : str or None
        A :mod:`fairuse_opt.datasets` registry name (``None`` for a CSV file).
    kwargs : tuple of (str, value)
        Keyword arguments of the loader (for example ``(("target", "wt82_71"),)``).
    csv, target, groups, features, task, dropna
        A CSV dataset: the file, its target column, its group columns, its feature
        columns (default: every other column; text columns are one-hot encoded), the
        task, and whether rows with missing values are dropped (otherwise they are an
        error).
    """

    name: str
    loader: str | None = None
    kwargs: tuple = ()
    csv: str | None = None
    target: str | None = None
    groups: tuple = ()
    features: tuple | None = None
    task: str | None = None
    dropna: bool = False

    def key(self) -> dict:
        """What identifies the data (part of every cell id)."""
        d = asdict(self)
        d["kwargs"] = [list(kv) for kv in self.kwargs]
        d["groups"] = list(self.groups)
        d["features"] = None if self.features is None else list(self.features)
        return d

    @classmethod
    def from_value(cls, value: Any) -> "DatasetSpec":
        """A registry name, or a mapping as in the config file (every value's type checked)."""
        if isinstance(value, DatasetSpec):
            return value
        if isinstance(value, str):
            return cls(name=_dataset_name(value), loader=value)
        if not isinstance(value, dict) or "name" not in value:
            raise InputError(MSG_CONFIG_DATASET.format(name=_shown(value), problem="needs a 'name'"))
        v = dict(value)
        name = _dataset_name(v.pop("name"))
        known = {"loader", "kwargs", "csv", "target", "groups", "features", "task", "dropna"}
        extra = sorted(map(str, set(v) - known))
        if extra:
            raise InputError(MSG_CONFIG_DATASET.format(name=name, problem=f"unknown keys {_capped(extra)}"))

        def bad(key: str, expected: str) -> InputError:
            return InputError(MSG_CONFIG_DATASET.format(
                name=name, problem=f"{key} = {_shown(v[key])} is invalid: {expected}"))

        for key in ("loader", "csv", "target"):
            if key in v and not (isinstance(v[key], str) and v[key]):
                raise bad(key, "give a non-empty string")
        kind, other = ("csv", ("loader", "kwargs")) if "csv" in v else ("loader", _CSV_KEYS)
        ignored = sorted(k for k in other if k in v)
        if ignored:  # a key of the other kind of dataset would be ignored: refused instead
            raise InputError(MSG_CONFIG_DATASET.format(
                name=name, problem=f"{ignored} do not apply to a dataset given by '{kind}'"))
        if "csv" in v:
            missing = [k for k in ("target", "groups") if k not in v]
            if missing:
                raise InputError(MSG_CONFIG_DATASET.format(name=name, problem=f"missing {missing}"))
            groups = v["groups"]
            groups = [groups] if isinstance(groups, str) else groups
            if not _str_list(groups) or not groups:
                raise bad("groups", "give a column name or a non-empty list of column names")
            feats = v.get("features")
            if feats is not None and (not _str_list(feats) or not feats):
                raise bad("features", "give a non-empty list of column names (or leave it out: every other column)")
            if v.get("task", "classification") not in ("classification", "regression"):
                raise bad("task", "choose 'classification' or 'regression'")
            if not isinstance(v.get("dropna", False), bool):
                raise bad("dropna", "give true or false")
            return cls(name=name, csv=v["csv"], target=v["target"], groups=tuple(groups),
                       features=None if feats is None else tuple(feats),
                       task=v.get("task", "classification"), dropna=v.get("dropna", False))
        if "loader" not in v:
            raise InputError(MSG_CONFIG_DATASET.format(name=name, problem="neither 'csv' nor 'loader'"))
        kwargs = v.get("kwargs", {})
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise bad("kwargs", "give a table of keyword arguments")
        return cls(name=name, loader=v["loader"], kwargs=tuple(sorted(kwargs.items())))


#: Keys of a CSV dataset (a registry dataset takes 'loader' and 'kwargs').
_CSV_KEYS = ("target", "groups", "features", "task", "dropna")


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (a message stays one short line)."""
    try:
        text = repr(value)
    except RecursionError:  # pragma: no cover - values come from TOML/JSON, depth-checked
        text = "<deeply nested value>"
    return text if len(text) <= limit else text[:limit - 5] + " ...]"


def _capped(items: list, limit: int = 20) -> list:
    return items if len(items) <= limit else [*items[:limit], f"... {len(items) - limit} more"]


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) and x for x in value)


_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def _dataset_name(name: Any) -> str:
    """A dataset name, which becomes part of file names (no '/', no leading '.')."""
    if (not isinstance(name, str) or not 0 < len(name) <= 80 or name.startswith(".")
            or not set(name) <= _NAME_CHARS):
        raise InputError(MSG_CONFIG_DATASET_NAME.format(name=_shown(name)))
    return name


@dataclass(frozen=True)
class BenchConfig:
    """Settings of a benchmark run.

    Attributes
    ----------
    datasets : tuple of DatasetSpec
        Default :data:`DEFAULT_DATASETS` (those that cannot be loaded here are reported
        and left out).
    folds : int, default 5
        Folds per dataset; each fold is the test set once.
    assign_size : float, default 0.3
        Share of the non-test rows held out as the assignment sample of the minimal and
        certified systems.
    n_boot, alpha, correction
        The audit's resamples (1,000), significance level (0.10) and correction (Holm).
    seed : int, default 0
        Base seed; every split, model and audit seed is derived from it and the cell.
    models, techniques, methods : tuple of str or None
        Restrict the grid (``None``: everything in :data:`~fairuse_opt.bench.GRID`).
    margin_se : float, default 1.0
        Margin of the ``fairuse-se`` method, in standard errors (``margin="se:1"``).
    system_metric : dict
        Metric the minimal and certified systems assign on, per task.
    ccp_max_train : int, default 20000
        Largest training set of a one-hot fair-use fit (the sequence of convex
        restrictions); bigger folds are skipped with the reason recorded.  Above every
        dataset of the default grid (support2's folds train on 7,250 rows, a fit of about
        4 s on a busy core).
    ccp_max_iter : int, default 10
        ``max_iter`` of those fits.
    decoupled_max_train : int, default 20000
        Largest training set of a decoupled fit (one model per group); bigger folds skip
        the decoupled cells, and the certified system's pool leaves the decoupled
        candidates out (recorded).  Above every dataset of the default grid (the native
        decoupled fits take seconds since issue 22).
    """

    datasets: tuple = tuple(DatasetSpec.from_value(d) for d in DEFAULT_DATASETS)
    folds: int = 5
    assign_size: float = 0.3
    n_boot: int = 1000
    alpha: float = 0.10
    correction: str = "holm"
    seed: int = 0
    models: tuple | None = None
    techniques: tuple | None = None
    methods: tuple | None = None
    margin_se: float = 1.0
    system_metric: dict = field(default_factory=lambda: {"classification": "error",
                                                          "regression": "mse"})
    ccp_max_train: int = 20000
    ccp_max_iter: int = 10
    decoupled_max_train: int = 20000

    def __post_init__(self):
        if not isinstance(self.folds, (int, np.integer)) or isinstance(self.folds, bool) or self.folds < 2:
            raise InputError(MSG_FOLDS.format(value=self.folds))
        if not 0.0 < float(self.assign_size) < 1.0:
            raise InputError(MSG_UNKNOWN_CHOICE.format(what="assign_size", value=self.assign_size,
                                                      known="a number in (0, 1)"))

    def settings(self) -> dict:
        """The settings that change a cell's numbers (part of every cell id)."""
        return {"folds": int(self.folds), "assign_size": float(self.assign_size),
                "n_boot": int(self.n_boot), "alpha": float(self.alpha),
                "correction": self.correction, "seed": int(self.seed),
                "margin_se": float(self.margin_se), "system_metric": dict(self.system_metric),
                "ccp_max_train": int(self.ccp_max_train), "ccp_max_iter": int(self.ccp_max_iter),
                "decoupled_max_train": int(self.decoupled_max_train)}

    def with_overrides(self, **kw: Any) -> "BenchConfig":
        """A copy with the given fields replaced (``None`` values are ignored)."""
        kw = {k: v for k, v in kw.items() if v is not None}
        if "datasets" in kw:
            kw["datasets"] = tuple(DatasetSpec.from_value(d) for d in kw["datasets"])
        for name in ("models", "techniques", "methods"):
            if name in kw:
                kw[name] = tuple(kw[name])
        return replace(self, **kw)


_CONFIG_KEYS = {"datasets", "folds", "assign_size", "n_boot", "alpha", "correction", "seed",
                "models", "techniques", "methods", "margin_se", "system_metric",
                "ccp_max_train", "ccp_max_iter", "decoupled_max_train", "extra_datasets"}


def load_config(path: str | Path | None) -> BenchConfig:
    """Read a TOML or JSON config file (``None``: the defaults).

    Keys are the fields of :class:`BenchConfig`; ``datasets`` replaces the default list
    and ``extra_datasets`` adds to it.  A dataset is a registry name or a table::

        [[extra_datasets]]
        name = "my_clinic"
        csv = "data/my_clinic.csv"
        target = "outcome"
        groups = ["sex", "age_band"]

    Returns
    -------
    BenchConfig
    """
    if path is None:
        return BenchConfig()
    path = Path(path)
    raw = _read_config(path)
    unknown = sorted(map(str, set(raw) - _CONFIG_KEYS))
    if unknown:
        raise InputError(MSG_CONFIG_KEY.format(path=str(path), keys=_capped(unknown), known=sorted(_CONFIG_KEYS)))
    _check_values(raw, str(path))
    base = BenchConfig()
    raw = dict(raw)
    extra = raw.pop("extra_datasets", [])
    datasets = raw.pop("datasets", None)
    specs = [DatasetSpec.from_value(d) for d in (datasets if datasets is not None else base.datasets)]
    specs += [DatasetSpec.from_value(d) for d in extra]
    names = [s.name for s in specs]
    twice = [n for n in dict.fromkeys(names) if names.count(n) > 1]
    if twice:
        raise InputError(MSG_CONFIG_DATASET_TWICE.format(name=twice[0]))
    # a relative CSV path is read relative to the config file
    specs = [replace(s, csv=str((path.parent / s.csv).resolve())) if s.csv and not Path(s.csv).is_absolute()
             else s for s in specs]
    for name in ("models", "techniques", "methods"):
        if name in raw:
            raw[name] = tuple(raw[name])
    return base.with_overrides(datasets=specs, **raw)


#: Deepest nesting a config file may have (a config needs 3: a list of tables of lists).
MAX_CONFIG_DEPTH = 20


def _depth_ok(text: str, limit: int = MAX_CONFIG_DEPTH) -> bool:
    """Whether brackets nest at most ``limit`` deep (checked before parsing, so that a
    100,000-deep file fails with a message, not a RecursionError)."""
    depth = 0
    quote = None
    escaped = False
    comment = False
    for ch in text:
        if comment:
            comment = ch != "\n"
        elif quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":  # a TOML comment (JSON has none outside strings)
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _read_config(path: Path) -> dict:
    """The config file as a mapping; every way it can be unreadable is an :class:`InputError`."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise InputError(MSG_CONFIG_SUFFIX.format(path=str(path)))
    kind = "TOML" if suffix == ".toml" else "JSON"
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(MSG_CONFIG_UNREADABLE.format(path=str(path), kind=kind, reason=exc.strerror or exc)) from None
    except UnicodeDecodeError:
        raise InputError(MSG_CONFIG_UNREADABLE.format(path=str(path), kind=kind, reason="it is not UTF-8 text")) from None
    if not _depth_ok(text):
        raise InputError(MSG_CONFIG_UNREADABLE.format(
            path=str(path), kind=kind, reason=f"values nest more than {MAX_CONFIG_DEPTH} deep"))
    try:
        if kind == "TOML":
            raw = tomllib.loads(text)
        else:
            raw = json.loads(text, parse_constant=_no_constant)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        reason = " ".join(str(exc).split())[:200] if not isinstance(exc, RecursionError) else "nested too deeply"
        raise InputError(MSG_CONFIG_UNREADABLE.format(path=str(path), kind=kind, reason=reason)) from None
    if not isinstance(raw, dict):
        raise InputError(MSG_CONFIG_UNREADABLE.format(
            path=str(path), kind=kind, reason=f"the top level is a {type(raw).__name__}, not a table of settings"))
    return raw


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a config file may hold")


def _integer(value: Any, low: int, high: int | None = None) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (high is None or value <= high))


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


#: What each setting must be: key -> (check, what to give).
_CHECKS = {
    "folds": (lambda v: _integer(v, 2, 1000), "give an integer from 2 to 1000"),
    "assign_size": (lambda v: _real(v) and 0 < v < 1, "give a number in (0, 1)"),
    "n_boot": (lambda v: _integer(v, 1, 10 ** 6), "give an integer from 1 to 1,000,000"),
    "alpha": (lambda v: _real(v) and 0 < v < 0.5, "give a number in (0, 0.5)"),
    "correction": (lambda v: v in ("holm", "bonferroni"), "choose 'holm' or 'bonferroni'"),
    "seed": (lambda v: _integer(v, 0, 2 ** 32 - 1), "give an integer from 0 to 4294967295"),
    "models": (_str_list, "give a list of names"),
    "techniques": (_str_list, "give a list of names"),
    "methods": (_str_list, "give a list of names"),
    "margin_se": (lambda v: _real(v) and v >= 0, "give a number >= 0"),
    "system_metric": (lambda v: isinstance(v, dict) and set(v) <= {"classification", "regression"}
                      and all(isinstance(x, str) for x in v.values()),
                      "give a table with 'classification' and/or 'regression' metric names"),
    "ccp_max_train": (lambda v: _integer(v, 1), "give an integer >= 1"),
    "ccp_max_iter": (lambda v: _integer(v, 1), "give an integer >= 1"),
    "decoupled_max_train": (lambda v: _integer(v, 1), "give an integer >= 1"),
    "datasets": (lambda v: isinstance(v, list), "give a list of dataset names or tables"),
    "extra_datasets": (lambda v: isinstance(v, list), "give a list of dataset tables"),
}


def _check_values(raw: dict, path: str) -> None:
    for key, (ok, expected) in _CHECKS.items():
        if key in raw and not ok(raw[key]):
            raise InputError(MSG_CONFIG_VALUE.format(path=path, key=key, value=_shown(raw[key]), expected=expected))
    if "system_metric" in raw:
        from ..audit._metrics import get_metric

        for task, name in raw["system_metric"].items():
            get_metric(name, task)
        raw["system_metric"] = {**BenchConfig().system_metric, **raw["system_metric"]}


#: pandas' default spellings of a missing cell (for the columns that are not group columns).
_DEFAULT_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
               "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


@lru_cache(maxsize=8)
def _load_cached(key: str):
    spec = _spec_from_key(json.loads(key))
    if spec.csv is None:
        from .. import datasets
        try:
            X, y, groups = datasets.load(spec.loader, **dict(spec.kwargs))
        except (datasets.DatasetNotFoundError, datasets.MissingDependencyError):
            raise  # the dataset is left out of the run, with the reason
        except (TypeError, ValueError) as exc:  # keyword arguments the loader does not take, bad values
            raise InputError(MSG_CONFIG_DATASET.format(
                name=spec.name, problem=f"loader {spec.loader!r} with kwargs {_shown(dict(spec.kwargs))}: "
                                        f"{' '.join(str(exc).split())[:300]}")) from None
        return X, y, groups
    return _load_csv(spec)


def _spec_from_key(d: dict) -> DatasetSpec:
    d = dict(d)
    d["kwargs"] = tuple(tuple(kv) for kv in d["kwargs"])
    d["groups"] = tuple(d["groups"])
    d["features"] = None if d["features"] is None else tuple(d["features"])
    return DatasetSpec(**d)


def load_dataset(spec: DatasetSpec):
    """``(X, y, groups, task)`` of a dataset (cached per process).

    Returns
    -------
    X : DataFrame
    y : Series
    groups : DataFrame
    task : {"classification", "regression"}
    """
    X, y, groups = _load_cached(json.dumps(spec.key(), sort_keys=True))
    return X, y, groups, dataset_task(spec, y)


def dataset_task(spec: DatasetSpec, y: pd.Series) -> str:
    """The task: the spec's, else classification for two distinct values."""
    if spec.task is not None:
        return spec.task
    return "classification" if pd.Series(y).nunique() <= 2 else "regression"


def _load_csv(spec: DatasetSpec):
    """A CSV dataset: group columns exactly as written (only an empty cell is missing: ``NA``
    is a value), every other column as pandas reads it."""
    groups = list(spec.groups)
    try:
        header = [str(c) for c in pd.read_csv(spec.csv, nrows=0).columns]
        na = {c: [""] if c in groups else _DEFAULT_NA for c in header}
        frame = pd.read_csv(spec.csv, dtype={c: str for c in groups if c in header}, keep_default_na=False,
                            na_values=na)
    except FileNotFoundError:
        raise InputError(MSG_CSV_UNREADABLE.format(name=spec.name, path=spec.csv, reason="no such file")) from None
    except UnicodeDecodeError:
        raise InputError(MSG_CSV_UNREADABLE.format(name=spec.name, path=spec.csv, reason="not UTF-8 text")) from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(MSG_CSV_UNREADABLE.format(name=spec.name, path=spec.csv,
                                                   reason=" ".join(str(exc).split())[:200])) from None
    features = list(spec.features) if spec.features is not None else [
        c for c in frame.columns if c != spec.target and c not in groups]
    used = [spec.target, *groups, *features]
    absent = [c for c in used if c not in frame.columns]
    if absent:
        raise InputError(MSG_CSV_COLUMNS.format(name=spec.name, columns=absent, path=spec.csv))
    frame = frame[used]
    bad = frame.isna().any(axis=1)
    if bad.any():
        if not spec.dropna:
            cols = [c for c in used if frame[c].isna().any()]
            raise InputError(MSG_CSV_MISSING.format(name=spec.name, columns=cols, n=int(bad.sum())))
        frame = frame[~bad].reset_index(drop=True)
    X = pd.get_dummies(frame[features], drop_first=True, dtype="float64").astype("float64")
    y = frame[spec.target]
    g = pd.DataFrame({c: frame[c].astype(str) for c in groups})
    return X, y, g
