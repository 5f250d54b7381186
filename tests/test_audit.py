"""The fair-use audit: hand-computed cases, reproducibility, verdicts, report, bad input."""

from __future__ import annotations

import itertools
import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

from fairuse_opt.audit import VERDICTS, FairUseReport, Metric, ModelInterfaceError, audit
from fairuse_opt.audit import _stats
from fairuse_opt.audit._report import format_number
from fairuse_opt.audit._errors import (
    MSG_BAD_OUTPUT,
    MSG_CLASSES_MISMATCH,
    MSG_METRIC_TASK,
    MSG_NEED_MATPLOTLIB,
    MSG_NO_GENERIC,
    MSG_NO_METHOD,
    MSG_NO_PREDICT,
    MSG_PLOT_METRIC,
    MSG_Y_NOT_01,
    MSG_Y_NOT_IN_CLASSES,
)
from fairuse_opt.audit._stats import delong_test
from fairuse_opt.exceptions import (
    MSG_BAD_PARAM,
    MSG_GROUP_NAMES_MISMATCH,
    MSG_LENGTH_MISMATCH,
    MSG_UNSEEN_GROUP,
    FairUseError,
    InputError,
    UnseenGroupError,
)


# ------------------------------------------------------------------ small fake models
class TableGeneric:
    def __init__(self, p):
        self.p = np.asarray(p, dtype=float)

    def predict_proba(self, X):
        p = self.p[np.asarray(X)[:, 0].astype(int)]
        return np.column_stack([1 - p, p])


class TableModel:
    """Personalized classifier given by tables: ``tables[report][row id]``; X[:, 0] = row id."""

    def __init__(self, tables, generic, names=("group",), groups_=True):
        self.tables = {k: np.asarray(v, dtype=float) for k, v in tables.items()}
        self.generic_ = TableGeneric(generic)
        self.group_names_ = list(names)
        if groups_:
            self.groups_ = list(self.tables)

    def predict_proba(self, X, *, groups=None, report=None):
        ids = np.asarray(X)[:, 0].astype(int)
        if report is not None:
            p = self.tables[tuple(report)][ids]
        else:
            keys = list(pd.DataFrame(groups).itertuples(index=False, name=None))
            p = np.array([self.tables[k][i] for k, i in zip(keys, ids)])
        return np.column_stack([1 - p, p])


class TableRegressor:
    def __init__(self, tables, generic):
        self.tables = {k: np.asarray(v, dtype=float) for k, v in tables.items()}
        self.groups_ = list(self.tables)
        self.group_names_ = ["group"]
        self.generic_ = self
        self._generic = np.asarray(generic, dtype=float)

    def predict(self, X, *, groups=None, report=None):
        ids = np.asarray(X)[:, 0].astype(int)
        if report is not None:
            return self.tables[tuple(report)][ids]
        if groups is None:  # called as the generic model
            return self._generic[ids]
        keys = [(g,) for g in np.asarray(groups).ravel()]
        return np.array([self.tables[k][i] for k, i in zip(keys, ids)])


# ------------------------------------------------------------------ hand-computed example
# Two groups of six rows.  Group A: rows 0-5, group B: rows 6-11.
Y = np.array([0, 0, 0, 1, 1, 1] + [0, 0, 1, 1, 1, 0])
GENERIC = [0.6, 0.2, 0.7, 0.4, 0.8, 0.3] + [0.3, 0.6, 0.4, 0.7, 0.5, 0.2]
OWN_A = [0.2, 0.1, 0.6, 0.9, 0.7, 0.4]
B_ON_A = [0.3, 0.6, 0.4, 0.7, 0.2, 0.8]      # group A scored as if it had reported B
OWN_B = [0.3, 0.5, 0.5, 0.8, 0.5, 0.1]       # ties at 0.5 (not > 0.5: predicted 0)
A_ON_B = [0.6, 0.7, 0.4, 0.3, 0.9, 0.2]
TABLES = {("A",): OWN_A + A_ON_B, ("B",): B_ON_A + OWN_B}
GROUPS = pd.DataFrame({"group": ["A"] * 6 + ["B"] * 6})
X_IDS = np.arange(12, dtype=float)[:, None]


def hand_model():
    return TableModel(TABLES, GENERIC)


def _error(y, p):
    return sum((pi > 0.5) != yi for yi, pi in zip(y, p)) / len(y)


def _brier(y, p):
    return sum((pi - yi) ** 2 for yi, pi in zip(y, p)) / len(y)


def _log_loss(y, p):
    return -sum(math.log(pi) if yi else math.log(1 - pi) for yi, pi in zip(y, p)) / len(y)


def _auc(y, p, w=None):
    w = [1] * len(y) if w is None else w
    num = den = 0.0
    for i, j in itertools.product(range(len(y)), repeat=2):
        if y[i] == 1 and y[j] == 0:
            num += w[i] * w[j] * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
            den += w[i] * w[j]
    return num / den


HAND_METRICS = {"error": (_error, False), "brier": (_brier, False),
                "log_loss": (_log_loss, False), "auc": (_auc, True)}
# per group: labels, generic, own, the other report
HAND_GROUPS = {"group=A": (Y[:6], GENERIC[:6], OWN_A, B_ON_A, "group=B"),
               "group=B": (Y[6:], GENERIC[6:], OWN_B, A_ON_B, "group=A")}


def _row(table, group, metric, condition):
    sel = table[(table.group == group) & (table.metric == metric) & (table.condition == condition)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_hand_example_values_gains_and_envy_gaps():
    report = audit(hand_model(), X_IDS, Y, groups=GROUPS, metrics=list(HAND_METRICS), n_boot=200,
                   min_group_size=1)
    t = report.table
    assert len(t) == 2 * 4 * 3  # groups x metrics x (rationality, pair, worst)
    # worked out by hand for group A (error): generic 4/6 wrong, own 2/6, report B 2/6
    assert _row(t, "group=A", "error", "rationality").gain == pytest.approx(4 / 6 - 2 / 6)
    assert _row(t, "group=A", "error", "envy_pair").gain == pytest.approx(0.0)
    # AUC of A: own 8/9, generic 5/9; B: own has ties at 0.5 counted 1/2
    assert _row(t, "group=A", "auc", "rationality").gain == pytest.approx(8 / 9 - 5 / 9)
    for group, (y, generic, own, other, other_label) in HAND_GROUPS.items():
        for metric, (f, greater) in HAND_METRICS.items():
            sign = -1 if greater else 1
            rat = _row(t, group, metric, "rationality")
            pair = _row(t, group, metric, "envy_pair")
            worst = _row(t, group, metric, "envy")
            assert rat.n == 6 and rat.n_pos == 3 and rat.prevalence == 0.5
            assert rat.value == pytest.approx(f(y, own))
            assert rat.baseline == pytest.approx(f(y, generic))
            assert rat.gain == pytest.approx(sign * (f(y, generic) - f(y, own)))
            assert rat.comparison == "generic"
            assert pair.comparison == other_label
            assert pair.baseline == pytest.approx(f(y, other))
            assert pair.gain == pytest.approx(sign * (f(y, other) - f(y, own)))
            # one alternative: the worst report is that one, with the same test
            for col in ("gain", "ci_low", "ci_high", "p_violation", "p_benefit"):
                assert worst[col] == pytest.approx(pair[col])
    # group B's own AUC: positives 0.5, 0.8, 0.5 against negatives 0.3, 0.5, 0.1
    assert _row(t, "group=B", "auc", "rationality").value == pytest.approx((2.5 + 3 + 2.5) / 9)


def _binomial_tail(k, n):
    return sum(math.comb(n, j) for j in range(k, n + 1)) / 2 ** n if n else 1.0


def test_hand_example_exact_pvalues():
    report = audit(hand_model(), X_IDS, Y, groups=GROUPS, metrics=["error", "auc"], n_boot=50,
                   min_group_size=1, test="exact", correction=None)
    t = report.table
    # group A, rationality: own right & generic wrong on rows 0 and 3 (b = 2), never the
    # reverse (c = 0): P(X >= 0) = 1 and P(X >= 2 | n = 2) = 1/4
    rat = _row(t, "group=A", "error", "rationality")
    assert rat.test == "mcnemar"
    assert (rat.p_violation, rat.p_benefit) == (pytest.approx(1.0), pytest.approx(0.25))
    # group A vs report B: b = 2 (rows 1, 4), c = 2 (rows 2, 5): P(X >= 2 | n = 4) = 11/16
    pair = _row(t, "group=A", "error", "envy_pair")
    assert (pair.p_violation, pair.p_benefit) == (pytest.approx(11 / 16), pytest.approx(11 / 16))
    # every error row against the binomial tail computed from the rows
    for group, (y, generic, own, other, _) in HAND_GROUPS.items():
        for cond, base in (("rationality", generic), ("envy_pair", other)):
            right_own = [(p > 0.5) == bool(v) for v, p in zip(y, own)]
            right_base = [(p > 0.5) == bool(v) for v, p in zip(y, base)]
            b = sum(o and not r for o, r in zip(right_own, right_base))
            c = sum(r and not o for o, r in zip(right_own, right_base))
            row = _row(t, group, "error", cond)
            assert row.p_violation == pytest.approx(_binomial_tail(c, b + c))
            assert row.p_benefit == pytest.approx(_binomial_tail(b, b + c))
            auc_row = _row(t, group, "auc", cond)
            assert auc_row.test == "delong"
            gain, p_v, p_b = delong_test(y, np.array(own), np.array(base))
            assert (auc_row.gain, auc_row.p_violation, auc_row.p_benefit) == pytest.approx((gain, p_v, p_b))


def _enumerated_p_violation(y, own, base, f, greater):
    """P(gain* >= 0) over every resample of the group (rows drawn with replacement within
    the group, labels not held fixed), enumerated exactly; a resample with a single class
    has no AUC and counts on the null side."""
    sign = -1 if greater else 1
    hits = total = 0
    for rows in itertools.product(range(len(y)), repeat=len(y)):
        yy = [y[i] for i in rows]
        total += 1
        if greater and len(set(yy)) < 2:
            hits += 1
            continue
        gain = sign * (f(yy, [base[i] for i in rows]) - f(yy, [own[i] for i in rows]))
        hits += gain >= -1e-12
    return hits / total


@pytest.mark.parametrize("metric", ["error", "brier", "auc"])
def test_bootstrap_pvalues_match_the_enumerated_bootstrap_distribution(metric):
    n_boot = 20_000
    report = audit(hand_model(), X_IDS, Y, groups=GROUPS, metrics=[metric], n_boot=n_boot,
                   min_group_size=1, correction=None, random_state=5)
    f, greater = HAND_METRICS[metric]
    for group, (y, generic, own, other, _) in HAND_GROUPS.items():
        for cond, base in (("rationality", generic), ("envy_pair", other)):
            exact = _enumerated_p_violation(list(y), own, base, f, greater)
            got = _row(report.table, group, metric, cond).p_violation
            # (1 + B P) / (B + 1); the Monte Carlo standard error is at most 0.0036
            assert got == pytest.approx((1 + n_boot * exact) / (n_boot + 1), abs=0.015)


# ------------------------------------------------------------------ random tables
def random_case(seed=0, sizes=(40, 60, 80), n_groups_model=None):
    rng = np.random.default_rng(seed)
    keys = [(k,) for k in "ABCDE"[: (n_groups_model or len(sizes))]]
    labels = np.repeat([k[0] for k in keys[: len(sizes)]], sizes)
    n = labels.size
    y = (rng.random(n) < 0.4).astype(int)
    y[np.searchsorted(labels, [k[0] for k in keys[: len(sizes)]])] = 1  # both classes
    tables = {k: np.clip(0.3 * y + 0.7 * rng.random(n), 0.01, 0.99) for k in keys}
    model = TableModel(tables, np.clip(0.3 * y + 0.7 * rng.random(n), 0.01, 0.99))
    X = np.arange(n, dtype=float)[:, None]
    return model, X, y, pd.DataFrame({"group": labels})


def test_same_seed_same_numbers_and_different_seeds_differ():
    model, X, y, g = random_case()
    kwargs = dict(groups=g, metrics=["error", "auc", "ece", "brier"], n_boot=300)
    first = audit(model, X, y, random_state=11, **kwargs).table
    again = audit(model, X, y, random_state=11, **kwargs).table
    pd.testing.assert_frame_equal(first, again)
    other = audit(model, X, y, random_state=12, **kwargs).table
    pd.testing.assert_series_equal(first["gain"], other["gain"])  # point estimates do not move
    judged = first["verdict"] != "too small to judge"
    moved = ~np.isclose(first.loc[judged, "ci_low"], other.loc[judged, "ci_low"])
    assert moved.mean() > 0.5  # different resamples
    assert not np.allclose(first["p_violation"], other["p_violation"])


def test_numbers_do_not_depend_on_chunking_or_other_groups(monkeypatch):
    model, X, y, g = random_case()
    kwargs = dict(metrics=["error", "auc", "ece", "log_loss"], n_boot=200, random_state=3,
                  correction=None)
    ref = audit(model, X, y, groups=g, **kwargs).table
    monkeypatch.setattr(_stats, "CHUNK_ELEMENTS", 37)
    pd.testing.assert_frame_equal(audit(model, X, y, groups=g, **kwargs).table, ref)
    # each group has its own stream: removing the last group leaves the others unchanged
    keep = (g["group"] != "C").to_numpy()
    ids = np.flatnonzero(keep).astype(float)[:, None]
    part = audit(model, ids, y[keep], groups=g[keep].reset_index(drop=True), **kwargs).table
    for group in ("group=A", "group=B"):
        a = ref[(ref.group == group) & (ref.condition == "rationality")].reset_index(drop=True)
        b = part[(part.group == group) & (part.condition == "rationality")].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)


def test_random_state_none_records_a_seed_that_reproduces():
    model, X, y, g = random_case()
    first = audit(model, X, y, groups=g, n_boot=100, random_state=None)
    seed = first.settings["random_state"]
    assert isinstance(seed, int)
    again = audit(model, X, y, groups=g, n_boot=100, random_state=seed)
    pd.testing.assert_frame_equal(first.table, again.table)


def test_worst_envy_row_is_a_corrected_union_of_the_pairs():
    model, X, y, g = random_case(seed=4)
    kw = dict(groups=g, metrics=["brier"], n_boot=400, random_state=0, correction=None)
    report = audit(model, X, y, ci_level=0.9, **kw)
    wide = audit(model, X, y, ci_level=1 - 0.1 / 2, **kw)  # per-pair level for 2 alternatives
    t, tw = report.table, wide.table
    for group in ("group=A", "group=B", "group=C"):
        pairs = t[(t.group == group) & (t.condition == "envy_pair")]
        pairs_wide = tw[(tw.group == group) & (tw.condition == "envy_pair")]
        worst = _row(t, group, "brier", "envy")
        assert len(pairs) == 2
        assert worst.gain == pairs.gain.min()
        assert worst.comparison == pairs.comparison.iloc[int(np.argmin(pairs.gain.to_numpy()))]
        assert worst.p_violation == pytest.approx(min(1.0, 2 * pairs.p_violation.min()))
        assert worst.p_benefit == pytest.approx(pairs.p_benefit.max())
        assert worst.ci_low == pytest.approx(pairs_wide.ci_low.min())
        assert worst.ci_high == pytest.approx(pairs_wide.ci_high.min())


def test_corrections_are_applied_per_metric_and_condition():
    model, X, y, g = random_case(seed=2)
    t = audit(model, X, y, groups=g, metrics=["error", "brier"], n_boot=200, correction="holm").table
    for (metric, condition), part in t.groupby(["metric", "condition"]):
        for col in ("p_violation", "p_benefit"):
            np.testing.assert_allclose(part[col + "_adj"], _stats.adjust_pvalues(part[col], "holm"))
    tb = audit(model, X, y, groups=g, metrics=["error"], n_boot=200, correction="bonferroni").table
    rat = tb[tb.condition == "rationality"]
    np.testing.assert_allclose(rat.p_violation_adj, np.minimum(1, 3 * rat.p_violation))
    tn = audit(model, X, y, groups=g, metrics=["error"], n_boot=200, correction=None).table
    np.testing.assert_array_equal(tn.p_violation_adj, tn.p_violation)


def test_verdicts_follow_the_corrected_pvalues():
    model, X, y, g = random_case(seed=1)
    # a model that is much better than the generic one for every group
    model.generic_ = TableGeneric(np.full(len(y), 0.5))
    t = audit(model, X, y, groups=g, metrics=["brier"], n_boot=300, alpha=0.1).table
    rat = t[t.condition == "rationality"]
    assert (rat.verdict == "benefit").all() and (rat.p_benefit_adj <= 0.1).all()
    # ... and a generic model that is much better than it
    model.generic_ = TableGeneric(np.where(y == 1, 0.9, 0.1))
    t = audit(model, X, y, groups=g, metrics=["brier"], n_boot=300, alpha=0.1).table
    rat = t[t.condition == "rationality"]
    assert (rat.verdict == "violation").all() and (rat.ci_high < 0).all()
    assert (rat.upper_bound < 0).all()
    for _, row in t.iterrows():
        expected = ("violation" if row.p_violation_adj <= 0.1 else
                    "benefit" if row.p_benefit_adj <= 0.1 else
                    "inconclusive (estimate: gain)" if row.gain > 0 else
                    "inconclusive (estimate: harm)" if row.gain < 0 else
                    "inconclusive (estimate: 0)")
        assert row.verdict == expected


def test_identical_reports_give_exactly_zero_gaps():
    model, X, y, g = random_case()
    model.tables[("B",)] = model.tables[("A",)].copy()
    t = audit(model, X, y, groups=g, metrics=["error", "auc", "ece", "log_loss"], n_boot=100).table
    # A under report B, and B (whose own scores are now A's) under report A
    sel = (t.condition == "envy_pair") & (((t.group == "group=A") & (t.comparison == "group=B"))
                                          | ((t.group == "group=B") & (t.comparison == "group=A")))
    assert sel.sum() == 2 * 4
    assert (t.loc[sel, ["gain", "ci_low", "ci_high", "lower_bound", "upper_bound"]].to_numpy()
            == 0).all()
    # no test: no p-value, not part of the correction family, verdict "cannot change"
    assert t.loc[sel, ["p_violation", "p_benefit", "p_violation_adj"]].isna().all().all()
    assert (t.loc[sel, "verdict"] == "cannot change").all() and t.loc[sel, "test"].isna().all()
    rest = t[(t.condition == "envy_pair") & (t.metric == "error") & ~sel]
    np.testing.assert_allclose(rest.p_violation_adj, _stats.adjust_pvalues(rest.p_violation, "holm"))
    assert rest.p_violation.notna().all() and len(rest) == 4


def test_too_small_groups():
    model, X, y, g = random_case(sizes=(40, 60, 5))
    y = y.copy()
    y[:40] = 0  # group A has a single class
    t = audit(model, X, y, groups=g, metrics=["error", "auc"], n_boot=100, min_group_size=10).table
    auc_a = t[(t.group == "group=A") & (t.metric == "auc")]
    assert (auc_a.verdict == "too small to judge").all() and auc_a.p_violation.isna().all()
    assert auc_a.value.isna().all()
    err_a = t[(t.group == "group=A") & (t.metric == "error")]
    assert (err_a.verdict != "too small to judge").all()  # error needs only one class
    small = t[t.group == "group=C"]
    assert (small.verdict == "too small to judge").all() and (small.n == 5).all()
    assert small.ci_low.isna().all() and small.p_benefit_adj.isna().all()
    assert small.gain.notna().all()  # point estimates are still shown
    # too-small groups are not part of the correction family
    rat = t[(t.metric == "error") & (t.condition == "rationality") & (t.group != "group=C")]
    np.testing.assert_allclose(rat.p_violation_adj, _stats.adjust_pvalues(rat.p_violation, "holm"))


def test_group_sizes_are_per_group_and_reports_without_rows_are_listed():
    model, X, y, g = random_case(sizes=(40, 60), n_groups_model=3)
    report = audit(model, X, y, groups=g, metrics=["error"], n_boot=50)
    groups = report.groups.set_index("group")
    assert groups.loc["group=A", "n"] == 40 and groups.loc["group=B", "n"] == 60
    assert groups.loc["group=A", "n_pos"] == y[:40].sum()
    assert groups.loc["group=C", "status"] == "no rows in the audit data"
    t = report.table
    assert set(t[t.condition == "envy_pair"].comparison) == {"group=A", "group=B", "group=C"}
    assert set(t.group) == {"group=A", "group=B"}
    assert (t[t.group == "group=A"].n == 40).all()


def test_labels_are_mapped_with_the_models_classes():
    model, X, y, g = random_case()
    ref = audit(model, X, y, groups=g, n_boot=50).table
    model.classes_ = np.array(["no", "yes"])
    model.generic_.classes_ = np.array(["no", "yes"])
    labelled = np.where(y == 1, "yes", "no")
    pd.testing.assert_frame_equal(audit(model, X, labelled, groups=g, n_boot=50).table, ref)
    with pytest.raises(InputError) as info:
        audit(model, X, np.where(y == 1, "yes", "maybe"), groups=g, n_boot=50)
    assert str(info.value) == MSG_Y_NOT_IN_CLASSES.format(values=["maybe"], classes=["no", "yes"])
    model.generic_.classes_ = np.array(["a", "b"])
    with pytest.raises(InputError) as info:
        audit(model, X, labelled, groups=g, n_boot=50)
    assert str(info.value) == MSG_CLASSES_MISMATCH.format(generic=["a", "b"], model=["no", "yes"])


def test_labels_without_classes():
    model, X, y, g = random_case()
    ref = audit(model, X, y, groups=g, n_boot=50).table
    pd.testing.assert_frame_equal(audit(model, X, y.astype(bool), groups=g, n_boot=50).table, ref)
    pd.testing.assert_frame_equal(audit(model, X, np.where(y == 1, "yes", "no"), groups=g,
                                        n_boot=50).table, ref)  # "yes" > "no" is positive
    with pytest.raises(InputError) as info:
        audit(model, X, np.arange(len(y)) % 3, groups=g, n_boot=50)
    assert str(info.value) == MSG_Y_NOT_01.format(values=[0, 1, 2])


def test_regression_audit():
    rng = np.random.default_rng(0)
    y = rng.normal(size=60)
    own = y + 0.3 * rng.normal(size=60)
    tables = {("A",): own, ("B",): y + rng.normal(size=60)}
    tables[("B",)][30:] = own[30:]
    model = TableRegressor(tables, y + rng.normal(size=60))
    g = np.array(["A"] * 30 + ["B"] * 30)
    X = np.arange(60, dtype=float)[:, None]
    report = audit(model, X, y, groups=g, n_boot=200)
    t = report.table
    assert report.settings["task"] == "regression"
    assert set(t.metric) == {"mse", "mae"} and "y_mean" in t.columns and "n_pos" not in t.columns
    rat = _row(t, "group=A", "mse", "rationality")
    assert rat.gain == pytest.approx(np.mean((model._generic[:30] - y[:30]) ** 2)
                                     - np.mean((own[:30] - y[:30]) ** 2))
    assert rat.y_mean == pytest.approx(y[:30].mean())
    assert _row(t, "group=A", "mae", "envy_pair").gain == pytest.approx(
        np.mean(np.abs(tables[("B",)][:30] - y[:30])) - np.mean(np.abs(own[:30] - y[:30])))


def test_user_metric():
    model, X, y, g = random_case()
    brier = Metric("my_brier", lambda t, p: float(np.mean((p - t) ** 2)), task="classification")
    t = audit(model, X, y, groups=g, metrics=[brier, "brier"], n_boot=60, correction=None).table
    mine, ref = t[t.metric == "my_brier"].reset_index(drop=True), t[t.metric == "brier"].reset_index(drop=True)
    for col in ("value", "gain", "ci_low", "ci_high", "p_violation", "p_benefit"):
        np.testing.assert_allclose(mine[col], ref[col], rtol=1e-10, atol=1e-12)


def test_resamples_with_one_class_count_for_neither_direction():
    # group A: 1 positive in 12 rows, ranked first by the model and last by the generic
    # model: AUC gain 1.  A resample misses the positive with probability (11/12)^12 = 0.352;
    # its AUC is undefined and counts on the null side, so the benefit p-value is at least
    # that share: no benefit can be claimed from one positive.  (Resampling within label
    # cells kept the positive in every resample and gave p = 1 / (B + 1).)
    n = 12
    y = np.zeros(n, dtype=int)
    y[0] = 1
    own = np.linspace(0.9, 0.1, n)
    generic = own[::-1].copy()
    model = TableModel({("A",): own}, generic)
    n_boot = 4000
    t = audit(model, np.arange(n, dtype=float)[:, None], y, groups=pd.DataFrame({"group": ["A"] * n}),
              metrics=["auc"], n_boot=n_boot, correction=None, random_state=1).table
    rat = _row(t, "group=A", "auc", "rationality")
    assert rat.gain == 1.0 and rat.verdict != "benefit"
    share = (11 / 12) ** 12
    se = np.sqrt(share * (1 - share) / n_boot)
    assert rat.p_benefit == pytest.approx(share, abs=4 * se)
    assert rat.p_violation == 1.0  # every resample: gain 1 or undefined
    assert rat.ci_low == -np.inf and rat.lower_bound == -np.inf
    report = audit(model, np.arange(n, dtype=float)[:, None], y,
                   groups=pd.DataFrame({"group": ["A"] * n}), metrics=["auc"], n_boot=n_boot,
                   correction=None, random_state=1)
    text = str(report.summary())
    assert "too many resamples drew a single class" in text and "use more resamples" not in text
    # a user's metric that needs both classes is undefined on the same resamples: the same p
    auc = Metric("my_auc", roc_auc, greater_is_better=True, task="classification",
                 needs_both_classes=True)
    mine = audit(model, np.arange(n, dtype=float)[:, None], y,
                 groups=pd.DataFrame({"group": ["A"] * n}), metrics=[auc], n_boot=200,
                 correction=None, random_state=1).table
    ref = audit(model, np.arange(n, dtype=float)[:, None], y,
                groups=pd.DataFrame({"group": ["A"] * n}), metrics=["auc"], n_boot=200,
                correction=None, random_state=1).table
    for col in ("p_violation", "p_benefit", "ci_low", "ci_high", "lower_bound", "upper_bound"):
        np.testing.assert_array_equal(mine[col], ref[col])


def roc_auc(y, p):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(y, p)


def test_multi_attribute_groups_and_reports_as_tuples():
    rng = np.random.default_rng(0)
    keys = [("F", 0), ("F", 1), ("M", 0), ("M", 1)]
    labels = [keys[i] for i in np.repeat(range(4), 30)]
    y = (rng.random(120) < 0.5).astype(int)
    y[::30] = 1
    y[1::30] = 0
    tables = {k: rng.random(120) for k in keys}
    model = TableModel(tables, rng.random(120), names=("sex", "old"))
    frame = pd.DataFrame(labels, columns=["sex", "old"])
    t = audit(model, np.arange(120.0)[:, None], y, groups=frame[["old", "sex"]], n_boot=50).table
    assert set(t.group) == {"sex=F, old=0", "sex=F, old=1", "sex=M, old=0", "sex=M, old=1"}
    assert (t[t.condition == "envy_pair"].groupby(["group", "metric"]).size() == 3).all()


# ------------------------------------------------------------------ report
@pytest.fixture(scope="module")
def report():
    model, X, y, g = random_case(seed=3, sizes=(40, 60, 5))
    return audit(model, X, y, groups=g, metrics=["error", "auc", "ece"], n_boot=100)


def test_verdict_counts(report):
    s = report.verdict_counts()
    assert list(s.columns) == list(VERDICTS)
    assert list(s.index.names) == ["condition", "metric"]
    assert list(s.index) == [(c, m) for c in ("rationality", "envy") for m in ("error", "auc", "ece")]
    assert (s.sum(axis=1) == 3).all()  # every group once per condition and metric
    assert (s["too small to judge"] >= 1).all()  # group C has 5 rows
    t = report.table
    for (cond, metric), row in s.iterrows():
        part = t[(t.condition == cond) & (t.metric == metric)]
        assert row.to_dict() == {v: int((part.verdict == v).sum()) for v in VERDICTS}


def test_markdown_without_tabulate(report, monkeypatch):
    monkeypatch.setitem(sys.modules, "tabulate", None)  # importing it would fail
    md = report.to_markdown(pairs=True)
    assert md.startswith("# Fair-use audit")
    for heading in ("## Verdict counts", "## Groups", "## Rationality", "## Envy: own report vs the worst",
                    "## Envy: own report vs each other report"):
        assert heading in md
    lines = [line for line in md.splitlines() if line.startswith("| group=A | error | generic")]
    assert len(lines) == 1 and lines[0].count("|") == 13
    assert "## Envy: own report vs each other report" not in report.to_markdown()


def test_json_round_trip(report):
    data = json.loads(report.to_json(indent=1))
    assert data["settings"]["n_boot"] == 100 and data["settings"]["random_state"] == 0
    assert len(data["table"]) == len(report.table)
    assert data["table"][0].keys() == set(report.table.columns)
    small = [r for r in data["table"] if r["group"] == "group=C"]
    assert all(r["p_violation"] is None for r in small)  # NaN -> null
    assert {r["verdict"] for r in data["table"]} <= set(VERDICTS)


def test_plot(report):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = report.plot()
    try:
        # one row of panels per audited metric (AUC included), each heat map with its colour bar
        panels = [ax for ax in fig.axes if ax.get_title()]
        assert [ax.get_title() for ax in panels] == [
            f"{kind}, {m}" for m in ("error", "auc", "ece")
            for kind in ("Rationality", "Envy")]
        assert len(fig.axes) == 9
        t = report.table
        for m, (gain_ax, envy_ax) in zip(("error", "auc", "ece"), zip(panels[::2], panels[1::2])):
            rat = t[(t.metric == m) & (t.condition == "rationality")]
            assert [x.get_text() for x in gain_ax.get_yticklabels()] == ["A", "B", "C"]
            # what the verdict used: a bar from its one-sided bound to the gain
            bars = [tuple(line.get_xdata()) for line in gain_ax.lines if len(line.get_xdata()) == 2]
            for r in rat.itertuples():
                if r.verdict == "too small to judge":
                    continue
                bound = r.upper_bound if r.verdict in ("violation",
                                                       "inconclusive (estimate: harm)") else r.lower_bound
                if np.isfinite(bound):
                    assert (bound, r.gain) in bars, (m, r.group)
            assert m in envy_ax.get_title()
            grid = np.ma.filled(envy_ax.images[0].get_array(), np.nan)
            assert len(envy_ax.images) == 1 and grid.shape == (3, 3)  # groups x reports
            assert np.isnan(np.diag(grid)).all()
        one = report.plot(metric="auc")
        assert [ax.get_title() for ax in one.axes if ax.get_title()] == ["Rationality, auc",
                                                                         "Envy, auc"]
        plt.close(one)
    finally:
        plt.close(fig)
    with pytest.raises(InputError) as info:
        report.plot(metric="brier")
    assert str(info.value) == MSG_PLOT_METRIC.format(name="brier", known=["error", "auc", "ece"])


def test_plot_without_matplotlib(report, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError) as info:
        report.plot()
    assert str(info.value) == MSG_NEED_MATPLOTLIB
    assert "plot" in str(info.value)


def test_repr(report):
    assert repr(report).startswith("FairUseReport(3 groups")
    assert isinstance(report, FairUseReport)


# ------------------------------------------------------------------ bad input
def test_model_without_the_needed_method():
    _, X, y, g = random_case()
    with pytest.raises(ModelInterfaceError) as info:
        audit(object(), X, y, groups=g)
    assert str(info.value) == MSG_NO_PREDICT.format(what="model")
    assert isinstance(info.value, TypeError) and isinstance(info.value, FairUseError)

    class OnlyPredict:
        def predict(self, X, *, groups=None, report=None):
            return np.zeros(len(X))

    with pytest.raises(ModelInterfaceError) as info:
        audit(OnlyPredict(), X, y, groups=g, task="classification", generic=OnlyPredict())
    assert str(info.value) == MSG_NO_METHOD.format(what="model", method="predict_proba",
                                                   task="classification")
    model, *_ = random_case()
    with pytest.raises(ModelInterfaceError) as info:
        audit(model, X, y, groups=g, generic=OnlyPredict())
    assert str(info.value) == MSG_NO_METHOD.format(what="the generic model", method="predict_proba",
                                                   task="classification")
    del model.generic_
    with pytest.raises(InputError) as info:
        audit(model, X, y, groups=g)
    assert str(info.value) == MSG_NO_GENERIC


def test_groups_unseen_by_the_model():
    model, X, y, g = random_case()
    g = g.copy()
    g.loc[:4, "group"] = "Z"
    with pytest.raises(UnseenGroupError) as info:
        audit(model, X, y, groups=g)
    assert str(info.value) == MSG_UNSEEN_GROUP.format(groups=[("Z",)], known=[("A",), ("B",), ("C",)])


def test_group_attributes_must_match_the_model():
    model, X, y, g = random_case()
    with pytest.raises(InputError) as info:
        audit(model, X, y, groups=g.rename(columns={"group": "sex"}))
    assert str(info.value) == MSG_GROUP_NAMES_MISMATCH.format(got=["sex"], expected=["group"])
    with pytest.raises(InputError) as info:
        audit(model, X, y, groups=g.iloc[:10])
    assert str(info.value) == MSG_LENGTH_MISMATCH.format(what="groups", n_other=10, n_rows=len(y))


def test_metrics_that_do_not_apply():
    model, X, y, g = random_case()
    with pytest.raises(InputError) as info:
        audit(model, X, y, groups=g, metrics=["error", "mse"])
    assert str(info.value) == MSG_METRIC_TASK.format(
        name="mse", task="classification", known=["error", "auc", "ece", "log_loss", "brier"])
    reg = TableRegressor({("A",): np.zeros(len(y)), ("B",): np.zeros(len(y)), ("C",): np.zeros(len(y))},
                         np.zeros(len(y)))
    with pytest.raises(InputError) as info:
        audit(reg, X, y.astype(float), groups=g["group"].to_numpy(), metrics=["auc"])
    assert str(info.value) == MSG_METRIC_TASK.format(name="auc", task="regression", known=["mse", "mae", "poisson_deviance"])


@pytest.mark.parametrize("param,value,reason", [
    ("n_boot", 0, "must be >= 1"),
    ("n_boot", -5, "must be >= 1"),
    ("n_boot", 10.5, "an integer is required"),
    ("alpha", 0.5, "must be in (0, 0.5)"),
    ("alpha", 0.0, "must be in (0, 0.5)"),
    ("ci_level", 1.0, "must be in (0, 1)"),
    ("correction", "fdr", "choose one of ['holm', 'bonferroni', None]"),
    ("test", "permutation", "choose one of ['bootstrap', 'exact']"),
    ("task", "ranking", "choose one of ['classification', 'regression', None]"),
    ("n_bins", 0, "must be >= 1"),
    ("min_group_size", 0, "must be >= 1"),
])
def test_bad_parameters(param, value, reason):
    model, X, y, g = random_case()
    with pytest.raises(InputError) as info:
        audit(model, X, y, groups=g, **{param: value})
    assert str(info.value) == MSG_BAD_PARAM.format(name=param, value=value, reason=reason)


def test_bad_model_output():
    model, X, y, g = random_case()

    class Broken(TableModel):
        def predict_proba(self, X, *, groups=None, report=None):
            return super().predict_proba(X, groups=groups, report=report)[:, 1]

    broken = Broken(model.tables, np.full(len(y), 0.5))
    with pytest.raises(InputError) as info:
        audit(broken, X, y, groups=g)
    assert str(info.value) == MSG_BAD_OUTPUT.format(
        call="model.predict_proba(X, groups=...)", problem=f"shape ({len(y)},); expected ({len(y)}, 2)")
    model.tables[("B",)][0] = 1.5
    with pytest.raises(InputError) as info:
        audit(model, X, y, groups=g)
    assert str(info.value) == MSG_BAD_OUTPUT.format(call="model.predict_proba(X, report=...)",
                                                    problem="probabilities outside [0, 1]")


# ------------------------------------------------------------------ bounds agree with verdicts
def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def mixed_case(seed=0):
    """Five groups whose own reports range from much better than the generic model (A) to
    much worse (B), so that every verdict occurs."""
    rng = np.random.default_rng(seed)
    sizes, strength = (60, 90, 120, 150, 200), (2.0, 0.2, 1.0, 1.3, 0.7)
    labels = np.repeat(list("ABCDE"), sizes)
    n = labels.size
    y = (rng.random(n) < 0.45).astype(int)
    signal = 2 * y - 1
    tables = {(k,): _sigmoid(s * signal + rng.normal(size=n)) for k, s in zip("ABCDE", strength)}
    model = TableModel(tables, _sigmoid(signal + rng.normal(size=n)))
    return model, np.arange(n, dtype=float)[:, None], y, pd.DataFrame({"group": labels})


def _check_bounds_agree(t):
    judged = t[t.verdict != "too small to judge"]
    tested = judged[judged.verdict != "cannot change"]
    assert len(tested) > 0
    np.testing.assert_array_equal(tested.lower_bound > 0, tested.verdict == "benefit")
    np.testing.assert_array_equal(tested.upper_bound < 0, tested.verdict == "violation")
    assert (tested.lower_bound <= tested.upper_bound).all()
    fixed = judged[judged.verdict == "cannot change"]
    assert (fixed[["lower_bound", "upper_bound", "gain"]].to_numpy() == 0).all()


@pytest.mark.parametrize("test", ["bootstrap", "exact"])
def test_bounds_exclude_zero_exactly_when_the_verdict_is_significant(test, caplog):
    model, X, y, g = mixed_case()
    verdicts = {}
    for correction in ("holm", "bonferroni", None):
        with caplog.at_level("DEBUG", logger="fairuse_opt.audit._audit"):
            t = audit(model, X, y, groups=g, metrics=["error", "auc", "brier"], n_boot=200,
                      correction=correction, test=test, alpha=0.1).table
        _check_bounds_agree(t)
        # the bounds agree by their construction, not because the verdict overrode them
        assert not [r for r in caplog.records if "set by its verdict" in r.getMessage()]
        assert {"benefit", "violation"} <= set(t.verdict)
        assert any(v.startswith("inconclusive") for v in t.verdict)
        if test == "exact":
            assert {"mcnemar", "delong", "bootstrap"} <= set(t.test.dropna())
        # the level of each bound is the one its family's correction decided it at
        for _, part in t.groupby(["metric", "condition"]):
            for col, side in (("p_benefit", "lower"), ("p_violation", "upper")):
                f = _stats.correction_factors(part[col], correction, 0.1)
                np.testing.assert_allclose(part[f"{side}_level"], 1 - 0.1 / f)
        verdicts[correction] = t.verdict
    # Holm rejects more than Bonferroni here, so its step-down levels matter
    holm_only = ((verdicts["holm"] == "benefit") | (verdicts["holm"] == "violation")) & (
        verdicts["holm"] != verdicts["bonferroni"])
    assert holm_only.any()


def test_bootstrap_bounds_are_the_percentiles_of_the_resampled_gains():
    model, X, y, g = mixed_case()
    n_boot, alpha = 400, 0.1
    t = audit(model, X, y, groups=g, metrics=["brier"], n_boot=n_boot, correction=None,
              alpha=alpha).table
    rat = t[t.condition == "rationality"]
    # uncorrected: the lower bound is the k-th smallest of the 400 gains, k = 0.1 * 401 -> 40,
    # between the 9% and 11% quantiles of the two-sided interval's distribution
    wide = audit(model, X, y, groups=g, metrics=["brier"], n_boot=n_boot, correction=None,
                 ci_level=1 - 2 * 40 / n_boot).table
    wide = wide[wide.condition == "rationality"]
    np.testing.assert_allclose(rat.lower_bound, wide.ci_low, atol=0.01)
    np.testing.assert_allclose(rat.upper_bound, wide.ci_high, atol=0.01)
    assert (rat.lower_level == 0.9).all() and (rat.ci_level == 0.95).all()
    # the one-sided 90% bounds lie inside the two-sided 95% interval
    assert (rat.lower_bound >= rat.ci_low).all() and (rat.upper_bound <= rat.ci_high).all()


def test_intercept_shift_reports_cannot_change_auc():
    model, X, y, g = random_case()
    logit = np.log(model.tables[("A",)] / (1 - model.tables[("A",)]))
    model.tables[("B",)] = _sigmoid(logit + 0.8)  # same ranking of every row, other errors
    t = audit(model, X, y, groups=g, metrics=["auc", "brier"], n_boot=100).table
    pair = t[(t.group == "group=A") & (t.comparison == "group=B") & (t.condition == "envy_pair")]
    auc, brier = pair[pair.metric == "auc"].iloc[0], pair[pair.metric == "brier"].iloc[0]
    assert auc.verdict == "cannot change" and auc.gain == 0 and np.isnan(auc.p_violation)
    assert brier.verdict != "cannot change" and brier.gain != 0
    assert brier.p_violation == brier.p_violation  # tested
    # the worst-envy row of A tests only C (for AUC): union over 1 report, not 2
    worst = _row(t, "group=A", "auc", "envy")
    c_pair = t[(t.group == "group=A") & (t.comparison == "group=C") & (t.metric == "auc")].iloc[0]
    assert worst.p_violation == pytest.approx(c_pair.p_violation)
    assert worst.p_benefit == 1.0  # cannot beat a report that gives the same AUC
    model.tables[("C",)] = _sigmoid(logit - 0.5)  # now every report ranks A's rows alike
    report = audit(model, X, y, groups=g, metrics=["auc"], n_boot=50)
    assert _row(report.table, "group=A", "auc", "envy").verdict == "cannot change"
    summary = str(report.summary())
    assert "cannot change (auc)" in summary and "only shifts an intercept" in " ".join(summary.split())


# ------------------------------------------------------------------ labels
def test_group_labels_do_not_collide():
    # joined with ", " and "=" these two groups were one label, and plot() crashed
    keys = [("x", "y, B=z"), ("x, B=y", "z")]
    rng = np.random.default_rng(0)
    n = 60
    tables = {k: rng.random(n) for k in keys}
    model = TableModel(tables, rng.random(n), names=("A", "B"))
    frame = pd.DataFrame([keys[i % 2] for i in range(n)], columns=["A", "B"])
    y = (rng.random(n) < 0.5).astype(int)
    report = audit(model, np.arange(n, dtype=float)[:, None], y, groups=frame, n_boot=50,
                   metrics=["brier"])
    assert set(report.table.group) == {'A=x, B="y, B=z"', 'A="x, B=y", B=z'}
    assert set(report.groups.group) == {'A=x, B="y, B=z"', 'A="x, B=y", B=z'}
    assert report.settings["short_labels"] == {'A=x, B="y, B=z"': 'x, "y, B=z"',
                                               'A="x, B=y", B=z': '"x, B=y", z'}
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = report.plot()
    try:
        grid = np.ma.filled(fig.axes[1].images[0].get_array(), np.nan)
        assert grid.shape == (2, 2) and np.isfinite(grid[[0, 1], [1, 0]]).all()
    finally:
        plt.close(fig)


def test_labels_of_values_that_print_alike():
    from fairuse_opt.audit._labels import group_label, group_labels

    # (1 and 1.0, or True and 1, are one dict key: merging them is the group index's call)
    assert group_labels(["A"], [(1,), ("1",)]) == {(1,): "A=1", ("1",): "A='1'"}
    assert group_labels(["A"], [(1.5,), ("1.5",), ("x",)]) == {
        (1.5,): "A=1.5", ("1.5",): "A='1.5'", ("x",): "A='x'"}
    assert group_labels(["A", "B"], [("a", 1), ("b", 2)]) == {("a", 1): "A=a, B=1",
                                                              ("b", 2): "A=b, B=2"}
    assert group_label(["A"], ['say "hi"\\']) == 'A="say \\"hi\\"\\\\"'
    assert group_label(["A"], [" padded"]) == 'A=" padded"' and group_label(["A"], [""]) == 'A=""'


# ------------------------------------------------------------------ readable results
def test_summary_is_one_line_per_group_and_metric_with_the_bound_the_verdict_used():
    model, X, y, g = mixed_case()
    report = audit(model, X, y, groups=g, metrics=["error", "auc", "brier"], n_boot=200)
    s = report.summary()
    assert isinstance(s, pd.DataFrame)
    assert list(s.index.names) == ["condition", "group", "metric"]
    assert list(s.columns) == ["comparison", "gain", "side", "bound", "level", "p_adj", "verdict"]
    assert len(s) == 2 * 5 * 3
    t = report.table
    for (cond, group, metric), r in s.iterrows():
        row = _row(t, group, metric, cond)
        assert r.verdict == row.verdict and r.gain == row.gain and r.comparison == row.comparison
        if row.verdict in ("violation", "inconclusive (estimate: harm)"):
            assert (r.side, r.bound, r.p_adj) == ("<=", row.upper_bound, row.p_violation_adj)
            assert r.level == row.upper_level
        else:
            assert (r.side, r.bound, r.p_adj) == (">=", row.lower_bound, row.p_benefit_adj)
    text = str(s)
    assert text == repr(s) == s.to_string() and str(report).endswith(text)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 100
    # every (condition, group, metric) has its line, with the numbers in the one format
    start = {c: lines.index(next(x for x in lines if x.startswith(f"{c}: own report")))
             for c in ("rationality", "envy")}
    blocks = {"rationality": lines[start["rationality"]:start["envy"]],
              "envy": lines[start["envy"]:]}
    short = report.settings["short_labels"]
    for (cond, group, metric), r in s.iterrows():
        hits = [x for x in blocks[cond] if x.startswith(f"{short[group]}  ")
                and f"  {metric} " in x]
        assert len(hits) == 1, (cond, group, metric)
        x = hits[0]
        assert format_number(r.gain) in x and f"{r.side} {format_number(r.bound)}" in x
        assert x.rstrip().endswith(r.verdict) and format_number(r.p_adj) in x
        if cond == "envy":
            assert f"  {short[r.comparison]}  " in x
    assert format_number(0.012345) == "0.0123" and format_number(-0.0) == "0"
    assert format_number(np.nan) == "" and format_number(-np.inf) == "-inf"
    assert format_number(7) == "7" and format_number(1.5e-7) == "1.5e-07"
    # the same numbers, formatted alike, in markdown and JSON
    md = report.to_markdown()
    row = _row(t, "group=B", "brier", "rationality")
    assert f"| group=B | brier | generic | 90 | {format_number(row.value)} |" in md
    assert f"<= {format_number(row.upper_bound)} | {format_number(row.upper_level)} |" in md
    data = json.loads(report.to_json())
    rec = [r for r in data["table"] if r["group"] == "group=B" and r["metric"] == "brier"
           and r["condition"] == "rationality"][0]
    assert rec["upper_bound"] == float(format_number(row.upper_bound))
    full = json.loads(report.to_json(digits=None))
    rec = [r for r in full["table"] if r["group"] == "group=B" and r["metric"] == "brier"
           and r["condition"] == "rationality"][0]
    assert rec["upper_bound"] == row.upper_bound


def test_too_few_resamples_for_the_level_say_so():
    model, X, y, g = mixed_case()
    # 5 groups, Holm: the first step is at 0.1 / 5 = 0.02 < 1 / 31, the smallest p-value
    report = audit(model, X, y, groups=g, metrics=["brier"], n_boot=30)
    rat = report.table[report.table.condition == "rationality"]
    assert np.isinf(rat.lower_bound).all() and np.isinf(rat.upper_bound).all()
    assert not rat.verdict.isin(["benefit", "violation"]).any()
    assert "bound inf: with 30 resamples" in str(report.summary())
    assert json.loads(report.to_json())["table"][0]["upper_bound"] is None
