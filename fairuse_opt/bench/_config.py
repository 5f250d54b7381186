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
    MSG_CONFIG_KEY,
    MSG_CONFIG_SUFFIX,
    MSG_CSV_COLUMNS,
    MSG_CSV_MISSING,
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
        """A registry name, or a mapping as in the config file."""
        if isinstance(value, DatasetSpec):
            return value
        if isinstance(value, str):
            return cls(name=value, loader=value)
        if not isinstance(value, dict) or "name" not in value:
            raise InputError(MSG_CONFIG_DATASET.format(name=value, problem="needs a 'name'"))
        v = dict(value)
        name = v.pop("name")
        known = {"loader", "kwargs", "csv", "target", "groups", "features", "task", "dropna"}
        extra = sorted(set(v) - known)
        if extra:
            raise InputError(MSG_CONFIG_DATASET.format(name=name, problem=f"unknown keys {extra}"))
        if "csv" in v:
            missing = [k for k in ("target", "groups") if k not in v]
            if missing:
                raise InputError(MSG_CONFIG_DATASET.format(name=name, problem=f"missing {missing}"))
            groups = v["groups"]
            groups = (groups,) if isinstance(groups, str) else tuple(groups)
            feats = v.get("features")
            return cls(name=name, csv=str(v["csv"]), target=v["target"], groups=groups,
                       features=None if feats is None else tuple(feats),
                       task=v.get("task", "classification"), dropna=bool(v.get("dropna", False)))
        if "loader" not in v:
            raise InputError(MSG_CONFIG_DATASET.format(name=name, problem="neither 'csv' nor 'loader'"))
        return cls(name=name, loader=v["loader"],
                   kwargs=tuple(sorted(dict(v.get("kwargs", {})).items())))


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
    ccp_max_train : int, default 2500
        Largest training set of a one-hot fair-use fit (the sequence of convex
        restrictions); bigger folds are skipped with the reason recorded.
    ccp_max_iter : int, default 10
        ``max_iter`` of those fits.
    decoupled_max_train : int, default 5000
        Largest training set of a decoupled fit (one full model per group, through the
        conic solver: about 100 s on support2's 7,250 training rows on a busy core);
        bigger folds skip the decoupled cells, and the certified system's pool leaves
        the decoupled candidates out (recorded).
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
    ccp_max_train: int = 2500
    ccp_max_iter: int = 10
    decoupled_max_train: int = 5000

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
    if path.suffix.lower() == ".toml":
        raw = tomllib.loads(path.read_text())
    elif path.suffix.lower() == ".json":
        raw = json.loads(path.read_text())
    else:
        raise InputError(MSG_CONFIG_SUFFIX.format(path=str(path)))
    unknown = sorted(set(raw) - _CONFIG_KEYS)
    if unknown:
        raise InputError(MSG_CONFIG_KEY.format(path=str(path), keys=unknown, known=sorted(_CONFIG_KEYS)))
    base = BenchConfig()
    raw = dict(raw)
    extra = raw.pop("extra_datasets", [])
    datasets = raw.pop("datasets", None)
    specs = [DatasetSpec.from_value(d) for d in (datasets if datasets is not None else base.datasets)]
    specs += [DatasetSpec.from_value(d) for d in extra]
    # a relative CSV path is read relative to the config file
    specs = [replace(s, csv=str((path.parent / s.csv).resolve())) if s.csv and not Path(s.csv).is_absolute()
             else s for s in specs]
    return base.with_overrides(datasets=specs, **raw)


@lru_cache(maxsize=8)
def _load_cached(key: str):
    spec = _spec_from_key(json.loads(key))
    if spec.csv is None:
        from .. import datasets
        X, y, groups = datasets.load(spec.loader, **dict(spec.kwargs))
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
    frame = pd.read_csv(spec.csv)
    groups = list(spec.groups)
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
