"""The result of an audit: a tidy table and ways to read it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._errors import MSG_NEED_MATPLOTLIB, MSG_PLOT_AX, MSG_PLOT_METRIC
from ..exceptions import InputError

__all__ = ["FairUseReport", "AuditSummary", "VERDICTS", "format_number"]

BENEFIT = "benefit"
VIOLATION = "violation"
INCONCLUSIVE_GAIN = "inconclusive (estimate: gain)"
INCONCLUSIVE_ZERO = "inconclusive (estimate: 0)"
INCONCLUSIVE_HARM = "inconclusive (estimate: harm)"
CANNOT_CHANGE = "cannot change"
TOO_SMALL = "too small to judge"
#: Verdicts, in the order the summary lists them.
VERDICTS = (BENEFIT, INCONCLUSIVE_GAIN, INCONCLUSIVE_ZERO, INCONCLUSIVE_HARM, VIOLATION,
            CANNOT_CHANGE, TOO_SMALL)
_CONDITIONS = ("rationality", "envy")
_COLOURS = {BENEFIT: "tab:green", INCONCLUSIVE_GAIN: "yellowgreen", INCONCLUSIVE_ZERO: "tab:gray",
            INCONCLUSIVE_HARM: "tab:orange", VIOLATION: "tab:red", CANNOT_CHANGE: "black",
            TOO_SMALL: "lightgray"}
#: Width of the terminal view of :meth:`FairUseReport.summary`.
WIDTH = 100
DIGITS = 3


def format_number(value: Any, digits: int = DIGITS) -> str:
    """The one number format of the report (terminal, markdown and JSON).

    ``digits`` significant digits (``%g``: ``0.0115``, ``-0.154``, ``1.2e-05``); integers
    as they are; ``""`` for a missing value (``None``, NaN); ``"inf"``/``"-inf"``;
    ``-0`` is written ``0``.  Other values are returned as text.
    """
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = f"{v:.{digits}g}"
        return "0" if text in ("-0", "0") else text
    return str(value)


def _used_bound(verdict: str, lower: float, upper: float) -> tuple[str, float]:
    """The bound a verdict reads: the lower one for a (possible) gain, else the upper."""
    if verdict in (VIOLATION, INCONCLUSIVE_HARM):
        return "<=", upper
    if verdict in (BENEFIT, INCONCLUSIVE_GAIN, INCONCLUSIVE_ZERO, CANNOT_CHANGE):
        return ">=", lower
    return "", np.nan


def _used_p(verdict: str, p_violation: float, p_benefit: float) -> float:
    return p_violation if verdict in (VIOLATION, INCONCLUSIVE_HARM) else p_benefit


class AuditSummary(pd.DataFrame):
    """Per group and metric, the verdicts and the numbers they rest on (a DataFrame).

    Index ``(condition, group, metric)`` for the rationality and worst-envy rows; columns
    ``comparison`` (``"generic"`` or the worst other report), ``gain``, ``side``
    (``">="`` for a lower bound, ``"<="`` for an upper bound), ``bound`` (the one-sided
    confidence bound the verdict used), ``level`` (its confidence level), ``p_adj``
    (the corrected one-sided p-value of that direction) and ``verdict``.  Printing it
    (``print``, ``str``, :meth:`to_string` without arguments) gives a view that fits
    :data:`WIDTH` columns; any other use is the DataFrame's.
    """

    _metadata = ["header", "footer", "short_labels"]

    @property
    def _constructor(self):  # results of DataFrame operations are plain frames
        return pd.DataFrame

    def __repr__(self) -> str:
        return self.to_string()

    def __str__(self) -> str:
        return self.to_string()

    def to_string(self, *args, **kwargs) -> str:
        """The terminal view (with arguments: :meth:`pandas.DataFrame.to_string`)."""
        if args or kwargs:
            return pd.DataFrame(self).to_string(*args, **kwargs)
        return _render_summary(self)


def _render_summary(s: AuditSummary) -> str:
    short = getattr(s, "short_labels", None) or {}
    lines = list(getattr(s, "header", None) or [])
    frame = pd.DataFrame(s).reset_index()
    titles = {"rationality": "rationality: own report vs the generic model",
              "envy": "envy: own report vs the worst other report"}
    for condition in _CONDITIONS:
        part = frame[frame["condition"] == condition]
        if not len(part):
            continue
        cells = []
        for r in part.itertuples(index=False):
            bound = "" if not r.side else f"{r.side} {format_number(r.bound)}"
            cells.append([short.get(r.group, r.group), r.metric,
                          short.get(r.comparison, r.comparison), format_number(r.gain), bound,
                          format_number(r.p_adj), r.verdict])
        head = ["group", "metric", "worst report", "gap" if condition == "envy" else "gain",
                "bound", "p_adj", "verdict"]
        keep = [0, 1, 2, 3, 4, 5, 6] if condition == "envy" else [0, 1, 3, 4, 5, 6]
        lines += ["", titles[condition]]
        lines += _columns([[head[k] for k in keep]] + [[c[k] for k in keep] for c in cells],
                          numeric={3, 4, 5} if condition == "envy" else {2, 3, 4})
    lines += list(getattr(s, "footer", None) or [])
    return "\n".join(lines)


def _columns(rows: list[list[str]], numeric: set[int]) -> list[str]:
    """Align rows of cells; numbers right-aligned.  Wider than :data:`WIDTH`: the first
    column (the group) becomes a heading line above its rows."""
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]

    def line(cells, skip_first=False):
        out = []
        for k, (cell, w) in enumerate(zip(cells, widths)):
            if skip_first and k == 0:
                continue
            out.append(cell.rjust(w) if k in numeric else cell.ljust(w))
        return "  ".join(out).rstrip()

    text = [line(r) for r in rows]
    if max(len(t) for t in text) <= WIDTH:
        return text
    out, current = [line(rows[0], skip_first=True)], None
    out[0] = "  " + out[0]
    for r in rows[1:]:
        if r[0] != current:
            current = r[0]
            out.append(current)
        out.append("  " + line(r, skip_first=True))
    return out


@dataclass(repr=False)
class FairUseReport:
    """Per-group fair-use audit of a personalized model (see :func:`audit`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per group, metric and comparison.  Columns:

        * ``group``: the group's label, such as ``"sex=F, age=old"`` (values with
          ``,``, ``=`` or quotes are quoted; labels are unique, see
          :mod:`fairuse_opt.audit._labels`);
        * ``metric``;
        * ``condition``: ``"rationality"`` (own report vs the generic model),
          ``"envy_pair"`` (own report vs one other report) or ``"envy"`` (own report
          vs the worst other report);
        * ``comparison``: ``"generic"`` or the other report's label;
        * ``n``; ``n_pos`` and ``prevalence`` (classification) or ``y_mean``
          (regression);
        * ``value``: the metric under the own report; ``baseline``: the metric of the
          comparison;
        * ``gain``: the estimated gain, positive when the own report is better;
        * ``ci_low``, ``ci_high``: two-sided bootstrap percentile interval of the gain at
          level ``ci_level`` (unadjusted; for ``"envy"`` rows a simultaneous interval
          for the smallest gap).  Not what the verdict uses;
        * ``p_violation``, ``p_benefit``: raw one-sided p-values (H1 gain < 0, gain > 0);
          ``p_violation_adj``, ``p_benefit_adj``: corrected across groups;
        * ``verdict``: one of :data:`VERDICTS`: ``"benefit"`` (``p_benefit_adj <=
          alpha``), ``"violation"`` (``p_violation_adj <= alpha``), ``"inconclusive
          (estimate: gain)"`` / ``"(estimate: harm)"`` / ``"(estimate: 0)"`` by the sign
          of ``gain`` otherwise, ``"cannot change"`` (the metric is the same for both on
          every resample, e.g. AUC under reports that only shift an intercept: no
          test, no p-value) and ``"too small to judge"``;
        * ``test``: ``"bootstrap"``, ``"mcnemar"`` or ``"delong"`` (``None``: no test);
        * ``lower_bound``, ``lower_level``: one-sided lower confidence bound of the gain
          and its confidence level, at the corrected level at which the benefit test
          was decided: ``lower_bound > 0`` exactly when the verdict is ``"benefit"``;
        * ``upper_bound``, ``upper_level``: the same for the violation test:
          ``upper_bound < 0`` exactly when the verdict is ``"violation"``;
        * ``ci_level``: level of ``ci_low``/``ci_high``.

    groups : pandas.DataFrame
        One row per group: label, attribute values, size, prevalence or mean, status.
    settings : dict
        The audit's parameters (including the seed that reproduces it) and run time.
    """

    table: pd.DataFrame
    groups: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        s = self.settings
        return (f"FairUseReport({len(self.groups)} groups, metrics={s.get('metrics')}, "
                f"n_boot={s.get('n_boot')}, alpha={s.get('alpha')}, "
                f"correction={s.get('correction')!r})\n{self.summary().to_string()}")

    def summary(self) -> AuditSummary:
        """Per group and metric: gain, the bound the verdict used, corrected p, verdict.

        Returns
        -------
        AuditSummary
            A DataFrame (index ``(condition, group, metric)``, rationality and worst-envy
            rows) that prints as a table fitting 100 columns: ``print(report.summary())``.
            See :meth:`verdict_counts` for counts.
        """
        rows = self.table[self.table["condition"].isin(_CONDITIONS)]
        metric_order = {m: i for i, m in enumerate(self.settings.get("metrics", []))}
        group_order = {g: i for i, g in enumerate(dict.fromkeys(rows["group"]))}
        rows = rows.assign(_c=rows["condition"].map({c: i for i, c in enumerate(_CONDITIONS)}),
                           _g=rows["group"].map(group_order),
                           _m=rows["metric"].map(metric_order)).sort_values(
            ["_c", "_g", "_m"], kind="stable")
        records = []
        for r in rows.itertuples(index=False):
            side, bound = _used_bound(r.verdict, r.lower_bound, r.upper_bound)
            level = (r.upper_level if side == "<=" else r.lower_level) if side else np.nan
            records.append({"condition": r.condition, "group": r.group, "metric": r.metric,
                            "comparison": r.comparison, "gain": r.gain, "side": side,
                            "bound": bound, "level": level,
                            "p_adj": _used_p(r.verdict, r.p_violation_adj, r.p_benefit_adj),
                            "verdict": r.verdict})
        columns = ["condition", "group", "metric", "comparison", "gain", "side", "bound",
                   "level", "p_adj", "verdict"]
        out = AuditSummary(pd.DataFrame(records, columns=columns)
                           .set_index(["condition", "group", "metric"]))
        out.header = self._header_lines()
        out.footer = self._footer_lines(rows)
        out.short_labels = self.settings.get("short_labels", {})
        return out

    def _header_lines(self) -> list[str]:
        s = self.settings
        corr = {"holm": "Holm", "bonferroni": "Bonferroni", None: "no"}.get(
            s.get("correction"), s.get("correction"))
        names = ", ".join(map(str, s.get("group_names", [])))
        return [f"Fair-use audit: {s.get('n_rows', '?')} rows, {len(self.groups)} groups "
                f"({names}), metrics {', '.join(s.get('metrics', []))}",
                f"one-sided tests at alpha {format_number(s.get('alpha'))} ("
                + ("McNemar/DeLong where they apply, else " if s.get("test") == "exact" else "")
                + f"bootstrap, {s.get('n_boot')} resamples, seed {s.get('random_state')}), "
                f"{corr} correction across groups",
                "gain > 0: the own report does better.  bound: one-sided confidence bound on the gain",
                "at the corrected level the verdict used (benefit: lower bound > 0; violation: upper < 0)"]

    def _footer_lines(self, rows: pd.DataFrame) -> list[str]:
        notes = []
        gen = self.settings.get("system_generic")
        if gen is not None:
            total = self.settings.get("system_groups", len(self.groups))
            if len(gen) == total:
                notes.append(f"the system serves all {total} groups the generic model: every rationality "
                             "row compares the generic model with itself (cannot change)")
            elif gen:
                shown = "; ".join(map(str, gen[:8])) + (f" and {len(gen) - 8} more" if len(gen) > 8 else "")
                notes.append(f"the system serves {len(gen)} of {total} groups the generic model ({shown}): "
                             "their rationality rows compare the generic model with itself")
            else:
                notes.append(f"the system serves every one of the {total} groups a personalized model")
        fixed = rows[rows["verdict"] == CANNOT_CHANGE]
        if len(fixed):
            metrics = ", ".join(dict.fromkeys(fixed["metric"]))
            notes.append(f"cannot change ({metrics}): both score the group's rows alike for this "
                         "metric (for AUC: the same ranking, as when a report only shifts an "
                         "intercept), so the gain is 0 on every resample; not tested")
        n_boot = self.settings.get("n_boot")
        too_few = single_class = False
        # single-class resamples matter only for metrics that need both classes (AUC, and
        # users' metrics, which may): the built-in additive metrics and ECE never do
        both_classes = ~rows["metric"].isin(["error", "log_loss", "brier", "ece", "mse", "mae", "poisson_deviance"]).to_numpy()
        for side in ("lower", "upper"):
            bound = rows[f"{side}_bound"].to_numpy(dtype=float)
            level = rows[f"{side}_level"].to_numpy(dtype=float)
            infinite = np.isinf(bound)
            # the smallest bootstrap p-value, 1 / (B + 1), cannot reach the level: too few
            # resamples; otherwise the resamples that drew a single class (AUC) filled the tail
            unreachable = (1.0 / (n_boot + 1.0) > (1.0 - level) * (1 + 1e-9)) if n_boot else True
            too_few |= bool((infinite & unreachable).any())
            single_class |= bool((infinite & ~unreachable & both_classes).any())
        if too_few:
            notes.append(f"bound inf: with {n_boot} resamples no bootstrap "
                         "p-value can be as small as the corrected level, so the test cannot "
                         "reject; use more resamples (n_boot)")
        if single_class:
            notes.append("bound inf: too many resamples drew a single class, on which AUC does "
                         "not exist; they count for neither direction, so the test cannot reject "
                         "(a class with very few rows in the group)")
        if self.settings.get("reports") == []:
            notes.append("envy: not audited (no scores under other reports were given: "
                         "scores_as_reported=)")
        if (rows["verdict"] == TOO_SMALL).any():
            notes.append(f"too small to judge: fewer than {self.settings.get('min_group_size')} "
                         "rows, or a single class for AUC")
        return ([""] + [_wrap("note: " + n) for n in notes]) if notes else []

    def verdict_counts(self) -> pd.DataFrame:
        """Count verdicts per condition and metric.

        Returns
        -------
        pandas.DataFrame
            Index ``(condition, metric)`` for the group-level conditions
            (``rationality`` and ``envy``), one column per verdict of :data:`VERDICTS`.
        """
        rows = self.table[self.table["condition"].isin(_CONDITIONS)]
        conditions = [c for c in _CONDITIONS if c in set(rows["condition"])]
        index = pd.MultiIndex.from_product([conditions, self.settings.get("metrics", [])],
                                           names=["condition", "metric"])
        counts = (rows.groupby(["condition", "metric"])["verdict"].value_counts()
                  .unstack(fill_value=0))
        return counts.reindex(index=index, columns=list(VERDICTS), fill_value=0).astype(int)

    def to_markdown(self, *, pairs: bool = False, digits: int = DIGITS) -> str:
        """The report as GitHub-flavoured markdown (no extra dependency).

        Parameters
        ----------
        pairs : bool, default False
            Also list every (group, other report) comparison.
        digits : int, default 3
            Significant digits of the numbers (:func:`format_number`).

        Returns
        -------
        str
        """
        s = self.settings
        lines = ["# Fair-use audit", "", *[h for h in self._header_lines()], "",
                 "## Verdict counts", "",
                 _markdown_table(self.verdict_counts().reset_index(), digits), "",
                 "## Groups", "", _markdown_table(self.groups, digits), ""]
        sections = [("rationality", "## Rationality: own report vs the generic model"),
                    ("envy", "## Envy: own report vs the worst other report")]
        if pairs:
            sections.append(("envy_pair", "## Envy: own report vs each other report"))
        level = format_number(s.get("ci_level"), digits)
        for condition, title in sections:
            part = self.table[self.table["condition"] == condition]
            if not len(part):
                continue
            shown = pd.DataFrame({
                "group": part["group"], "metric": part["metric"],
                "comparison": part["comparison"], "n": part["n"], "value": part["value"],
                "baseline": part["baseline"], "gain": part["gain"],
                "bound": [_bound_text(r, digits) for r in part.itertuples(index=False)],
                "bound level": part.apply(lambda r: _used_level(r), axis=1),
                "p_adj": [_used_p(r.verdict, r.p_violation_adj, r.p_benefit_adj)
                          for r in part.itertuples(index=False)],
                "verdict": part["verdict"],
                f"{level} interval (two-sided)": [
                    "" if math.isnan(r.ci_low) else
                    f"[{format_number(r.ci_low, digits)}, {format_number(r.ci_high, digits)}]"
                    for r in part.itertuples(index=False)]})
            lines += [title, "", _markdown_table(shown, digits), ""]
        return "\n".join(lines)

    def to_json(self, *, indent: int | None = None, digits: int | None = DIGITS) -> str:
        """The settings, groups and table as JSON.

        Parameters
        ----------
        indent : int, optional
            Passed to :func:`json.dumps`.
        digits : int or None, default 3
            Significant digits of the numbers, as in the terminal and markdown views
            (:func:`format_number`); ``None`` keeps full precision.  Missing values
            (NaN) and infinite bounds (too few resamples for the level) become ``null``.

        Returns
        -------
        str
        """
        payload = {"settings": self.settings,
                   "groups": _records(self.groups),
                   "table": _records(self.table)}
        return json.dumps(_round(payload, digits), indent=indent, default=_json_default,
                          allow_nan=False)

    def plot(self, metric: str | list[str] | None = None, *, ax: Any = None):
        """Plot each group's gain with the bound its verdict used, and an envy heat map.

        Needs matplotlib (the ``plot`` extra: ``pip install 'fairuse_opt[plot]'``).

        Parameters
        ----------
        metric : str or list of str, optional
            Metric(s) to show, one row of panels each; default every audited metric.
        ax : matplotlib Axes or array of Axes, optional
            Where to draw; default a new figure (through ``matplotlib.pyplot``).  The grid
            of the plot has shape ``(n_metrics, 2)``: per metric, the rationality panel then
            the envy panel.  Give an array of Axes of that shape (a flat array of 2 Axes
            for one metric, as ``plt.subplots(1, 2)`` returns), or a single Axes when one
            metric is shown: it receives that metric's rationality panel only.  The envy
            panels take their colour bar from the space of their Axes.  The legend goes
            below the (sub)figure of the first Axes when its layout is constrained
            (``layout="constrained"``), otherwise inside the first rationality panel.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn on (the figure of ``ax`` when given).
            Per metric, left: each group's rationality gain (dot) and the one-sided
            confidence bound the verdict used (bar from the bound, ``|``, to the gain),
            coloured by verdict; right: the envy gap of each group (rows) under each other
            report (columns), violations marked ``x``, "cannot change" marked ``=``.

        Raises
        ------
        InputError
            A metric that is not in the report; ``ax`` of the wrong shape or not Axes.

        Examples
        --------
        >>> fig, axes = plt.subplots(1, 2, figsize=(12, 4))       # doctest: +SKIP
        >>> report.plot("log_loss", ax=axes)                       # doctest: +SKIP
        >>> report.plot("log_loss", ax=plt.gca())  # the rationality panel only  # doctest: +SKIP
        """
        try:
            import matplotlib.pyplot as plt
            from matplotlib.axes import Axes
            from matplotlib.lines import Line2D
        except ImportError as exc:
            raise ImportError(MSG_NEED_MATPLOTLIB) from exc
        known = self.settings.get("metrics", [])
        metrics = list(known) if metric is None else [metric] if isinstance(metric, str) \
            else list(metric)
        for name in metrics:
            if name not in known:
                raise InputError(MSG_PLOT_METRIC.format(name=name, known=known))
        short = self.settings.get("short_labels", {})
        grid = _plot_grid(ax, len(metrics), Axes)
        if grid is None:
            n_groups = max(int((self.table["condition"] == "rationality").sum()
                               // max(len(known), 1)), 2)
            fig, grid = plt.subplots(len(metrics), 2, squeeze=False,
                                     figsize=(13, 0.9 + len(metrics) * (1.3 + 0.4 * n_groups)),
                                     layout="constrained", width_ratios=(1, 1.15))
        used: set[str] = set()
        for (ax_gain, ax_envy), name in zip(grid, metrics):
            used |= _plot_rationality(ax_gain, self.table, name, short)
            if ax_envy is not None:
                _plot_envy(ax_envy.figure, ax_envy, self.table, name, short)
        handles = [Line2D([], [], color=_COLOURS[v], marker="o", lw=2, label=v)
                   for v in VERDICTS if v in used]
        handles.append(Line2D([], [], color="black", marker="|", ls="none", ms=10, mew=2,
                              label="one-sided bound used by the verdict (corrected level)"))
        if ax is None:
            fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4),
                       fontsize="small", frameon=False)
            return fig
        from matplotlib.layout_engine import ConstrainedLayoutEngine

        first = grid[0][0]
        if isinstance(first.figure.get_layout_engine(), ConstrainedLayoutEngine):
            first.figure.legend(handles=handles, loc="outside lower center",
                                ncol=min(len(handles), 4), fontsize="small", frameon=False)
        else:  # no layout engine to make room outside the panels
            first.legend(handles=handles, loc="best", fontsize="x-small", framealpha=0.8)
        return _root_figure(first)


def _plot_grid(ax: Any, n_metrics: int, axes_type: type) -> list | None:
    """``ax`` as ``n_metrics`` pairs ``(rationality Axes, envy Axes or None)``; None for none."""
    if ax is None:
        return None
    expected = f"({n_metrics}, 2)"
    if isinstance(ax, axes_type):
        if n_metrics != 1:
            raise InputError(MSG_PLOT_AX.format(expected=expected,
                                                got=f"one Axes for {n_metrics} metrics"))
        return [(ax, None)]
    arr = np.asarray(ax, dtype=object)
    if arr.shape == (2,) and n_metrics == 1:
        arr = arr.reshape(1, 2)
    if arr.shape != (n_metrics, 2) or not all(isinstance(a, axes_type) for a in arr.flat):
        kinds = sorted({type(a).__name__ for a in arr.flat})
        got = f"shape {arr.shape}" + ("" if not arr.size else f" of {', '.join(kinds)}")
        raise InputError(MSG_PLOT_AX.format(expected=expected, got=got))
    return [tuple(row) for row in arr]


def _root_figure(ax: Any) -> Any:
    """The top-level Figure of ``ax`` (through any subfigures)."""
    fig = ax.figure
    while getattr(fig, "figure", fig) is not fig:
        fig = fig.figure
    return fig


def _plot_rationality(ax, table: pd.DataFrame, metric: str, short: dict) -> set[str]:
    rat = table[(table["metric"] == metric) & (table["condition"] == "rationality")]
    pos = np.arange(len(rat))[::-1]
    used = set()
    for y0, r in zip(pos, rat.itertuples(index=False)):
        colour = _COLOURS[r.verdict]
        used.add(r.verdict)
        side, bound = _used_bound(r.verdict, r.lower_bound, r.upper_bound)
        if side and np.isfinite(bound):
            ax.plot([bound, r.gain], [y0, y0], color=colour, lw=2)
            ax.plot([bound], [y0], marker="|", ms=12, mew=2, color=colour)
        ax.plot([r.gain], [y0], marker="o", color=colour, ls="none")
    from matplotlib.ticker import MaxNLocator

    ax.axvline(0.0, color="black", lw=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.set_yticks(pos, [short.get(g, g) for g in rat["group"]])
    ax.set_xlabel(f"gain in {metric} over the generic model (> 0: own report better)")
    ax.set_title(f"Rationality, {metric}")
    ax.grid(axis="x", alpha=0.3)
    return used


def _plot_envy(fig, ax, table: pd.DataFrame, metric: str, short: dict) -> None:
    pairs = table[(table["metric"] == metric) & (table["condition"] == "envy_pair")]
    ax.set_title(f"Envy, {metric}")
    if not len(pairs):
        ax.text(0.5, 0.5, "no other report to compare", ha="center", va="center")
        ax.set_axis_off()
        return
    groups = list(dict.fromkeys(pairs["group"]))
    reports = list(dict.fromkeys(list(groups) + list(pairs["comparison"])))
    reports = [r for r in reports if r in set(pairs["comparison"])]
    grid = (pairs.pivot(index="group", columns="comparison", values="gain")
            .reindex(index=groups, columns=reports))
    values = grid.to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    lim = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    image = ax.imshow(values, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    bar = fig.colorbar(image, ax=ax, fraction=0.06, pad=0.02)
    bar.set_label(f"gap in {metric}\n(> 0: own report better)", fontsize="small")
    marks = {VIOLATION: "x", CANNOT_CHANGE: "=", BENEFIT: "+"}
    for r in pairs.itertuples(index=False):
        if r.verdict in marks:
            ax.text(reports.index(r.comparison), groups.index(r.group), marks[r.verdict],
                    ha="center", va="center", fontsize="large", fontweight="bold")
    ax.set_xticks(range(len(reports)), [short.get(r, r) for r in reports], rotation=30,
                  ha="right")
    ax.set_yticks(range(len(groups)), [short.get(g, g) for g in groups])
    ax.set_xlabel("report  (x violation, + benefit, = cannot change)")


def _used_level(row) -> float:
    side, _ = _used_bound(row["verdict"], row["lower_bound"], row["upper_bound"])
    if side == "<=":
        return row["upper_level"]
    return row["lower_level"] if side else np.nan


def _bound_text(row, digits: int) -> str:
    side, bound = _used_bound(row.verdict, row.lower_bound, row.upper_bound)
    return f"{side} {format_number(bound, digits)}" if side and not math.isnan(bound) else ""


def _wrap(text: str, width: int = WIDTH) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width=width, subsequent_indent="  "))


def _markdown_table(frame: pd.DataFrame, digits: int) -> str:
    def cell(v):
        return format_number(v, digits).replace("|", "\\|")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False, name=None)]
    return "\n".join([header, rule, *body])


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _round(value: Any, digits: int | None) -> Any:
    """Numbers of a JSON payload through :func:`format_number`; NaN and inf to ``None``."""
    if isinstance(value, dict):
        return {str(k): _round(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v, digits) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return None
        return v if digits is None else float(format_number(v, digits))
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, set):
        return list(value)
    return str(value)
