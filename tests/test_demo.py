"""``fairuse demo``: held-out folds, counts that are the audits' counts, a system that never
serves a group a model its assignment sample shows worse, and output that fits 100 columns."""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pandas as pd
import pytest

from fairuse_opt.audit import VERDICTS
from fairuse_opt.cli import main
from fairuse_opt.demo import (ASSIGN_CSV, DEFAULT_DATA, FOLDS_CSV, METHODS, METRICS, REPORT_MD, REPORT_PNG,
                              STANDARD, WIDTH, count_verdicts, findings, run_demo)
from fairuse_opt.exceptions import InputError

HAS_MPL = importlib.util.find_spec("matplotlib") is not None


def synthetic(n: int = 1200, seed: int = 0):
    """Known truth: groups a0/b0 and a1/b1 have intercepts +2.5 and -2.5 that the generic
    model cannot see, so personalization helps them a lot; the two other groups have none."""
    rng = np.random.default_rng(seed)
    A = rng.choice(["a0", "a1"], n)
    B = rng.choice(["b0", "b1"], n)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["x1", "x2", "x3"])
    offset = np.select([(A == "a0") & (B == "b0"), (A == "a1") & (B == "b1")], [2.5, -2.5], 0.0)
    logit = X.to_numpy() @ np.array([1.0, -0.5, 0.25]) + offset
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, pd.Series(y), pd.DataFrame({"A": A, "B": B})


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    stdout = io.StringIO()
    res = run_demo(out, data=synthetic(), folds=2, n_boot=200, seed=0, stdout=stdout)
    return res, out, stdout.getvalue()


def _md_count_table(md: str, heading: str) -> pd.DataFrame:
    """The count table that follows ``heading`` in the report, as integers where it can."""
    lines = md.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("| verdict (cells)"):
            header = [c.strip() for c in line.strip("|").split("|")]
            continue
        if rows and not line.startswith("|"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return pd.DataFrame(rows, columns=header).set_index("verdict (cells)")


def test_counts_are_the_audits_counts(synthetic_run):
    res, out, _ = synthetic_run
    # recompute from the audit reports themselves
    expected = {}
    for (fold, method), rep in res.audits.items():
        rat = rep.table[rep.table["condition"] == "rationality"]
        for metric in METRICS:
            for verdict, k in rat[rat["metric"] == metric]["verdict"].value_counts().items():
                expected[(method, metric, verdict)] = expected.get((method, metric, verdict), 0) + int(k)
    assert {k[0] for k in expected} == set(METHODS)
    for method in METHODS:
        for metric in METRICS:
            for verdict in VERDICTS:
                assert res.counts.loc[(method, metric), verdict] == expected.get((method, metric, verdict), 0)
            # 2 folds x 4 groups, every group judged in every fold
            assert res.counts.loc[(method, metric), "cells"] == 8
    # the written table is the same cells, and the report prints the same counts
    written = pd.read_csv(out / FOLDS_CSV)
    assert len(written) == len(res.cells) == 2 * len(METHODS) * 4 * len(METRICS)
    assert count_verdicts(written).equals(res.counts)
    md = (out / REPORT_MD).read_text(encoding="utf-8")
    table = _md_count_table(md, "## Held-out verdicts, log loss")
    for method in METHODS:
        for verdict in VERDICTS:
            assert int(table.loc[verdict, method]) == res.counts.loc[(method, "log_loss"), verdict]
    # and so does the terminal summary, for both metrics
    lines = synthetic_run[2].split("\n")
    for metric, title in (("log_loss", "Held-out verdicts, log loss"), ("error", "Held-out verdicts, error rate")):
        start = next(i for i, line in enumerate(lines) if line.startswith(title))
        header = lines[start + 1]
        assert " ".join(header.split()[2:]) == " ".join(METHODS)  # "verdict (cells)", then the methods
        for line in lines[start + 2:start + 2 + len(VERDICTS)]:
            verdict = next(v for v in VERDICTS if line.startswith(v + " "))
            numbers = [int(x) for x in line[len(verdict):].split()]
            assert numbers == [res.counts.loc[(m, metric), verdict] for m in METHODS]


def test_known_truth_story(synthetic_run):
    res, _, _ = synthetic_run
    c = res.cells[res.cells["metric"] == "log_loss"]
    strong = {"A=a0, B=b0", "A=a1, B=b1"}
    # the intersectional model captures the hidden intercepts: a significant held-out benefit
    inter = c[(c["method"] == "intersect.") & c["group"].isin(strong)]
    assert (inter["verdict"] == "benefit").all() and len(inter) == 4
    # the fair-use guarantee holds on the training rows of every fold and group
    fair = c[c["method"] == "fair use"]
    assert (fair["train_gain"] >= -1e-7).all() and len(fair) == 8
    # the system personalizes the strongly different groups in every fold, and harms nobody
    system = c[c["method"] == "system"]
    assert (system[system["group"].isin(strong)]["served"] != "generic").all()
    assert (system["verdict"] != "violation").all()
    # a group served the generic model scores exactly as the generic model: "cannot change"
    assert (system[system["served"] == "generic"]["verdict"] == "cannot change").all()


def _log_loss(p, y):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def test_system_never_serves_a_model_worse_on_its_assignment_sample(synthetic_run):
    res, _, _ = synthetic_run
    X, y, g = synthetic()
    y = y.to_numpy()
    checked = 0
    for system, (rest, _) in zip(res.systems, res.splits):
        rows = rest[system.assign_index_]
        Xa, ya, ga = X.iloc[rows].reset_index(drop=True), y[rows], g.iloc[rows].reset_index(drop=True)
        for option, fid in system.served_.items():
            if fid[0] == "generic":
                continue
            reported = [i for i, v in enumerate(option) if v is not None]
            member = np.ones(len(ya), bool)
            for i in reported:
                member &= ga.iloc[:, i].to_numpy() == option[i]
            report = ga[member].copy()
            for i, name in enumerate(ga.columns):
                if i not in reported:
                    report[name] = None  # the members as the option reports them
            served = system.predict_proba(Xa[member], groups=report.reset_index(drop=True))[:, 1]
            generic = system.generic_.predict_proba(Xa[member])[:, 1]
            assert _log_loss(served, ya[member]) <= _log_loss(generic, ya[member])
            checked += 1
    assert checked >= 4  # the branch is taken: personalized options exist in both folds
    assert (res.assignment["served"] != "generic").sum() == checked


def test_terminal_summary_fits_and_uses_the_audit_words(synthetic_run):
    res, out, text = synthetic_run
    lines = text.rstrip("\n").split("\n")
    assert max(len(line) for line in lines) <= WIDTH
    for verdict in VERDICTS:
        assert verdict in text
    for method in METHODS:
        assert method in text
    assert "What the data shows:" in text and "demo finished in" in text
    for sentence in res.findings:  # every finding is printed (wrapped)
        assert " ".join(sentence.split()[:6]) in " ".join(text.split())
    assert (out / ASSIGN_CSV).stat().st_size > 0
    if HAS_MPL:
        assert (out / REPORT_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _cells(violations: dict[str, int]) -> pd.DataFrame:
    """Hand-made cells: 1 fold, 3 groups; ``violations[method]`` groups harmed in log loss."""
    rows = []
    for method in METHODS:
        for k, group in enumerate(["g1", "g2", "g3"]):
            for metric in METRICS:
                harmed = metric == "log_loss" and k < violations.get(method, 0)
                rows.append({"fold": 1, "method": method, "group": group, "metric": metric, "n": 50,
                             "gain": -0.1 if harmed else 0.01,
                             "verdict": "violation" if harmed else "inconclusive (estimate: gain)",
                             "train_gain": np.nan if method == "system" else 0.02,
                             "served": "generic" if method == "system" else ""})
    return pd.DataFrame(rows)


def _overall() -> pd.DataFrame:
    return pd.DataFrame({"log_loss": 0.5, "error": 0.2}, index=["generic", *METHODS])


def _assignment() -> pd.DataFrame:
    return pd.DataFrame({"fold": [1, 1], "option": ["(nothing reported)", "A=g1"], "n": [30, 10],
                         "served": ["generic", "generic"]})


def test_findings_say_when_no_standard_model_harms_anyone():
    cells = _cells({})
    story = findings(cells, count_verdicts(cells), _overall(), _assignment(), folds=1)
    assert story[0].startswith("On this dataset no standard model harms any group significantly")
    assert "serves every group the generic model" in story[2]


def test_findings_name_the_harmed_groups():
    cells = _cells({"one-hot": 2, "fair use": 1})
    story = findings(cells, count_verdicts(cells), _overall(), _assignment(), folds=1)
    assert story[0].startswith("Standard practice harms some groups on new patients")
    assert "one-hot 2 violation(s)" in story[0] and "intersect. 0 violation(s)" in story[0]
    assert "g1 (fold 1, n=50, gain -0.100); g2 (fold 1" in story[0]
    assert story[1].startswith("The training guarantee alone does not carry over")
    assert "1 violation(s)" in story[1]


def test_demo_command_on_diabetes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--data", "diabetes", "--folds", "2", "--n-boot", "50"]) == 0
    captured = capsys.readouterr()
    assert max(len(line) for line in captured.out.split("\n")) <= WIDTH
    assert "fold 2/2" in captured.err  # progress on standard error
    assert "fitted" not in captured.err  # the library's per-fit lines are not shown
    md = (out / REPORT_MD).read_text(encoding="utf-8")
    assert f"`fairuse demo --out {out} --data diabetes --folds 2 --n-boot 50`" in md
    cells = pd.read_csv(out / FOLDS_CSV)
    assert set(cells["fold"]) == {1, 2} and set(cells["method"]) == set(METHODS)  # numbered from 1
    assert cells.groupby(["fold", "method", "metric"]).size().eq(4).all()  # 4 groups


def test_demo_on_apnea(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("FAIRUSE_DATA_DIR", str(data_dir))
    res = run_demo(tmp_path / "apnea", data="apnea", folds=2, n_boot=50, stdout=io.StringIO())
    assert res.counts.loc[("system", "log_loss"), "cells"] == 12  # 2 folds x 6 groups
    assert set(res.cells["group"]) == {f"Age={a}, Sex={s}" for a in ("<30", "30_to_60", "60+")
                                       for s in ("Female", "Male")}


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(InputError, match="folds must be an integer >= 2"):
        run_demo(tmp_path, data="diabetes", folds=1)
    with pytest.raises(InputError, match="neither one of nhefs"):
        run_demo(tmp_path, data="no-such-data")
    assert main(["demo", "--out", str(tmp_path), "--data", "no-such-data"]) == 2
    assert "neither one of nhefs" in capsys.readouterr().err
    X, y, g = synthetic(200)
    with pytest.raises(InputError, match="binary outcome coded 0/1"):
        run_demo(tmp_path, data=(X, y + 1, g), folds=2)
    with pytest.raises(InputError, match="must be \\(X, y, groups\\)"):
        run_demo(tmp_path, data=(X, y), folds=2)
    assert not list(tmp_path.iterdir())  # nothing written
    assert DEFAULT_DATA == "nhefs" and set(STANDARD) < set(METHODS)


def test_default_data_without_the_demo_extra_says_what_to_install(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "causaldata", None)  # as if causaldata were not installed
    assert main(["demo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "needs the package 'causaldata'" in err and "pip install 'fairuse_opt[demo]'" in err
    assert not (tmp_path / "out").exists()  # nothing written
