"""Figures (issue 23, "Figures and outputs"): ``ax=`` on the report's plot, one x scale across
the demo's method panels, the bench's violations figure for every metric, and folds numbered
from 1 in the demo's outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairuse_opt.audit import audit_predictions
from fairuse_opt.audit._errors import MSG_PLOT_AX
from fairuse_opt.exceptions import InputError

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

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
