"""The study benchmark (issue 11): the reduced grid through the command line, the same table
from serial, joblib and Dask runs, resume after a kill, crashed cells, configs, splits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairuse_opt import FairUseClassifier, audit
from fairuse_opt.bench import (GRID, BenchConfig, DatasetSpec, build_cells, derive_seed, fold_split,
                               load_config, run_grid, system_available, training_violations)
from fairuse_opt.bench import _methods
from fairuse_opt.bench._errors import MSG_CONFIG_KEY, MSG_CSV_MISSING, MSG_UNKNOWN_CHOICE
from fairuse_opt.bench._summary import TIMING_COLUMNS
from fairuse_opt.cli import main
from fairuse_opt.datasets import load_toy
from fairuse_opt.exceptions import InputError


REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    env = os.environ.get("FAIRUSE_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"
FOLDS = 2
#: Grid rows of a classification dataset (logistic and the scikit-learn models).
CLASSIFICATION_ROWS = [r for r in GRID if r[0] != "linear"]


@pytest.fixture(scope="module", autouse=True)
def _data_env():
    if not (data_dir() / "apnea.csv").exists():
        pytest.fail(f"apnea.csv not found in {data_dir()}: set FAIRUSE_DATA_DIR")
    old = os.environ.get("FAIRUSE_DATA_DIR")
    os.environ["FAIRUSE_DATA_DIR"] = str(data_dir().resolve())
    yield
    if old is None:
        del os.environ["FAIRUSE_DATA_DIR"]
    else:
        os.environ["FAIRUSE_DATA_DIR"] = old


@pytest.fixture(scope="module")
def serial(tmp_path_factory, _data_env) -> Path:
    """The reduced grid, exactly as the issue states it, run once serially."""
    out = tmp_path_factory.mktemp("bench") / "serial"
    status = main(["bench", "--datasets", "apnea", "--folds", str(FOLDS), "--out", str(out), "--quiet"])
    assert status == 0
    return out


def _table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "results.csv", dtype={"pool": "string", "route": "string", "reason": "string"}
                       ).drop(columns=list(TIMING_COLUMNS))


def _apnea():
    from fairuse_opt.datasets import load_apnea
    return load_apnea()


def test_reduced_grid_outputs(serial):
    results = pd.read_csv(serial / "results.csv")
    cells = results.drop_duplicates("cell_id")
    assert len(cells) == FOLDS * len(CLASSIFICATION_ROWS)
    assert set(map(tuple, cells[["model", "technique", "method"]].to_numpy())) == set(CLASSIFICATION_ROWS)
    needs_system = cells["method"].isin(["minimal", "system"])
    assert (cells.loc[~needs_system, "status"] == "ok").all()
    expected = "ok" if system_available() else "unavailable"
    assert (cells.loc[needs_system, "status"] == expected).all()
    ok = results[results["status"] == "ok"]
    assert set(ok["metric"]) == {"error", "auc", "log_loss", "ece"}
    # the constrained models keep their promise on the training rows; the generic has none
    constrained = ok[ok["method"].isin(["fairuse", "fairuse-se"])]
    assert (constrained["train_rationality_violations"] == 0).all()
    assert (constrained["train_envy_violations"] == 0).all()
    generic = ok[ok["technique"] == "generic"]
    np.testing.assert_array_equal(generic["value"], generic["generic_value"])
    assert generic["rationality_violations"].isna().all()
    judged = ok.loc[ok["technique"] != "generic", ["metric", "rationality_judged"]]
    assert judged["rationality_judged"].between(0, 6).all()  # 6 apnea groups; a group served the generic model has no p-value
    for name in ("groups.csv", "summary.md", "run.json", "violations.png", "gains.png"):
        assert (serial / name).stat().st_size > 0
    summary = (serial / "summary.md").read_text()
    meta = json.loads((serial / "run.json").read_text())
    assert f"`fairuse bench --datasets apnea --folds {FOLDS} --out {serial} --quiet`" in summary
    assert meta["fairuse_opt"] in summary and meta["date"] in summary
    assert "## Headline" in summary and "| apnea |" in summary


def test_cell_numbers_match_an_independent_fit(serial):
    """One cell recomputed by hand: the fold's rows, the model, the test error, the audit."""
    results = pd.read_csv(serial / "results.csv")
    row = results[(results["fold"] == 2) & (results["model"] == "logistic")  # fold 2: position 1
                  & (results["technique"] == "onehot") & (results["method"] == "unconstrained")]
    X, y, g = _apnea()
    tr, asg, te = fold_split(DatasetSpec("apnea", "apnea"), g, y, "classification", 1, folds=FOLDS,
                             assign_size=0.3, seed=0)
    fit = np.concatenate([tr, asg])
    model = FairUseClassifier(encoding="onehot", fair_use=None).fit(X.iloc[fit], y.iloc[fit],
                                                                   groups=g.iloc[fit])
    pred = model.predict_proba(X.iloc[te], groups=g.iloc[te])[:, 1]
    error = float(np.mean((pred > 0.5) != (y.iloc[te].to_numpy() == 1)))
    err_row = row[row["metric"] == "error"].iloc[0]
    assert err_row["value"] == pytest.approx(error, abs=1e-12)
    cell = next(c for c in build_cells(BenchConfig(datasets=(DatasetSpec("apnea", "apnea"),), folds=FOLDS),
                                       {"apnea": "classification"})
                if c.fold == 1 and (c.model, c.technique, c.method) == ("logistic", "onehot", "unconstrained"))
    report = audit(model, X.iloc[te].reset_index(drop=True), y.iloc[te].reset_index(drop=True),
                   groups=g.iloc[te].reset_index(drop=True), metrics=["error", "auc", "log_loss", "ece"],
                   n_boot=1000, alpha=0.10, correction="holm", random_state=cell.audit_seed)
    t = report.table
    rat = t[(t["condition"] == "rationality") & (t["metric"] == "error")]
    assert err_row["rationality_violations"] == int((rat["p_violation_adj"] <= 0.10).sum())
    assert err_row["rationality_benefits"] == int((rat["p_benefit_adj"] <= 0.10).sum())
    assert err_row["min_gain"] == pytest.approx(rat["gain"].min())
    assert err_row["max_gain"] == pytest.approx(rat["gain"].max())


def test_same_seed_same_table_with_joblib(serial, tmp_path):
    out = tmp_path / "joblib"
    assert main(["bench", "--datasets", "apnea", "--folds", str(FOLDS), "--out", str(out), "--quiet",
                 "--n-jobs", "2", "--no-plots"]) == 0
    pd.testing.assert_frame_equal(_table(serial), _table(out))


def test_local_dask_cluster_gives_the_serial_numbers(serial, tmp_path):
    """A slice of the reduced grid on a local Dask cluster: identical to the serial run."""
    out = tmp_path / "dask"
    args = ["--models", "logistic,mlp", "--techniques", "generic,intersectional"]
    assert main(["bench", "--datasets", "apnea", "--folds", str(FOLDS), "--out", str(out), "--quiet",
                 "--scheduler", "local", "--n-jobs", "2", "--no-plots", *args]) == 0
    got = _table(out)
    want = _table(serial)
    want = want[want["cell_id"].isin(set(got["cell_id"]))].reset_index(drop=True)
    assert len(got) > 0 and len(want) == len(got)
    assert set(got["model"]) == {"logistic", "mlp"}
    pd.testing.assert_frame_equal(want, got)


def test_rerun_only_runs_missing_cells(serial, tmp_path):
    out = tmp_path / "resume"
    shutil.copytree(serial, out)
    files = sorted((out / "cells").glob("*.json"))
    removed = [files[3], files[17], files[30]]
    for f in removed:
        f.unlink()
    (out / "cells" / ".leftover.json.123.tmp").write_text("{half a")  # as a killed writer leaves
    before = {f.name: f.stat().st_mtime_ns for f in (out / "cells").glob("*.json")}
    config = BenchConfig(datasets=(DatasetSpec("apnea", "apnea"),), folds=FOLDS)
    run = run_grid(config, out)
    always = {r["cell_id"] for r in run.records if r["status"] == "unavailable"}  # rerun by design
    assert set(run.computed) == {f.stem for f in removed} | always
    assert len(run.reused) == len(run.cells) - len(run.computed)
    after = {f.name: f.stat().st_mtime_ns for f in (out / "cells").glob("*.json")}
    assert all(after[name] == mtime for name, mtime in before.items() if Path(name).stem not in always)
    from fairuse_opt.bench._summary import tidy_results
    tidy_results(run.records).to_csv(tmp_path / "again.csv", index=False)
    again = pd.read_csv(tmp_path / "again.csv", dtype={"pool": "string", "route": "string", "reason": "string"}
                        ).drop(columns=list(TIMING_COLUMNS))
    pd.testing.assert_frame_equal(again, _table(serial))


def test_killed_run_resumes(tmp_path):
    """Kill a run with SIGKILL after some cells; the rerun keeps them (mtimes unchanged) and
    runs only the rest."""
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "fairuse_opt.bench", "--datasets", "apnea", "--folds", "2",
            "--models", "logistic", "--techniques", "generic,intersectional", "--methods",
            "unconstrained,fairuse,fairuse-se", "--out", str(out), "--quiet", "--no-plots"]
    proc = subprocess.Popen(args, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cells = out / "cells"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(cells.glob("*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {f.name: f.stat().st_mtime_ns for f in cells.glob("*.json")}
    assert 2 <= len(done) < 8, "the run must be killed part-way (8 cells in all)"
    config = BenchConfig(datasets=(DatasetSpec("apnea", "apnea"),), folds=2, models=("logistic",),
                         techniques=("generic", "intersectional"),
                         methods=("unconstrained", "fairuse", "fairuse-se"))
    run = run_grid(config, out)
    assert len(run.cells) == 8
    assert sorted(run.reused) == sorted(Path(n).stem for n in done)
    assert len(run.computed) == 8 - len(done)
    assert {f.name: f.stat().st_mtime_ns for f in cells.glob("*.json") if f.name in done} == done


def test_a_crashed_cell_is_recorded_and_the_grid_finishes(tmp_path, monkeypatch):
    key = ("logistic", "intersectional", "fairuse")

    def boom(data):
        raise RuntimeError("injected failure")

    monkeypatch.setitem(_methods.BUILDERS, key, boom)
    config = BenchConfig(datasets=(DatasetSpec("apnea", "apnea"),), folds=2, models=("logistic",),
                         techniques=("generic", "intersectional"), methods=("unconstrained", "fairuse"))
    run = run_grid(config, tmp_path)
    status = {(r["fold"], r["technique"], r["method"]): r for r in run.records}
    assert len(status) == 6
    for fold in (1, 2):  # numbered from 1
        bad = status[(fold, "intersectional", "fairuse")]
        assert bad["status"] == "failed"
        assert bad["reason"] == "RuntimeError: injected failure"
        assert "boom" in bad["traceback"] and "injected failure" in bad["traceback"]
    assert sum(r["status"] == "ok" for r in run.records) == 4
    monkeypatch.undo()
    again = run_grid(config, tmp_path)  # failed cells run again, the others are kept
    assert len(again.computed) == 2 and all(r["status"] == "ok" for r in again.records)


def test_seeds_and_ids_do_not_depend_on_order():
    # the caps of the version the pinned seeds below come from (the caps are settings: in the ids)
    config = BenchConfig(datasets=(DatasetSpec("apnea", "apnea"), DatasetSpec("toy", "toy")), folds=3,
                         ccp_max_train=2500, decoupled_max_train=5000)
    cells = build_cells(config, {"apnea": "classification", "toy": "classification"})
    reordered = build_cells(config.with_overrides(datasets=["toy", "apnea"]),
                            {"apnea": "classification", "toy": "classification"})
    assert {c.cell_id: c.seed for c in cells} == {c.cell_id: c.seed for c in reordered}
    assert all(c.seed == derive_seed(c.legacy_id) for c in cells)
    assert len({c.cell_id for c in cells}) == len(cells)
    assert cells[0].cell_id.startswith("apnea__f1__logistic__generic__unconstrained__")  # fold 1: the first
    assert cells[0].legacy_id.startswith("apnea__f0__logistic__generic__unconstrained__")
    # the seeds of the version that counted folds from 0 (its cell ids were today's legacy ids):
    # numbering folds from 1 changed no number
    assert (cells[0].seed, cells[0].audit_seed, cells[-1].seed) == (1505686932, 2064652878, 107972120)
    assert cells[-1].cell_id.startswith("toy__f3__mlp__intersectional__unconstrained__")
    # a setting that changes the numbers changes the id
    other = build_cells(config.with_overrides(n_boot=500), {"apnea": "classification", "toy": "classification"})
    assert not {c.cell_id for c in cells} & {c.cell_id for c in other}
    # every method of a (dataset, fold) is audited on the same resamples
    f0 = [c for c in cells if c.dataset.name == "apnea" and c.fold == 0]
    assert len({c.audit_seed for c in f0}) == 1


def test_folds_partition_the_rows_stratified_by_group_and_label():
    X, y, g = _apnea()
    spec = DatasetSpec("apnea", "apnea")
    tests = []
    for fold in range(5):
        tr, asg, te = fold_split(spec, g, y, "classification", fold, folds=5, assign_size=0.3, seed=0)
        assert not set(tr) & set(asg) and not set(tr) & set(te) and not set(asg) & set(te)
        assert len(tr) + len(asg) + len(te) == len(y)
        assert abs(len(asg) - 0.3 * (len(tr) + len(asg))) <= 1
        tests.append(te)
        cell = g.astype(str).agg("|".join, axis=1) + "#" + y.astype(str)
        whole = cell.value_counts()
        part = cell.iloc[te].value_counts()
        assert ((part.reindex(whole.index, fill_value=0) - whole / 5).abs() <= 1).all()
    assert sorted(np.concatenate(tests)) == list(range(len(y)))
    again = fold_split(spec, g, y, "classification", 2, folds=5, assign_size=0.3, seed=0)
    np.testing.assert_array_equal(again[2], tests[2])


@pytest.mark.filterwarnings("ignore::fairuse_opt.exceptions.SmallGroupWarning")
def test_training_violations_on_the_toy_counterexample():
    """fair-use.md section 7: the one-hot logistic fit raises female-old's training log loss
    (0.6833 -> 0.7442); the fair-use fit has no training violation."""
    X, y, g = load_toy()
    onehot = FairUseClassifier(encoding="onehot", fair_use=None, l2=1e-6).fit(X, y, groups=g)
    got = training_violations(onehot, onehot.generic_, X, y, g, "classification")
    cert = onehot.certificate_.table
    assert got["rationality"] == int((cert["gain"] < -1e-6).sum()) >= 1
    assert got["envy"] == int((cert["envy_slack"] < -1e-6).sum())
    fair = FairUseClassifier(encoding="onehot", l2=1e-6).fit(X, y, groups=g)
    assert training_violations(fair, fair.generic_, X, y, g, "classification") == {"rationality": 0, "envy": 0}


def test_config_file_adds_a_csv_dataset(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n),
                          "site": rng.choice(["a", "b"], n), "sex": rng.choice(["F", "M"], n)})
    frame["y"] = (frame["x1"] + (frame["sex"] == "F") + rng.logistic(size=n) > 0.5).astype(int)
    frame.to_csv(tmp_path / "clinic.csv", index=False)
    (tmp_path / "bench.toml").write_text(
        'datasets = []\nfolds = 2\nn_boot = 200\nmodels = ["logistic"]\n'
        'techniques = ["generic", "onehot"]\nmethods = ["unconstrained", "fairuse"]\n'
        '[[extra_datasets]]\nname = "clinic"\ncsv = "clinic.csv"\ntarget = "y"\ngroups = ["sex"]\n')
    out = tmp_path / "out"
    assert main(["bench", "--config", str(tmp_path / "bench.toml"), "--out", str(out), "--quiet",
                 "--no-plots"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert set(results["dataset"]) == {"clinic"} and (results["status"] == "ok").all()
    assert len(results.drop_duplicates("cell_id")) == 2 * 3
    assert results["n_train"].iloc[0] + results["n_assign"].iloc[0] + results["n_test"].iloc[0] == n
    # JSON gives the same config
    (tmp_path / "bench.json").write_text(json.dumps({
        "datasets": [], "folds": 2, "n_boot": 200, "models": ["logistic"],
        "techniques": ["generic", "onehot"], "methods": ["unconstrained", "fairuse"],
        "extra_datasets": [{"name": "clinic", "csv": "clinic.csv", "target": "y", "groups": ["sex"]}]}))
    assert load_config(tmp_path / "bench.json") == load_config(tmp_path / "bench.toml")


def test_bad_configs_are_clear_errors(tmp_path):
    (tmp_path / "bad.toml").write_text("fold = 3\n")
    with pytest.raises(InputError) as err:
        load_config(tmp_path / "bad.toml")
    assert str(err.value) == MSG_CONFIG_KEY.format(path=str(tmp_path / "bad.toml"), keys=["fold"],
                                                  known=sorted(load_config.__globals__["_CONFIG_KEYS"]))
    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0, 4.0], "g": ["a", "b", "a", "b"], "y": [0, 1, 0, 1]})
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    spec = DatasetSpec.from_value({"name": "gaps", "csv": str(tmp_path / "gaps.csv"), "target": "y",
                                   "groups": "g"})
    from fairuse_opt.bench._config import load_dataset
    with pytest.raises(InputError) as err:
        load_dataset(spec)
    assert str(err.value) == MSG_CSV_MISSING.format(name="gaps", columns=["x"], n=1)
    with pytest.raises(InputError) as err:
        build_cells(BenchConfig(models=("svm",)), {"apnea": "classification"})
    assert str(err.value) == MSG_UNKNOWN_CHOICE.format(what="model", value="svm",
                                                      known=["logistic", "linear", "rf", "hgb", "mlp"])
    assert main(["bench", "--datasets", "apnea", "--folds", "1", "--out", str(tmp_path / "x"), "--quiet"]) == 2


def test_progress_lines_are_printed_once_with_one_prefix(tmp_path, capsys):
    rng = np.random.default_rng(1)
    n = 200
    frame = pd.DataFrame({"x1": rng.normal(size=n), "sex": rng.choice(["F", "M"], n)})
    frame["y"] = (frame["x1"] + rng.logistic(size=n) > 0).astype(int)
    frame.to_csv(tmp_path / "clinic.csv", index=False)
    (tmp_path / "bench.toml").write_text(
        'datasets = []\nfolds = 2\nn_boot = 50\nmodels = ["logistic"]\n'
        'techniques = ["generic", "onehot"]\nmethods = ["unconstrained"]\n'
        '[[extra_datasets]]\nname = "clinic"\ncsv = "clinic.csv"\ntarget = "y"\ngroups = ["sex"]\n')
    assert main(["bench", "--config", str(tmp_path / "bench.toml"), "--out", str(tmp_path / "out"),
                 "--no-plots"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    cells = [line for line in lines if "clinic__f" in line]
    ids = [next(w for w in line.split() if w.startswith("clinic__f")) for line in cells]
    assert len(ids) == 2 * 2 and len(set(ids)) == len(ids)  # 4 cells, each reported once
    assert all(line.startswith("fairuse: ") for line in lines)


def test_committed_configs_load_and_the_default_one_is_the_default_grid(tmp_path):
    configs = REPO / "benchmarks" / "configs"
    assert load_config(configs / "default.toml") == load_config(None)
    quick = load_config(configs / "quick.toml")
    assert [d.name for d in quick.datasets] == ["apnea"] and quick.folds == 2 and quick.models == ("logistic",)
    # the CSV example, copied beside a CSV that has its columns: resolved relative to the file
    (tmp_path / "data").mkdir()
    pd.DataFrame({"age": [50, 60], "sex": ["F", "M"], "age_band": ["<60", "60+"], "outcome": [0, 1]}
                 ).to_csv(tmp_path / "data" / "my_clinic.csv", index=False)
    shutil.copy(configs / "my-clinic.toml", tmp_path / "my-clinic.toml")
    clinic = load_config(tmp_path / "my-clinic.toml")
    extra = [d for d in clinic.datasets if d.name == "my_clinic"]
    assert len(extra) == 1 and extra[0].csv == str((tmp_path / "data" / "my_clinic.csv").resolve())
    assert extra[0].groups == ("sex", "age_band") and extra[0].target == "outcome"
    assert len(clinic.datasets) == len(load_config(None).datasets) + 1


def test_regression_cells_with_the_systems_match_an_independent_fit(tmp_path):
    """diabetes (regression): the linear model's minimal and certified-system cells run, and the
    system cell's test MSE and training violations are those of fit_system rebuilt by hand."""
    from fairuse_opt import fit_system
    from fairuse_opt.bench._config import load_dataset
    from fairuse_opt.system import default_candidates
    out = tmp_path / "reg"
    assert main(["bench", "--datasets", "diabetes", "--folds", "2", "--models", "linear",
                 "--methods", "unconstrained,minimal,system", "--n-boot", "200", "--out", str(out),
                 "--quiet", "--no-plots"]) == 0
    results = pd.read_csv(out / "results.csv")
    ok = results[results["status"] == "ok"]
    assert set(ok["method"]) == {"unconstrained", "minimal", "system"} and set(ok["metric"]) == {"mse"}
    assert (results["status"] == "ok").all()
    config = BenchConfig(datasets=(DatasetSpec("diabetes", "diabetes"),), folds=2, n_boot=200,
                         models=("linear",), methods=("unconstrained", "minimal", "system"))
    cell = next(c for c in build_cells(config, {"diabetes": "regression"})
                if c.fold == 0 and c.method == "system")
    X, y, g, task = load_dataset(cell.dataset)
    tr, asg, te = fold_split(cell.dataset, g, y, task, 0, folds=2, assign_size=0.3, seed=0)
    fit = np.concatenate([tr, asg])
    part = lambda obj, idx: obj.iloc[idx].reset_index(drop=True)  # noqa: E731
    pool = default_candidates(list(g.columns), "regression", encodings=("onehot", "intersectional", "decoupled"))
    system = fit_system(part(X, fit), part(y, fit), part(g, fit), assign_size=len(asg), metric="mse",
                        candidates=pool, alpha=0.10, correction="holm", n_boot=200, task="regression",
                        random_state=cell.seed)
    pred = system.predict(part(X, te), groups=part(g, te))
    mse = float(np.mean((pred - y.iloc[te].to_numpy()) ** 2))
    row = ok[(ok["fold"] == 1) & (ok["method"] == "system")].iloc[0]  # fold 1: position 0
    assert row["value"] == pytest.approx(mse, rel=1e-12)
    generic = system.generic_.predict(part(X, te))
    assert row["generic_value"] == pytest.approx(float(np.mean((generic - y.iloc[te].to_numpy()) ** 2)), rel=1e-12)
    assert row["train_rationality_violations"] == 0 and row["train_envy_violations"] == 0
    assert row["n_personalized"] == sum(f[0] != "generic" for f in system.served_.values())


def test_a_skipped_row_says_why_once_in_full():
    from fairuse_opt.bench._errors import MSG_CAPPED
    from fairuse_opt.bench._summary import method_table
    reasons = [MSG_CAPPED.format(what="one-hot fair-use", cap=2500, n=n) for n in (7250, 7251)]
    results = pd.DataFrame({"dataset": "d", "model": "logistic", "technique": "onehot", "method": "fairuse",
                            "cell_id": ["a", "b"], "status": "skipped", "reason": reasons, "metric": np.nan})
    row = method_table(results, "error").iloc[0]
    assert row["cells ok"] == "0/2"
    assert row["note"] == "skipped (2 of 2 cells): " + reasons[0]
    assert "skipped: skipped" not in row["note"] and row["note"].endswith("to run it)")


def test_totals_sum_over_datasets_and_count_the_datasets_with_a_violation():
    from fairuse_opt.bench._summary import totals_table
    results = pd.DataFrame({
        "dataset": ["a", "a", "b", "b", "c"], "model": "logistic", "technique": "onehot",
        "method": "unconstrained", "cell_id": list("vwxyz"), "status": ["ok"] * 4 + ["failed"],
        "metric": "error", "rationality_violations": [1, 0, 0, 0, 9], "rationality_benefits": [2, 1, 0, 3, 9],
        "rationality_judged": [6, 6, 4, 4, 9]})
    row = totals_table(results, "error").iloc[0]
    assert (row["violations"], row["benefits"], row["datasets with a violation"]) == ("1/20", "6/20", "1/2")
