"""``fairuse demo``: runs on real data, writes its report, and the tables cover every group."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fairuse_opt.cli import main
from fairuse_opt.datasets import load_diabetes
from fairuse_opt.demo import MODEL_NAMES, PERSONALIZED, REPORT_MD, REPORT_PNG, TABLE_CSV, run_demo

REPO = Path(__file__).resolve().parents[1]
HAS_MPL = importlib.util.find_spec("matplotlib") is not None



def group_labels(groups: pd.DataFrame) -> set[str]:
    return {", ".join(f"{n}={v}" for n, v in zip(groups.columns, row))
            for row in groups.drop_duplicates().itertuples(index=False, name=None)}


def test_demo_command_writes_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n-boot", "100"]) == 0
    captured = capsys.readouterr()
    labels = group_labels(load_diabetes(binary=True)[2])
    assert len(labels) == 4

    for name in (REPORT_MD, TABLE_CSV, "fair_use_model.json", "audit_one-hot.json",
                 "audit_intersectional.json", "audit_fair_use.json"):
        assert (out / name).stat().st_size > 0, name
    if HAS_MPL:
        assert (out / REPORT_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    table = pd.read_csv(out / TABLE_CSV)
    assert set(table["group"]) == labels | {"all"}
    assert set(table["model"]) == set(MODEL_NAMES)
    assert len(table) == (len(labels) + 1) * len(MODEL_NAMES)
    generic = table[table["model"] == "generic"]
    assert (generic["gain_test_log_loss"] == 0).all()
    # the fair-use model's guarantee holds on the training rows (against its own generic model)
    fair = table[(table["model"] == "fair use") & (table["group"] != "all")]
    assert (fair["gain_train_log_loss"] >= -1e-7).all()

    # terminal tables: every group, every personalized model, the verdicts, the time
    for label in labels:
        assert label in captured.out
    for model in PERSONALIZED:
        assert model in captured.out
    assert "rationality (LL)" in captured.out and "envy (LL)" in captured.out
    assert "demo finished in" in captured.out
    assert "fitted fair use model" in captured.err  # progress on stderr

    md = (out / REPORT_MD).read_text(encoding="utf-8")
    assert f"`fairuse demo --out {out} --n-boot 100`" in md
    assert "## Audit on the test set" in md and "## What this shows" in md
    for label in labels:
        assert label in md
    for name in PERSONALIZED:
        audit = json.loads((out / f"audit_{name.replace(' ', '_')}.json").read_text(encoding="utf-8"))
        assert {r["group"] for r in audit["table"]} == labels
        assert audit["settings"]["n_boot"] == 100


def test_demo_on_apnea(tmp_path, monkeypatch, data_dir):
    path = data_dir / "apnea.csv"
    monkeypatch.setenv("FAIRUSE_DATA_DIR", str(path.parent))
    result = run_demo(tmp_path / "apnea", data="apnea", n_boot=50, stdout=io.StringIO())
    assert result.verdicts is not None
    assert set(result.verdicts["group"]) == set(result.table["group"]) - {"all"}
    assert len(set(result.verdicts["group"])) == 6
    assert (tmp_path / "apnea" / REPORT_MD).exists()
    # the same data through a path
    result2 = run_demo(tmp_path / "apnea2", data=str(path), n_boot=50, stdout=io.StringIO())
    pd.testing.assert_frame_equal(result.table, result2.table)


def test_demo_unknown_data_is_one_line(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "x"), "--data", "nonesuch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fairuse: error: --data 'nonesuch' is neither 'diabetes', 'apnea' nor an existing file or folder"]
    assert not (tmp_path / "x").exists()


def test_import_creates_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", "import fairuse_opt.demo, fairuse_opt.cli, fairuse_opt.model_io"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []
