"""The command line against hostile or careless input (issue 24, "Command line" L1-L6 and the
lower-priority items): each test is built from the issue's reproduction and needs no data
folder (synthetic data only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairuse_opt import cli, model_io
from fairuse_opt.cli import main


def region_frame(n: int = 400, seed: int = 0, regions=("EU", "AM", "ASIA")) -> pd.DataFrame:
    """Two features, a ``region`` attribute (``NA`` for North America in the tests of L2), a
    ``sex`` attribute, and a binary target that depends on the region."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    df["region"] = rng.choice(list(regions), size=n)
    df["sex"] = rng.choice(["F", "M"], size=n)
    df["y"] = (df.x1 + 1.0 * (df.region == regions[1]) + rng.logistic(size=n) > 0.3).astype(int)
    return df


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` with every cell exactly as given (no NA spelling of pandas' own)."""
    df.to_csv(path, index=False, na_rep="")
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- L2: NA is a value
@pytest.mark.parametrize("spelling", ["NA", "None", "null", "n/a", "NaN"])
def test_group_cells_spelled_like_missing_are_values(tmp_path, capsys, spelling):
    """L2: a group cell ``NA`` (North America), ``None``, ``null``, ``n/a`` or ``NaN`` is a
    value as written, not a missing value: ``fit`` keeps its rows as their own group."""
    df = region_frame(regions=("EU", spelling, "ASIA"))
    data = write_csv(df, tmp_path / "d.csv")
    out = tmp_path / "m.json"
    rc = main(["fit", "--data", str(data), "--target", "y", "--groups", "region,sex", "--fair-use", "none",
               "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads(out.read_text(encoding="utf-8"))
    table = {tuple(r["group"]): r["n"] for r in doc["certificate"]["table"]}
    expected = df.groupby(["region", "sex"]).size().to_dict()
    assert table == expected
    assert sum(n for (r, _), n in table.items() if r == spelling) == int((df.region == spelling).sum()) > 100


def test_fit_system_keeps_na_as_a_reported_value(tmp_path, capsys):
    """L2: ``fit --system`` with region in {EU, NA, ASIA}: the NA rows report region NA (the
    system's levels include it); only empty cells are partial reports."""
    df = region_frame(regions=("EU", "NA", "ASIA"))
    df.loc[:9, "sex"] = ""  # ten rows that do not report sex
    data = write_csv(df, tmp_path / "d.csv")
    out = tmp_path / "s.json"
    rc = main(["fit", "--system", "--data", str(data), "--target", "y", "--groups", "region,sex",
               "--n-boot", "50", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"{len(df)} rows (10 with a partial report)" in captured.err
    system = model_io.loads(out)
    assert list(system.levels_["region"]) == ["ASIA", "EU", "NA"]


def test_predict_on_a_system_without_na_refuses_region_na(tmp_path, capsys):
    """L2: ``predict`` with ``region=NA`` on a system that never saw NA is an unseen group
    (exit 2, one line), not a silent "not reported" served the generic model."""
    train = write_csv(region_frame(regions=("EU", "ASIA", "OC")), tmp_path / "train.csv")
    test_df = region_frame(n=50, seed=1, regions=("EU", "NA", "ASIA"))
    test = write_csv(test_df, tmp_path / "test.csv")
    system = tmp_path / "s.json"
    assert main(["fit", "--system", "--data", str(train), "--target", "y", "--groups", "region,sex",
                 "--n-boot", "50", "--out", str(system), "--quiet"]) == 0
    capsys.readouterr()
    scores = tmp_path / "p.csv"
    assert main(["predict", "--model", str(system), "--data", str(test), "--out", str(scores)]) == 2
    line = one_line_error(capsys)
    assert "'NA'" in line and "region" in line
    assert not scores.exists()


def test_dropna_keeps_the_na_group(tmp_path, capsys):
    """L2: ``fit --dropna`` drops rows with an empty cell, never the whole ``NA`` group."""
    df = region_frame(regions=("EU", "NA", "ASIA"))
    df["x2"] = df["x2"].astype(object)
    df.loc[[3, 4], "x2"] = ""
    data = write_csv(df, tmp_path / "d.csv")
    out = tmp_path / "m.json"
    assert main(["fit", "--data", str(data), "--target", "y", "--groups", "region,sex", "--fair-use", "none",
                 "--dropna", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "dropped 2 of 400 row(s)" in err
    doc = json.loads(out.read_text(encoding="utf-8"))
    n_na = sum(r["n"] for r in doc["certificate"]["table"] if r["group"][0] == "NA")
    assert n_na == int((df.drop(index=[3, 4]).region == "NA").sum())


def test_na_values_names_the_spelling_of_a_missing_cell(tmp_path, capsys):
    """``--na-values`` says which spelling means "missing" (for --system: "not reported")."""
    df = region_frame(regions=("EU", "?", "ASIA"))
    data = write_csv(df, tmp_path / "d.csv")
    out = tmp_path / "m.json"
    n_q = int((df.region == "?").sum())
    args = ["fit", "--data", str(data), "--target", "y", "--groups", "region,sex", "--out", str(out)]
    assert main([*args, "--na-values", "?"]) == 2
    line = one_line_error(capsys)
    assert f"region ({n_q} row(s))" in line
    assert main([*args, "--system", "--n-boot", "50", "--na-values", "?"]) == 0
    assert f"({n_q} with a partial report)" in capsys.readouterr().err
    assert list(model_io.loads(out).levels_["region"]) == ["ASIA", "EU"]


# --------------------------------------------------------------------------- L3: numbers beyond int64
def test_an_integer_beyond_int64_keeps_its_column_numeric(tmp_path, capsys):
    """L3: one integer larger than int64 in a numeric column: the column stays one numeric
    feature (its value as a float, as every number), not one-hot features."""
    df = region_frame()
    df["x2"] = df["x2"].astype(object)
    df.loc[0, "x2"] = "123456789012345678901234567890"
    data = write_csv(df, tmp_path / "d.csv")
    out = tmp_path / "m.json"
    assert main(["fit", "--data", str(data), "--target", "y", "--groups", "region,sex", "--fair-use", "none",
                 "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["features"]["names"] == ["x1", "x2"]
    assert {"name": "x2", "kind": "numeric", "feature": "x2"} in doc["input"]["columns"]


# --------------------------------------------------------------------------- L4: one line, before progress
@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A model file fitted on ``region_frame()`` and its CSV."""
    folder = tmp_path_factory.mktemp("small")
    data = write_csv(region_frame(), folder / "d.csv")
    model = folder / "m.json"
    assert main(["fit", "--data", str(data), "--target", "y", "--groups", "region,sex", "--fair-use", "none",
                 "--out", str(model), "--quiet"]) == 0
    return data, model


def fit_cmd(data, out, *extra):
    return ["fit", "--data", str(data), "--target", "y", "--groups", "region,sex", "--out", str(out), *extra]


@pytest.mark.parametrize("extra, needle", [
    (["--margin", "se:abc"], ("--margin", "'se:abc'")),
    (["--margin", "se:-1"], ("--margin", "'se:-1'")),
    (["--margin", "se:inf"], ("--margin", "'se:inf'")),
    (["--l2", "inf"], ("--l2", "'inf'")),
    (["--l2", "-1"], ("--l2", "'-1'")),
    (["--l2", "nan"], ("--l2", "'nan'")),
    (["--system", "--seed", "-1"], ("--seed", "'-1'")),
    (["--system", "--seed", str(2 ** 32)], ("--seed", f"'{2 ** 32}'")),
    (["--system", "--test", "exact", "--metric", "log_loss"], ("--test exact", "'log_loss'")),
    (["--system", "--test", "exact", "--task", "regression"], ("--test exact", "'mse'")),
    (["--system", "--metric", "foo"], ("foo",)),
    (["--system", "--metric", "mse"], ("mse",)),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_fit_flags_are_one_line_before_any_progress(small_model, tmp_path, capsys, extra, needle):
    """L4: a bad flag of ``fit`` exits 2 with one line, before any progress line (and
    ``--l2 -1`` is reported as ``--l2``, not as ``alpha``)."""
    data, _ = small_model
    out = tmp_path / "m.json"
    assert main(fit_cmd(data, out, *extra)) == 2
    line = one_line_error(capsys)
    assert all(part in line for part in needle) and "alpha=" not in line, line
    assert not out.exists()


@pytest.mark.parametrize("cell", ["1e999", "-inf", "1e200"])
def test_a_feature_cell_out_of_range_is_one_line(tmp_path, capsys, cell):
    """L4: a feature cell ``1e999`` (infinite as a float) or beyond the fit's range exits 2
    with one line naming the column, before any progress line."""
    df = region_frame()
    df["x2"] = df["x2"].astype(object)
    df.loc[5, "x2"] = cell
    data = write_csv(df, tmp_path / "d.csv")
    for extra in ([], ["--system", "--n-boot", "20"]):
        assert main(fit_cmd(data, tmp_path / "m.json", *extra)) == 2
        line = one_line_error(capsys)
        assert "x2" in line and "1 row(s)" in line, line


@pytest.mark.parametrize("extra, needle", [
    (["--alpha", "0.7"], "--alpha"),
    (["--alpha", "0.5"], "--alpha"),
    (["--metrics", "foo"], "foo"),
    (["--metrics", "mse"], "mse"),
    (["--metrics", "error,error"], "error"),
    (["--seed", "-1"], "--seed"),
    (["--plot-metric", "auc", "--metrics", "error"], "auc"),
])
def test_bad_audit_flags_are_one_line_before_any_progress(small_model, tmp_path, capsys, extra, needle):
    """L4: ``audit --alpha 0.7`` and ``audit --metrics foo`` exit 2 with one line before the
    data is read or any progress line."""
    data, model = small_model
    out = tmp_path / "r.json"
    assert main(["audit", "--data", str(data), "--model", str(model), "--out", str(out), "--n-boot", "20",
                 *extra]) == 2
    line = one_line_error(capsys)
    assert needle in line, line
    assert not out.exists()
