"""The README's Quick start runs as written, on data that installs with the package's
extras (NHEFS, from causaldata: the test extra installs it), and prints exactly the output
the README shows.

When the output changes on purpose (the audit's statistics or its formatting changed),
regenerate the README's output block with one command, from the repository's root::

    python -m tests.test_readme

It runs the Quick start and writes its ``print(report.summary())`` output into the first
```` ```text ```` block of README.md (nothing else changes); review the diff, and check that the
paragraph after the block still describes it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import sys

import numpy as np

from .conftest import REPO, missing_data

README = REPO / "README.md"


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def run_quick_start() -> tuple[str, dict]:
    """Run the README's first Python block; return what it printed and its namespace."""
    code = _blocks(README.read_text(encoding="utf-8"), "python")[0]
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), namespace)
    return out.getvalue(), namespace


def regenerate() -> str:
    """Write the Quick start's current summary into the README's first ``text`` block."""
    _, namespace = run_quick_start()
    summary = str(namespace["report"].summary()) + "\n"
    text = README.read_text(encoding="utf-8")
    start = text.index("```text\n") + len("```text\n")
    end = text.index("```", start)
    README.write_text(text[:start] + summary + text[end:], encoding="utf-8")
    return summary


def test_readme_quick_start_runs_and_prints_what_the_readme_shows():
    if importlib.util.find_spec("causaldata") is None:
        missing_data("optional package causaldata (NHEFS) is not installed")
    text = README.read_text(encoding="utf-8")
    code, shown = _blocks(text, "python"), _blocks(text, "text")
    assert code and shown, "the README has no Python example or no output block"
    assert "load_nhefs()" in code[0] and "load_apnea()" not in code[0]  # shipped data, no file to fetch
    out, namespace = run_quick_start()
    assert "verified=True" in out
    model = namespace["model"]
    assert model.certificate_.verified
    report = namespace["report"]
    summary = str(report.summary())
    # the quick start prints the summary, and the README shows exactly that (seeded run)
    assert summary + "\n" in out
    assert shown[0] == summary + "\n", (
        "README's quick-start output is stale; regenerate it with `python -m tests.test_readme`. "
        "The current output is:\n" + summary)
    # it fits a 100-column terminal and shows every group and metric of both conditions
    assert max(len(line) for line in summary.splitlines()) <= 100
    n_groups = len(model.groups_)
    assert n_groups == 8
    t = report.table
    rows = t[t.condition.isin(["rationality", "envy"])]
    assert len(rows) == n_groups * 3 * 2
    for r in rows[rows.verdict.isin(["benefit", "violation"])].itertuples():
        short = report.settings["short_labels"][r.group]
        line = [x for x in summary.splitlines() if x.startswith(short) or x.startswith("  " + r.metric)]
        sign = ">=" if r.verdict == "benefit" else "<="
        bound = r.lower_bound if r.verdict == "benefit" else r.upper_bound
        assert any(r.verdict in x and f"{sign} {bound:.3g}" in x for x in line), (r.group, r.metric)
    # the bound shown is the one the verdict used: it excludes 0 exactly for benefit/violation
    tested = rows[~rows.verdict.isin(["cannot change", "too small to judge"])]
    np.testing.assert_array_equal(tested.lower_bound > 0, tested.verdict == "benefit")
    np.testing.assert_array_equal(tested.upper_bound < 0, tested.verdict == "violation")
    # what the paragraph after the block says: intercept-only personalization, so AUC
    # cannot change under another report; groups under 10 test rows are too small to judge
    envy_auc = rows[(rows.metric == "auc") & (rows.condition == "envy")]
    assert envy_auc.verdict.isin(["cannot change", "too small to judge"]).all()
    assert (envy_auc.verdict == "cannot change").any()
    n_test = namespace["g_te"].value_counts()
    label = {key: ", ".join(f"{a}={v}" for a, v in zip(model.group_names_, key)) for key in model.groups_}
    small = {label[tuple(map(str, k))] for k, n in n_test.items() if n < 10}
    judged_small = set(rows[rows.verdict == "too small to judge"].group)
    assert small and small <= judged_small


if __name__ == "__main__":  # python -m tests.test_readme
    sys.stdout.write(regenerate())
