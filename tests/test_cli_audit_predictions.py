"""``fairuse audit --predictions``: the audit of a CSV file of predictions equals
:func:`fairuse_opt.audit.audit_predictions` on the same data (and the model-based audit
of the model that made the predictions) to 1e-12; every bad input is one clear line."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pandas as pd
import pytest

from fairuse_opt import FairUseClassifier, FairUseRegressor
from fairuse_opt import cli
from fairuse_opt.audit import audit, audit_predictions
from fairuse_opt.cli import main

from .conftest import make_data
from .test_audit_predictions import assert_same_report

#: the module, not the function fairuse_opt.audit that the package exports under that name
audit_module = importlib.import_module("fairuse_opt.audit")
CLASSIFICATION_METRICS = ["error", "auc", "ece", "log_loss"]  # the CLI's defaults


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A fitted model, its held-out data and a CSV of its predictions."""
    X, y, g = make_data(n=900, d=3, n_groups=3, seed=4)
    groups = pd.DataFrame({"site": np.array(["north", "south", "east"])[g],
                           "sex": np.where(np.arange(len(y)) % 2, "F", "M")})
    model = FairUseClassifier().fit(X[:600], y[:600], groups=groups.iloc[:600])
    Xt, yt, gt = X[600:], y[600:], groups.iloc[600:].reset_index(drop=True)
    own = model.predict_proba(Xt, groups=gt)[:, 1]
    generic = model.generic_.predict_proba(Xt)[:, 1]
    as_reported = {k: model.predict_proba(Xt, report=k)[:, 1] for k in model.groups_}
    table = gt.copy()
    table["y"] = yt
    table["p_own"], table["p_generic"] = own, generic
    columns = {}
    for key, values in as_reported.items():
        columns[key] = f"p_as_{key[0]}_{key[1]}"
        table[columns[key]] = values
    path = tmp_path_factory.mktemp("preds") / "preds.csv"
    table.to_csv(path, index=False)
    return dict(model=model, X=Xt, y=yt, g=gt, own=own, generic=generic, as_reported=as_reported,
                columns=columns, table=table, path=path)


def report_flags(columns: dict) -> list[str]:
    out = []
    for (site, sex), column in columns.items():
        out += ["--scores-as-reported", f"site={site},sex={sex}", column]
    return out


@pytest.fixture
def captured(monkeypatch):
    """The report object the command line computed (its JSON is rounded to 3 digits)."""
    reports = []
    real = audit_module.audit_predictions

    def spy(*args, **kw):
        reports.append(real(*args, **kw))
        return reports[-1]

    monkeypatch.setattr(audit_module, "audit_predictions", spy)
    return reports


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0].removeprefix("fairuse: error: ")


def without_elapsed(text: str) -> dict:
    doc = json.loads(text)
    doc["settings"].pop("elapsed_s")
    return doc


SETTINGS = ["--n-boot", "150", "--alpha", "0.05", "--correction", "bonferroni", "--ci-level", "0.9",
            "--seed", "5"]
PY_SETTINGS = dict(n_boot=150, alpha=0.05, correction="bonferroni", ci_level=0.9, random_state=5)


@pytest.mark.parametrize("form", ["own_and_reports", "reports_only", "own_only"])
def test_cli_audit_of_predictions_equals_audit_predictions(case, tmp_path, capsys, captured, form):
    out = tmp_path / "r.json"
    argv = ["audit", "--predictions", str(case["path"]), "--target", "y", "--groups", "site,sex",
            "--generic-scores", "p_generic", *SETTINGS, "--out", str(out), "--quiet"]
    kw = dict(generic_scores=case["generic"], metrics=CLASSIFICATION_METRICS, **PY_SETTINGS)
    if form != "reports_only":
        argv += ["--scores", "p_own"]
        kw["scores"] = case["own"]
    if form != "own_only":
        argv += report_flags(case["columns"])
        kw["scores_as_reported"] = case["as_reported"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # the reference: the library on the arrays the CSV was written from
    ref = audit_predictions(case["y"], groups=case["g"], **kw)
    (got,) = captured
    assert_same_report(got, ref, tol=1e-12)
    assert without_elapsed(out.read_text(encoding="utf-8")) == without_elapsed(ref.to_json(indent=1))
    assert printed.strip() == str(ref.summary()).strip()
    conditions = set(got.table.condition)
    assert conditions == ({"rationality"} if form == "own_only" else {"rationality", "envy_pair", "envy"})
    if form != "own_only":  # and the model-based audit of the model that made the predictions
        by_model = audit(case["model"], case["X"], case["y"], groups=case["g"],
                         metrics=CLASSIFICATION_METRICS, **PY_SETTINGS)
        assert_same_report(got, by_model, tol=1e-12)


def test_text_labels_pos_label_and_dropna(case, tmp_path, capsys, captured):
    table = case["table"].copy()
    table["y"] = np.where(case["y"] == 1, "sick", "well")
    table.loc[[3, 40], "p_generic"] = np.nan
    path = tmp_path / "text.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "r.json"
    argv = ["audit", "--predictions", str(path), "--target", "y", "--groups", "site,sex", "--scores", "p_own",
            "--generic-scores", "p_generic", "--n-boot", "100", "--out", str(out)]
    # a missing score is refused, naming the column, unless --dropna
    assert main(argv) == 2
    assert one_line_error(capsys) == cli.MSG_MISSING_VALUES.format(
        path=path, detail="p_generic (2 row(s))", n_rows=2, n_total=300)
    assert not out.exists()
    assert main([*argv, "--dropna", "--pos-label", "sick"]) == 0
    err = capsys.readouterr().err
    assert "dropped 2 of 300 row(s)" in err and "probability of 'sick'" in err
    keep = np.setdiff1d(np.arange(300), [3, 40])
    g = case["g"].iloc[keep].reset_index(drop=True)
    ref = audit_predictions(case["y"][keep], groups=g, scores=case["own"][keep],
                            generic_scores=case["generic"][keep], metrics=CLASSIFICATION_METRICS, n_boot=100)
    assert_same_report(captured[-1], ref, tol=1e-12)
    # without --pos-label the larger label ("well") is positive, as in the library
    assert main([*argv, "--dropna", "--quiet"]) == 0
    capsys.readouterr()
    text_y = table["y"].to_numpy()[keep]
    ref_default = audit_predictions(text_y, groups=g, scores=case["own"][keep],
                                    generic_scores=case["generic"][keep], metrics=CLASSIFICATION_METRICS,
                                    n_boot=100)
    assert_same_report(captured[-1], ref_default, tol=1e-12)
    assert (captured[-1].table.n_pos + ref.table.n_pos == ref.table.n).all()  # "well" counted positive
    # --pos-label matched by value: 1 and 1.0 name the same class of a 0/1 target
    assert main(["audit", "--predictions", str(case["path"]), "--target", "y", "--groups", "site,sex",
                 "--scores", "p_own", "--generic-scores", "p_generic", "--n-boot", "100", "--pos-label", "1.0",
                 "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    ref01 = audit_predictions(case["y"], groups=case["g"], scores=case["own"], generic_scores=case["generic"],
                              metrics=CLASSIFICATION_METRICS, n_boot=100)
    assert_same_report(captured[-1], ref01, tol=1e-12)


def test_regression_predictions(tmp_path, capsys, captured):
    X, y, g = make_data(n=400, d=2, n_groups=2, task="regression", seed=2)
    g = np.array(["a", "b"])[g]
    model = FairUseRegressor().fit(X[:250], y[:250], groups=g[:250])
    Xt, yt, gt = X[250:], y[250:], pd.DataFrame({"group": g[250:]})
    table = pd.DataFrame({"group": g[250:], "outcome": yt, "own": model.predict(Xt, groups=gt),
                          "generic": model.generic_.predict(Xt)})
    argv = []
    for k in model.groups_:
        table[f"as_{k[0]}"] = model.predict(Xt, report=k)
        argv += ["--scores-as-reported", f"{k[0]}", f"as_{k[0]}"]  # one attribute: VALUE alone
    path = tmp_path / "reg.csv"
    table.to_csv(path, index=False)
    assert main(["audit", "--predictions", str(path), "--target", "outcome", "--groups", "group",
                 "--scores", "own", "--generic-scores", "generic", *argv, "--n-boot", "100",
                 "--out", str(tmp_path / "r.json"), "--quiet"]) == 0  # task: regression (inferred)
    capsys.readouterr()
    ref = audit(model, Xt, yt, groups=gt, n_boot=100, metrics=["mse", "mae"])
    (got,) = captured
    assert got.settings["task"] == "regression"
    assert_same_report(got, ref, tol=1e-12)
    # group values that are numbers: a report matches the file's value by value (1.0 is 1)
    table["group"] = np.where(table["group"] == "a", 1, 2)
    numeric = tmp_path / "reg_numeric.csv"
    table.to_csv(numeric, index=False)
    assert main(["audit", "--predictions", str(numeric), "--target", "outcome", "--groups", "group",
                 "--scores", "own", "--generic-scores", "generic", "--scores-as-reported", "group=1.0", "as_a",
                 "--scores-as-reported", "2", "as_b", "--n-boot", "100", "--out", str(tmp_path / "r.json"),
                 "--quiet"]) == 0
    capsys.readouterr()
    again = captured[-1]
    assert sorted(again.groups.group.tolist()) == ["group=1", "group=2"]  # read as written
    numbers = ref.table.select_dtypes("number").columns
    pd.testing.assert_frame_equal(again.table[numbers], ref.table[numbers], rtol=0, atol=1e-12)
    assert main(["audit", "--predictions", str(path), "--target", "outcome", "--groups", "group",
                 "--scores", "own", "--generic-scores", "generic", "--pos-label", "1",
                 "--out", str(tmp_path / "r.json")]) == 2
    assert one_line_error(capsys) == cli.MSG_AUDIT_POS_LABEL_REGRESSION


def write(case, tmp_path, **changes) -> str:
    table = case["table"].copy()
    for column, values in changes.items():
        table[column] = values
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    return str(path)


def test_errors_are_one_clear_line_and_nothing_is_written(case, tmp_path, capsys):
    path = str(case["path"])
    out = tmp_path / "r.json"
    base = ["audit", "--predictions", path, "--target", "y", "--groups", "site,sex", "--out", str(out)]
    pairs = report_flags(case["columns"])

    def error(argv) -> str:
        assert main(argv) == 2
        line = one_line_error(capsys)
        assert not out.exists()
        return line

    # which inputs: a model and its data, or predictions, never both
    assert error(["audit", "--out", str(out)]) == cli.MSG_AUDIT_NEED_INPUT
    assert error(["audit", "--model", "m.json", "--out", str(out)]) == cli.MSG_AUDIT_NEED_MODEL.format(
        given="model", other="data")
    assert error(["audit", "--data", path, "--model", "m.json", "--scores", "p_own", "--task", "regression",
                  "--out", str(out)]) == cli.MSG_AUDIT_NEEDS_PREDICTIONS.format(flags="--scores, --task")
    assert error([*base, "--model", "m.json", "--scores", "p_own", "--generic-scores", "p_generic"]) == \
        cli.MSG_AUDIT_BOTH_INPUTS.format(flags="--model")
    assert error(["audit", "--predictions", path, "--scores", "p_own", "--out", str(out)]) == \
        cli.MSG_AUDIT_PREDICTIONS_NEED.format(flags="--target, --groups, --generic-scores")
    assert error([*base, "--generic-scores", "p_generic"]) == cli.MSG_AUDIT_NO_OWN_SCORES
    # columns
    assert error([*base, "--scores", "p_mine", "--generic-scores", "p_generic"]) == \
        cli.MSG_UNKNOWN_COLUMNS.format(missing=["p_mine"], path=path, columns=list(case["table"].columns))
    assert error([*base, "--scores", "y", "--generic-scores", "p_generic"]) == cli.MSG_AUDIT_SCORE_ROLE.format(
        column="y", roles="--scores and --target", what="the target or a group column")
    # values
    text = np.where(np.arange(300) == 7, "high", case["own"].astype(str))
    bad = write(case, tmp_path, p_own=text)
    assert error([*base[:2], bad, *base[3:], "--scores", "p_own", "--generic-scores", "p_generic"]) == \
        cli.MSG_AUDIT_SCORES_NOT_NUMERIC.format(column="p_own", flag="--scores", path=bad, value="high")
    scaled = case["generic"] * 100  # percentages, not probabilities
    first = int(np.argmax(scaled > 1))
    bad = write(case, tmp_path, p_generic=scaled)
    assert error([*base[:2], bad, *base[3:], "--scores", "p_own", "--generic-scores", "p_generic"]) == \
        cli.MSG_AUDIT_SCORES_BAD.format(column="p_generic", flag="--generic-scores", path=bad,
                                        problem="probabilities outside [0, 1]", n_rows=int((scaled > 1).sum()),
                                        row=first + 1, value=float(scaled[first]))
    inf = case["own"].copy()
    inf[[5, 9]] = np.inf
    bad = write(case, tmp_path, p_own=inf)
    assert error([*base[:2], bad, *base[3:], "--scores", "p_own", "--generic-scores", "p_generic"]) == \
        cli.MSG_AUDIT_SCORES_BAD.format(column="p_own", flag="--scores", path=bad, problem="infinite values",
                                        n_rows=2, row=6, value=float("inf"))
    three = np.where(np.arange(300) % 50 == 0, 2, case["y"])
    bad = write(case, tmp_path, y=three)
    assert error([*base[:2], bad, *base[3:], "--scores", "p_own", "--generic-scores", "p_generic",
                  "--task", "classification"]) == cli.MSG_CLI_NOT_BINARY.format(column="y", n=3, values="0, 1, 2")
    assert error([*base, "--scores", "p_own", "--generic-scores", "p_generic", "--pos-label", "2"]) == \
        cli.MSG_AUDIT_POS_LABEL.format(value="2", column="y", values=[0, 1])
    # reports
    assert error([*base, "--scores", "p_own", "--generic-scores", "p_generic", "--scores-as-reported",
                  "site=east", "p_as_east_F"]) == cli.MSG_AUDIT_BAD_REPORT.format(
        value="site=east", column="p_as_east_F", names=["site", "sex"])
    assert error([*base, "--scores", "p_own", "--generic-scores", "p_generic", *pairs[:-3]]) == \
        cli.MSG_AUDIT_REPORTS_MISSING.format(groups=["site=south,sex=M"], path=path)
    assert error([*base, "--scores", "p_own", "--generic-scores", "p_generic", *pairs, "--scores-as-reported",
                  "sex=F,site=east", "p_own"]) == cli.MSG_AUDIT_REPORT_TWICE.format(report="site=east,sex=F")
    shifted = case["as_reported"][("north", "M")].copy()
    rows = np.flatnonzero((case["g"].site == "north") & (case["g"].sex == "M"))
    shifted[rows[2]] += 0.001
    bad = write(case, tmp_path, p_as_north_M=shifted)
    assert error([*base[:2], bad, *base[3:], "--scores", "p_own", "--generic-scores", "p_generic", *pairs]) == \
        cli.MSG_AUDIT_OWN_DISAGREE.format(own="p_own", column="p_as_north_M", n_rows=1, report="site=north,sex=M",
                                          row=rows[2] + 1, diff=abs(shifted[rows[2]] - case["own"][rows[2]]))
    # settings, before the file is read
    line = error([*base, "--scores", "p_own", "--generic-scores", "p_generic", "--metrics", "error,mse"])
    assert "'mse' does not apply to classification" in line
    assert error([*base, "--scores", "p_own", "--generic-scores", "p_generic", "--metrics", "error",
                  "--plot-metric", "auc"]) == cli.MSG_PLOT_METRIC_NOT_AUDITED.format(metric="auc", metrics=["error"])
    assert error(["audit", "--predictions", path, "--target", "y", "--groups", "site,sex", "--scores", "p_own",
                  "--generic-scores", "p_generic"]) == cli.MSG_NEED_OUTPUT
    assert error([*base[:-1], path, "--scores", "p_own", "--generic-scores", "p_generic"]) == \
        cli.MSG_OUT_IS_INPUT.format(flag="--out", path=path, other="--predictions")
