"""The result of an audit: a tidy table and ways to read it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._errors import MSG_NEED_MATPLOTLIB, MSG_PLOT_METRIC
from ..exceptions import InputError

__all__ = ["FairUseReport", "VERDICTS"]

#: Verdicts, in the order the summary lists them.
VERDICTS = ("benefit", "no significant gain", "violation", "too small to judge")
_CONDITIONS = ("rationality", "envy")
_COLOURS = {"benefit": "tab:green", "no significant gain": "tab:gray",
            "violation": "tab:red", "too small to judge": "lightgray"}


@dataclass(repr=False)
class FairUseReport:
    """Per-group fair-use audit of a personalized model (see :func:`audit`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per group, metric and comparison.  Columns: ``group`` (label such as
        ``"sex=F, age=old"``), ``metric``, ``condition`` (``"rationality"``: own report
        vs the generic model; ``"envy_pair"``: own report vs one other report;
        ``"envy"``: own report vs the worst other report), ``comparison`` (``"generic"``
        or the other report), ``n``, ``n_pos`` and ``prevalence`` (classification) or
        ``y_mean`` (regression), ``value`` (metric under the own report), ``baseline``
        (metric of the comparison), ``gain`` (positive = own report better),
        ``ci_low``/``ci_high`` (bootstrap interval of the gain), ``p_violation``,
        ``p_benefit`` (one-sided, raw), ``p_violation_adj``, ``p_benefit_adj``
        (corrected), ``verdict`` and ``test`` (``"bootstrap"``, ``"mcnemar"``,
        ``"delong"``).
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

    def summary(self) -> pd.DataFrame:
        """Count verdicts per condition and metric.

        Returns
        -------
        pandas.DataFrame
            Index ``(condition, metric)`` for the group-level conditions
            (``rationality`` and ``envy``), one column per verdict.
        """
        rows = self.table[self.table["condition"].isin(_CONDITIONS)]
        conditions = [c for c in _CONDITIONS if c in set(rows["condition"])]
        index = pd.MultiIndex.from_product([conditions, self.settings.get("metrics", [])],
                                           names=["condition", "metric"])
        counts = (rows.groupby(["condition", "metric"])["verdict"].value_counts()
                  .unstack(fill_value=0))
        return counts.reindex(index=index, columns=list(VERDICTS), fill_value=0).astype(int)

    def to_markdown(self, *, pairs: bool = False, digits: int = 3) -> str:
        """The report as GitHub-flavoured markdown (no extra dependency).

        Parameters
        ----------
        pairs : bool, default False
            Also list every (group, other report) comparison.
        digits : int, default 3
            Significant digits of the numbers.

        Returns
        -------
        str
        """
        s = self.settings
        lines = ["# Fair-use audit", "",
                 f"{s.get('task', '')} audit of {s.get('n_rows', '?')} rows, "
                 f"{len(self.groups)} groups; metrics {', '.join(s.get('metrics', []))}; "
                 f"{s.get('n_boot')} stratified bootstrap resamples (seed "
                 f"{s.get('random_state')}); one-sided tests at alpha = {s.get('alpha')}, "
                 f"correction {s.get('correction')}; {s.get('ci_level')} intervals; "
                 f"p-values: {s.get('test')}.", "",
                 "Gains are positive when the group's own report does better than the "
                 "comparison.", "", "## Summary", "",
                 _markdown_table(self.summary().reset_index(), digits), "",
                 "## Groups", "", _markdown_table(self.groups, digits), ""]
        columns = ["group", "metric", "comparison", "n", "value", "baseline", "gain",
                   "ci_low", "ci_high", "p_violation_adj", "p_benefit_adj", "verdict"]
        sections = [("rationality", "## Rationality: own report vs the generic model"),
                    ("envy", "## Envy: own report vs the worst other report")]
        if pairs:
            sections.append(("envy_pair", "## Envy: own report vs each other report"))
        for condition, title in sections:
            part = self.table[self.table["condition"] == condition]
            if len(part):
                lines += [title, "", _markdown_table(part[columns], digits), ""]
        return "\n".join(lines)

    def to_json(self, *, indent: int | None = None) -> str:
        """The settings, groups and table as JSON (NaN becomes ``null``).

        Returns
        -------
        str
        """
        payload = {"settings": self.settings,
                   "groups": _records(self.groups),
                   "table": _records(self.table)}
        return json.dumps(payload, indent=indent, default=_json_default, allow_nan=False)

    def plot(self, metric: str | None = None):
        """Plot gains with intervals coloured by verdict, and an envy heatmap.

        Needs matplotlib (the ``plot`` extra: ``pip install 'fairuse_opt[plot]'``).

        Parameters
        ----------
        metric : str, optional
            Metric to show; default the first audited metric.

        Returns
        -------
        matplotlib.figure.Figure
            Left: each group's rationality gain and interval; right: the envy gap of
            each group (rows) under each other report (columns), violations marked ✕.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError(MSG_NEED_MATPLOTLIB) from exc
        known = self.settings.get("metrics", [])
        metric = known[0] if metric is None else metric
        if metric not in known:
            raise InputError(MSG_PLOT_METRIC.format(name=metric, known=known))
        table = self.table[self.table["metric"] == metric]
        rat = table[table["condition"] == "rationality"]
        pairs = table[table["condition"] == "envy_pair"]
        fig, (ax_gain, ax_envy) = plt.subplots(
            1, 2, figsize=(12, 1.5 + 0.45 * max(len(rat), 2)), layout="constrained")

        pos = np.arange(len(rat))[::-1]
        for verdict in VERDICTS:
            sel = (rat["verdict"] == verdict).to_numpy()
            if not sel.any():
                continue
            gain = rat["gain"].to_numpy()[sel]
            err = np.vstack([gain - rat["ci_low"].to_numpy()[sel],
                             rat["ci_high"].to_numpy()[sel] - gain])
            ax_gain.errorbar(gain, pos[sel], xerr=np.nan_to_num(err), fmt="o", capsize=3,
                             color=_COLOURS[verdict], label=verdict)
        ax_gain.axvline(0.0, color="black", lw=0.8)
        ax_gain.set_yticks(pos, rat["group"])
        ax_gain.set_xlabel(f"gain in {metric} over the generic model (positive = helps)")
        ax_gain.set_title("Rationality")
        ax_gain.legend(loc="best", fontsize="small")

        if len(pairs):
            groups = list(dict.fromkeys(pairs["group"]))
            reports = list(dict.fromkeys(list(rat["group"]) + list(pairs["comparison"])))
            reports = [r for r in reports if r in set(pairs["comparison"])]
            grid = (pairs.pivot(index="group", columns="comparison", values="gain")
                    .reindex(index=groups, columns=reports))
            values = grid.to_numpy(dtype=np.float64)
            finite = values[np.isfinite(values)]
            lim = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
            image = ax_envy.imshow(values, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
            fig.colorbar(image, ax=ax_envy, label="envy gap (positive = own report better)")
            flagged = pairs[pairs["verdict"] == "violation"]
            for _, row in flagged.iterrows():
                ax_envy.text(reports.index(row["comparison"]), groups.index(row["group"]), "✕",
                             ha="center", va="center")
            ax_envy.set_xticks(range(len(reports)), reports, rotation=45, ha="right")
            ax_envy.set_yticks(range(len(groups)), groups)
            ax_envy.set_xlabel("report")
        else:
            ax_envy.text(0.5, 0.5, "no other report to compare", ha="center", va="center")
            ax_envy.set_axis_off()
        ax_envy.set_title("Envy")
        return fig


def _format(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}g}"
    return str(value).replace("|", "\\|")


def _markdown_table(frame: pd.DataFrame, digits: int) -> str:
    header = "| " + " | ".join(_format(c, digits) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_format(v, digits) for v in row) + " |"
            for row in frame.itertuples(index=False, name=None)]
    return "\n".join([header, rule, *body])


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{str(k): (None if isinstance(v, float) and math.isnan(v) else v)
             for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)
