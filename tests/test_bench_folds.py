"""Folds are numbered from 1 in every output, as the demo numbers them (issue 23, item 5):
the study benchmark's CSV files, cell ids, cell records and progress lines; the system
benchmark's CSV file; the crossfit procedure's lines.  Seeds still take the fold's
position, so no number changed; an output folder of the version that counted from 0
resumes without running a cell again."""

from __future__ import annotations

import importlib.util
import json
import logging
import re

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from fairuse_opt.bench import fold_split, load_config, run_grid
from fairuse_opt.bench._summary import TIMING_COLUMNS, tidy_results
from fairuse_opt.cli import main
from fairuse_opt.system._select import out_of_fold

from .conftest import REPO

FOLDS = 3


def _config(tmp_path):
    rng = np.random.default_rng(7)
    n = 241
    frame = pd.DataFrame({"x1": rng.normal(size=n), "sex": rng.choice(["F", "M"], n)})
    frame["y"] = (frame["x1"] + (frame["sex"] == "F") + rng.logistic(size=n) > 0.5).astype(int)
    frame.to_csv(tmp_path / "clinic.csv", index=False)
    (tmp_path / "bench.toml").write_text(
        f'datasets = []\nfolds = {FOLDS}\nn_boot = 50\nmodels = ["logistic"]\n'
        'techniques = ["generic", "onehot"]\nmethods = ["unconstrained"]\n'
        '[[extra_datasets]]\nname = "clinic"\ncsv = "clinic.csv"\ntarget = "y"\ngroups = ["sex"]\n')
    return frame, tmp_path / "bench.toml"


def _fold_of_id(cell_id: str) -> int:
    return int(re.fullmatch(r"clinic__f(\d+)__.*", cell_id).group(1))


def test_every_bench_output_numbers_folds_from_1(tmp_path, capsys):
    frame, toml = _config(tmp_path)
    out = tmp_path / "out"
    assert main(["bench", "--config", str(toml), "--out", str(out), "--no-plots"]) == 0
    printed = [line for line in capsys.readouterr().err.splitlines() if "clinic__f" in line]
    results = pd.read_csv(out / "results.csv")
    groups = pd.read_csv(out / "groups.csv")
    want = set(range(1, FOLDS + 1))
    assert set(results["fold"]) == want and set(groups["fold"]) == want
    for table in (results, groups):  # the id names the fold of its row
        assert [_fold_of_id(c) for c in table["cell_id"]] == table["fold"].tolist()
    records = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    assert len(records) == FOLDS * 2
    for r in records:
        assert r["fold"] == _fold_of_id(r["cell_id"]) and r["spec"]["fold"] == r["fold"] - 1
    ids = [next(w for w in line.split() if w.startswith("clinic__f")) for line in printed]
    assert sorted({_fold_of_id(i) for i in ids}) == sorted(want)
    # fold k is the split at position k - 1: each group's test rows are that split's
    spec = load_config(toml).datasets[0]
    rat = groups[(groups["condition"] == "rationality") & (groups["metric"] == "error")]

    def group_sizes(position):
        _, _, test = fold_split(spec, frame[["sex"]], frame["y"], "classification", position, folds=FOLDS,
                                assign_size=0.3, seed=0)
        return {f"sex={k}": int(v) for k, v in frame["sex"].iloc[test].value_counts().items()}

    sizes = {k: dict(zip(rat.loc[rat["fold"] == k, "group"], rat.loc[rat["fold"] == k, "n"])) for k in want}
    assert all(sizes[k] == group_sizes(k - 1) for k in want)
    assert any(sizes[k] != group_sizes(k % FOLDS) for k in want)  # the check tells the folds apart


def test_an_output_folder_counted_from_0_resumes_without_rerunning(tmp_path):
    _, toml = _config(tmp_path)
    config = load_config(toml)
    out = tmp_path / "out"
    first = run_grid(config, out)
    cells = out / "cells"
    # rewrite the folder as the earlier version wrote it: ids and folds counted from 0
    for cell in first.cells:
        record = json.loads((cells / f"{cell.cell_id}.json").read_text())
        (cells / f"{cell.cell_id}.json").unlink()
        record.update(cell_id=cell.legacy_id, fold=cell.fold)
        (cells / f"{cell.legacy_id}.json").write_text(json.dumps(record))
    again = run_grid(config, out)
    assert again.computed == [] and len(again.reused) == len(first.cells)
    drop = list(TIMING_COLUMNS)
    pd.testing.assert_frame_equal(tidy_results(again.records).drop(columns=drop),
                                  tidy_results(first.records).drop(columns=drop))


def test_the_system_benchmark_renumbers_a_csv_counted_from_0(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_system", REPO / "benchmarks" / "bench_system.py")
    bench_system = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_system)
    old = pd.DataFrame({"dataset": ["a"] * 3 + ["b"] * 3, "fold": [0, 1, 2, 1, 2, 3], "log_loss": np.arange(6.0)})
    old.to_csv(tmp_path / "old.csv", index=False)
    rows, renumbered = bench_system.read_rows(tmp_path / "old.csv")
    assert renumbered  # dataset a was counted from 0; b (written since) from 1
    assert [r["fold"] for r in rows] == [1, 2, 3, 1, 2, 3]
    assert [r["log_loss"] for r in rows] == list(np.arange(6.0))
    pd.DataFrame(rows).to_csv(tmp_path / "new.csv", index=False)
    assert bench_system.read_rows(tmp_path / "new.csv")[1] is False
    committed = pd.read_csv(REPO / "benchmarks" / "results" / "system_datasets.csv")
    assert committed.groupby("dataset")["fold"].agg(lambda f: sorted(set(f))).map(
        lambda f: f == [1, 2, 3, 4, 5]).all()


class _Broken(BaseEstimator, ClassifierMixin):
    def fit(self, X, y, groups=None):
        raise RuntimeError("cannot fit")


def test_crossfit_lines_number_folds_from_1(caplog):
    rng = np.random.default_rng(0)
    n = 60
    X = rng.normal(size=(n, 2))
    y = (X[:, 0] + rng.logistic(size=n) > 0).astype(int)
    frame = pd.DataFrame({"sex": rng.choice(["F", "M"], n)})
    folds = np.arange(n) % 3
    lines = []
    with caplog.at_level(logging.WARNING, logger="fairuse_opt"):
        out_of_fold(X, y, frame, {"broken": (_Broken(), ["sex"])}, LogisticRegression(), folds,
                    classification=True, progress=lines.append)
    warned = [r.getMessage() for r in caplog.records if "could not be fitted" in r.getMessage()]
    assert [w.split(":")[0] for w in warned] == ["fold 1", "fold 2", "fold 3"]
    assert [line.split(":")[0] for line in lines] == ["fold 1 of 3", "fold 2 of 3", "fold 3 of 3"]
