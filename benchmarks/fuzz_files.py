"""Fuzzing certificates and model files (issue 24): the long run, and the generators that
``tests/test_fuzz_files.py`` runs briefly.

Two areas, every case seeded (``--seed``; case ``i`` draws from ``seed`` and ``i`` only, so a
failing case is reproduced by its number):

* **certificates**: random fits with numeric stress (feature offsets to 1e12, scales 1e-8 to
  1e8, duplicate and constant columns, more features than rows, one-row and one-class groups,
  30 tiny groups, extreme sample weights, every encoding, margins, fallbacks, external
  generic models).  Every certificate is recomputed independently in long double
  (``numpy.longdouble``, 64-bit mantissa on x86-64) from ``coef_`` and ``intercept_`` and the
  raw rows: a *lying* certificate is one that says ``verified`` while some guaranteed
  constraint is violated by more than its tolerance in long double.  The model is then
  written and read back (``model_io``), recomputed again, and ``certificate_.verify`` run on
  the loaded model.
* **model files**: estimator and system files written by the library, mutated field by field
  (every path of the document: deleted, replaced by values of other types, numbers nudged,
  lists shortened, duplicated, reordered, strings changed, values swapped between fields) and
  as text (truncated, bytes flipped, a byte-order mark, ``1e400``, ``01``, ``NaN`` tokens, a
  key given twice, UTF-16).  A mutated file must either be refused with an ``InputError``
  whose message names the file (and is under 2,000 characters), or load into a model that
  scores exactly as the document says (the scoring rule of ``docs/model-file.md``, by hand),
  whose certificate agrees with itself (``verified`` implies no violation in its table),
  and that writes a file that loads into the same model.  Anything else is a crash or a
  silent wrong result.

A case that takes more than ``HANG_SECONDS`` of CPU is a hang.  Usage::

    python benchmarks/fuzz_files.py [--seed 0] [--certificates 600] [--files 4000] \\
        [--out benchmarks/results/fuzz_files.md]

writes the counts per area to ``--out`` (markdown, with the command) and to the same name with
``.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import resource
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

#: CPU seconds after which a case counts as a hang (the issue's bar: 60 s under 5,000 rows).
HANG_SECONDS = 60.0
#: Longest error message accepted from the loader.
MAX_MESSAGE = 2000
LD = np.longdouble


# =========================================================================== outcomes
@dataclass
class Tally:
    """Counts of one area and the first few examples of each bad outcome."""

    area: str
    counts: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)
    max_seconds: float = 0.0
    max_message: int = 0
    worst: dict = field(default_factory=dict)
    keep: int = 5

    def add(self, outcome: str, detail: str | None = None, n: int = 1) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + n
        if detail is not None and len(self.examples.setdefault(outcome, [])) < self.keep:
            self.examples[outcome].append(detail[:600])

    def note_max(self, name: str, value: float) -> None:
        if np.isfinite(value) and value > self.worst.get(name, -np.inf):
            self.worst[name] = float(value)

    def as_dict(self) -> dict:
        return {"area": self.area, "counts": dict(sorted(self.counts.items())), "examples": self.examples,
                "max_seconds": round(self.max_seconds, 3), "max_message": self.max_message,
                "worst": self.worst}


#: Outcomes that must be zero.
BAD = ("crash", "hang", "lying certificate", "silent wrong", "unnamed refusal", "long message",
       "loaded file fails to write", "rewrite differs", "verify disagrees", "table disagrees")


# =========================================================================== certificates
def _cert_problem(seed: int) -> dict:
    """A random fit with numeric stress: data, parameters, and what was drawn."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from fairuse_opt import FairUseClassifier, FairUseRegressor

    rng = np.random.default_rng([seed, 24])
    task = "classification" if rng.random() < 0.6 else "regression"
    shape = rng.choice(["plain", "wide", "many-groups", "tiny"], p=[0.6, 0.12, 0.13, 0.15])
    if shape == "wide":
        n, d = int(rng.integers(12, 30)), int(rng.integers(30, 60))
    elif shape == "tiny":
        n, d = int(rng.integers(6, 20)), int(rng.integers(0, 3))
    elif shape == "many-groups":
        n, d = int(rng.integers(150, 400)), int(rng.integers(1, 4))
    else:
        n, d = int(rng.integers(40, 400)), int(rng.integers(0, 6))
    Z = rng.normal(size=(n, d))
    X = Z.copy()
    notes = [shape]
    for j in range(d):
        kind = rng.choice(["plain", "scaled", "offset", "both"], p=[0.4, 0.2, 0.25, 0.15])
        if kind in ("scaled", "both"):
            X[:, j] *= 10.0 ** rng.uniform(-8, 8)
        if kind in ("offset", "both"):
            X[:, j] += rng.choice([-1, 1]) * 10.0 ** rng.uniform(0, 12)
        if kind != "plain":
            notes.append(kind)
    if d >= 2 and rng.random() < 0.15:
        X[:, 1] = X[:, 0]
        notes.append("duplicate")
    if d >= 1 and rng.random() < 0.1:
        X[:, -1] = rng.choice([0.0, 3.5, 1e9])
        notes.append("constant")
    n_attr = int(rng.integers(1, 3))
    if shape == "many-groups":
        sizes = [30] if n_attr == 1 else [6, 5]
    else:
        sizes = [int(rng.integers(1, 4)) for _ in range(n_attr)]
    groups = pd.DataFrame({f"g{a}": rng.integers(0, s, n) for a, s in enumerate(sizes)})
    if rng.random() < 0.2:  # text and boolean group values
        groups["g0"] = np.where(groups["g0"] % 2 == 0, "even", "odd").astype(object)
        notes.append("text groups")
    effect = rng.normal(size=n_attr) @ groups.apply(lambda c: pd.factorize(c)[0]).to_numpy().T.astype(float) \
        if n_attr else np.zeros(n)
    beta = rng.normal(size=d)
    s = Z @ beta + effect + rng.normal(scale=0.3)
    if task == "classification":
        y = (s + rng.logistic(size=n) > 0).astype(int)
        if rng.random() < 0.15:  # a group of one class
            first = groups.iloc[0].to_numpy()
            mask = (groups.to_numpy() == first).all(axis=1)
            y[mask] = 1
            notes.append("one-class group")
        if len(np.unique(y)) < 2:
            y[0] = 1 - y[0]
    else:
        y = s + rng.normal(size=n) * 10.0 ** rng.uniform(-2, 1)
        if rng.random() < 0.15:
            y = y * 10.0 ** rng.uniform(-6, 6) + rng.choice([0.0, 1e6])
            notes.append("scaled y")
    w = None
    if rng.random() < 0.3:
        w = 10.0 ** rng.uniform(-6, 6, size=n) if rng.random() < 0.5 else rng.exponential(size=n)
        notes.append("weights")
    encoding = rng.choice(["intersectional", "onehot", "decoupled", "none"], p=[0.45, 0.2, 0.25, 0.1])
    params: dict[str, Any] = {
        "encoding": str(encoding),
        "group_reg": str(rng.choice(["set", "penalty"], p=[0.75, 0.25])),
        "fair_use": rng.choice(["both", "rationality", "envy_freeness", None], p=[0.5, 0.25, 0.1, 0.15]),
        "l2": float(10.0 ** rng.uniform(-5, 0)),
        "on_infeasible": str(rng.choice(["raise", "generic"])),
        "max_iter": 5,
        "min_group_size": 1,
    }
    margin_kind = rng.choice(["zero", "number", "se", "mapping"], p=[0.5, 0.25, 0.15, 0.1])
    if margin_kind == "number":
        params["margin"] = float(10.0 ** rng.uniform(-4, -1))
    elif margin_kind == "se":
        params["margin"] = "se:1"
    elif margin_kind == "mapping" and params["encoding"] != "none":
        keys = sorted({tuple(r) for r in groups.itertuples(index=False, name=None)}, key=repr)
        params["margin"] = {k: float(rng.choice([0.0, 0.01, 0.5])) for k in keys}
    generic_kind = rng.choice(["internal", "sklearn", "library"], p=[0.75, 0.15, 0.1])
    if generic_kind == "sklearn" and d == 0:
        generic_kind = "internal"  # (scikit-learn fits no model on zero features)
    if generic_kind == "sklearn":
        params["generic"] = (LogisticRegression(C=float(10.0 ** rng.uniform(-2, 2))).fit(X, y)
                             if task == "classification" else LinearRegression().fit(X, y))
    elif generic_kind == "library":
        cls = FairUseClassifier if task == "classification" else FairUseRegressor
        params["generic"] = cls(encoding="none", l2=float(10.0 ** rng.uniform(-3, 0))).fit(X, y, sample_weight=w)
    notes += [str(encoding), f"generic={generic_kind}", f"margin={margin_kind}"]
    return {"task": task, "X": X, "y": y, "groups": groups, "w": w, "params": params, "notes": notes}


def longdouble_losses(est: Any, X: np.ndarray, y: np.ndarray, groups: pd.DataFrame, w: np.ndarray | None,
                      generic: Any = None):
    """``(L, L0, keys)``: every group's weighted mean loss under every report, and under the
    generic model, recomputed in long double from ``coef_``, ``intercept_`` and the raw rows.
    The generic model is recomputed from its ``coef_`` the same way when it is a linear
    model of this library (the internal one, or a ``FairUseClassifier(encoding="none")``
    passed as ``generic=``); another ``generic=`` model (``generic``, or ``est.generic``) is
    what its predictions say (float64: its output is the model), as the certificate takes it."""
    XL = np.asarray(X, dtype=LD)
    n = XL.shape[0]
    wL = np.ones(n, dtype=LD) if w is None else np.asarray(w, dtype=LD)
    classification = hasattr(est, "predict_proba")
    if classification:
        yL = (np.asarray(y) == est.classes_[1]).astype(LD)
    else:
        yL = np.asarray(y, dtype=LD)

    def row_loss(s):
        if classification:
            return np.logaddexp(LD(0), s) - yL * s
        return (yL - s) ** 2

    def score(coef, b):
        coef = np.asarray(coef, dtype=LD)
        return (XL @ coef if XL.shape[1] else np.zeros(n, dtype=LD)) + LD(b)

    keys = list(est.groups_) if est.group_index_ is not None else [()]
    if est.group_index_ is not None:
        rows = [tuple(r) for r in groups[list(est.group_names_)].itertuples(index=False, name=None)]
        code_of = {k: i for i, k in enumerate(keys)}
        codes = np.array([code_of[r] for r in rows])
    else:
        codes = np.zeros(n, dtype=np.int64)
    G = len(keys)
    wsum = np.array([wL[codes == g].sum() for g in range(G)], dtype=LD)
    L = np.empty((G, G), dtype=LD)
    for r in range(G):
        lr = row_loss(score(est.coef_[r], est.intercept_[r]))
        for g in range(G):
            m = codes == g
            L[g, r] = (wL[m] * lr[m]).sum() / wsum[g]
    external = generic if generic is not None else getattr(est, "generic", None)
    linear = library_linear(external if external is not None else est.generic_)
    if linear is not None:
        l0 = row_loss(score(linear.coef_[0], linear.intercept_[0]))
    elif classification:  # P(y = 1) clipped to [1e-15, 1 - 1e-15], as the library (and log_loss) take it
        p = np.clip(np.asarray(external.predict_proba(X), dtype=np.float64)[:, 1], 1e-15, 1 - 1e-15).astype(LD)
        l0 = -(yL * np.log(p) + (1 - yL) * np.log1p(-p))
    else:
        l0 = (yL - np.asarray(external.predict(X), dtype=LD)) ** 2
    L0 = np.array([(wL[codes == g] * l0[codes == g]).sum() / wsum[g] for g in range(G)], dtype=LD)
    return L, L0, keys


def library_linear(model: Any) -> Any:
    """``model`` when it is a fitted generic linear model of this library, else None."""
    from fairuse_opt.estimators import _BaseFairUse

    if isinstance(model, _BaseFairUse) and hasattr(model, "coef_") and model.group_index_ is None:
        return model
    return None


def rounding_room(est: Any, X: np.ndarray, y: np.ndarray, groups: pd.DataFrame, w: np.ndarray | None,
                  keys: list, coef: np.ndarray, intercept: np.ndarray, L_row: Any = None) -> np.ndarray:
    """How far a group's mean loss computed in float64 may be from the exact one (per
    group, for the served model of each group ``coef[g]``, ``intercept[g]``): the rounding of
    the score ``intercept + coef . x`` (``gamma_{d+2} (|coef| . |x| + |intercept|)`` per row,
    carried through the loss's slope), plus the rounding of the loss and of the weighted sum."""
    n, d = X.shape
    u = np.finfo(np.float64).eps / 2
    gamma = (d + 2) * u / (1 - (d + 2) * u)
    wv = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    if est.group_index_ is not None:
        code_of = {k: i for i, k in enumerate(keys)}
        codes = np.array([code_of[tuple(r)] for r in groups[list(est.group_names_)].itertuples(index=False, name=None)])
    else:
        codes = np.zeros(n, dtype=np.int64)
    classification = hasattr(est, "predict_proba")
    out = np.zeros(len(keys))
    for g in range(len(keys)):
        m = codes == g
        Xg = np.abs(X[m])
        mag = (Xg @ np.abs(coef[g]) if d else 0.0) + abs(intercept[g])
        e = gamma * mag
        s = (X[m] @ coef[g] if d else 0.0) + intercept[g]
        if classification:
            slope = 1.0
            loss = np.logaddexp(0.0, s)
        else:
            yv = np.asarray(y, dtype=np.float64)[m]
            slope = 2.0 * np.abs(yv - s) + e
            loss = (yv - s) ** 2
        total = np.sum(wv[m] * (slope * e + 4 * u * np.abs(loss))) / np.sum(wv[m])
        out[g] = total + (m.sum() + 2) * u * float(np.sum(wv[m] * np.abs(loss)) / np.sum(wv[m]))
    return out


def certificate_lies(cert: Any, L, L0, same_as_generic=None) -> tuple[float, list[str]]:
    """Largest violation (long double) of what a certificate guarantees, and the violations
    beyond its tolerance.  ``same_as_generic[g]``: group ``g`` is served exactly the generic
    model's coefficients (rationality at margin 0 then holds in any arithmetic)."""
    table = cert.table
    G = L.shape[0]
    margins = np.asarray(table["margin"], dtype=LD) if "margin" in table else np.zeros(G, dtype=LD)
    own = np.diag(L)
    worst, bad = -np.inf, []
    tol = LD(cert.tolerance)
    if "rationality" in cert.fair_use:
        for g in range(G):
            if same_as_generic is not None and same_as_generic[g] and margins[g] == 0:
                continue
            v = own[g] - (L0[g] - margins[g])
            worst = max(worst, float(v))
            if not v <= tol:
                bad.append(f"rationality g={g}: {float(v):.3g}")
    if "envy_freeness" in cert.fair_use:
        for g in range(G):
            for r in range(G):
                if r != g:
                    v = own[g] - L[g, r]
                    worst = max(worst, float(v))
                    if not v <= tol:
                        bad.append(f"envy g={g} r={r}: {float(v):.3g}")
    return worst, bad


def run_certificate_case(seed: int, tally: Tally) -> None:
    from fairuse_opt import FairUseClassifier, FairUseError, FairUseRegressor, model_io

    prob = _cert_problem(seed)
    cls = FairUseClassifier if prob["task"] == "classification" else FairUseRegressor
    est = cls(**prob["params"])
    label = f"certificate case {seed} ({', '.join(prob['notes'])})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(prob["X"], prob["y"], groups=prob["groups"], sample_weight=prob["w"])
    except FairUseError as exc:
        tally.add(f"fit refused: {type(exc).__name__}", f"{label}: {str(exc)[:300]}")
        return
    except Exception as exc:  # noqa: BLE001 - what the fuzz is for
        tally.add("crash", f"{label}: fit: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")
        return
    cert = est.certificate_
    tally.add("fitted")
    tally.add("verified" if cert.verified else "not verified",
              None if cert.verified else f"{label}: route {cert.route}: {cert.failures[:2]}")
    if not cert.fair_use or est.group_index_ is None:
        tally.add("no guarantee asked")
    if "generic_fallback" in cert.table and cert.table["generic_fallback"].astype(bool).any():
        tally.add("some group served the generic model (on_infeasible='generic')")
        if est.generic is not None:
            tally.add("... an external generic= model")
    ext = est.generic if est.generic is not None else None
    L, L0, keys = longdouble_losses(est, prob["X"], prob["y"], prob["groups"], prob["w"])
    gen = est.generic_
    same = None
    if hasattr(gen, "coef_") and getattr(gen, "group_index_", 1) is None:
        same = [bool(np.array_equal(est.coef_[g], gen.coef_[0]) and est.intercept_[g] == gen.intercept_[0])
                for g in range(len(keys))]
    worst, bad = certificate_lies(cert, L, L0, same)
    if cert.fair_use and est.group_index_ is not None:
        tally.add("guarantees checked")
        tally.note_max("largest violation in long double of a verified certificate",
                       worst if cert.verified else -np.inf)
    if cert.verified and bad:
        tally.add("lying certificate", f"{label}: {bad[:3]}")
    # the table's losses against long double, within the rounding of the float64 scores
    table = cert.table
    room = rounding_room(est, prob["X"], prob["y"], prob["groups"], prob["w"], keys, est.coef_, est.intercept_)
    gen = library_linear(est.generic_)  # (another external model: its predictions)
    room0 = (rounding_room(est, prob["X"], prob["y"], prob["groups"], prob["w"], keys,
                           np.repeat(gen.coef_, len(keys), axis=0), np.repeat(gen.intercept_, len(keys)))
             if gen is not None else 1e-12 * (1 + np.abs(np.asarray(L0, dtype=np.float64))))
    by_key = {tuple(k) if isinstance(k, tuple) else (k,): i for i, k in enumerate(keys)}
    for _, row in table.iterrows():
        g = by_key.get(tuple(row["group"]) if isinstance(row["group"], tuple) else (row["group"],))
        if g is None:
            tally.add("table disagrees", f"{label}: group {row['group']} not among {keys[:5]}")
            break
        for col, val, allowed in (("own_loss", L[g, g], room[g]), ("generic_loss", L0[g], room0[g])):
            gap = abs(float(LD(row[col]) - val))
            tally.note_max(f"table {col}: |float64 - long double| / rounding bound", gap / allowed if allowed else
                           (0.0 if gap == 0 else np.inf))
            if not gap <= allowed:
                tally.add("table disagrees", f"{label}: {col} {row[col]!r} vs {float(val)!r} (bound {allowed:.3g})")
    # the same through a model file
    try:
        text = model_io.dumps(est)
    except FairUseError as exc:
        tally.add(f"file refused: {type(exc).__name__}")
        return
    except Exception as exc:  # noqa: BLE001
        tally.add("crash", f"{label}: dumps: {type(exc).__name__}: {exc}")
        return
    try:
        back = model_io.loads(text)
    except Exception as exc:  # noqa: BLE001 - a file the library wrote must load
        tally.add("crash", f"{label}: loads of a written file: {type(exc).__name__}: {exc}")
        return
    tally.add("round trips")
    L2, L02, _ = longdouble_losses(back, prob["X"], prob["y"], prob["groups"], prob["w"], generic=ext)
    if not (np.array_equal(L2, L) and np.array_equal(L02, L0)):
        tally.add("silent wrong", f"{label}: losses of the loaded model differ in long double")
    if cert.verified and cert.fair_use and est.group_index_ is not None:
        try:
            failures = back.certificate_.verify(back, prob["X"], prob["y"], groups=prob["groups"],
                                                sample_weight=prob["w"], generic=ext)
        except Exception as exc:  # noqa: BLE001
            tally.add("crash", f"{label}: verify on the loaded model: {type(exc).__name__}: {exc}")
            return
        if failures:
            tally.add("verify disagrees", f"{label}: {failures[:2]}")


# =========================================================================== model files
def base_documents() -> list[tuple[str, dict]]:
    """Model files the library writes (estimator and system files of every kind), small."""
    from sklearn.linear_model import LogisticRegression

    from fairuse_opt import FairUseClassifier, FairUseRegressor, fit_system, model_io
    from fairuse_opt.model_io import TabularEncoding

    rng = np.random.default_rng(7)
    n = 240
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["f0", "f1", "f2"])
    A = rng.choice(["a0", "a1", "a2"], n)
    B = rng.integers(0, 2, n)
    G = pd.DataFrame({"A": A, "B": B})
    s = X.to_numpy() @ np.array([1.0, -0.5, 0.3]) + 1.2 * (A == "a1") - 0.8 * B
    y = (s + rng.logistic(size=n) > 0).astype(int)
    yr = s + rng.normal(size=n)
    docs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [
            ("classifier intersectional", FairUseClassifier().fit(X, y, groups=G)),
            ("classifier onehot", FairUseClassifier(encoding="onehot", fair_use=None).fit(X, y, groups=G)),
            ("classifier decoupled, mapping margin", FairUseClassifier(
                encoding="decoupled", fair_use="rationality",
                margin={(a, b): 0.0 for a in ("a0", "a1", "a2") for b in (0, 1)}).fit(X, y, groups=G)),
            ("classifier none", FairUseClassifier(encoding="none").fit(X, y)),
            ("classifier string labels", FairUseClassifier(fair_use="rationality").fit(
                X, np.array(["no", "yes"], dtype=object)[y], groups=G[["A"]])),
            ("classifier external generic", FairUseClassifier(generic=LogisticRegression().fit(X, y)).fit(
                X, y, groups=G)),
            ("regressor", FairUseRegressor(margin="se:0").fit(X, yr, groups=G)),
        ]
        for name, est in fits:
            docs.append((name, json.loads(model_io.dumps(est))))
        raw = X.assign(site=rng.choice(["east", "north", "south"], n), stage=rng.integers(1, 4, n))
        enc = TabularEncoding.fit(raw, categorical=["stage"])
        est = FairUseClassifier().fit(enc.transform(raw), y, groups=G)
        docs.append(("classifier with input columns", json.loads(model_io.dumps(
            est, encoding=enc, target="y", group_columns=["A", "B"], metadata={"note": "fuzz"}))))
        Gs = G.astype(object)
        Gs.loc[rng.random(n) < 0.2, "B"] = None
        system = fit_system(X, y, Gs, n_boot=50, random_state=0, encodings=("onehot", "intersectional"),
                            metric="log_loss", envy=False)
        docs.append(("system classification", json.loads(model_io.dumps(system))))
        system_r = fit_system(X, yr, Gs, n_boot=50, random_state=0, encodings=("intersectional",), envy=False)
        docs.append(("system regression", json.loads(model_io.dumps(system_r))))
    return docs


def paths_of(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path in a document (containers and leaves)."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths_of(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths_of(v, prefix + (i,))
    return out


def _get(doc, path):
    for k in path:
        doc = doc[k]
    return doc


#: Placeholder of a deeply nested list in a mutated document.
DEEP = "__fuzz_deep__"


JUNK: list = [None, True, False, 0, 1, -1, 2 ** 63, 0.5, -0.0, 1e308, 5e-324, "", "x", "\ufeff",
              "a" * 20_000, [], {}, [None], [1, "a"], {"a": 1}, {"__tuple__": 5}, {"__items__": [[1, 2, 3]]},
              {"__items__": [[{"a": 1}, 0.1]]}, {"__tuple__": [1, 2]}]


def mutate_document(doc: dict, rng: np.random.Generator) -> tuple[str, Any]:
    """One field-level mutation of ``doc``: ``(description, new document or text)``."""
    doc = copy.deepcopy(doc)
    paths = paths_of(doc)
    path = paths[int(rng.integers(len(paths)))]
    parent = _get(doc, path[:-1])
    key = path[-1]
    value = parent[key]
    where = ".".join(map(str, path))
    op = rng.choice(["delete", "junk", "nudge", "list", "string", "swap", "extra key", "deep"],
                    p=[0.12, 0.34, 0.16, 0.12, 0.08, 0.1, 0.04, 0.04])
    if op == "delete":
        del parent[key]
        return f"delete {where}", doc
    if op == "junk" or (op == "nudge" and not isinstance(value, (int, float))):
        j = JUNK[int(rng.integers(len(JUNK)))]
        parent[key] = copy.deepcopy(j)
        return f"{where} = {repr(j)[:40]}", doc
    if op == "nudge":
        if isinstance(value, bool):
            parent[key] = not value
        elif isinstance(value, int):
            parent[key] = value + int(rng.choice([-1, 1, 2 ** 53, -(2 ** 62)]))
        else:
            factor = rng.choice(["ulp", "sign", "huge", "tiny", "int"])
            if factor == "ulp":
                parent[key] = float(np.nextafter(value, np.inf))
            elif factor == "sign":
                parent[key] = -value
            elif factor == "huge":
                parent[key] = value * 1e300 if abs(value) * 1e300 < 1e308 else 1.5e308
            elif factor == "tiny":
                parent[key] = value * 1e-300
            else:
                parent[key] = int(round(value)) if math.isfinite(value) else 0
        return f"nudge {where} ({op})", doc
    if op == "list":
        if not isinstance(value, list) or not value:
            parent[key] = [value, value]
            return f"{where} = [it, it]", doc
        kind = rng.choice(["drop", "dup", "reverse", "empty", "append"])
        i = int(rng.integers(len(value)))
        if kind == "drop":
            del value[i]
        elif kind == "dup":
            value.insert(i, copy.deepcopy(value[i]))
        elif kind == "reverse":
            value.reverse()
        elif kind == "empty":
            value.clear()
        else:
            value.append(copy.deepcopy(JUNK[int(rng.integers(len(JUNK)))]))
        return f"{kind} in list {where}", doc
    if op == "string":
        if isinstance(value, str):
            kind = rng.choice(["upper", "append", "empty", "unicode"])
            parent[key] = {"upper": value.upper(), "append": value + "_", "empty": "",
                           "unicode": value + "\u0661\u00b2"}[kind]
            return f"string {kind} {where}", doc
        parent[key] = str(value)
        return f"{where} as text", doc
    if op == "swap":
        other = paths[int(rng.integers(len(paths)))]
        if other[:len(path)] == path or path[:len(other)] == other:
            parent[key] = None
            return f"{where} = None (swap with itself)", doc
        parent[key] = copy.deepcopy(_get(doc, other))
        return f"{where} = value of {'.'.join(map(str, other))}", doc
    if op == "extra key":
        target = value if isinstance(value, dict) else parent
        if isinstance(target, dict):
            target["zz_unknown"] = 1
            return f"extra key in {where}", doc
        parent[key] = {"zz_unknown": 1}
        return f"{where} = object", doc
    depth = int(rng.choice([50, 900, 100_000]))
    parent[key] = DEEP  # replaced in the text (json cannot write a list nested 100,000 deep)
    return f"{where} = list nested {depth} deep", (doc, depth)


def mutate_text(text: str, rng: np.random.Generator) -> tuple[str, Any]:
    """One mutation of the JSON text (bytes or str)."""
    import re

    kind = rng.choice(["truncate", "flip", "bom", "overflow", "leading zero", "nan", "dup key", "utf16",
                       "whitespace", "version"])
    if kind == "truncate":
        i = int(rng.integers(len(text)))
        return f"truncate at {i}", text[:i]
    if kind == "flip":
        data = bytearray(text.encode("utf-8"))
        i = int(rng.integers(len(data)))
        data[i] ^= 1 << int(rng.integers(8))
        return f"flip byte {i}", bytes(data)
    if kind == "bom":
        return "byte-order mark", ("\ufeff" + text) if rng.random() < 0.5 else ("\ufeff" + text).encode("utf-8")
    if kind == "utf16":
        return "UTF-16", text.encode("utf-16")
    if kind == "whitespace":
        return "surrounding whitespace", "\n\t " + text + "\n\n"
    if kind == "version":
        v = rng.choice(["01", "1.0", "\u0661", "\u00b2", "1" * 5000, "0", "-1", " 1", "2", "3"])
        fmt = re.search(r'"fairuse_opt\.model/(\d+)"', text)
        return f"format version {v[:10]!r}", text[:fmt.start(1)] + v + text[fmt.end(1):]
    numbers = [m for m in re.finditer(r"(?<![\w.])-?\d+\.\d+(?:[eE][-+]?\d+)?(?![\w.])", text)]
    if kind in ("overflow", "leading zero", "nan") and numbers:
        m = numbers[int(rng.integers(len(numbers)))]
        token = {"overflow": rng.choice(["1e400", "-1e400", "1E999"]), "leading zero": "01.5",
                 "nan": rng.choice(["NaN", "Infinity", "-Infinity"])}[kind]
        return f"{kind} token at {m.start()}", text[:m.start()] + token + text[m.end():]
    # a key given twice: one object of the document written by hand with a key repeated
    doc = json.loads(text)
    objects = [p for p in [()] + paths_of(doc) if isinstance(_get(doc, p), dict) and _get(doc, p)]
    path = objects[int(rng.integers(len(objects)))]
    obj = _get(doc, path)
    key = list(obj)[int(rng.integers(len(obj)))]
    items = list(obj.items()) + [(key, rng.choice([None, 0, "x"]) if rng.random() < 0.5 else obj[key])]
    by_hand = "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in items) + "}"
    if not path:
        return f"key {key!r} given twice at the top", by_hand
    _get(doc, path[:-1])[path[-1]] = DEEP
    return (f"key {key!r} given twice in {'.'.join(map(str, path))}",
            json.dumps(doc).replace(json.dumps(DEEP), by_hand))


def _leaves(errors) -> list:
    out = []
    for e in errors:
        out += _leaves(e.context) if e.context else [e]
    return out


def schema_validators() -> dict:
    """Validators of the estimator file and the system file (the two branches of the
    schema's ``oneOf``, so that an error names its field)."""
    import jsonschema

    from fairuse_opt import model_io

    schema = model_io.schema()
    return {kind: jsonschema.Draft202012Validator({**schema, "oneOf": [{"$ref": f"#/$defs/{kind}"}]})
            for kind in ("estimator_file", "system_file")}


def score_by_hand(doc: dict, X: np.ndarray) -> dict:
    """The scores a model file says (docs/model-file.md), with json and numpy only:
    ``{report: scores}`` (estimator: every group; system: every option)."""
    out = {}
    for entry in doc["models"] if doc["estimator"] != "FairUseSystem" else []:
        g = tuple(entry["group"]) if entry["group"] is not None else None
        out[g] = float(entry["intercept"]) + X @ np.asarray(entry["coef"], dtype=np.float64)
    if doc["estimator"] == "FairUseSystem":
        for opt in doc["options"]:
            m = doc["models"][opt["model"]]
            out[tuple(opt["option"])] = float(m["intercept"]) + X @ np.asarray(m["coef"], dtype=np.float64)
    return out


def check_loaded(doc: dict, est: Any, label: str, tally: Tally) -> None:
    """A loaded model scores as its document says, its certificate agrees with itself, and
    it writes a file that loads into the same model."""
    from fairuse_opt import FairUseError, model_io

    d = len(doc["features"]["names"])
    X = np.random.default_rng(1).normal(size=(7, d)) * 3
    Xin = pd.DataFrame(X, columns=doc["features"]["names"]) if doc["features"].get("names_in") else X
    group_cols = getattr(est, "group_cols", None)
    if group_cols is not None:  # the model takes its groups from columns of X (a pipeline's)
        cols = [group_cols] if isinstance(group_cols, str) else group_cols
        Xin = pd.DataFrame(X, columns=doc["features"]["names"]).assign(**{str(c): "?" for c in cols})
    want = score_by_hand(doc, X)
    system = doc["estimator"] == "FairUseSystem"
    for report, s in want.items():
        kw = {} if report is None or (not system and est.group_index_ is None) else {"report": report}
        got = est.decision_function(Xin, **kw)
        if not np.array_equal(got, s) and not np.allclose(got, s, rtol=1e-13, atol=1e-13):
            tally.add("silent wrong", f"{label}: scores of report {report!r} differ from the file's "
                                      f"({np.max(np.abs(got - s)):.3g})")
            return
    if not system:
        cert = est.certificate_
        try:
            violations = cert.n_violations
        except Exception as exc:  # noqa: BLE001
            tally.add("crash", f"{label}: n_violations: {type(exc).__name__}: {exc}")
            return
        if cert.verified and (violations or cert.failures):
            tally.add("silent wrong", f"{label}: verified with {violations} violation(s) in its table")
            return
        if doc["task"] == "classification" and list(est.classes_) != list(doc["classes"]["values"]):
            tally.add("silent wrong", f"{label}: classes {list(est.classes_)} vs {doc['classes']['values']}")
            return
    try:
        text = model_io.dumps(est)
    except FairUseError as exc:
        tally.add("loaded file fails to write", f"{label}: {exc}")
        return
    except Exception as exc:  # noqa: BLE001
        tally.add("crash", f"{label}: dumps of the loaded model: {type(exc).__name__}: {exc}")
        return
    again = model_io.loads(text)
    for report in want:
        kw = {} if report is None or (not system and est.group_index_ is None) else {"report": report}
        if not np.array_equal(again.decision_function(Xin, **kw), est.decision_function(Xin, **kw)):
            tally.add("rewrite differs", f"{label}: report {report!r}")
            return


def run_file_case(i: int, base: list[tuple[str, dict]], texts: list[str], seed: int, tally: Tally,
                  validator: Any = None) -> None:
    from fairuse_opt import FairUseError, InputError, model_io

    rng = np.random.default_rng([seed, 2424, i])
    k = int(rng.integers(len(base)))
    name, doc = base[k]
    if rng.random() < 0.75:
        what, mutated = mutate_document(doc, rng)
        depth = 0
        if isinstance(mutated, tuple):
            mutated, depth = mutated
        try:
            source = json.dumps(mutated, ensure_ascii=bool(rng.random() < 0.5))
        except ValueError:  # (a nudged float became inf: write the token JSON cannot)
            source = json.dumps(mutated, allow_nan=True)
        if depth:
            source = source.replace(json.dumps(DEEP), "[" * depth + "]" * depth)
            mutated = None
    else:
        what, source = mutate_text(texts[k], rng)
        mutated = None
    label = f"file case {i} ({name}: {what})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = model_io.loads(source)
    except InputError as exc:
        text = str(exc)
        tally.max_message = max(tally.max_message, len(text))
        tally.add("refused")
        if len(text) > MAX_MESSAGE:
            tally.add("long message", f"{label}: {len(text)} characters: {text[:200]}")
        if "model file" not in text:
            tally.add("unnamed refusal", f"{label}: {text[:300]}")
        return
    except FairUseError as exc:
        tally.add("crash", f"{label}: {type(exc).__name__} (not InputError): {exc}")
        return
    except RecursionError as exc:
        tally.add("crash", f"{label}: RecursionError {exc}")
        return
    except Exception as exc:  # noqa: BLE001
        tally.add("crash", f"{label}: {type(exc).__name__}: {str(exc)[:300]}\n{traceback.format_exc(limit=3)}")
        return
    tally.add("loaded")
    parsed = mutated
    if parsed is None:
        data = source.decode("utf-8-sig") if isinstance(source, bytes) else source.lstrip("\ufeff")
        parsed = json.loads(data)  # (what the library loaded: it parsed)
    if validator is not None:
        kind = "system_file" if parsed.get("estimator") == "FairUseSystem" else "estimator_file"
        errors = sorted(_leaves(validator[kind].iter_errors(parsed)), key=lambda e: -len(list(e.absolute_path)))
        if errors:
            e = errors[0]
            unknown_keys = all(x.validator == "additionalProperties" for x in errors)
            tally.add("loaded with an unknown key (docs: readers ignore it; the schema forbids it)" if unknown_keys
                      else "loaded, not valid under the schema",
                      f"{label}: at {'.'.join(map(str, e.absolute_path))}: {e.message[:150]}")
    try:
        check_loaded(parsed, est, label, tally)
    except Exception as exc:  # noqa: BLE001
        tally.add("crash", f"{label}: checking the loaded model: {type(exc).__name__}: {exc}\n"
                           f"{traceback.format_exc(limit=3)}")


# =========================================================================== driver
def timed(fn: Callable, tally: Tally, label: str) -> None:
    start = time.process_time()
    fn()
    spent = time.process_time() - start
    tally.max_seconds = max(tally.max_seconds, spent)
    if spent > HANG_SECONDS:
        tally.add("hang", f"{label}: {spent:.1f} s CPU")


def run(seed: int = 0, n_certificates: int = 40, n_files: int = 300, progress: Callable | None = None,
        first_certificate: int = 0) -> dict:
    """Run both areas; return ``{"certificates": Tally, "model files": Tally}`` as dicts."""
    certs = Tally("certificates")
    for i in range(first_certificate, first_certificate + n_certificates):
        timed(lambda: run_certificate_case(seed * 100_000 + i, certs), certs, f"certificate case {i}")
        if progress and (i + 1) % 50 == 0:
            progress(f"certificates {i + 1}/{n_certificates}: {certs.counts}")
    files = Tally("model files")
    if n_files:
        base = base_documents()
        texts = [json.dumps(d, indent=1, ensure_ascii=False) for _, d in base]
        try:
            import jsonschema

            from fairuse_opt import model_io

            validator = schema_validators()
        except ImportError:
            validator = None
        for i in range(n_files):
            timed(lambda: run_file_case(i, base, texts, seed, files, validator), files, f"file case {i}")
            if progress and (i + 1) % 500 == 0:
                progress(f"files {i + 1}/{n_files}: {files.counts}")
    return {"certificates": certs.as_dict(), "model files": files.as_dict()}


def _markdown(result: dict, command: str, seconds: float, peak_mb: float) -> str:
    import fairuse_opt

    lines = ["# Fuzzing certificates and model files (`benchmarks/fuzz_files.py`, issue 24)", "",
             f"Command: `{command}`", "",
             f"fairuse_opt {fairuse_opt.__version__}, Python {platform.python_version()}, numpy "
             f"{np.__version__}, {platform.machine()}, long double mantissa "
             f"{np.finfo(np.longdouble).nmant + 1} bits; {seconds:.0f} s wall, peak RSS {peak_mb:.0f} MB.", "",
             "Bad outcomes (must all be 0): " + ", ".join(BAD) + ". A hang is a case over "
             f"{HANG_SECONDS:.0f} s of CPU.", ""]
    for area, t in result.items():
        total = sum(v for k, v in t["counts"].items() if k in ("fitted", "refused", "loaded", "crash")
                    or k.startswith("fit refused"))
        lines += [f"## {area}", "", "| outcome | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in t["counts"].items()]
        lines += ["", f"Cases: {total}. Slowest case: {t['max_seconds']:.2f} s CPU. "
                      f"Longest refusal message: {t['max_message']} characters.", ""]
        for k, v in t["worst"].items():
            lines.append(f"* {k}: {v:.3g}")
        bad = {k: v for k, v in t["examples"].items() if k in BAD}
        lines += ["", "Bad outcomes: " + ("none" if not bad else ""), ""]
        for k, ex in bad.items():
            lines += [f"* {k}:"] + [f"  * `{e[:300]}`" for e in ex]
        other = {k: v for k, v in t["examples"].items() if k not in BAD}
        for k, ex in other.items():
            lines += [f"* {k} (first examples):"] + [f"  * `{e[:300]}`" for e in ex]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--certificates", type=int, default=600)
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--out", default="benchmarks/results/fuzz_files.md")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run(args.seed, args.certificates, args.files, progress=lambda m: print(m, file=sys.stderr, flush=True))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    command = "python benchmarks/fuzz_files.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_markdown(result, command.strip(), seconds, peak), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"command": command.strip(), "seconds": round(seconds, 1),
                                                    "peak_rss_mb": round(peak), **result}, indent=1),
                                        encoding="utf-8")
    bad = sum(t["counts"].get(k, 0) for t in result.values() for k in BAD)
    print(f"{bad} bad outcome(s); written {out}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
