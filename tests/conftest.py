"""Shared test fixtures.

The apnea data is never copied into the repository: it is read from the folder named
by ``FAIRUSE_DATA_DIR``, or from ``../shared/data`` beside the repository.  A missing
file fails the tests that need it; it does not skip them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    env = os.environ.get("FAIRUSE_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def apnea():
    """``(X, y, groups)`` of the apnea data (1,922 rows, 6 groups)."""
    path = data_dir() / "apnea.csv"
    if not path.exists():
        pytest.fail(f"apnea.csv not found at {path}: set FAIRUSE_DATA_DIR to the folder holding it")
    df = pd.read_csv(path)
    return df.drop(columns=["Apnea", "Age", "Sex"]), df["Apnea"], df[["Age", "Sex"]]


@pytest.fixture(scope="session")
def toy():
    """The XOR counterexample of fair-use.md section 7 (no features)."""
    cells = [("female", "old", 0, 24), ("female", "young", 25, 0),
             ("male", "old", 25, 0), ("male", "young", 0, 27)]
    rows = []
    for sex, age, pos, neg in cells:
        rows += [(sex, age, 1)] * pos + [(sex, age, 0)] * neg
    df = pd.DataFrame(rows, columns=["sex", "age", "y"])
    return np.zeros((len(df), 0)), df["y"].to_numpy(), df[["sex", "age"]]


def make_data(n=300, d=3, n_groups=3, task="classification", seed=0, effect=0.8):
    """Random data with group effects (not separable for the classifier)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    g = rng.integers(0, n_groups, n)
    beta = rng.normal(size=d)
    s = X @ beta + effect * (g - (n_groups - 1) / 2)
    if task == "classification":
        y = (s + rng.logistic(size=n) > 0).astype(int)
    else:
        y = s + rng.normal(size=n)
    return X, y, g
