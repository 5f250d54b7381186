"""The short run of the command-line fuzz (``benchmarks/fuzz_cli.py``; the long run and its
counts are in ``benchmarks/results/fuzz_cli.md``), and checks that its oracles catch the
defects they are meant to catch."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_cli", REPO / "benchmarks" / "fuzz_cli.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_cli"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fuzz_cli = _fuzz_module()


def test_short_fuzz_run_finds_no_problem():
    """60 seeded cases over CSVs, flags, outputs, config files and Ctrl-C: no crash, hang,
    broken contract, silent wrong result or lost file."""
    outcomes = fuzz_cli.fuzz(60, seed=0)
    assert len(outcomes) == 60
    areas = {o.area for o in outcomes}
    assert areas == set(fuzz_cli.AREAS)
    assert {o.status for o in outcomes} >= {0, 2}  # the cases reach both successes and refusals
    problems = [(o.case, o.area, o.note, o.problems, " ".join(o.argv)) for o in outcomes if o.problems]
    assert problems == []


def test_the_oracles_catch_what_they_are_for(tmp_path):
    """The checks flag a group value read as missing, a numeric column one-hot encoded, a
    multi-line error, an exit status out of the contract and a traceback."""
    data = tmp_path / "d.csv"
    data.write_text("x1,g1,y\n1.5,NA,0\n2.5,EU,1\n123456789012345678901234567890,NA,1\n0.5,EU,0\n",
                    encoding="utf-8")
    model = tmp_path / "m.json"
    model.write_text(json.dumps({
        "groups": {"levels": {"g1": ["EU"]}},
        "input": {"columns": [{"name": "x1", "kind": "categorical"}]}}), encoding="utf-8")
    out = fuzz_cli.Outcome(0, "csv", [])
    fuzz_cli.check_fit(out, data, model, ["g1"], system=True, dropna=False, na_values=[], categorical=[],
                       features=None, target="y")
    kinds = [k for k, _ in out.problems]
    assert kinds == ["silent wrong", "silent wrong"], out.problems
    assert "'g1'" in out.problems[0][1] and "'x1'" in out.problems[1][1]

    for status, err, kind in [
        (2, "fairuse: [ 0.1 s] read 5 rows\nfairuse: error: bad\n", "contract"),
        (1, "", "contract"),
        (-2, "", "crash"),
        (2, "Traceback (most recent call last):\nValueError: x\n", "crash"),
        (2, "fairuse: error: " + "x" * 3000 + "\n", "contract"),
    ]:
        out = fuzz_cli.Outcome(0, "flags", [], status=status, stderr=err)
        fuzz_cli.check_process(out)
        assert kind in [k for k, _ in out.problems], (status, err[:40], out.problems)
    out = fuzz_cli.Outcome(0, "flags", [], status=2, stderr="fairuse: warning: w\nfairuse: error: bad\n")
    fuzz_cli.check_process(out)
    assert out.problems == []


@pytest.mark.parametrize("area", fuzz_cli.AREAS)
def test_every_area_generates_reproducible_cases(tmp_path, area):
    """A case is a function of (seed, case number): the same command twice."""
    import numpy as np

    shared = fuzz_cli.make_shared(tmp_path / "shared")
    argvs = []
    for k in range(2):
        folder = tmp_path / f"c{k}"
        folder.mkdir()
        out = fuzz_cli.Outcome(7, area, [])
        fuzz_cli.CASES[area](np.random.default_rng([3, 7]), folder, shared, out)
        argvs.append([a.replace(str(folder), "<case>") for a in out.argv])
    assert argvs[0] == argvs[1] and argvs[0]
