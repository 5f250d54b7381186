"""The README's Python example runs as written (with FAIRUSE_DATA_DIR set), and prints the
output the README shows."""

from __future__ import annotations

import re

import numpy as np

from .conftest import REPO


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_readme_quick_start_runs_and_prints_what_the_readme_shows(monkeypatch, capsys, data_dir):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    code, shown = _blocks(text, "python"), _blocks(text, "text")
    assert code and shown, "the README has no Python example or no output block"
    monkeypatch.setenv("FAIRUSE_DATA_DIR", str(data_dir))
    namespace: dict = {}
    exec(compile(code[0], "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "verified=True" in out
    assert namespace["model"].certificate_.verified
    report = namespace["report"]
    summary = str(report.summary())
    # the quick start prints the summary, and the README shows exactly that (seeded run)
    assert summary + "\n" in out
    assert shown[0] == summary + "\n", (
        "README's quick-start output is stale; the current output is:\n" + summary)
    # it fits a 100-column terminal and shows every group and metric, the violation included
    assert max(len(line) for line in summary.splitlines()) <= 100
    t = report.table
    rows = t[t.condition.isin(["rationality", "envy"])]
    assert len(rows) == 6 * 3 * 2
    violation = rows[rows.verdict == "violation"]
    assert len(violation) >= 1
    for r in violation.itertuples():
        short = report.settings["short_labels"][r.group]
        line = [x for x in summary.splitlines() if x.startswith(short) or x.startswith("  " + r.metric)]
        assert any("violation" in x and f"<= {r.upper_bound:.3g}" in x for x in line)
    # the bound shown is the one the verdict used: it excludes 0 exactly for benefit/violation
    tested = rows[~rows.verdict.isin(["cannot change", "too small to judge"])]
    np.testing.assert_array_equal(tested.lower_bound > 0, tested.verdict == "benefit")
    np.testing.assert_array_equal(tested.upper_bound < 0, tested.verdict == "violation")
    # intercept-only personalization: AUC cannot change under another report
    assert (rows[(rows.metric == "auc") & (rows.condition == "envy")].verdict
            == "cannot change").all()
