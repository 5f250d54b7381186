"""The walkthrough notebook runs from top to bottom, so it cannot rot."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "walkthrough.ipynb"


def data_dir() -> Path:
    env = os.environ.get("FAIRUSE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_walkthrough_runs(tmp_path, monkeypatch):
    if not (data_dir() / "apnea.csv").exists():
        pytest.fail(f"apnea.csv not found in {data_dir()}: set FAIRUSE_DATA_DIR to the folder holding it")
    # the kernel inherits the environment: the data folder and the package
    monkeypatch.setenv("FAIRUSE_DATA_DIR", str(data_dir()))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # kernel "python3": jupyter_client starts it with this interpreter (sys.executable)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "verified = True" in text and "walkthrough ran in" in text
    assert seconds < 120, f"the walkthrough took {seconds:.0f} s; keep it under a minute"
