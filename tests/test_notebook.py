"""The walkthrough notebook: committed with its outputs, from its script, and it runs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "walkthrough.ipynb"


def _script():
    spec = importlib.util.spec_from_file_location("make_walkthrough", REPO / "notebooks" / "make_walkthrough.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_is_committed_with_outputs_from_its_script():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    built = _script().build()
    assert [(c.cell_type, c.source) for c in nb.cells] == [(c.cell_type, c.source) for c in built.cells]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code)
    assert all(o.output_type != "error" for c in code for o in c.outputs)
    text = "".join(o.get("text", "") for c in code for o in c.outputs)
    assert "verified = True" in text and "walkthrough ran in" in text


def test_walkthrough_runs(tmp_path, monkeypatch, data_dir):
    # the kernel inherits the environment: the data folder (absolute: the kernel runs in
    # tmp_path) and the package
    monkeypatch.setenv("FAIRUSE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    nb = _script().build()
    # kernel "python3": jupyter_client starts it with this interpreter (sys.executable)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "verified = True" in text and "walkthrough ran in" in text
    assert list(tmp_path.iterdir()) == []  # the walkthrough writes no file


def test_relative_data_dir_is_taken_from_where_the_tests_started(monkeypatch, data_dir, tmp_path):
    from . import conftest

    relative = os.path.relpath(data_dir, conftest._STARTED_IN)
    monkeypatch.setenv("FAIRUSE_DATA_DIR", relative)
    monkeypatch.chdir(tmp_path)  # as the notebook kernel does
    assert conftest.find_data_dir() == data_dir
