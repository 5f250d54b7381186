"""The README's Python example runs as written (with FAIRUSE_DATA_DIR set)."""

from __future__ import annotations

import re

from .conftest import REPO


def test_readme_quick_start_runs(monkeypatch, capsys, data_dir):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.setenv("FAIRUSE_DATA_DIR", str(data_dir))
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "verified=True" in out
    assert namespace["model"].certificate_.verified
    assert len(namespace["report"].table) > 0
