"""The command line against hostile or careless input (issue 24, "Command line" L1-L6 and the
lower-priority items): each test is built from the issue's reproduction and needs no data
folder (synthetic data only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairuse_opt import cli, model_io
from fairuse_opt.cli import main


def region_frame(n: int = 400, seed: int = 0, regions=("EU", "AM", "ASIA")) -> pd.DataFrame:
    """Two features, a ``region`` attribute (``NA`` for North America in the tests of L2), a
    ``sex`` attribute, and a binary target that depends on the region."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    df["region"] = rng.choice(list(regions), size=n)
    df["sex"] = rng.choice(["F", "M"], size=n)
    df["y"] = (df.x1 + 1.0 * (df.region == regions[1]) + rng.logistic(size=n) > 0.3).astype(int)
    return df


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` with every cell exactly as given (no NA spelling of pandas' own)."""
    df.to_csv(path, index=False, na_rep="")
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- L2: NA is a value
@pytest.mark.parametrize("spelling", ["NA", "None", "null", "n/a", "NaN"])
def test_group_cells_spelled_like_missing_are_values(tmp_path, capsys, spelling):
    """L2: a group cell ``NA`` (North America), ``None``, ``null``, ``n/a`` or ``NaN`` is a
    value as written, not a missing value: ``fit`` keeps its rows as their own group."""
    df = region_frame(regions=("EU", spelling, "ASIA"))
    data = write_csv(df, tmp_path / "d.csv")
    out = tmp_path / "m.json"
    rc = main(["fit", "--data", str(data), "--target", "y", "--groups", "region,sex", "--fair-use", "none",
               "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads(out.read_text(encoding="utf-8"))
    table = {tuple(r["group"]): r["n"] for r in doc["certificate"]["table"]}
    expected = df.groupby(["region", "sex"]).size().to_dict()
    assert table == expected
    assert sum(n for (r, _), n in table.items() if r == spelling) == int((df.region == spelling).sum()) > 100


def test_fit_system_keeps_na_as_a_reported_value(tmp_path, capsys):
    """L2: ``fit --system`` with region in {EU, NA, ASIA}: the NA rows report region NA (the
    system's levels include it); only empty cells are partial reports."""
    df = region_frame(regions=("EU", "NA", "ASIA"))
    df.loc[:9, "sex"] = ""  # ten rows that do not report sex
    data = write_csv(df, tmp_path / "d.csv")
    out = tmp_path / "s.json"
    rc = main(["fit", "--system", "--data", str(data), "--target", "y", "--groups", "region,sex",
               "--n-boot", "50", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"{len(df)} rows (10 with a partial report)" in captured.err
    system = model_io.loads(out)
    assert list(system.levels_["region"]) == ["ASIA", "EU", "NA"]


def test_predict_on_a_system_without_na_refuses_region_na(tmp_path, capsys):
    """L2: ``predict`` with ``region=NA`` on a system that never saw NA is an unseen group
    (exit 2, one line), not a silent "not reported" served the generic model."""
    train = write_csv(region_frame(regions=("EU", "ASIA", "OC")), tmp_path / "train.csv")
    test_df = region_frame(n=50, seed=1, regions=("EU", "NA", "ASIA"))
    test = write_csv(test_df, tmp_path / "test.csv")
    system = tmp_path / "s.json"
    assert main(["fit", "--system", "--data", str(train), "--target", "y", "--groups", "region,sex",
                 "--n-boot", "50", "--out", str(system), "--quiet"]) == 0
    capsys.readouterr()
    scores = tmp_path / "p.csv"
    assert main(["predict", "--model", str(system), "--data", str(test), "--out", str(scores)]) == 2
    line = one_line_error(capsys)
    assert "'NA'" in line and "region" in line
    assert not scores.exists()


def test_dropna_keeps_the_na_group(tmp_path, capsys):
    """L2: ``fit --dropna`` drops rows with an empty cell, never the whole ``NA`` group."""
    df = region_frame(regions=("EU", "NA", "ASIA"))
    df["x2"] = df["x2"].astype(object)
    df.loc[[3, 4], "x2"] = ""
    data = write_csv(df, tmp_path / "d.csv")
    out = tmp_path / "m.json"
    assert main(["fit", "--data", str(data), "--target", "y", "--groups", "region,sex", "--fair-use", "none",
                 "--dropna", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "dropped 2 of 400 row(s)" in err
    doc = json.loads(out.read_text(encoding="utf-8"))
    n_na = sum(r["n"] for r in doc["certificate"]["table"] if r["group"][0] == "NA")
    assert n_na == int((df.drop(index=[3, 4]).region == "NA").sum())


def test_na_values_names_the_spelling_of_a_missing_cell(tmp_path, capsys):
    """``--na-values`` says which spelling means "missing" (for --system: "not reported")."""
    df = region_frame(regions=("EU", "?", "ASIA"))
    data = write_csv(df, tmp_path / "d.csv")
    out = tmp_path / "m.json"
    n_q = int((df.region == "?").sum())
    args = ["fit", "--data", str(data), "--target", "y", "--groups", "region,sex", "--out", str(out)]
    assert main([*args, "--na-values", "?"]) == 2
    line = one_line_error(capsys)
    assert f"region ({n_q} row(s))" in line
    assert main([*args, "--system", "--n-boot", "50", "--na-values", "?"]) == 0
    assert f"({n_q} with a partial report)" in capsys.readouterr().err
    assert list(model_io.loads(out).levels_["region"]) == ["ASIA", "EU"]


# --------------------------------------------------------------------------- L3: numbers beyond int64
def test_an_integer_beyond_int64_keeps_its_column_numeric(tmp_path, capsys):
    """L3: one integer larger than int64 in a numeric column: the column stays one numeric
    feature (its value as a float, as every number), not one-hot features."""
    df = region_frame()
    df["x2"] = df["x2"].astype(object)
    df.loc[0, "x2"] = "123456789012345678901234567890"
    data = write_csv(df, tmp_path / "d.csv")
    out = tmp_path / "m.json"
    assert main(["fit", "--data", str(data), "--target", "y", "--groups", "region,sex", "--fair-use", "none",
                 "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["features"]["names"] == ["x1", "x2"]
    assert {"name": "x2", "kind": "numeric", "feature": "x2"} in doc["input"]["columns"]


# --------------------------------------------------------------------------- L4: one line, before progress
@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A model file fitted on ``region_frame()`` and its CSV."""
    folder = tmp_path_factory.mktemp("small")
    data = write_csv(region_frame(), folder / "d.csv")
    model = folder / "m.json"
    assert main(["fit", "--data", str(data), "--target", "y", "--groups", "region,sex", "--fair-use", "none",
                 "--out", str(model), "--quiet"]) == 0
    return data, model


def fit_cmd(data, out, *extra):
    return ["fit", "--data", str(data), "--target", "y", "--groups", "region,sex", "--out", str(out), *extra]


@pytest.mark.parametrize("extra, needle", [
    (["--margin", "se:abc"], ("--margin", "'se:abc'")),
    (["--margin", "se:-1"], ("--margin", "'se:-1'")),
    (["--margin", "se:inf"], ("--margin", "'se:inf'")),
    (["--l2", "inf"], ("--l2", "'inf'")),
    (["--l2", "-1"], ("--l2", "'-1'")),
    (["--l2", "nan"], ("--l2", "'nan'")),
    (["--l2", "1e308", "--encoding", "decoupled"], ("--l2", "'1e308'", "from 0 to 1e+12")),
    (["--system", "--seed", "-1"], ("--seed", "'-1'")),
    (["--system", "--seed", str(2 ** 32)], ("--seed", f"'{2 ** 32}'")),
    (["--system", "--test", "exact", "--metric", "log_loss"], ("--test exact", "'log_loss'")),
    (["--system", "--test", "exact", "--task", "regression"], ("--test exact", "'mse'")),
    (["--system", "--metric", "foo"], ("foo",)),
    (["--system", "--metric", "mse"], ("mse",)),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_fit_flags_are_one_line_before_any_progress(small_model, tmp_path, capsys, extra, needle):
    """L4: a bad flag of ``fit`` exits 2 with one line, before any progress line (and
    ``--l2 -1`` is reported as ``--l2``, not as ``alpha``)."""
    data, _ = small_model
    out = tmp_path / "m.json"
    assert main(fit_cmd(data, out, *extra)) == 2
    line = one_line_error(capsys)
    assert all(part in line for part in needle) and "alpha=" not in line, line
    assert not out.exists()


@pytest.mark.parametrize("cell", ["1e999", "-inf", "1e200"])
def test_a_feature_cell_out_of_range_is_one_line(tmp_path, capsys, cell):
    """L4: a feature cell ``1e999`` (infinite as a float) or beyond the fit's range exits 2
    with one line naming the column, before any progress line."""
    df = region_frame()
    df["x2"] = df["x2"].astype(object)
    df.loc[5, "x2"] = cell
    data = write_csv(df, tmp_path / "d.csv")
    for extra in ([], ["--system", "--n-boot", "20"]):
        assert main(fit_cmd(data, tmp_path / "m.json", *extra)) == 2
        line = one_line_error(capsys)
        assert "x2" in line and "1 row(s)" in line, line


@pytest.mark.parametrize("extra, needle", [
    (["--alpha", "0.7"], "--alpha"),
    (["--alpha", "0.5"], "--alpha"),
    (["--metrics", "foo"], "foo"),
    (["--metrics", "mse"], "mse"),
    (["--metrics", "error,error"], "error"),
    (["--seed", "-1"], "--seed"),
    (["--plot-metric", "auc", "--metrics", "error"], "auc"),
])
def test_bad_audit_flags_are_one_line_before_any_progress(small_model, tmp_path, capsys, extra, needle):
    """L4: ``audit --alpha 0.7`` and ``audit --metrics foo`` exit 2 with one line before the
    data is read or any progress line."""
    data, model = small_model
    out = tmp_path / "r.json"
    assert main(["audit", "--data", str(data), "--model", str(model), "--out", str(out), "--n-boot", "20",
                 *extra]) == 2
    line = one_line_error(capsys)
    assert needle in line, line
    assert not out.exists()


# --------------------------------------------------------------------------- L1: links and devices
def predict_cmd(small_model, out, *extra):
    data, model = small_model
    return ["predict", "--model", str(model), "--data", str(data), "--out", str(out), "--quiet", *extra]


def expected_scores(small_model) -> str:
    """The scores CSV ``predict`` writes to a regular file (the reference for other outputs)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scores.csv"
        assert main(predict_cmd(small_model, path)) == 0
        return path.read_text(encoding="utf-8")


def test_out_through_a_symlink_writes_its_target(small_model, tmp_path, capsys):
    """L1: ``--out`` a symbolic link to results/scores.csv: the target gets the new scores,
    the link stays a link (it was replaced by a regular file, the target kept stale content)."""
    reference = expected_scores(small_model)
    (tmp_path / "results").mkdir()
    target = tmp_path / "results" / "scores.csv"
    target.write_text("stale\n", encoding="utf-8")
    link = tmp_path / "latest.csv"
    link.symlink_to(Path("results") / "scores.csv")
    assert main(predict_cmd(small_model, link)) == 0, capsys.readouterr().err
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert target.read_text(encoding="utf-8") == reference
    # the model file through a link too, and no temporary file left anywhere
    data, _ = small_model
    mlink = tmp_path / "model.json"
    mlink.symlink_to(Path("results") / "model.json")
    (tmp_path / "results" / "model.json").write_text("old", encoding="utf-8")
    assert main(fit_cmd(data, mlink, "--fair-use", "none", "--quiet")) == 0
    assert mlink.is_symlink() and json.loads(mlink.read_text(encoding="utf-8"))["format"].startswith("fairuse")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["latest.csv", "model.json", "model.json", "results",
                                                          "scores.csv"]


def test_out_to_a_pipe_is_written_in_place(small_model, tmp_path, capsys):
    """L1: a named pipe as ``--out`` is written into (it stays a pipe, the reader gets the
    scores), as ``/dev/stdout`` is."""
    import os
    import stat
    import threading

    reference = expected_scores(small_model)
    fifo = tmp_path / "scores.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text(encoding="utf-8")), daemon=True)
    reader.start()
    assert main(predict_cmd(small_model, fifo)) == 0, capsys.readouterr().err
    reader.join(timeout=60)
    assert got == [reference]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_out_to_standard_output_by_name(small_model, tmp_path):
    """L1: ``--out`` naming the standard output (a link to /proc/self/fd/1, as /dev/stdout is)
    writes the scores there; the link stays a link (it became a 0600 regular file)."""
    import os
    import subprocess
    import sys

    reference = expected_scores(small_model)
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.run([sys.executable, "-m", "fairuse_opt", *predict_cmd(small_model, link)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(reference) and link.is_symlink()
    assert os.readlink(link) == "/proc/self/fd/1"


def test_out_to_a_device_node_is_written_in_place(small_model, tmp_path, capsys):
    """L1: a character device (a private copy of /dev/null made with mknod) is written into,
    never replaced by a regular file."""
    import os
    import stat

    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod of a character device needs root")
    assert main(predict_cmd(small_model, node)) == 0, capsys.readouterr().err
    st = os.stat(node)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_out_to_a_socket_is_refused_before_any_work(small_model, tmp_path, capsys):
    """An output that is neither a file nor a stream (a socket) is refused in one line."""
    import os
    import socket
    import stat

    path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
        assert main(predict_cmd(small_model, path)) == 2
        line = one_line_error(capsys)
        assert "socket" in line and str(path) in line
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        sock.close()


# --------------------------------------------------------------------------- outputs as one unit
def test_staged_outputs_are_put_back_when_a_rename_fails(tmp_path, monkeypatch):
    """Deliverable 3: three outputs committed together; the second rename fails: the first
    target gets its old content back, the third is untouched, no temporary file is left."""
    import os

    from fairuse_opt import _files

    a, b, c = (tmp_path / n for n in ("a.csv", "b.csv", "c.md"))
    a.write_text("old a", encoding="utf-8")
    c.write_text("old c", encoding="utf-8")
    real_replace = os.replace
    calls = []

    def failing_second(src, dst):
        calls.append(dst) if Path(dst) in (a, b, c) else None
        if len(calls) == 2 and Path(dst) == b:
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    with _files.Staged() as staged:
        for path in (a, b, c):
            staged.add(path, f"new {path.name}")
        monkeypatch.setattr(_files.os, "replace", failing_second)
        with pytest.raises(OSError, match="Input/output error"):
            staged.commit()
    monkeypatch.undo()
    assert a.read_text(encoding="utf-8") == "old a" and not b.exists() and c.read_text(encoding="utf-8") == "old c"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "c.md"]


def test_ctrl_c_during_the_renames_keeps_all_and_says_so(small_model, tmp_path, capsys, monkeypatch):
    """Deliverable 3: Ctrl-C while an audit's outputs are renamed takes effect after the last
    rename (all of them are kept), and the message names exactly the files kept."""
    import os
    import signal

    from fairuse_opt import _files

    data, model = small_model
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    real_replace = os.replace

    def ctrl_c_at_first_rename(src, dst):  # os.replace of everyone: only the audit's outputs count
        if Path(dst) in (out, md):
            os.kill(os.getpid(), signal.SIGINT)  # held off until the renames are done
        return real_replace(src, dst)

    monkeypatch.setattr(_files.os, "replace", ctrl_c_at_first_rename)
    rc = main(["audit", "--data", str(data), "--model", str(model), "--n-boot", "20", "--out", str(out),
               "--markdown", str(md), "--quiet"])
    assert rc == 130
    line = one_line_error(capsys)
    assert line == "fairuse: error: " + cli.MSG_INTERRUPTED_KEPT.format(kept=f"{out}, {md}")
    assert json.loads(out.read_text(encoding="utf-8"))["settings"]["n_boot"] == 20
    assert md.read_text(encoding="utf-8").startswith("# Fair-use audit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md"]


# --------------------------------------------------------------------------- L5: a closed standard output
def test_a_closed_standard_output_after_the_files_are_written_exits_0(small_model, tmp_path):
    """L5: ``fairuse predict ... | true``: the reader of standard output is gone when the
    summary line is printed; the output file is complete, so the exit status is 0 and
    there is no "Broken pipe" error."""
    import os
    import subprocess
    import sys

    reference = expected_scores(small_model)
    out = tmp_path / "scores.csv"
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| true`: nobody reads
    try:
        proc = subprocess.run([sys.executable, "-m", "fairuse_opt", *predict_cmd(small_model, out)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, timeout=300)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Broken pipe" not in proc.stderr and proc.stderr == ""
    assert out.read_text(encoding="utf-8") == reference


# --------------------------------------------------------------------------- L6: the demo's files as one unit
DEMO_FILES = ("per_fold.csv", "assignment.csv", "demo_report.png", "demo_report.md")


def demo_with_old_files(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    for name in DEMO_FILES:
        (out / name).write_text(f"old {name}", encoding="utf-8")
    return out, ["demo", "--out", str(out), "--data", "diabetes", "--folds", "2", "--n-boot", "20", "--quiet"]


def test_demo_that_fails_writing_its_report_replaces_nothing(tmp_path, capsys, monkeypatch):
    """L6: ``demo_report.md`` cannot be written (disk full): exit 2 and none of the four files
    is replaced (per_fold.csv and assignment.csv were)."""
    import os

    from fairuse_opt import _files

    out, args = demo_with_old_files(tmp_path)
    def disk_full_at_the_report(fd):  # per_fold.csv and assignment.csv are staged, the report fails
        if ".demo_report.md." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", disk_full_at_the_report)
    assert main(args) == 2
    assert "No space left on device" in one_line_error(capsys)
    assert {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()} == {n: f"old {n}" for n in DEMO_FILES}


def test_demo_interrupted_before_its_files_are_in_place_replaces_nothing(tmp_path, capsys, monkeypatch):
    """L6: Ctrl-C while the last file is prepared: exit 130, "nothing was written", and it is
    true (3 of the 4 files had been replaced)."""
    import os

    from fairuse_opt import _files

    out, args = demo_with_old_files(tmp_path)
    def ctrl_c_at_the_report(fd):  # while the last file is prepared
        if ".demo_report.md." in os.readlink(f"/proc/self/fd/{fd}"):
            raise KeyboardInterrupt

    monkeypatch.setattr(_files.os, "fsync", ctrl_c_at_the_report)
    assert main(args) == 130
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_INTERRUPTED
    assert {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()} == {n: f"old {n}" for n in DEMO_FILES}


def test_demo_interrupted_while_its_files_are_renamed_keeps_all_and_says_so(tmp_path, capsys, monkeypatch):
    """L6: Ctrl-C during the renames takes effect after the last one: the four new files are
    kept and the message names them."""
    import os
    import signal

    from fairuse_opt import _files

    out, args = demo_with_old_files(tmp_path)
    real_replace = os.replace

    def ctrl_c_at_first_rename(src, dst):  # os.replace of everyone: only the demo's files count
        if Path(dst).parent == out:
            os.kill(os.getpid(), signal.SIGINT)
        return real_replace(src, dst)

    monkeypatch.setattr(_files.os, "replace", ctrl_c_at_first_rename)
    assert main(args) == 130
    kept = ", ".join(str(out / n) for n in DEMO_FILES)
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_INTERRUPTED_KEPT.format(kept=kept)
    assert sorted(p.name for p in out.iterdir()) == sorted(DEMO_FILES)
    assert (out / "demo_report.md").read_text(encoding="utf-8").startswith("# fairuse_opt demo report")
    assert pd.read_csv(out / "per_fold.csv")["fold"].nunique() == 2


# --------------------------------------------------------------------------- lower priority
def test_audit_of_a_model_without_group_attributes_says_why(small_model, tmp_path, capsys):
    """``audit`` of an ``--encoding none`` model: one line that says the model uses no group
    attribute (it said "the model was trained with []" after a progress line)."""
    data, _ = small_model
    model = tmp_path / "none.json"
    assert main(fit_cmd(data, model, "--encoding", "none", "--fair-use", "none", "--quiet")) == 0
    capsys.readouterr()
    out = tmp_path / "r.json"
    assert main(["audit", "--data", str(data), "--model", str(model), "--out", str(out)]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_AUDIT_NO_GROUPS.format(path=model)
    assert not out.exists()


def test_error_lines_are_capped_whatever_the_data(tmp_path, capsys):
    """An error that lists levels stays short (some listed every level, over 10 KB): at most 20
    levels and the count of the others, long cells cut to their start."""
    rng = np.random.default_rng(3)
    n = 600
    df = pd.DataFrame({"x1": rng.normal(size=n)})
    df["code"] = [f"level-{i:05d}-" + "x" * 40 for i in range(n)]  # 600 levels of 52 characters
    df["sex"] = rng.choice(["F", "M"], n)
    df["y"] = (df.x1 + rng.logistic(size=n) > 0).astype(int)
    train = write_csv(df, tmp_path / "train.csv")
    model = tmp_path / "m.json"
    assert main(["fit", "--data", str(train), "--target", "y", "--groups", "sex", "--categorical", "code",
                 "--encoding", "onehot", "--fair-use", "none", "--out", str(model), "--quiet"]) == 0
    capsys.readouterr()
    test = df.head(5).copy()
    test.loc[0, "code"] = "z" * 10_000  # a 10 KB cell of an unknown level
    write_csv(test, tmp_path / "test.csv")
    assert main(["predict", "--model", str(model), "--data", str(tmp_path / "test.csv"),
                 "--out", str(tmp_path / "p.csv")]) == 2
    line = one_line_error(capsys)
    assert len(line) < 2500, len(line)
    assert "580 more" in line and "level-00000-" in line and "z" * 57 + "..." in line
    # an unknown group value with a report of many attributes: the same caps
    assert main(["predict", "--model", str(model), "--data", str(tmp_path / "test.csv"),
                 "--out", str(tmp_path / "p.csv"), "--report", "sex=" + "q" * 20_000]) == 2
    line = one_line_error(capsys)
    assert len(line) < 2500 and "q" * 57 + "..." in line


def test_names_and_values_with_commas_and_equals_signs(tmp_path, capsys):
    """``--groups`` and ``--report`` express names and values holding ``,`` or ``=`` with a
    backslash (``\\,`` ``\\=``): a group column ``site,code`` with values ``x=1``/``x=2`` and a
    column ``a=b`` with values ``y,1``/``y,2``."""
    rng = np.random.default_rng(5)
    n = 400
    df = pd.DataFrame({"x1": rng.normal(size=n), "site,code": rng.choice(["x=1", "x=2"], n),
                       "a=b": rng.choice(["y,1", "y,2"], n)})
    df["y"] = (df.x1 + (df["a=b"] == "y,1") + rng.logistic(size=n) > 0.5).astype(int)
    data = write_csv(df, tmp_path / "d.csv")
    model = tmp_path / "m.json"
    assert main(["fit", "--data", str(data), "--target", "y", "--groups", r"site\,code,a\=b", "--fair-use", "none",
                 "--out", str(model), "--quiet"]) == 0, capsys.readouterr().err
    doc = json.loads(model.read_text(encoding="utf-8"))
    assert doc["input"]["group_columns"] == ["site,code", "a=b"]
    own, reported = tmp_path / "own.csv", tmp_path / "reported.csv"
    assert main(["predict", "--model", str(model), "--data", str(data), "--out", str(own), "--quiet"]) == 0
    assert main(["predict", "--model", str(model), "--data", str(data), "--out", str(reported), "--quiet",
                 "--report", r"site\,code=x\=2,a\=b=y\,1"]) == 0
    rows = ((df["site,code"] == "x=2") & (df["a=b"] == "y,1")).to_numpy()
    s_own = pd.read_csv(own)["score"].to_numpy()
    s_rep = pd.read_csv(reported)["score"].to_numpy()
    assert rows.sum() > 50
    np.testing.assert_array_equal(s_rep[rows], s_own[rows])
    assert not np.allclose(s_rep[~rows], s_own[~rows])
    # without the escapes the names are not columns: one line saying which
    assert main(["fit", "--data", str(data), "--target", "y", "--groups", "site,code,a=b",
                 "--out", str(model), "--quiet"]) == 2
    assert "not found" in one_line_error(capsys)


# --------------------------------------------------------------------------- issue 23: predict
def test_predict_dropna_drops_rows_with_a_missing_feature_and_says_so(small_model, tmp_path, capsys):
    """``predict --dropna``: a missing feature value drops its row (reported per group), the
    others are scored as without it; without --dropna one line says to pass it."""
    data, model = small_model
    df = pd.read_csv(data, keep_default_na=False, dtype={"region": str, "sex": str})
    df["id"] = np.arange(len(df))
    df["x2"] = df["x2"].astype(object)
    df.loc[[2, 9, 11], "x2"] = ""
    holes = write_csv(df, tmp_path / "holes.csv")
    out = tmp_path / "p.csv"
    args = ["predict", "--model", str(model), "--data", str(holes), "--out", str(out), "--keep", "id"]
    assert main(args) == 2
    assert "pass --dropna" in one_line_error(capsys)
    assert main([*args, "--dropna"]) == 0
    captured = capsys.readouterr()
    lost = df.loc[[2, 9, 11], ["region", "sex"]].value_counts().sort_index()
    detail = "; ".join(f"region={r}, sex={s}: {k}" for (r, s), k in lost.items())
    assert cli.MSG_DROPPED.format(n_rows=3, n_total=len(df), detail=detail) in captured.err
    assert "scored 397 row(s) (3 row(s) with missing values dropped)" in captured.out
    scores = pd.read_csv(out)
    full = tmp_path / "full.csv"
    assert main(["predict", "--model", str(model), "--data", str(data), "--out", str(full), "--quiet"]) == 0
    reference = pd.read_csv(full)
    kept = np.setdiff1d(np.arange(len(df)), [2, 9, 11])
    np.testing.assert_array_equal(scores["id"], kept)
    np.testing.assert_array_equal(scores["score"], reference["score"].to_numpy()[kept])


def test_predict_names_the_positive_class_of_text_labels(tmp_path, capsys):
    """The ``probability`` column is that of the class named in ``positive_class``: for labels
    no/yes, 'yes' (the second in sorted order, as the model file's classes)."""
    df = region_frame()
    df["y"] = df["y"].map({0: "no", 1: "yes"})
    data = write_csv(df, tmp_path / "d.csv")
    model, out = tmp_path / "m.json", tmp_path / "p.csv"
    assert main(fit_cmd(data, model, "--fair-use", "none", "--quiet")) == 0
    assert main(["predict", "--model", str(model), "--data", str(data), "--out", str(out)]) == 0
    assert "probability is that of class 'yes'" in capsys.readouterr().out
    scores = pd.read_csv(out)
    assert (scores["positive_class"] == "yes").all()
    assert set(scores["prediction"]) == {"no", "yes"}
    np.testing.assert_array_equal(scores["prediction"] == "yes", scores["probability"] > 0.5)
    assert json.loads(model.read_text(encoding="utf-8"))["classes"]["values"] == ["no", "yes"]


# --------------------------------------------------------------------------- issue 23: progress lines
def test_fit_system_progress_is_one_line_per_step(small_model, tmp_path, capsys):
    """``fit --system`` at the default level: one line per step (read, settings with the metric
    by name, split, each of the 15 candidates with its time, assignment, written), none of the
    estimators' per-fit lines ("fitting the generic model" before every candidate, solver
    objectives); ``--verbose`` shows those too."""
    import re

    data, _ = small_model
    out = tmp_path / "s.json"
    args = ["fit", "--system", "--data", str(data), "--target", "y", "--groups", "region,sex", "--n-boot", "20",
            "--out", str(out)]
    assert main(args) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    warned = [ln for ln in lines if ln.startswith("fairuse: warning: the system serves every option")]
    lines = [ln for ln in lines if ln not in warned]  # (this small table certifies nothing: one warning)
    assert len(warned) <= 1
    assert all(re.match(r"fairuse: \[ *\d+\.\d s\] ", ln) for ln in lines), lines
    assert not any("fitting the generic model" in ln or "objective" in ln for ln in lines)
    assert "metric log_loss (the default)" in lines[1] and "metric default" not in lines[1]
    fitted = [ln for ln in lines if re.search(r"\] fitted \S+\[.*\] on \d+ rows in \d+\.\d+s$", ln)]
    assert len(fitted) == 15
    folds = [ln for ln in lines if re.search(r"\] fold \d of 3: generic and 15 candidate\(s\) fitted", ln)]
    assert len(folds) == 3
    # read, settings, split, generic, 15 candidates, 3 folds, cross-validation, the generic model
    # served (fitted on all rows), assignment, wrote
    assert any("fitted the generic model served on all 400 rows" in ln for ln in lines)
    assert len(lines) == 15 + 3 + 8, [ln for ln in lines if ln not in fitted + folds]
    assert main([*args, "--verbose", "--metric", "log_loss"]) == 0
    verbose = capsys.readouterr().err
    assert verbose.count("fitting the generic model") >= 15 and "metric log_loss," in verbose


def test_bench_progress_is_one_line_per_cell(tmp_path, capsys):
    """``fairuse bench`` prints one line per cell (and a few for the run), not the solver
    iterations of every fit (479 lines for a small grid)."""
    rng = np.random.default_rng(1)
    n = 200
    frame = pd.DataFrame({"x1": rng.normal(size=n), "sex": rng.choice(["F", "M"], n)})
    frame["y"] = (frame["x1"] + rng.logistic(size=n) > 0).astype(int)
    frame.to_csv(tmp_path / "clinic.csv", index=False)
    (tmp_path / "bench.toml").write_text(
        'datasets = []\nfolds = 2\nn_boot = 20\nmodels = ["logistic"]\n'
        'techniques = ["generic", "onehot", "pool"]\nmethods = ["unconstrained", "fairuse", "system"]\n'
        '[[extra_datasets]]\nname = "clinic"\ncsv = "clinic.csv"\ntarget = "y"\ngroups = ["sex"]\n')
    assert main(["bench", "--config", str(tmp_path / "bench.toml"), "--out", str(tmp_path / "out"),
                 "--no-plots"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and ": warning: " not in ln]
    cells = [ln for ln in lines if "clinic__f" in ln]
    assert len(cells) == 2 * 4  # generic, onehot x (unconstrained, fairuse), pool system: per fold
    assert len(lines) <= len(cells) + 3, lines


# --------------------------------------------------------------------------- issue 23: demo --data PATH
def test_demo_runs_on_any_csv_with_target_and_groups(tmp_path, capsys):
    """``fairuse demo --data PATH`` takes any CSV file (the README says NAME|PATH; only
    apnea.csv was read): with --target and --groups; text labels are coded by sorted order."""
    df = region_frame(n=500, regions=("EU", "NA", "ASIA"))
    df["y"] = df["y"].map({0: "healthy", 1: "sick"})
    data = write_csv(df, tmp_path / "clinic.csv")
    out = tmp_path / "demo"
    assert main(["demo", "--data", str(data), "--out", str(out)]) == 2
    assert one_line_error(capsys) == "fairuse: error: " + cli.MSG_DEMO_NEEDS_ROLES.format(path=data)
    assert not out.exists()
    assert main(["demo", "--data", str(data), "--target", "y", "--groups", "region,sex", "--folds", "2",
                 "--n-boot", "20", "--out", str(out), "--quiet"]) == 0
    md = (out / "demo_report.md").read_text(encoding="utf-8")
    assert f"{data} (target y, positive class 'sick'; groups region, sex; 2 feature(s))" in md
    cells = pd.read_csv(out / "per_fold.csv", keep_default_na=False)
    assert set(cells["group"]) == {f"region={r}, sex={s}" for r in ("EU", "NA", "ASIA") for s in ("F", "M")}
    capsys.readouterr()
    assert main(["demo", "--data", "diabetes", "--target", "y", "--out", str(tmp_path / "d2")]) == 2
    assert "--target: only with --data PATH of a CSV file" in one_line_error(capsys)


def test_a_numeric_column_with_a_typo_is_refused_not_one_hot_encoded(tmp_path, capsys):
    """A column of numbers with one cell ``1.2.3`` would become ~400 one-hot features: one line
    names the column and the cell; with --categorical the column is a category as asked."""
    df = region_frame()
    df["x1"] = df["x1"].astype(object)
    df.loc[7, "x1"] = "1.2.3"
    data = write_csv(df, tmp_path / "d.csv")
    out = tmp_path / "m.json"
    assert main(fit_cmd(data, out, "--fair-use", "none")) == 2
    line = one_line_error(capsys)
    assert "column 'x1' holds numbers in 399 of 400 row(s) but also ['1.2.3']" in line and "--categorical" in line
    assert main(fit_cmd(data, out, "--fair-use", "none", "--categorical", "x1", "--quiet")) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert [c["kind"] for c in doc["input"]["columns"]] == ["categorical", "numeric"]
    df["code"] = np.where(np.arange(len(df)) % 2, "3", "3b")  # half numbers, half text: a category
    write_csv(df, data)
    assert main(fit_cmd(data, out, "--fair-use", "none", "--features", "x2,code", "--quiet")) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["features"]["names"] == ["x2", "code=3b"]
    capsys.readouterr()
