"""Write ``walkthrough.ipynb`` from the cells below, executed, with its outputs.

Run ``FAIRUSE_DATA_DIR=/path/to/data python notebooks/make_walkthrough.py`` after editing
(``--no-execute`` writes it without outputs).  The notebook runs in a temporary folder, so
it writes nothing into the repository.  ``tests/test_notebook.py`` checks that the
committed notebook is this script's, with outputs, and executes it again, so it cannot rot.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS: list[tuple[str, str]] = [
    ("md", """\
# Fair use of group attributes: the harm, the audit, the fix

Personalized models use group attributes (sex, age band, ...) to predict better. On average they
do; but a model that is better *overall* can be worse for *some group*. A group then pays for
reporting its attributes. `fairuse_opt` checks and prevents that:

- **rationality**: every intersectional group does at least as well with the personalized model as
  with the generic model trained without group attributes;
- **envy-freeness**: no group would do better by reporting another group's attributes.

This walkthrough shows (1) the harm, on the reference XOR example and on real data, (2) the audit on
held-out data, and (3) the fair-use fix: models trained with both guarantees, and a certificate
that proves them on the training data.

The real data is the obstructive sleep apnea screening data (1,922 patients, groups Age x Sex),
read from the folder named by the environment variable `FAIRUSE_DATA_DIR` (see
`fairuse_opt.datasets.load_apnea`)."""),
    ("code", """\
import os
import time

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from fairuse_opt import FairUseClassifier
from fairuse_opt.audit import audit
from fairuse_opt.datasets import load_apnea, load_toy

pd.set_option("display.width", 140)
pd.set_option("display.precision", 4)
started = time.perf_counter()
SEED = 0
print("FAIRUSE_DATA_DIR =", os.environ.get("FAIRUSE_DATA_DIR"))"""),
    ("md", """\
## 1. The harm, in miniature

The outcome is the XOR of two binary attributes; there are no other features. The generic model
can only predict the base rate. The *one-hot* model adds one offset per attribute value
(`Sex=Male`, `Age=Young`): the usual way of "adding the group to the model". It lowers the overall
log loss a little, but not for everyone."""),
    ("code", """\
import warnings
from fairuse_opt import SmallGroupWarning

Xt, yt, gt = load_toy()
with warnings.catch_warnings():  # every toy group has a single class, by design: no need to warn
    warnings.simplefilter("ignore", SmallGroupWarning)
    onehot_t = FairUseClassifier(encoding="onehot", fair_use=None).fit(Xt, yt, groups=gt)
generic_t = onehot_t.generic_  # every fit also fits the generic model: same data, loss and penalty

def group_losses(model, X, y, groups, generic=None):
    \"\"\"Per group: n, generic and model log loss and error, and the gains (generic - model).

    The generic model defaults to the model's own ``generic_``: the one its guarantees refer to.
    \"\"\"
    generic = model.generic_ if generic is None else generic
    def rows(est):
        p = np.clip(est.predict_proba(X, groups=groups)[:, 1], 1e-15, 1 - 1e-15)
        yy = np.asarray(y, dtype=float)
        return -(yy * np.log(p) + (1 - yy) * np.log1p(-p)), ((p > 0.5) != (yy == 1)).astype(float)
    (ll_m, er_m), (ll_g, er_g) = rows(model), rows(generic)
    key = groups.astype(str).agg(", ".join, axis=1)
    frame = pd.DataFrame({"group": key, "ll_generic": ll_g, "ll_model": ll_m,
                          "err_generic": er_g, "err_model": er_m})
    out = frame.groupby("group").mean()
    out.insert(0, "n", frame.groupby("group").size())
    out["gain_ll"] = out["ll_generic"] - out["ll_model"]
    out["gain_err"] = out["err_generic"] - out["err_model"]
    return out

toy = group_losses(onehot_t, Xt, yt, gt)
toy"""),
    ("code", """\
overall = lambda est: float(np.mean(-np.log(np.where(yt == 1, est.predict_proba(Xt, groups=gt)[:, 1],
                                                       est.predict_proba(Xt, groups=gt)[:, 0]))))
print(f"overall log loss: generic {overall(generic_t):.4f}, one-hot {overall(onehot_t):.4f}")
harmed = toy[toy["gain_ll"] < 0]
print("groups harmed by one-hot personalization (training data):", list(harmed.index))
assert overall(onehot_t) < overall(generic_t) and len(harmed) >= 1"""),
    ("md", """\
The one-hot model is better overall, yet the *Female, Old* group's log loss rises above the generic
model's: they are worse off for reporting their attributes. An additive encoding cannot represent
an interaction, so it trades one group off against the others.

## 2. Real data: apnea

We split the rows into a training set and a held-out test set (seeded, stratified by group and
label, as the audit needs every group in the test set)."""),
    ("code", """\
X, y, g = load_apnea()
strata = g.astype(str).agg("|".join, axis=1) + "|" + y.astype(str)
X_tr, X_te, y_tr, y_te, g_tr, g_te = train_test_split(
    X, y, g, test_size=0.3, random_state=SEED, stratify=strata)
sizes = pd.DataFrame({"n_train": g_tr.value_counts(), "n_test": g_te.value_counts(),
                      "prevalence": pd.concat([g, y], axis=1).groupby(["Age", "Sex"])["Apnea"].mean()})
sizes"""),
    ("code", """\
onehot = FairUseClassifier(encoding="onehot", fair_use=None).fit(X_tr, y_tr, groups=g_tr)
train_onehot = group_losses(onehot, X_tr, y_tr, g_tr)
test_onehot = group_losses(onehot, X_te, y_te, g_te)
pd.concat({"train": train_onehot[["gain_ll", "gain_err"]], "test": test_onehot[["gain_ll", "gain_err"]]},
          axis=1)"""),
    ("md", """\
Point gains on the test set are noisy: a few dozen patients per group. Is a negative gain a real
harm or chance? That is what the audit answers.

## 3. The audit on held-out data

`fairuse_opt.audit.audit` compares, per group and metric, the model under the group's own report
with the generic model (rationality; by default the model's own `generic_`, fitted on the same
training rows without group attributes) and with every other report (envy), using a paired bootstrap
stratified by (group, label), one-sided tests and a Holm correction across groups. Each verdict is
`benefit`, `violation`, `inconclusive (estimate: gain)` / `(estimate: harm)`, `cannot change` or
`too small to judge`, with the one-sided bound it used (`lower_bound > 0` exactly for a benefit,
`upper_bound < 0` exactly for a violation)."""),
    ("code", """\
METRICS = ["error", "log_loss"]
report_onehot = audit(onehot, X_te, y_te, groups=g_te, metrics=METRICS,  # generic: onehot.generic_
                      n_boot=500, alpha=0.10, random_state=SEED)
cols = ["group", "metric", "condition", "comparison", "gain", "lower_bound", "upper_bound", "p_violation_adj",
        "verdict"]
report_onehot.table.query("condition in ['rationality', 'envy']")[cols]"""),
    ("code", """\
report_onehot.summary()"""),
    ("code", """\
fig = report_onehot.plot("log_loss")"""),
    ("md", """\
## 4. The fair-use fix

`FairUseClassifier` with its defaults fits the intersectional model (one intercept per group, all
within one common interval) **subject to** rationality for every group; with that design the
optimum is also envy-free (a theorem, see the documentation), and the fit checks both in numpy
afterwards. The certificate keeps the evidence.

First the toy: the fair-use one-hot model refuses to harm *Female, Old*; the fair-use
intersectional model (the default) fits every group."""),
    ("code", """\
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SmallGroupWarning)
    fair_onehot_t = FairUseClassifier(encoding="onehot").fit(Xt, yt, groups=gt)
    fair_t = FairUseClassifier().fit(Xt, yt, groups=gt)
gains = pd.DataFrame({"one-hot": toy["gain_ll"],
                      "fair-use one-hot": group_losses(fair_onehot_t, Xt, yt, gt)["gain_ll"],
                      "fair-use (default)": group_losses(fair_t, Xt, yt, gt)["gain_ll"]})
assert (gains[["fair-use one-hot", "fair-use (default)"]] >= -1e-7).all().all()
gains"""),
    ("md", """\
On the apnea data we also ask for a *tailored* gain: `margin="se:1"` requires every group's
training loss to beat the generic model's by at least one standard error of its per-patient loss
difference, so that a group's gain is not an artefact of noise."""),
    ("code", """\
fair = FairUseClassifier(margin="se:1").fit(X_tr, y_tr, groups=g_tr)
cert = fair.certificate_
print(f"route {cert.route}, solver {cert.solver} ({cert.status}), verified = {cert.verified}")
cert.table[["group", "n", "generic_loss", "own_loss", "gain", "margin", "rationality_slack",
            "envy_slack", "rationality_active", "dual"]]"""),
    ("code", """\
assert cert.verified
assert (cert.table["rationality_slack"] >= -cert.tolerance).all()
assert (cert.table["envy_slack"] >= -cert.tolerance).all()
report_fair = audit(fair, X_te, y_te, groups=g_te, metrics=METRICS,
                    n_boot=500, alpha=0.10, random_state=SEED)
pd.concat({"one-hot": report_onehot.verdict_counts(), "fair use": report_fair.verdict_counts()}, axis=1)"""),
    ("code", """\
compare = pd.DataFrame({
    name: rep.table.query("condition == 'rationality' and metric == 'log_loss'").set_index("group")["gain"]
    for name, rep in [("one-hot", report_onehot), ("fair use", report_fair)]})
compare["fair use - one-hot"] = compare["fair use"] - compare["one-hot"]
compare"""),
    ("md", """\
The certificate is a guarantee on the training data; on new patients the audit is the check. Groups
whose test gain stays "inconclusive" are candidates for the minimal intervention: serve them
the generic model.

## 5. A model file that any language can score

The fitted model is written as JSON: for every group its intercept and one coefficient per feature
on the raw feature scale, the generic model, the certificate and the settings. Loading it never
runs code."""),
    ("code", """\
import json
import tempfile

from fairuse_opt.model_io import loads

text = fair.to_json()
doc = json.loads(text)
row, key = X_te.iloc[0].to_numpy(), list(g_te.iloc[0])
model = next(m for m in doc["models"] if m["group"] == key)
p_by_hand = 1 / (1 + np.exp(-(model["intercept"] + np.dot(model["coef"], row))))
p_library = fair.predict_proba(X_te.iloc[:1], groups=g_te.iloc[:1])[0, 1]
print(f"{doc['format']}: {len(doc['models'])} group models; p by hand {p_by_hand:.6f}, library {p_library:.6f}")
assert abs(p_by_hand - p_library) < 1e-12
assert np.array_equal(loads(text).predict_proba(X_te, groups=g_te), fair.predict_proba(X_te, groups=g_te))
print(f"walkthrough ran in {time.perf_counter() - started:.1f} s")"""),
]


def build() -> nbformat.NotebookNode:
    """The notebook, without outputs."""
    cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    for i, cell in enumerate(cells):  # stable ids: regenerating gives the same file
        cell["id"] = f"cell-{i:02d}"
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 600) -> nbformat.NotebookNode:
    """Run every cell (kernel ``python3``) in a temporary folder; raise on a failing cell."""
    import nbclient

    if not os.environ.get("FAIRUSE_DATA_DIR"):
        raise SystemExit("set FAIRUSE_DATA_DIR to the folder holding apnea.csv")
    os.environ["FAIRUSE_DATA_DIR"] = str(Path(os.environ["FAIRUSE_DATA_DIR"]).resolve())
    with tempfile.TemporaryDirectory() as folder:
        client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=timeout,
                                         resources={"metadata": {"path": folder}})
        client.execute()
    return nb


def main(run: bool = True) -> Path:
    path = Path(__file__).with_name("walkthrough.ipynb")
    nb = build()
    if run:
        execute(nb)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    print(main(run="--no-execute" not in sys.argv[1:]))
