"""The ``fairuse`` command: fit from a CSV, score from the model file alone, audit, bad input."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairuse_opt import cli
from fairuse_opt.cli import main
from fairuse_opt import model_io

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-7



@pytest.fixture(scope="module")
def apnea_csv(tmp_path_factory, data_dir) -> Path:
    """apnea.csv plus a text column ``site`` (a categorical feature the CLI must one-hot encode)."""
    src = data_dir / "apnea.csv"
    df = pd.read_csv(src)
    df["site"] = np.array(["north", "south", "east"])[np.arange(len(df)) % 3]
    path = tmp_path_factory.mktemp("cli") / "apnea_site.csv"
    df.to_csv(path, index=False)
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- scoring without the library
def score_without_library(model_path: Path, csv_path: Path, report: list | None = None) -> tuple:
    """Score a raw CSV from the model file alone: json + numpy + pandas, no fairuse_opt.

    Returns ``(groups, y01, s_own, s_generic, scores_by_report)``: the rows' group keys,
    the 0/1 target, the score under the own report, the generic score, and for every
    reportable group the score of every row under that report.
    """
    doc = json.loads(Path(model_path).read_text(encoding="utf-8"))
    assert doc["format"] == "fairuse_opt.model/1"
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)  # every cell as text
    cols = []
    for c in doc["input"]["columns"]:
        if c["kind"] == "numeric":
            cols.append(raw[c["name"]].astype(float).to_numpy())
        else:
            for level, _feature in c["features"].items():
                cols.append((raw[c["name"]] == level).to_numpy().astype(float))
    X = np.column_stack(cols)
    assert X.shape[1] == len(doc["features"]["names"])
    attrs = doc["input"]["group_columns"]
    keys = [tuple(r) for r in raw[attrs].itertuples(index=False, name=None)]
    models = {tuple(m["group"]): (np.array(m["coef"]), m["intercept"]) for m in doc["models"]}
    s_own = np.array([models[k][1] + X[i] @ models[k][0] for i, k in enumerate(keys)])
    by_report = {r: X @ w + b for r, (w, b) in models.items()}
    s_gen = X @ np.array(doc["generic"]["coef"]) + doc["generic"]["intercept"]
    positive = str(doc["classes"]["values"][1])
    y01 = (raw[doc["input"]["target"]] == positive).to_numpy().astype(float)
    return keys, y01, s_own, s_gen, by_report


def log_loss_rows(y01: np.ndarray, s: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, -(2 * y01 - 1) * s)


@pytest.mark.parametrize("extra", [[], ["--margin", "0.02"]], ids=["default", "margin"])
def test_fit_then_score_from_model_file_alone(apnea_csv, tmp_path, capsys, extra):
    out = tmp_path / "model.json"
    rc = main(["fit", "--data", str(apnea_csv), "--target", "Apnea", "--groups", "Age,Sex",
               "--out", str(out), *extra])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "verified=True" in captured.out
    assert "one-hot encoded site" in captured.err  # progress on stderr

    keys, y01, s_own, s_gen, by_report = score_without_library(out, apnea_csv)
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["input"]["target"] == "Apnea" and doc["input"]["group_columns"] == ["Age", "Sex"]
    assert any(c["kind"] == "categorical" and c["name"] == "site" for c in doc["input"]["columns"])
    cert = {tuple(r["group"]): r for r in doc["certificate"]["table"]}
    assert doc["certificate"]["verified"] is True
    keys_arr = np.array(["|".join(k) for k in keys])
    assert set(cert) == set(by_report) == set(keys)
    n_active = 0
    for g, row in cert.items():
        mask = keys_arr == "|".join(g)
        assert mask.sum() == row["n"]
        own = log_loss_rows(y01[mask], s_own[mask]).mean()
        gen = log_loss_rows(y01[mask], s_gen[mask]).mean()
        others = {r: log_loss_rows(y01[mask], s[mask]).mean() for r, s in by_report.items() if r != g}
        # matches the certificate
        assert own == pytest.approx(row["own_loss"], abs=1e-9)
        assert gen == pytest.approx(row["generic_loss"], abs=1e-9)
        best = min(others, key=others.get)
        assert others[best] == pytest.approx(row["best_alternative_loss"], abs=1e-9)
        assert list(best) == row["best_alternative"]
        # satisfies every constraint
        assert own <= gen - row["margin"] + TOL
        for r, loss in others.items():
            assert own <= loss + TOL, (g, r)
        n_active += bool(row["rationality_active"])
    if extra:
        assert doc["certificate"]["route"] == "exact" and n_active >= 1
        assert all(r["margin"] == 0.02 for r in cert.values())

    # the library's loaded model gives the same scores
    mf = model_io.read(out)
    X = mf.encoding.transform(pd.read_csv(apnea_csv, dtype={"Age": str, "Sex": str, "site": str}))
    groups = pd.DataFrame(keys, columns=["Age", "Sex"])
    np.testing.assert_allclose(mf.estimator.decision_function(X, groups=groups), s_own, rtol=0, atol=1e-10)


def test_fit_regression_and_audit(tmp_path, capsys):
    """Regression through the CLI (diabetes), then an audit with markdown and plot."""
    from fairuse_opt.datasets import load_diabetes

    X, y, g = load_diabetes()
    df = pd.concat([X, g, y], axis=1)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    df.iloc[::2].to_csv(train, index=False)
    df.iloc[1::2].to_csv(test, index=False)
    model = tmp_path / "m.json"
    assert main(["fit", "--data", str(train), "--target", "progression", "--groups", "Sex,Age",
                 "--task", "regression", "--features", "bmi,bp,s5", "--fair-use", "none", "--out", str(model),
                 "--quiet"]) == 0
    capsys.readouterr()
    est = model_io.loads(model)
    assert est.feature_names_ == ["bmi", "bp", "s5"] and est.groups_ == [("1", "50+"), ("1", "<50"),
                                                                         ("2", "50+"), ("2", "<50")]
    out, md, png = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.png"
    args = ["audit", "--data", str(test), "--model", str(model), "--n-boot", "50", "--out", str(out),
            "--markdown", str(md)]
    if importlib.util.find_spec("matplotlib") is not None:
        args += ["--plot", str(png)]
    assert main(args) == 0
    captured = capsys.readouterr()
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["settings"]["metrics"] == ["mse", "mae"] and report["settings"]["n_boot"] == 50
    assert {r["group"] for r in report["table"]} == {"Sex=1, Age=50+", "Sex=1, Age=<50", "Sex=2, Age=50+",
                                                     "Sex=2, Age=<50"}
    assert md.read_text(encoding="utf-8").startswith("# Fair-use audit")
    assert "rationality" in captured.out
    if "--plot" in args:
        assert png.stat().st_size > 1000


def test_audit_classification_reads_columns_from_model(apnea_csv, tmp_path, capsys):
    model = tmp_path / "m.json"
    assert main(["fit", "--data", str(apnea_csv), "--target", "Apnea", "--groups", "Age,Sex",
                 "--encoding", "onehot", "--fair-use", "none", "--out", str(model), "--quiet"]) == 0
    out = tmp_path / "r.json"
    assert main(["audit", "--data", str(apnea_csv), "--model", str(model), "--metrics", "error,log_loss",
                 "--n-boot", "20", "--seed", "3", "--out", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["settings"]["random_state"] == 3 and report["settings"]["metrics"] == ["error", "log_loss"]
    assert len({r["group"] for r in report["table"]}) == 6
    capsys.readouterr()


def test_dropna_reports_rows_lost_per_group(apnea_csv, tmp_path, capsys):
    df = pd.read_csv(apnea_csv)
    df.loc[[0, 1, 5], "bmi_lt_25"] = np.nan
    df.loc[[7], "Sex"] = np.nan
    path = tmp_path / "holes.csv"
    df.to_csv(path, index=False)
    args = ["fit", "--data", str(path), "--target", "Apnea", "--groups", "Age,Sex", "--out",
            str(tmp_path / "m.json")]
    assert main(args) == 2
    line = one_line_error(capsys)
    assert line == "fairuse: error: " + cli.MSG_MISSING_VALUES.format(
        path=path, detail="Sex (1 row(s)), bmi_lt_25 (3 row(s))", n_rows=4, n_total=len(df))
    assert main([*args, "--dropna", "--fair-use", "none"]) == 0
    err = capsys.readouterr().err
    lost = df.loc[[0, 1, 5], ["Age", "Sex"]]
    detail = "; ".join(f"Age={a}, Sex={s}: {k}" for (a, s), k in lost.value_counts().sort_index().items())
    assert cli.MSG_DROPPED.format(n_rows=4, n_total=len(df), detail=detail + "; (group value missing): 1") in err
    assert json.loads((tmp_path / "m.json").read_text())["certificate"]["table"][0]["n"] > 0


# --------------------------------------------------------------------------- bad input: status 2, one line
def fit_args(data, tmp_path, *extra):
    return ["fit", "--data", str(data), "--target", "Apnea", "--groups", "Age,Sex",
            "--out", str(tmp_path / "m.json"), "--quiet", *extra]


def test_bad_input_missing_file(tmp_path, capsys):
    path = tmp_path / "absent.csv"
    assert main(fit_args(path, tmp_path)[:-1]) == 2  # without --quiet: still one line
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_NO_FILE.format(path=path)


def test_bad_input_unknown_column(apnea_csv, tmp_path, capsys):
    assert main(fit_args(apnea_csv, tmp_path, "--features", "bmi_lt_25,snoring_typo")) == 2
    line = one_line_error(capsys)
    assert line.startswith("fairuse: error: " + cli.MSG_UNKNOWN_COLUMNS.format(
        missing=["snoring_typo"], path=apnea_csv, columns="X").split(" its columns")[0])
    assert "Apnea" in line  # the file's columns are listed


def test_bad_input_non_binary_target(apnea_csv, tmp_path, capsys):
    df = pd.read_csv(apnea_csv)
    df["Apnea"] = np.arange(len(df)) % 3
    path = tmp_path / "three.csv"
    df.to_csv(path, index=False)
    assert main(fit_args(path, tmp_path)) == 2
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_NOT_BINARY.format(
        column="Apnea", n=3, values="0, 1, 2")


def test_bad_input_single_class_target(apnea_csv, tmp_path, capsys):
    df = pd.read_csv(apnea_csv).assign(Apnea=1)
    path = tmp_path / "one.csv"
    df.to_csv(path, index=False)
    assert main(fit_args(path, tmp_path)) == 2
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_ONE_CLASS.format(column="Apnea", value=1)


def test_bad_input_group_column_with_one_value(apnea_csv, tmp_path, capsys):
    df = pd.read_csv(apnea_csv).assign(Sex="Female")
    path = tmp_path / "onesex.csv"
    df.to_csv(path, index=False)
    assert main(fit_args(path, tmp_path)) == 2
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_ONE_LEVEL.format(column="Sex", value="Female")


def test_bad_input_unreadable_model_file(apnea_csv, tmp_path, capsys):
    model = tmp_path / "garbage.json"
    model.write_text("this is not a model", encoding="utf-8")
    assert main(["audit", "--data", str(apnea_csv), "--model", str(model), "--out", str(tmp_path / "r.json")]) == 2
    line = one_line_error(capsys)
    assert line.startswith(f"fairuse: error: model file {model} is not valid JSON")
    model.write_text('{"format": "other/1"}', encoding="utf-8")
    assert main(["audit", "--data", str(apnea_csv), "--model", str(model), "--out", str(tmp_path / "r.json")]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + model_io.MSG_BAD_FORMAT.format(
        source=model, got="other/1", expected=model_io.FORMAT)
    missing = tmp_path / "missing.json"
    assert main(["audit", "--data", str(apnea_csv), "--model", str(missing), "--out", str(tmp_path / "r.json")]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + model_io.MSG_FILE_MISSING.format(path=missing)


def test_bad_input_non_numeric_regression_target(apnea_csv, tmp_path, capsys):
    assert main(["fit", "--data", str(apnea_csv), "--target", "site", "--groups", "Age,Sex", "--task",
                 "regression", "--out", str(tmp_path / "m.json")]) == 2  # not --quiet: still one line
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_NOT_NUMERIC_TARGET.format(
        column="site", value="north")


def test_bad_input_usage_errors_are_one_line(apnea_csv, tmp_path, capsys):
    assert main(["fit", "--data", str(apnea_csv), "--groups", "Age", "--out", "m.json"]) == 2
    line = one_line_error(capsys)
    assert "the following arguments are required: --target" in line
    assert main(fit_args(apnea_csv, tmp_path, "--margin", "-1")) == 2
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_BAD_MARGIN.format(value="-1")
    assert main(fit_args(apnea_csv, tmp_path, "--features", "Age")) == 2
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_COLUMN_TWICE.format(
        column="Age", roles="--groups and --features")
    assert main([]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_NO_COMMAND.format(
        commands="fit, predict, audit, demo")


def test_plot_without_matplotlib_is_one_line(apnea_csv, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert main(["audit", "--data", str(apnea_csv), "--model", str(tmp_path / "m.json"), "--out",
                 str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_NEED_MATPLOTLIB


def test_python_m_fairuse_opt_help():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "fairuse_opt", "--help"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: fairuse")
    for command in ("fit", "audit", "demo"):
        assert command in proc.stdout


def small_csv(tmp_path, n_tiny=0) -> Path:
    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"x": rng.normal(size=n), "grp": np.where(np.arange(n) < n_tiny, "tiny",
                                                                  np.where(np.arange(n) % 2, "a", "b"))})
    df["y"] = (df["x"] + rng.logistic(size=n) > 0).astype(int)
    path = tmp_path / "small.csv"
    df.to_csv(path, index=False)
    return path


def test_infeasible_margin_exits_1_with_one_line(tmp_path, capsys):
    path = small_csv(tmp_path)
    assert main(["fit", "--data", str(path), "--target", "y", "--groups", "grp", "--margin", "2",
                 "--out", str(tmp_path / "m.json"), "--quiet"]) == 1
    line = one_line_error(capsys)
    assert line.startswith("fairuse: error: FairUseInfeasibleError: the fair-use constraints cannot be met")
    assert not (tmp_path / "m.json").exists()


def test_library_warnings_are_one_line(tmp_path, capsys):
    path = small_csv(tmp_path, n_tiny=5)
    assert main(["fit", "--data", str(path), "--target", "y", "--groups", "grp", "--fair-use", "none",
                 "--out", str(tmp_path / "m.json"), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fairuse: warning: group ('tiny',) has 5 row(s)")
