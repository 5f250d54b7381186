"""The study benchmark against bad config files, failed writes and Ctrl-C (issue 24, B1-B3).

No data folder is needed: the grid runs on a small synthetic CSV dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairuse_opt import cli
from fairuse_opt.bench._cli import MSG_RESUME
from fairuse_opt.cli import main

GRID_TOML = ('datasets = []\nfolds = 2\nn_boot = 50\nmodels = ["logistic"]\n'
             'techniques = ["generic", "onehot"]\nmethods = ["unconstrained"]\n'
             '[[extra_datasets]]\nname = "clinic"\ncsv = "clinic.csv"\ntarget = "y"\ngroups = ["sex"]\n')


def clinic(folder: Path, n: int = 200, sex=("F", "M")) -> Path:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x1": rng.normal(size=n), "sex": rng.choice(list(sex), n)})
    frame["y"] = (frame["x1"] + (frame["sex"] == sex[0]) + rng.logistic(size=n) > 0.5).astype(int)
    frame.to_csv(folder / "clinic.csv", index=False)
    (folder / "bench.toml").write_text(GRID_TOML, encoding="utf-8")
    return folder / "bench.toml"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- B1: bad config files
BAD_CONFIGS = {
    "toml syntax": ("bad.toml", "folds = \n", "cannot be read as TOML"),
    "json syntax": ("bad.json", '{"folds": 2,', "cannot be read as JSON"),
    "not utf-8": ("bad.toml", b"folds = 2\n# \xff\xfe\n", "not UTF-8"),
    "json list": ("bad.json", "[1, 2]", "top level is a list"),
    "json NaN": ("bad.json", '{"alpha": NaN}', "NaN"),
    "deep json": ("bad.json", '{"datasets": ' + "[" * 100_000 + "]" * 100_000 + "}", "nest more than"),
    "deep toml": ("bad.toml", "datasets = " + "[" * 5_000 + "]" * 5_000 + "\n", "nest more than"),
    "folds text": ("bad.toml", 'folds = "2"\n', "folds = '2'"),
    "folds float": ("bad.toml", "folds = 2.5\n", "folds = 2.5"),
    "folds bool": ("bad.json", '{"folds": true}', "folds = True"),
    "n_boot negative": ("bad.toml", "n_boot = -1\n", "n_boot = -1"),
    "alpha 0.7": ("bad.toml", "alpha = 0.7\n", "alpha = 0.7"),
    "assign_size text": ("bad.toml", 'assign_size = "x"\n', "assign_size"),
    "seed negative": ("bad.toml", "seed = -1\n", "seed = -1"),
    "models string": ("bad.toml", 'models = "logistic"\n', "models = 'logistic'"),
    "models numbers": ("bad.json", '{"models": [1, 2]}', "models = [1, 2]"),
    "correction": ("bad.toml", 'correction = "sidak"\n', "correction = 'sidak'"),
    "margin_se": ("bad.toml", "margin_se = -1.0\n", "margin_se = -1.0"),
    "system_metric": ("bad.toml", "[system_metric]\nclassification = 5\n", "system_metric"),
    "system_metric unknown": ("bad.toml", '[system_metric]\nclassification = "foo"\n', "foo"),
    "ccp_max_iter": ("bad.toml", "ccp_max_iter = 0\n", "ccp_max_iter = 0"),
    "datasets number": ("bad.toml", "datasets = 5\n", "datasets = 5"),
    "dataset number": ("bad.json", '{"datasets": [5]}', "needs a 'name'"),
    "dataset name path": ("bad.toml", '[[extra_datasets]]\nname = "../../x"\nloader = "toy"\n', "a dataset name"),
    "dataset name number": ("bad.json", '{"datasets": [{"name": 5, "loader": "toy"}]}', "a dataset name"),
    "dataset groups number": ("bad.toml", '[[extra_datasets]]\nname = "c"\ncsv = "c.csv"\ntarget = "y"\n'
                                          'groups = 5\n', "groups = 5"),
    "dataset target list": ("bad.toml", '[[extra_datasets]]\nname = "c"\ncsv = "c.csv"\ntarget = ["y"]\n'
                                        'groups = ["g"]\n', "target = ['y']"),
    "dataset dropna text": ("bad.toml", '[[extra_datasets]]\nname = "c"\ncsv = "c.csv"\ntarget = "y"\n'
                                        'groups = ["g"]\ndropna = "yes"\n', "dropna = 'yes'"),
    "dataset features empty": ("bad.toml", '[[extra_datasets]]\nname = "c"\ncsv = "c.csv"\ntarget = "y"\n'
                                           'groups = ["g"]\nfeatures = []\n', "features = []"),  # fuzz case 1009
    "dataset task": ("bad.toml", '[[extra_datasets]]\nname = "c"\ncsv = "c.csv"\ntarget = "y"\n'
                                 'groups = ["g"]\ntask = "ranking"\n', "task = 'ranking'"),
    "dataset kwargs": ("bad.toml", '[[extra_datasets]]\nname = "c"\nloader = "toy"\nkwargs = 5\n', "kwargs = 5"),
    "dataset kwargs unknown": ("bad.toml", 'datasets = []\n[[extra_datasets]]\nname = "t"\nloader = "toy"\n'
                                          'kwargs = {nope = 1}\n', "unexpected keyword argument 'nope'"),
    "csv with kwargs": ("bad.toml", '[[extra_datasets]]\nname = "c"\ncsv = "c.csv"\ntarget = "y"\n'
                                    'groups = ["g"]\nkwargs = {a = 1}\n', "['kwargs'] do not apply"),
    "loader with groups": ("bad.toml", '[[extra_datasets]]\nname = "c"\nloader = "toy"\ngroups = ["g"]\n',
                           "['groups'] do not apply"),
    "dataset twice": ("bad.toml", 'datasets = ["toy"]\n[[extra_datasets]]\nname = "toy"\nloader = "toy"\n',
                      "listed twice"),
    "csv missing": ("bad.toml", 'datasets = []\n[[extra_datasets]]\nname = "c"\ncsv = "nowhere.csv"\n'
                                'target = "y"\ngroups = ["g"]\n', "set 'csv' in the config"),
    "config missing": (None, None, "cannot be read"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_files_are_one_line_errors(tmp_path, capsys, case):
    """B1: every bad config file ends with exit 2 and one line naming the problem (14 of 33
    ended in a traceback: TOMLDecodeError, JSONDecodeError, UnicodeDecodeError, TypeError,
    RecursionError); nothing is written."""
    name, text, needle = BAD_CONFIGS[case]
    path = tmp_path / (name or "absent.toml")
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["bench", "--config", str(path), "--out", str(out), "--quiet", "--no-plots"]) == 2
    line = one_line_error(capsys)
    assert needle in line, line
    assert len(line) < 1000
    assert not out.exists()


@pytest.mark.parametrize("flag, value", [("--folds", "1"), ("--n-boot", "0"), ("--seed", "-1"),
                                         ("--n-jobs", "0"), ("--folds", "x")])
def test_bad_bench_flags_are_one_line_errors(tmp_path, capsys, flag, value):
    config = clinic(tmp_path)
    out = tmp_path / "out"
    assert main(["bench", "--config", str(config), "--out", str(out), flag, value]) == 2
    assert flag in one_line_error(capsys)
    assert not out.exists()


def test_group_cells_of_a_csv_dataset_are_read_as_written(tmp_path, capsys):
    """L2 in the benchmark: a CSV dataset's group value ``NA`` is a group, not a missing value."""
    config = clinic(tmp_path, sex=("NA", "EU"))
    out = tmp_path / "out"
    assert main(["bench", "--config", str(config), "--out", str(out), "--quiet", "--no-plots"]) == 0
    groups = pd.read_csv(out / "groups.csv", keep_default_na=False)
    assert set(groups["group"]) == {"sex=NA", "sex=EU"}


# --------------------------------------------------------------------------- B2, B3: outputs as one unit
OUTPUTS = ("groups.csv", "results.csv", "run.json", "summary.md")


def test_a_summary_that_cannot_be_written_replaces_nothing(tmp_path, capsys, monkeypatch):
    """B2: ``summary.md`` fails to write (disk full): exit 2, and results.csv, groups.csv and
    run.json keep the content of the run before (they were overwritten)."""
    from fairuse_opt import _files

    config = clinic(tmp_path)
    out = tmp_path / "out"
    args = ["bench", "--config", str(config), "--out", str(out), "--quiet", "--no-plots"]
    assert main(args) == 0
    before = {n: (out / n).read_bytes() for n in OUTPUTS}
    def disk_full_at_the_summary(fd):  # results, groups and run.json are staged, the summary fails
        if ".summary.md." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", disk_full_at_the_summary)
    assert main(args) == 2
    assert "No space left on device" in one_line_error(capsys)
    assert {n: (out / n).read_bytes() for n in OUTPUTS} == before
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, "cells"])


def test_ctrl_c_during_the_grid_says_which_cells_were_kept(tmp_path, capsys, monkeypatch):
    """B3: Ctrl-C after two of the four cells: exit 130; the message names the two cell files
    kept (for a rerun to resume) and says nothing else was written (it said "nothing was
    written"); the rerun runs only the other two."""
    from fairuse_opt.bench import _runner

    config = clinic(tmp_path)
    out = tmp_path / "out"
    args = ["bench", "--config", str(config), "--out", str(out), "--quiet", "--no-plots"]
    real = _runner.run_cell
    calls = []

    def ctrl_c_at_the_third_cell(cell):
        calls.append(cell)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(cell)

    monkeypatch.setattr(_runner, "run_cell", ctrl_c_at_the_third_cell)
    assert main(args) == 130
    cells = sorted((out / "cells").glob("*.json"))
    assert len(cells) == 2
    line = one_line_error(capsys)
    kept = ", ".join(str(out / "cells" / f"{c.cell_id}.json") for c in calls[:2])
    assert line == "fairuse: error: " + cli.MSG_INTERRUPTED_KEPT.format(kept=kept) + \
        f" ({MSG_RESUME.format(cells=out / 'cells')})"
    assert sorted(p.name for p in out.iterdir()) == ["cells"]  # no summary, no tables
    monkeypatch.undo()
    assert main(args) == 0
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert meta["computed"] == 2 and meta["reused"] == 2


def test_ctrl_c_before_any_cell_says_nothing_was_written(tmp_path, capsys, monkeypatch):
    from fairuse_opt.bench import _runner

    config = clinic(tmp_path)

    def ctrl_c(cell):
        raise KeyboardInterrupt

    monkeypatch.setattr(_runner, "run_cell", ctrl_c)
    assert main(["bench", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 130
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_INTERRUPTED


def test_the_shipped_my_clinic_config_says_what_to_fill_in(tmp_path, capsys):
    """``benchmarks/configs/my-clinic.toml`` as shipped (its CSV is a placeholder): exit 2 with
    one line naming the file it looked for and the keys to set (it was a raw [Errno 2])."""
    repo = Path(__file__).resolve().parents[1]
    config = repo / "benchmarks" / "configs" / "my-clinic.toml"
    out = tmp_path / "out"
    assert main(["bench", "--config", str(config), "--datasets", "my_clinic", "--out", str(out)]) == 2
    line = one_line_error(capsys)
    assert str((config.parent / "data" / "my_clinic.csv").resolve()) in line
    assert "set 'csv' in the config" in line and "'target' and 'groups'" in line and "Errno" not in line
    assert not out.exists()


def test_an_unknown_model_name_is_refused_before_any_dataset_loads(tmp_path, capsys, monkeypatch):
    from fairuse_opt.bench import _runner

    def no_loading(config):
        raise AssertionError("datasets were loaded")

    monkeypatch.setattr(_runner, "load_tasks", no_loading)
    assert main(["bench", "--models", "svm", "--out", str(tmp_path / "out")]) == 2
    assert "model 'svm' is not known" in one_line_error(capsys)
