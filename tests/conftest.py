"""Shared test fixtures.

The apnea data is never copied into the repository: it is read from the folder named
by ``FAIRUSE_DATA_DIR`` (a relative path is taken from the folder pytest was started
in), or from ``../shared/data`` beside the repository.

Tests that need it carry the marker ``needs_apnea`` (registered in ``pyproject.toml``):
set by hand, or added here to every test that uses the fixture ``data_dir`` (directly or
through ``apnea``, ``apnea_csv``, ...) or a module fixture named in
:data:`APNEA_FIXTURES`.  When the file is missing such a test is **skipped** with a
one-line reason, so the README's test command passes on a fresh machine; with the
environment variable ``FAIRUSE_REQUIRE_DATA=1`` (``.ci/run`` sets it) it **fails**
instead, so CI runs every one of them.

Every model file that :func:`fairuse_opt.model_io.dumps` writes during the test session
(every ``to_json``, every ``fairuse fit``) is validated against the JSON Schema shipped
in the package.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
#: Folder named by FAIRUSE_DATA_DIR, resolved against the folder the tests started in.
_STARTED_IN = Path.cwd()


def find_data_dir() -> Path:
    """The folder holding ``apnea.csv``, as an absolute path (not checked)."""
    env = os.environ.get("FAIRUSE_DATA_DIR")
    folder = Path(env).expanduser() if env else REPO.parent / "shared" / "data"
    return (folder if folder.is_absolute() else _STARTED_IN / folder).resolve()


#: Environment variable that turns the skip of a test needing data into a failure (CI).
ENV_REQUIRE_DATA = "FAIRUSE_REQUIRE_DATA"
#: Marker of the tests that read apnea.csv.
APNEA_MARKER = "needs_apnea"
#: Fixtures whose use means a test reads apnea.csv (``_data_env``: test_bench.py's
#: module fixture, which points the library at the data folder).
APNEA_FIXTURES = frozenset({"data_dir", "apnea", "_data_env"})


def data_required() -> bool:
    """Whether a test needing data must fail, rather than skip, when the data is missing."""
    return os.environ.get(ENV_REQUIRE_DATA, "").strip().lower() not in ("", "0", "false", "no")


def missing_data(reason: str) -> None:
    """Skip the running test with a one-line ``reason``, or fail it under
    ``FAIRUSE_REQUIRE_DATA=1``."""
    if data_required():
        pytest.fail(f"{reason} ({ENV_REQUIRE_DATA} is set: data tests must run)", pytrace=False)
    pytest.skip(reason)


def apnea_missing_reason() -> str | None:
    """``None`` when apnea.csv is where the tests look, else the one-line skip reason."""
    folder = find_data_dir()
    if (folder / "apnea.csv").is_file():
        return None
    return f"apnea.csv not in {folder}: set FAIRUSE_DATA_DIR to the folder holding it"


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses an apnea fixture ``needs_apnea``."""
    for item in items:
        if APNEA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(APNEA_MARKER)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before any fixture is set up: skip (or, in CI, fail) a ``needs_apnea`` test
    whose data is missing."""
    if item.get_closest_marker(APNEA_MARKER) is not None:
        reason = apnea_missing_reason()
        if reason is not None:
            missing_data(reason)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder holding ``apnea.csv`` (absolute); skips (fails in CI) when it is missing."""
    reason = apnea_missing_reason()
    if reason is not None:  # reached only by a fixture used outside a marked test
        missing_data(reason)
    return find_data_dir()


@pytest.fixture(scope="session")
def apnea(data_dir):
    """``(X, y, groups)`` of the apnea data (1,922 rows, 6 groups)."""
    df = pd.read_csv(data_dir / "apnea.csv")
    return df.drop(columns=["Apnea", "Age", "Sex"]), df["Apnea"], df[["Age", "Sex"]]


class SchemaCheck:
    """Validates documents against the model-file schema and counts them."""

    def __init__(self) -> None:
        import jsonschema

        from fairuse_opt import model_io

        self.validator = jsonschema.Draft202012Validator(model_io.schema())
        self.n_checked = 0

    def __call__(self, doc: dict) -> None:
        errors = sorted(self.validator.iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            raise AssertionError(f"model file breaks its schema at {list(first.path)}: {first.message}")
        self.n_checked += 1


@pytest.fixture(scope="session", autouse=True)
def model_file_schema():
    """Every model file written during the session is checked against the schema."""
    from fairuse_opt import model_io

    check = SchemaCheck()
    model_io.DOCUMENT_CHECKS.append(check)
    yield check
    model_io.DOCUMENT_CHECKS.remove(check)


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


def pytest_configure(config):
    """A test run started in the background by a non-interactive shell inherits SIGINT
    ignored (and passes that on to every child process): the Ctrl-C tests would then test
    nothing.  Restore Python's handler so that they run as under a terminal."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
