"""Figures (issue 23, "Figures and outputs"): ``ax=`` on the report's plot, one x scale across
the demo's method panels, the bench's violations figure for every metric, and folds numbered
from 1 in the demo's outputs."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from fairuse_opt.audit import audit_predictions
from fairuse_opt.audit._errors import MSG_PLOT_AX
from fairuse_opt.exceptions import InputError

matplotlib.use("Agg")  # the test extra installs matplotlib: these tests run in CI, never skip

METRICS = ["log_loss", "error"]
GROUPS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def report():
    """Three groups: the personalized model knows group a's intercept (a benefit), gives group
    b a wrong one (a harm) and scores group c as the generic model does (cannot change)."""
    rng = np.random.default_rng(0)
    n = 600
    g = rng.choice(GROUPS, n)
    x = rng.normal(size=n)
    shift = {"a": 2.0, "b": 0.0, "c": 0.0}
    truth = 1 / (1 + np.exp(-(x + np.array([shift[v] for v in g]))))
    y = (rng.random(n) < truth).astype(int)
    generic = 1 / (1 + np.exp(-(x + 0.6)))
    offset = {"a": 2.0, "b": -1.5, "c": 0.6}  # the generic model's offset is 0.6
    as_reported = {k: 1 / (1 + np.exp(-(x + offset[k]))) for k in GROUPS}
    own = np.array([as_reported[v][i] for i, v in enumerate(g)])
    return audit_predictions(y, groups=pd.Series(g, name="G"), scores=own, generic_scores=generic,
                             scores_as_reported=as_reported, metrics=METRICS, n_boot=50)


def _drawn(ax) -> bool:
    """The Axes holds data artists (lines or images), not only decorations."""
    return bool(ax.lines) or bool(ax.images)


# --------------------------------------------------------------------------- report.plot(ax=)
def test_report_plot_draws_into_a_given_grid(report):
    fig, axes = plt.subplots(2, 2, figsize=(10, 6))
    try:
        got = report.plot(ax=axes)
        assert got is fig
        assert len(fig.axes) == 4 + 2  # no new panels: the given four and the two colour bars
        for row, metric in zip(axes, METRICS):
            gain, envy = row
            assert gain.get_title() == f"Rationality, {metric}" and envy.get_title() == f"Envy, {metric}"
            # one dot per group, each at its gain in the report's table
            rat = report.table[(report.table["metric"] == metric)
                               & (report.table["condition"] == "rationality")]
            dots = sorted(float(line.get_xdata()[0]) for line in gain.lines
                          if len(line.get_xdata()) == 1 and line.get_marker() == "o")
            assert dots == pytest.approx(sorted(rat["gain"]))
            assert len(envy.images) == 1 and envy.images[0].get_array().shape == (3, 3)
        assert axes[0][0].get_legend() is not None  # no layout engine: the legend in a panel
    finally:
        plt.close(fig)


def test_report_plot_one_metric_into_two_axes_or_one(report):
    fig = Figure()
    pair = fig.subplots(1, 2)  # a flat array of two, as plt.subplots(1, 2) returns
    assert report.plot("error", ax=pair) is fig
    assert all(_drawn(a) for a in pair) and pair[1].get_title() == "Envy, error"
    fig1 = Figure()
    one = fig1.subplots()
    assert report.plot("log_loss", ax=one) is fig1
    assert _drawn(one) and one.get_title() == "Rationality, log_loss"
    assert len(fig1.axes) == 1  # the rationality panel only: no envy panel, no colour bar


def test_report_plot_into_a_subfigure_returns_the_figure(report):
    fig = Figure(layout="constrained")
    sub = fig.subfigures(1, 2)[1]
    axes = sub.subplots(2, 2)
    assert report.plot(ax=axes) is fig
    assert all(_drawn(a) for a in axes.flat)
    # a constrained layout makes room for the legend below the panels, not on them
    assert len(sub.legends) == 1 and all(a.get_legend() is None for a in axes.flat)


def test_report_plot_refuses_a_grid_of_the_wrong_shape(report):
    fig = Figure()
    with pytest.raises(InputError) as info:
        report.plot(ax=fig.subplots(1, 2))  # two metrics need (2, 2)
    assert str(info.value) == MSG_PLOT_AX.format(expected="(2, 2)", got="shape (2,) of Axes")
    with pytest.raises(InputError) as info:
        report.plot(ax=fig.subplots())  # one Axes, two metrics
    assert str(info.value) == MSG_PLOT_AX.format(expected="(2, 2)", got="one Axes for 2 metrics")
    with pytest.raises(InputError) as info:
        report.plot("error", ax=["not", "axes"])
    assert str(info.value) == MSG_PLOT_AX.format(expected="(1, 2)", got="shape (1, 2) of str")


def test_report_plot_without_ax_makes_its_own_figure(report):
    fig = report.plot()
    try:
        panels = [a for a in fig.axes if a.get_title()]
        assert [a.get_title() for a in panels] == [f"{k}, {m}" for m in METRICS for k in ("Rationality", "Envy")]
        assert all(_drawn(a) for a in panels) and fig.legends
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- the demo
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo on the synthetic data of ``test_demo`` (known truth), small and quick."""
    from fairuse_opt.demo import run_demo

    from .test_demo import synthetic

    out = tmp_path_factory.mktemp("demo")
    said: list[str] = []
    res = run_demo(out, data=synthetic(600), folds=3, n_boot=30, seed=0, progress=said.append,
                   stdout=io.StringIO())
    return res, out, said


def test_demo_folds_are_numbered_from_1_everywhere(demo_run):
    from fairuse_opt.demo import ASSIGN_CSV, FOLDS_CSV, METHODS, METRICS, REPORT_MD

    res, out, said = demo_run
    per_fold = pd.read_csv(out / FOLDS_CSV)
    assignment = pd.read_csv(out / ASSIGN_CSV)
    assert sorted(set(per_fold["fold"])) == [1, 2, 3]
    assert sorted(set(assignment["fold"])) == [1, 2, 3]
    assert sorted(set(res.cells["fold"])) == [1, 2, 3] and sorted({k for k, _ in res.audits}) == [1, 2, 3]
    # fold k is the k-th split: its cells count the rows of splits[k - 1]'s test set, and its
    # assignment rows are systems[k - 1]'s table
    for k in (1, 2, 3):
        rest, test = res.splits[k - 1]
        for method in METHODS:
            for metric in METRICS:
                part = per_fold[(per_fold["fold"] == k) & (per_fold["method"] == method)
                                & (per_fold["metric"] == metric)]
                assert part["n"].sum() == len(test)
        table = res.systems[k - 1].assignment_
        assert list(assignment[assignment["fold"] == k]["option"]) == list(table["option"].astype(str))
    md = (out / REPORT_MD).read_text(encoding="utf-8")
    assert "fold 0" not in md and "| fold 1 | fold 2 | fold 3 |" in md  # the served table's header
    assert [m.split(":")[0] for m in said if m.startswith("fold ")] == ["fold 1/3", "fold 2/3", "fold 3/3"]


def _cells(gains: dict[str, list[float]], verdicts: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Hand-made demo cells in log loss: one group per value of ``gains[method]``, one fold."""
    from fairuse_opt.demo import METRIC

    rows = []
    for method, values in gains.items():
        for i, gain in enumerate(values):
            verdict = (verdicts or {}).get(method, ["inconclusive (estimate: gain)"] * len(values))[i]
            rows.append({"fold": 1, "method": method, "group": f"g{i}", "metric": METRIC, "n": 50,
                         "gain": gain, "verdict": verdict, "train_gain": 0.0, "served": ""})
    return pd.DataFrame(rows)


def _panels(fig) -> list:
    from fairuse_opt.demo import METHODS

    return [a for a in fig.axes if a.get_title() in METHODS]


def test_demo_panels_share_one_x_scale():
    from fairuse_opt.demo import _plot

    # the case: one method's gains span -0.05..0.1, another's -0.3..0.9
    cells = _cells({"one-hot": [-0.05, 0.1, 0.02], "boosting": [-0.3, 0.9, 0.0]})
    fig = _plot(cells, None, title="t")
    panels = _panels(fig)
    assert [a.get_title() for a in panels] == ["one-hot", "boosting"]
    limits = {a.get_xlim() for a in panels}
    assert len(limits) == 1
    lo, hi = limits.pop()
    assert lo < -0.3 and hi > 0.9 and hi - lo < 1.2 * 1.2  # every gain, with a margin
    for a in panels:  # one dot per cell, at its gain
        dots = sorted(float(line.get_xdata()[0]) for line in a.lines if line.get_marker() == "o")
        want = cells[cells["method"] == a.get_title()]["gain"]
        assert dots == pytest.approx(sorted(want))


def test_demo_scale_leaves_out_cells_too_small_to_judge_but_shows_them():
    from fairuse_opt.demo import _plot

    cells = _cells({"one-hot": [-0.05, 0.1], "fair use": [0.02, 0.86]},
                   {"fair use": ["inconclusive (estimate: gain)", "too small to judge"]})
    fig = _plot(cells, None, title="t")
    panels = _panels(fig)
    lo, hi = panels[0].get_xlim()
    assert panels[1].get_xlim() == (lo, hi) and -0.1 < lo < -0.05 and 0.1 < hi < 0.2
    fair = panels[1]
    edge = [line for line in fair.lines if line.get_marker() == ">"]
    assert len(edge) == 1 and float(edge[0].get_xdata()[0]) == hi  # at the edge ...
    assert [t.get_text() for t in fair.texts] == ["+0.86"]  # ... with its value written


def test_demo_figure_of_a_run(demo_run):
    from fairuse_opt.demo import METHODS, REPORT_PNG, _plot

    res, out, _ = demo_run
    assert (out / REPORT_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = _plot(res.cells, None, title="synthetic")
    panels = _panels(fig)
    assert [a.get_title() for a in panels] == list(METHODS)
    assert len({a.get_xlim() for a in panels}) == 1
    assert all(len(a.lines) >= 3 * 4 for a in panels)  # a dot per fold and group (and the zero line)
    labels = [t.get_text() for t in panels[0].get_yticklabels()]
    assert labels == list(dict.fromkeys(res.cells["group"]))


# --------------------------------------------------------------------------- the bench
def _inside(fig, dpi: float) -> None:
    """Nothing drawn beyond the figure's edges: every panel with its tick labels, axis labels
    and title, every (sub)figure title and legend, laid out at the resolution the file is
    saved at (text does not scale exactly with it: the old gains.png fitted at 100 dpi and
    lost the end of an x label at its 90)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    figs = [fig, *getattr(fig, "subfigs", [])]
    parts = list(fig.axes) + [f._suptitle for f in figs if f._suptitle is not None]
    parts += [leg for f in figs for leg in f.legends]
    for part in parts:
        b = part.get_tightbbox(renderer) if hasattr(part, "get_tightbbox") else part.get_window_extent(renderer)
        assert (b.x0 >= box.x0 - 1 and b.y0 >= box.y0 - 1 and b.x1 <= box.x1 + 1
                and b.y1 <= box.y1 + 1), (part, b, box)


BENCH_KEYS = [("logistic", "generic", "unconstrained"), ("logistic", "onehot", "unconstrained"),
              ("logistic", "intersectional", "fairuse"), ("logistic", "pool", "system")]


def _bench_tables():
    """A hand-made bench run: two classification datasets (2 folds, metrics error and
    log_loss) and one regression dataset (mse); the violations are in log loss."""
    rows, groups = [], []
    known = {  # (dataset, method key index, metric) -> per fold (rationality violations, envy, benefits)
        ("A", 1, "log_loss"): [(2, 1, 0), (1, 0, 0)],
        ("A", 2, "log_loss"): [(0, 0, 3), (0, 2, 1)],
        ("B", 1, "log_loss"): [(1, 0, 0), (0, 0, 0)],
        ("A", 1, "error"): [(0, 0, 1), (0, 0, 0)],
        ("C", 1, "mse"): [(4, 0, 0), (0, 0, 5)],
    }
    for dataset, task, metrics in (("A", "classification", ("error", "log_loss")),
                                   ("B", "classification", ("error", "log_loss")),
                                   ("C", "regression", ("mse",))):
        for fold in (0, 1):
            for i, (model, technique, method) in enumerate(BENCH_KEYS):
                model = "linear" if task == "regression" else model
                base = {"dataset": dataset, "task": task, "fold": fold, "model": model,
                        "technique": technique, "method": method, "status": "ok"}
                if dataset == "B" and i == 2:  # not run on B
                    rows.append({**base, "status": "skipped", "metric": np.nan})
                    continue
                for metric in metrics:
                    counts = known.get((dataset, i, metric), [(0, 0, 0)] * 2)[fold]
                    rv, ev, rb = (np.nan,) * 3 if i == 0 else counts  # the generic model: no audit
                    rows.append({**base, "metric": metric, "rationality_violations": rv,
                                 "envy_violations": ev, "rationality_benefits": rb})
                    if i == 0:
                        continue
                    for g, gain in (("Sex=Female, Race=White, Age=65+", -0.1 * (i + 1)),
                                    ("Sex=Male, Race=Other, Age=<65", 0.05 * fold),
                                    ("Sex=Male, Race=Black, Age=65+", 0.9 * (i == 1))):
                        groups.append({**{k: base[k] for k in ("dataset", "fold", "model", "technique",
                                                                "method")},
                                       "condition": "rationality", "metric": metric, "group": g,
                                       "gain": gain, "ci_low": gain - 0.05, "ci_high": gain + 0.05,
                                       "p_violation_adj": 0.01 if gain < -0.15 else 0.5})
    return pd.DataFrame(rows), pd.DataFrame(groups)


@pytest.fixture
def bench_figures(tmp_path, monkeypatch):
    """The figures ``_plots`` saves, by file name."""
    from fairuse_opt.bench._summary import _plots

    saved = {}
    original = Figure.savefig

    order = iter(["violations.png", "gains.png"])  # drawn in this order; saved under temporary names

    def keep(self, fname, *args, **kwargs):
        saved[next(order)] = self
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    results, groups = _bench_tables()
    from fairuse_opt._files import Staged

    with Staged() as staged:  # the bench writes its figures with its other outputs, all or nothing
        written = _plots(results, groups, tmp_path, 0.1, staged)
        staged.commit()
    assert {k: Path(v).name for k, v in written.items()} == {"violations": "violations.png",
                                                             "gains": "gains.png"}
    assert all(Path(v).read_bytes()[:4] == b"\x89PNG" for v in written.values())
    return saved


def test_bench_violations_figure_has_a_row_per_metric(bench_figures):
    fig = bench_figures["violations.png"]
    rows = fig.subfigs
    assert [r._suptitle.get_text().split(":")[0] for r in rows] == ["error", "log_loss", "mse"]
    expected = {  # per metric and panel: methods (rows) x datasets (columns), NaN where not run / not audited
        ("log_loss", 0): [[np.nan, np.nan], [3, 1], [0, np.nan], [0, 0]],
        ("log_loss", 1): [[np.nan, np.nan], [1, 0], [2, np.nan], [0, 0]],
        ("log_loss", 2): [[np.nan, np.nan], [0, 0], [4, np.nan], [0, 0]],
        ("error", 2): [[np.nan, np.nan], [1, 0], [0, np.nan], [0, 0]],
        ("mse", 0): [[np.nan], [4], [0], [0]],
        ("mse", 2): [[np.nan], [5], [0], [0]],
    }
    for row, metric in zip(rows, ["error", "log_loss", "mse"]):
        panels = row.axes
        assert [a.get_title() for a in panels] == ["rationality violations", "envy violations",
                                                   "rationality benefits"]
        assert all(len(a.images) == 1 for a in panels)
        labels = [t.get_text() for t in panels[0].get_yticklabels()]
        model = "linear" if metric == "mse" else "logistic"
        assert labels == [" ".join((model, *k[1:])) for k in BENCH_KEYS]
        assert [t.get_text() for t in panels[0].get_xticklabels()] == (["C"] if metric == "mse" else ["A", "B"])
        for k, panel in enumerate(panels):
            grid = np.ma.filled(panel.images[0].get_array().astype(float), np.nan)
            if (metric, k) in expected:
                np.testing.assert_array_equal(grid, np.array(expected[(metric, k)], dtype=float))
            else:
                assert np.nansum(grid) == 0
    _inside(fig, 90)  # the dpi _plots saves at


def test_bench_gains_figure_shares_x_per_dataset_and_fits(bench_figures):
    fig = bench_figures["gains.png"]
    assert [r._suptitle.get_text() for r in fig.subfigs] == ["A (error)", "B (error)", "C (mse)"]
    for row in fig.subfigs:
        panels = row.axes
        assert len(panels) == 3 and len({a.get_xlim() for a in panels}) == 1
        assert all(a.get_xlabel() for a in panels)
        lo, hi = panels[0].get_xlim()
        assert lo < -0.3 - 0.05 and hi > 0.9 + 0.05  # every interval of the row, on one scale
    # the violation marks: the gains below -0.15 (p 0.01), per dataset and method
    for panel, gain in zip(fig.subfigs[0].axes, (-0.2, -0.3, -0.4)):  # one-hot, fair use, system
        marks = [line for line in panel.lines if line.get_marker() == "x"]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == pytest.approx([gain, gain])  # the first group, 2 folds
    _inside(fig, 90)


def test_demo_and_report_figures_fit(report, demo_run):
    from fairuse_opt.demo import _plot

    _inside(_plot(demo_run[0].cells, None, title="synthetic"), 110)  # the demo saves at 110 dpi
    fig = report.plot()
    try:
        for dpi in (100, 120):  # matplotlib's default; the command line's --plot
            _inside(fig, dpi)
    finally:
        plt.close(fig)
