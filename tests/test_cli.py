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
        commands=", ".join(f.__name__.removeprefix("add_") for f in cli.COMMANDS))


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


# --------------------------------------------------------------------------- conventions (issue 10, item 3)
from fairuse_opt import exceptions as E  # noqa: E402


def test_version(capsys):
    from fairuse_opt import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fairuse (fairuse_opt) {__version__}"


def test_subcommands_come_from_the_registry(capsys):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, cli.argparse._SubParsersAction))
    names = [f.__name__.removeprefix("add_") for f in cli.COMMANDS]
    assert list(sub.choices) == names and names[:4] == ["fit", "predict", "audit", "demo"]
    for name in ("fit", "predict", "audit", "demo"):
        assert sub.choices[name].get_default("func") is getattr(cli, f"cmd_{name}")


def test_encodings_agree_with_the_library():
    from fairuse_opt._family import ENCODINGS

    assert set(cli.ENCODINGS) == set(ENCODINGS)


def test_help_imports_no_heavy_module():
    """``fairuse --help`` is fast because it imports none of numpy, pandas, scipy, sklearn, cvxpy."""
    code = ("import sys; from fairuse_opt.cli import main; rc = main(['--help']); "
            "heavy = [m for m in ('numpy', 'pandas', 'scipy', 'sklearn', 'cvxpy') if m in sys.modules]; "
            "print('HEAVY', heavy, rc)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY [] 0" in proc.stdout


def test_fit_alpha_is_refused_with_a_pointer_to_l2(apnea_csv, tmp_path, capsys):
    assert main(fit_args(apnea_csv, tmp_path, "--alpha", "0.01")) == 2
    assert one_line_error(capsys) == f"fairuse fit: error: {E.MSG_OLD_ALPHA} (see 'fairuse fit --help')"
    assert not (tmp_path / "m.json").exists()


def test_l2_and_fair_use_are_spelled_as_in_python(apnea_csv, tmp_path, capsys):
    """--l2 is the estimators' l2; --fair-use values are fair_use= values, written as such."""
    from fairuse_opt import FairUseClassifier

    out = tmp_path / "m.json"
    assert main(fit_args(apnea_csv, tmp_path, "--l2", "0.05", "--fair-use", "rationality",
                         "--features", "bmi_lt_25,snoring,site")) == 0
    capsys.readouterr()
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["settings"]["params"]["l2"] == 0.05
    assert doc["settings"]["params"]["fair_use"] == "rationality"
    mf = model_io.read(out)
    frame = pd.read_csv(apnea_csv, dtype={"Age": str, "Sex": str, "site": str})
    X = mf.encoding.transform(frame)
    est = FairUseClassifier(l2=0.05, fair_use="rationality").fit(X, frame["Apnea"], groups=frame[["Age", "Sex"]])
    np.testing.assert_allclose(mf.estimator.coef_, est.coef_, rtol=0, atol=1e-12)
    for value, expected in (("both", "both"), ("none", None), ("envy_freeness", "envy_freeness")):
        assert main(fit_args(apnea_csv, tmp_path, "--fair-use", value, "--features", "snoring")) == 0
        assert json.loads(out.read_text(encoding="utf-8"))["settings"]["params"]["fair_use"] == expected
    assert main(fit_args(apnea_csv, tmp_path, "--fair-use", "envy")) == 2
    assert E.MSG_BAD_FAIR_USE.format(value="envy") in one_line_error(capsys)


def test_progress_goes_through_logging_with_one_prefix(apnea_csv, tmp_path, capsys, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="fairuse_opt")
    assert main(["fit", "--data", str(apnea_csv), "--target", "Apnea", "--groups", "Age,Sex",
                 "--features", "snoring,site", "--fair-use", "none", "--out", str(tmp_path / "m.json")]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) >= 3 and all(ln.startswith("fairuse: [") for ln in err), err
    records = [r for r in caplog.records if r.name == "fairuse_opt.cli"]
    assert [r.getMessage() for r in records][-1] == f"wrote {tmp_path / 'm.json'}"
    assert any("one-hot encoded site" in r.getMessage() for r in records)


@pytest.fixture(scope="module")
def small_model(apnea_csv, tmp_path_factory):
    """A model file fitted on a few apnea features (intersectional, fair use)."""
    folder = tmp_path_factory.mktemp("model")
    model = folder / "m.json"
    assert main(["fit", "--data", str(apnea_csv), "--target", "Apnea", "--groups", "Age,Sex", "--features",
                 "bmi_lt_25,bmi_geq_35,snoring,site", "--out", str(model), "--quiet"]) == 0
    return model


def test_predict_scores_equal_the_library(small_model, apnea_csv, tmp_path, capsys):
    frame = pd.read_csv(apnea_csv, dtype={"Age": str, "Sex": str, "site": str})
    frame["id"] = np.arange(len(frame)) * 7
    data = tmp_path / "d.csv"
    frame.drop(columns="Apnea").to_csv(data, index=False)  # no target needed
    out = tmp_path / "scores.csv"
    assert main(["predict", "--model", str(small_model), "--data", str(data), "--keep", "id",
                 "--out", str(out), "--quiet"]) == 0
    assert "scored 1922 row(s) under each row's own group" in capsys.readouterr().out
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["id", "score", "probability", "positive_class", "prediction"]
    assert (scores["positive_class"] == 1).all()  # Apnea is 0/1: the probability is that of 1
    mf = model_io.read(small_model)
    X, G = mf.encoding.transform(frame), frame[["Age", "Sex"]]
    np.testing.assert_array_equal(scores["id"], frame["id"])
    np.testing.assert_allclose(scores["probability"], mf.estimator.predict_proba(X, groups=G)[:, 1], rtol=1e-15)
    np.testing.assert_allclose(scores["score"], mf.estimator.decision_function(X, groups=G), rtol=1e-15)
    np.testing.assert_array_equal(scores["prediction"], mf.estimator.predict(X, groups=G))
    # every row as if it reported (60+, Male): group columns not needed
    assert main(["predict", "--model", str(small_model), "--data", str(data), "--report", "Sex=Male,Age=60+",
                 "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    expected = mf.estimator.predict_proba(X, report=("60+", "Male"))[:, 1]
    np.testing.assert_allclose(pd.read_csv(out)["probability"], expected, rtol=1e-15)
    assert not np.allclose(expected, mf.estimator.predict_proba(X, groups=G)[:, 1])


def test_predict_bad_report(small_model, apnea_csv, tmp_path, capsys):
    args = ["predict", "--model", str(small_model), "--data", str(apnea_csv), "--out", str(tmp_path / "s.csv")]
    assert main([*args, "--report", "Age=60+"]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_BAD_REPORT_ARG.format(
        value="Age=60+", names=["Age", "Sex"])
    assert main([*args, "--report", "Age=99+,Sex=Male"]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_UNKNOWN_GROUP_VALUE.format(
        column="Age", values=["99+"], levels=["30_to_60", "60+", "<30"])
    assert not (tmp_path / "s.csv").exists()


def test_audit_flags_reach_the_audit(small_model, apnea_csv, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["audit", "--data", str(apnea_csv), "--model", str(small_model), "--metrics", "error,log_loss",
                 "--n-boot", "30", "--alpha", "0.05", "--correction", "bonferroni", "--test", "exact",
                 "--ci-level", "0.9", "--seed", "5", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text(encoding="utf-8"))
    s = report["settings"]
    assert (s["alpha"], s["correction"], s["test"], s["ci_level"], s["random_state"], s["n_boot"]) == \
        (0.05, "bonferroni", "exact", 0.9, 5, 30)
    assert {r["test"] for r in report["table"] if r["metric"] == "error" and r["condition"] == "rationality"} \
        <= {"mcnemar", "bootstrap"}
    assert "mcnemar" in {r["test"] for r in report["table"]}
    # per-group gains with the bounds the verdicts used are printed, not only verdict counts:
    # the report's summary, recomputed here from the same inputs
    from fairuse_opt.audit import audit, format_number

    mf = model_io.read(small_model)
    frame = pd.read_csv(apnea_csv, dtype={"Age": str, "Sex": str, "site": str})
    again = audit(mf.estimator, mf.encoding.transform(frame), frame["Apnea"], groups=frame[["Age", "Sex"]],
                  metrics=["error", "log_loss"], n_boot=30, alpha=0.05, correction="bonferroni", test="exact",
                  ci_level=0.9, random_state=5)
    assert printed.strip() == str(again.summary()).strip()
    rat = [r for r in report["table"] if r["condition"] == "rationality"]
    assert len(rat) == 12 and "bound" in printed
    for r in rat:
        assert r["group"] in printed or r["group"] in again.settings.get("short_labels", {})
        if r["verdict"] == "benefit":
            assert f">= {format_number(r['lower_bound'])}" in printed
        if r["verdict"] in ("violation", "inconclusive (estimate: harm)"):
            assert f"<= {format_number(r['upper_bound'])}" in printed
    assert {r["verdict"] for r in rat} & {"benefit", "violation", "inconclusive (estimate: harm)"}
    assert main(["audit", "--data", str(apnea_csv), "--model", str(small_model), "--n-boot", "20",
                 "--correction", "none", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert json.loads(out.read_text(encoding="utf-8"))["settings"]["correction"] is None


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="the plot extra is not installed")
def test_audit_out_is_optional_with_markdown_or_plot(small_model, apnea_csv, tmp_path, capsys, monkeypatch):
    md, png = tmp_path / "r.md", tmp_path / "r.png"
    shown = []
    from fairuse_opt.audit import FairUseReport

    real_plot = FairUseReport.plot
    monkeypatch.setattr(FairUseReport, "plot", lambda self, metric=None: shown.append(metric) or real_plot(self, metric))
    assert main(["audit", "--data", str(apnea_csv), "--model", str(small_model), "--metrics", "error,log_loss",
                 "--n-boot", "20", "--markdown", str(md), "--plot", str(png), "--plot-metric", "log_loss",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert md.read_text(encoding="utf-8").startswith("# Fair-use audit") and png.stat().st_size > 1000
    assert shown == ["log_loss"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md", "r.png"]  # no report.json, no temp file
    assert main(["audit", "--data", str(apnea_csv), "--model", str(small_model), "--n-boot", "20"]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_NEED_OUTPUT
    assert main(["audit", "--data", str(apnea_csv), "--model", str(small_model), "--metrics", "error",
                 "--plot", str(png), "--plot-metric", "auc"]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_PLOT_METRIC_NOT_AUDITED.format(
        metric="auc", metrics=["error"])


# --------------------------------------------------------------------------- no input lost (item 7)
def test_output_may_not_be_an_input_or_another_output(small_model, apnea_csv, tmp_path, capsys, monkeypatch):
    data = tmp_path / "train.csv"
    data.write_bytes(apnea_csv.read_bytes())
    model = tmp_path / "model.json"
    model.write_bytes(small_model.read_bytes())
    before = {p: p.read_bytes() for p in (data, model)}
    monkeypatch.chdir(tmp_path)
    cases = [
        (["fit", "--data", str(data), "--target", "Apnea", "--groups", "Age,Sex", "--out", "./train.csv"],
         E.MSG_OUT_IS_INPUT.format(flag="--out", path="./train.csv", other="--data")),
        (["audit", "--data", "train.csv", "--model", str(model), "--out", "model.json"],
         E.MSG_OUT_IS_INPUT.format(flag="--out", path="model.json", other="--model")),
        (["audit", "--data", "train.csv", "--model", "model.json", "--markdown", str(data)],
         E.MSG_OUT_IS_INPUT.format(flag="--markdown", path=str(data), other="--data")),
        (["audit", "--data", "train.csv", "--model", "model.json", "--out", "r.json", "--markdown", "./r.json"],
         E.MSG_OUT_TWICE.format(flag="--markdown", path="./r.json", other="--out")),
        (["predict", "--data", "train.csv", "--model", "model.json", "--out", "sub/../train.csv"],
         E.MSG_OUT_IS_INPUT.format(flag="--out", path="sub/../train.csv", other="--data")),
    ]
    (tmp_path / "sub").mkdir()
    for args, message in cases:
        assert main(args) == 2, args
        assert one_line_error(capsys) == "fairuse: error: " + message
    os.symlink(data, tmp_path / "link.csv")  # another name for the same file
    assert main(["fit", "--data", "link.csv", "--target", "Apnea", "--groups", "Age,Sex", "--out", "train.csv"]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_OUT_IS_INPUT.format(
        flag="--out", path="train.csv", other="--data")
    assert {p: p.read_bytes() for p in (data, model)} == before
    assert not (tmp_path / "r.json").exists()


def test_a_failed_write_keeps_the_old_file(small_model, apnea_csv, tmp_path, capsys, monkeypatch):
    """Every output is staged in a temporary file; one that fails leaves every target as it was."""
    from fairuse_opt import _files

    out, md = tmp_path / "r.json", tmp_path / "r.md"
    out.write_text("old report", encoding="utf-8")
    md.write_text("old markdown", encoding="utf-8")
    calls = []

    def disk_full_on_second_file(fd):  # the JSON is staged, the markdown fails half-way
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", disk_full_on_second_file)
    assert main(["audit", "--data", str(apnea_csv), "--model", str(small_model), "--n-boot", "20",
                 "--out", str(out), "--markdown", str(md), "--quiet"]) == 2
    assert "No space left on device" in one_line_error(capsys)
    assert out.read_text(encoding="utf-8") == "old report" and md.read_text(encoding="utf-8") == "old markdown"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md"]


def test_ctrl_c_mid_fit_exits_130_and_writes_nothing(apnea_csv, tmp_path, capsys, monkeypatch):
    from fairuse_opt import FairUseClassifier

    def interrupted(self, *a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(FairUseClassifier, "fit", interrupted)
    out = tmp_path / "m.json"
    assert main(fit_args(apnea_csv, tmp_path)) == 130
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_INTERRUPTED
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_writing_keeps_the_old_file(small_model, apnea_csv, tmp_path, capsys, monkeypatch):
    from fairuse_opt import _files

    out = tmp_path / "m.json"
    out.write_text("old model", encoding="utf-8")

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(_files.os, "fsync", interrupted)
    assert main(fit_args(apnea_csv, tmp_path, "--features", "snoring", "--fair-use", "none")) == 130
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_INTERRUPTED
    assert out.read_text(encoding="utf-8") == "old model" and list(tmp_path.iterdir()) == [out]


def test_ctrl_c_while_modules_load_exits_130_without_traceback(apnea_csv, tmp_path):
    """SIGINT to a real process after its first progress line, while cvxpy and the rest load."""
    import signal

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "m.json"
    proc = subprocess.Popen([sys.executable, "-m", "fairuse_opt", "fit", "--data", str(apnea_csv), "--target",
                             "Apnea", "--groups", "Age,Sex", "--out", str(out)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    first = proc.stderr.readline()
    assert "loading the fitting modules" in first, first
    proc.send_signal(signal.SIGINT)
    stdout, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest and rest.strip().splitlines()[-1] == "fairuse: error: " + E.MSG_INTERRUPTED
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_header_only_csv(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("x,grp,y\n", encoding="utf-8")
    for task in ("regression", "classification"):
        assert main(["fit", "--data", str(path), "--target", "y", "--groups", "grp", "--task", task,
                     "--out", str(tmp_path / "m.json")]) == 2
        assert one_line_error(capsys) == "fairuse: error: " + E.MSG_NO_DATA_ROWS.format(path=path)


def test_demo_out_existing_file(tmp_path, capsys):
    path = tmp_path / "report.txt"
    path.write_text("keep me", encoding="utf-8")
    assert main(["demo", "--out", str(path)]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_DEMO_OUT_IS_FILE.format(path=path)
    assert path.read_text(encoding="utf-8") == "keep me"


def test_demo_data_that_the_demo_would_overwrite(tmp_path, capsys, data_dir):
    from fairuse_opt.demo import TABLE_CSV

    target = tmp_path / TABLE_CSV
    target.write_bytes((data_dir / "apnea.csv").read_bytes())
    assert main(["demo", "--out", str(tmp_path), "--data", str(target)]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_DEMO_DATA_IN_OUT.format(path=target, out=tmp_path)


def test_repeated_group_column(apnea_csv, tmp_path, capsys):
    assert main(["fit", "--data", str(apnea_csv), "--target", "Apnea", "--groups", "Age,Sex,Age",
                 "--out", str(tmp_path / "m.json")]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_COLUMN_REPEATED.format(flag="--groups", column="Age")


def test_one_hot_feature_names_that_collide(tmp_path, capsys):
    n = 60
    df = pd.DataFrame({"a": np.where(np.arange(n) % 2, "b=c", "a"), "a=b": np.where(np.arange(n) % 3, "c", "b"),
                       "grp": np.where(np.arange(n) % 4 < 2, "g1", "g2"), "y": np.arange(n) % 2})
    path = tmp_path / "c.csv"
    df.to_csv(path, index=False)
    assert main(["fit", "--data", str(path), "--target", "y", "--groups", "grp", "--out", str(tmp_path / "m.json")]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_FEATURE_NAME_COLLISION.format(
        name="a=b=c", sources="column 'a' level 'b=c' and column 'a=b' level 'c'")


def value_csvs(tmp_path):
    """Training CSV written by pandas from float columns with holes (cells "1.0", "2.0"),
    and a CSV of the same rows written by another tool (cells "1", "2")."""
    rng = np.random.default_rng(3)
    n = 200
    k = rng.integers(1, 4, n).astype(float)
    grp = rng.integers(1, 3, n).astype(float)
    x = rng.normal(size=n)
    y = (x + 0.7 * (k == 2) - 0.5 * (grp == 2) + rng.logistic(size=n) > 0).astype(int)
    train = pd.DataFrame({"x": x, "k": k, "grp": grp, "y": y})
    train.loc[[0, 1], "k"] = np.nan  # a float column with missing values: pandas writes "1.0"
    train_path = tmp_path / "train.csv"
    train.to_csv(train_path, index=False)
    assert "1.0" in train_path.read_text(encoding="utf-8")
    other = train.dropna().astype({"k": int, "grp": int})
    other_path = tmp_path / "other.csv"
    other.to_csv(other_path, index=False)
    assert ",1.0," not in other_path.read_text(encoding="utf-8")
    return train_path, other_path, other


def test_categorical_and_group_levels_are_matched_by_value(tmp_path, capsys):
    train, other, frame = value_csvs(tmp_path)
    model = tmp_path / "m.json"
    assert main(["fit", "--data", str(train), "--target", "y", "--groups", "grp", "--categorical", "k",
                 "--dropna", "--fair-use", "none", "--out", str(model), "--quiet"]) == 0
    capsys.readouterr()
    doc = json.loads(model.read_text(encoding="utf-8"))
    k = next(c for c in doc["input"]["columns"] if c["name"] == "k")
    assert k["levels"] == [1, 2, 3] and k["features"] == {"2": "k=2", "3": "k=3"}
    out = tmp_path / "s.csv"
    assert main(["predict", "--model", str(model), "--data", str(other), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    est = model_io.loads(model)
    X = pd.DataFrame({"x": frame["x"], "k=2": (frame["k"] == 2).astype(float), "k=3": (frame["k"] == 3).astype(float)})
    G = pd.DataFrame({"grp": frame["grp"].map(lambda v: f"{float(v)}")})  # the model's group values: text "1.0"
    np.testing.assert_allclose(pd.read_csv(out)["probability"], est.predict_proba(X, groups=G)[:, 1], rtol=1e-15)
    assert main(["audit", "--model", str(model), "--data", str(other), "--n-boot", "20", "--metrics", "error",
                 "--out", str(tmp_path / "r.json"), "--quiet"]) == 0
    capsys.readouterr()
    assert {r["group"] for r in json.loads((tmp_path / "r.json").read_text())["table"]} == {"grp=1.0", "grp=2.0"}


def test_a_group_value_written_two_ways_is_refused(tmp_path, capsys):
    n = 80
    df = pd.DataFrame({"x": np.arange(n) / n, "grp": np.where(np.arange(n) % 3 == 0, "1", "2"), "y": np.arange(n) % 2})
    df.loc[[3, 6], "grp"] = "1.0"
    path = tmp_path / "g.csv"
    df.to_csv(path, index=False)
    assert main(["fit", "--data", str(path), "--target", "y", "--groups", "grp", "--out", str(tmp_path / "m.json")]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_CLI_GROUP_AMBIGUOUS.format(column="grp", values="1, 1.0")


# --------------------------------------------------------------------------- fit --system and system files
def system_frame(n=600, seed=0, missing=True):
    """Synthetic data for the system (no apnea needed): two features and a text feature,
    attributes A (3 levels) and B (2) with strong effects, partial reports, and nobody
    reporting (a2, b1) together."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 2)), columns=["x1", "x2"])
    df["site"] = np.array(["north", "south", "east"])[np.arange(n) % 3]
    A = rng.choice(["a0", "a1", "a2"], n, p=[0.4, 0.35, 0.25])
    B = rng.choice(["b0", "b1"], n)
    s = df.x1 - 0.5 * df.x2 + 3.0 * ((A == "a1") * 1.0 - (A == "a0") + (B == "b1") - 0.5)
    df["y"] = (s + rng.logistic(size=n) > 0).astype(int)
    df["A"], df["B"] = A.astype(object), B.astype(object)
    if missing:
        df.loc[rng.random(n) < 0.2, "B"] = None
        df.loc[rng.random(n) < 0.15, "A"] = None
        df.loc[(df.A == "a2") & (df.B == "b1"), "B"] = None
    return df


@pytest.fixture(scope="module")
def system_files(tmp_path_factory):
    """``fairuse fit --system`` on 600 synthetic rows (n_boot 200), and its CSV files."""
    folder = tmp_path_factory.mktemp("system")
    train, test = folder / "train.csv", folder / "test.csv"
    system_frame().to_csv(train, index=False)
    t = system_frame(n=300, seed=4)
    t.loc[:19, ["A", "B"]] = None            # nothing reported
    t.loc[20:39, ["A", "B"]] = ["a2", "b1"]  # an option never seen in the assignment
    t.to_csv(test, index=False)
    out = folder / "system.json"
    args = ["fit", "--system", "--data", str(train), "--target", "y", "--groups", "A,B", "--out", str(out),
            "--n-boot", "200", "--metric", "log_loss", "--no-envy", "--assign-size", "0.3", "--seed", "0",
            "--alpha", "0.1", "--l2", "0.001", "--procedure", "split"]  # split: partial reports personalized
    return folder, train, test, out, args


def test_fit_system_writes_a_system_file(system_files, capsys, caplog):
    import logging

    folder, train, test, out, args = system_files
    caplog.set_level(logging.INFO, logger="fairuse_opt")
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("system: ") and "A=(not reported), B=b0" in captured.out
    err = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert err and all(ln.startswith("fairuse: ") for ln in err)
    assert any("split: 420 training rows, 180 assignment rows" in ln for ln in err)
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["format"] == "fairuse_opt.model/2" and doc["estimator"] == "FairUseSystem"
    assert doc["system"] == {"metric": "log_loss", "alpha": 0.1, "correction": "holm", "test": "auto",
                             "n_boot": 200, "envy": False, "kind": "full", "min_group_size": 10,
                             "random_state": 0, "procedure": "split", "rungs": [0.25, 0.5, 1.0]}
    assert doc["input"]["group_columns"] == ["A", "B"] and doc["input"]["target"] == "y"
    assert doc["metadata"]["n_train"] == 420 and doc["metadata"]["n_assign"] == 180
    assert len(doc["options"]) == 4 * 3
    served = {tuple(r["option"]): r["model"] for r in doc["options"]}
    assert any(m != 0 for o, m in served.items() if None in o)  # partial reports personalized
    # the same system from the library: same table, same served models
    from fairuse_opt import FairUseClassifier, fit_system
    from fairuse_opt.system import default_candidates

    mf = model_io.read(out)
    frame = pd.read_csv(train, dtype={"A": str, "B": str, "site": str})
    X = mf.encoding.transform(frame)
    system = fit_system(X, frame["y"], frame[["A", "B"]], procedure="split", n_boot=200, metric="log_loss",
                        envy=False,
                        candidates=default_candidates(["A", "B"]), generic=FairUseClassifier(encoding="none"),
                        random_state=0)
    pd.testing.assert_frame_equal(mf.estimator.assignment_, system.assignment_)
    assert model_io.dumps(system, encoding=mf.encoding, target="y", group_columns=["A", "B"],
                          metadata=doc["metadata"]) == out.read_text(encoding="utf-8")


def score_system_without_library(model_path: Path, csv_path: Path) -> np.ndarray:
    """Probability of every row of a raw CSV from the system file alone: json, numpy, pandas."""
    doc = json.loads(Path(model_path).read_text(encoding="utf-8"))
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    cols = []
    for c in doc["input"]["columns"]:
        if c["kind"] == "numeric":
            cols.append(raw[c["name"]].astype(float).to_numpy())
        else:
            cols += [(raw[c["name"]] == level).to_numpy().astype(float) for level in c["features"]]
    X = np.column_stack(cols)
    table = {tuple(r["option"]): r["model"] for r in doc["options"]}
    attrs = doc["input"]["group_columns"]
    p = np.empty(len(raw))
    for i, row in enumerate(raw[attrs].itertuples(index=False, name=None)):
        m = doc["models"][table[tuple(None if v == "" else v for v in row)]]
        p[i] = 1.0 / (1.0 + np.exp(-(m["intercept"] + X[i] @ np.array(m["coef"]))))
    return p


def test_predict_a_system_file_with_partial_reports(system_files, tmp_path, capsys):
    folder, train, test, out, args = system_files
    if not out.exists():
        assert main([*args, "--quiet"]) == 0
    scores_csv = tmp_path / "scores.csv"
    assert main(["predict", "--model", str(out), "--data", str(test), "--keep", "A,B", "--out", str(scores_csv),
                 "--quiet"]) == 0
    assert "scored 300 row(s) under each row's own group" in capsys.readouterr().out
    scores = pd.read_csv(scores_csv, dtype={"A": str, "B": str})
    raw = pd.read_csv(test, dtype={"A": str, "B": str, "site": str})
    assert raw[["A", "B"]].isna().any(axis=1).sum() > 60
    mf = model_io.read(out)
    X, G = mf.encoding.transform(raw), raw[["A", "B"]]
    np.testing.assert_allclose(scores["probability"], mf.estimator.predict_proba(X, groups=G)[:, 1],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(scores["score"], mf.estimator.decision_function(X, groups=G), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(scores["prediction"], mf.estimator.predict(X, groups=G))
    # the file alone gives the same probabilities, partial reports and the unseen option included
    by_hand = score_system_without_library(out, test)
    assert np.max(np.abs(by_hand - scores["probability"])) <= 1e-12
    generic = mf.estimator.generic_.predict_proba(X)[:, 1]
    assert np.max(np.abs(by_hand[:20] - generic[:20])) <= 1e-12      # nothing reported
    unseen = mf.estimator._serving_option(("a2", "b1"))
    assert unseen != ("a2", "b1") and mf.estimator.served_[unseen] != ("generic", ())
    assert np.max(np.abs(by_hand[20:40] - generic[20:40])) > 1e-3    # served the parent's model
    # --report with an attribute left out: every row as if it reported A=a1 only
    assert main(["predict", "--model", str(out), "--data", str(test), "--report", "A=a1", "--out",
                 str(scores_csv), "--quiet"]) == 0
    capsys.readouterr()
    expected = mf.estimator.predict_proba(X, report=("a1", None))[:, 1]
    np.testing.assert_allclose(pd.read_csv(scores_csv)["probability"], expected, rtol=0, atol=1e-12)
    assert not np.allclose(expected, generic)
    for bad in ("A=zz", "C=1", "A=a1,A=a0"):
        assert main(["predict", "--model", str(out), "--data", str(test), "--report", bad, "--out",
                     str(scores_csv)]) == 2
        assert one_line_error(capsys).startswith("fairuse: error: ")
    # a group value the system never saw is an error, as for a model file
    wrong = tmp_path / "wrong.csv"
    raw.assign(A=raw["A"].where(raw.index != 50, "a7")).to_csv(wrong, index=False)
    assert main(["predict", "--model", str(out), "--data", str(wrong), "--out", str(scores_csv)]) == 2
    assert "a7" in one_line_error(capsys)


def test_audit_a_system_file(system_files, tmp_path, capsys):
    folder, train, test, out, args = system_files
    if not out.exists():
        assert main([*args, "--quiet"]) == 0
    held = system_frame(n=400, seed=7, missing=False)
    held = held[~((held.A == "a2") & (held.B == "b1"))]
    data = tmp_path / "audit.csv"
    held.to_csv(data, index=False)
    report_path = tmp_path / "report.json"
    assert main(["audit", "--model", str(out), "--data", str(data), "--out", str(report_path), "--metrics",
                 "log_loss,error", "--n-boot", "100", "--seed", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    report = json.loads(report_path.read_text(encoding="utf-8"))
    from fairuse_opt import audit

    mf = model_io.read(out)
    frame = pd.read_csv(data, dtype={"A": str, "B": str, "site": str})
    expected = audit(mf.estimator, mf.encoding.transform(frame), frame["y"], groups=frame[["A", "B"]],
                     metrics=["log_loss", "error"], n_boot=100, random_state=2)
    want = json.loads(expected.to_json(indent=1))
    assert {k: v for k, v in report["settings"].items() if k != "elapsed_s"} == {
        k: v for k, v in want["settings"].items() if k != "elapsed_s"}, (report["settings"], want["settings"])
    assert {k: v for k, v in report.items() if k != "settings"} == {k: v for k, v in want.items() if k != "settings"}
    assert str(expected.summary()) in printed
    assert len({r["group"] for r in report["table"]}) == 5  # every group of the data but (a2, b1)
    # rows without a group value cannot be audited (each row needs its group), as for a model file
    holes = tmp_path / "holes.csv"
    held.assign(B=held["B"].where(np.arange(len(held)) != 3, None)).to_csv(holes, index=False)
    assert main(["audit", "--model", str(out), "--data", str(holes), "--out", str(report_path)]) == 2
    assert "missing values in B (1 row(s))" in one_line_error(capsys)


def test_fit_system_flags_and_bad_input(system_files, tmp_path, capsys):
    folder, train, test, out, args = system_files
    target = tmp_path / "s.json"
    base = ["fit", "--data", str(train), "--target", "y", "--groups", "A,B", "--out", str(target)]
    # plain fit: a missing group value is still an input error; system flags are refused
    assert main(base) == 2
    assert "missing values in A" in one_line_error(capsys)
    for extra in (["--metric", "error"], ["--seed", "0"], ["--assign-size", "0.3"], ["--no-envy"]):
        assert main([*base, *extra]) == 2
        assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_FIT_NEEDS_SYSTEM.format(flags=extra[0])
    # --system: a single model's flags are refused, even at their default value
    assert main([*base, "--system", "--encoding", "intersectional", "--margin", "0"]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_FIT_NOT_WITH_SYSTEM.format(
        flags="--encoding, --margin", them="them")
    for extra, text in ((["--alpha", "0.7"], "below 0.5"), (["--alpha", "x"], "invalid level"),
                        (["--assign-size", "0"], "--assign-size '0' is invalid"),
                        (["--assign-size", "2.5"], "--assign-size '2.5' is invalid"),
                        (["--metric", "auc?"], "auc?")):
        assert main([*base, "--system", *extra]) == 2, extra
        assert text in one_line_error(capsys)
    # the output may not be the input
    assert main([*base[:-1], str(train), "--system"]) == 2
    assert "--out" in one_line_error(capsys)
    # a missing feature value needs --dropna; a group column never reported is refused
    frame = system_frame()
    frame.loc[5, "x1"] = np.nan
    holes = tmp_path / "holes.csv"
    frame.to_csv(holes, index=False)
    assert main(["fit", "--system", "--data", str(holes), "--target", "y", "--groups", "A,B", "--out",
                 str(target)]) == 2
    assert "missing values in x1 (1 row(s))" in one_line_error(capsys)
    empty = tmp_path / "empty.csv"
    system_frame().assign(B=None).to_csv(empty, index=False)
    assert main(["fit", "--system", "--data", str(empty), "--target", "y", "--groups", "A,B", "--out",
                 str(target)]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_FIT_NO_REPORTED_VALUE.format(column="B")
    assert not target.exists()


def test_ctrl_c_mid_system_fit_exits_130_and_writes_nothing(system_files, tmp_path, capsys, monkeypatch):
    from fairuse_opt import FairUseSystem

    folder, train, test, out, args = system_files

    def interrupted(self, *a, **kw):  # during the assignment, after the pool was trained
        raise KeyboardInterrupt

    monkeypatch.setattr(FairUseSystem, "fit", interrupted)
    target = tmp_path / "s.json"
    assert main(["fit", "--system", "--data", str(train), "--target", "y", "--groups", "A,B", "--out",
                 str(target), "--n-boot", "50", "--quiet"]) == 130
    assert one_line_error(capsys) == "fairuse: error: " + E.MSG_INTERRUPTED
    assert list(tmp_path.iterdir()) == []
