"""Seeded fuzz of the command line and the benchmark's config files (issue 24, deliverable 2).

Every case is drawn from ``numpy.random.default_rng([seed, case])`` (a case is reproduced
with ``--seed S --only N``) in one of five areas:

- ``csv``: ``fit``, ``fit --system``, ``predict`` and ``audit`` on CSV files mutated one to
  three ways (empty file, header only, byte-order mark, bytes that are not UTF-8, ragged
  rows, an unclosed quote, duplicated or missing columns, group cells spelled ``NA``,
  ``None``, ``null``, ``n/a``, ``NaN``, empty cells, integers beyond int64, ``1e999``,
  ``inf``, 10 KB cells, 300 levels, one row, one class, three classes, text targets, one
  number written two ways, CRLF line ends, names holding ``,`` and ``=``, ...);
- ``flags``: a valid CSV with flags drawn from valid and invalid values of every option
  (``--margin se:abc``, ``--l2 inf``, ``--seed -1``, ``--alpha 0.7``, ``--metrics foo``,
  ``--test exact --metric log_loss``, unknown flags, missing required ones, ...);
- ``outputs``: the outputs as regular files, existing files, symbolic links to files, to
  the input, dangling links, named pipes (with a reader), private character devices
  (``mknod``, as root), sockets, folders, missing folders, the standard output by name,
  and several outputs of one audit naming the same file;
- ``configs``: ``fairuse bench`` on a tiny CSV dataset with its config file mutated
  (syntax, encoding, nesting, every key's type and range, dataset tables);
- ``signals``: ``fairuse fit``/``audit``/``demo`` in a child process sent SIGINT after a
  random delay.

Every case is checked against the command's contract:

- **crash**: an exception out of ``main``, a traceback, or an exit status other than 0, 1,
  2 and 130;
- **hang**: more than 60 s of CPU time (or 300 s of wall time) on inputs under 5,000 rows;
- **contract**: exit 2 or 1 with anything but one error line on standard error (the
  library's warnings aside), or an error line over 2,100 characters;
- **silent wrong**: a command that succeeded but whose output contradicts its input: a
  model whose group levels are not the CSV's values as written (``NA`` read as missing), a
  numeric column turned into one-hot features, a predict output with another number of
  rows or a probability outside [0, 1] or a score that is not the model's for the row's
  own group, an audit report missing a group of the data;
- **lost or replaced file**: an input changed, an existing output changed by a command
  that failed, a link, pipe or device replaced by a regular file, a temporary file left
  behind, or after Ctrl-C a file changed that the message does not name as kept.

The counts per area are written as markdown (``--out``); the short run of the test suite
(``tests/test_fuzz_cli.py``) runs 60 cases.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import platform
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
AREAS = ("csv", "flags", "outputs", "configs", "signals")
#: Share of the cases of each area in a run (signals run a child process each: fewer).
WEIGHTS = {"csv": 0.36, "flags": 0.27, "outputs": 0.2, "configs": 0.12, "signals": 0.05}
KINDS = ("crash", "hang", "contract", "silent wrong", "lost or replaced file")
CPU_LIMIT = 60.0
WALL_LIMIT = 300.0
MAX_ERROR_LINE = 2100
NA_LIKE = ("NA", "None", "null", "n/a", "NaN", "nan", "NULL", "<NA>", "#N/A", "-nan", "N/A")
DEFAULT_NA = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
              "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


class Hang(BaseException):
    """Raised by the alarm when a case runs past the wall-time limit."""


@dataclass
class Outcome:
    """What one case did and what is wrong with it (``problems``: kind -> details)."""

    case: int
    area: str
    argv: list
    status: int | None = None
    stderr: str = ""
    cpu: float = 0.0
    wall: float = 0.0
    problems: list = field(default_factory=list)
    note: str = ""

    def problem(self, kind: str, detail: str) -> None:
        self.problems.append((kind, detail))


# --------------------------------------------------------------------------- data
def base_frame(rng: np.random.Generator, n: int | None = None, levels1=("a", "b", "c")) -> pd.DataFrame:
    """A valid table: numeric x1, x2, a text feature, two group columns, a 0/1 target that
    depends on the features and the first group (both classes in every group)."""
    n = int(n or rng.integers(80, 240))
    df = pd.DataFrame({"x1": np.round(rng.normal(size=n), 4), "x2": np.round(rng.normal(size=n) * 3, 3)})
    df["site"] = rng.choice(["north", "south", "east"], n)
    df["g1"] = rng.choice(list(levels1), n)
    df["g2"] = rng.choice(["F", "M"], n)
    logit = df.x1 + 0.8 * (df.g1 == levels1[0]) - 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    y[:4] = [0, 1, 0, 1]
    df["y"] = y
    return df


def to_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, na_rep="", lineterminator="\n")


def _col(df: pd.DataFrame, rng, exclude=("y",)) -> str:
    return str(rng.choice([c for c in df.columns if c not in exclude]))


def mutate_frame(df: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, str]:
    """One mutation of the table (returns the new table and its name)."""
    df = df.copy()
    n = len(df)
    rows = rng.choice(n, size=max(1, n // int(rng.integers(3, 20))), replace=False)
    kind = rng.integers(0, 22)
    if kind == 0:
        v = str(rng.choice(NA_LIKE))
        df["g1"] = df["g1"].astype(object)
        df.loc[rows, "g1"] = v
        return df, f"g1 cells {v!r}"
    if kind == 1:
        v = str(rng.choice(NA_LIKE))
        df["g1"] = df["g1"].replace({"b": v})
        return df, f"g1 level b spelled {v!r}"
    if kind == 2:
        c = _col(df, rng)
        df[c] = df[c].astype(object)
        df.loc[rows, c] = ""
        return df, f"empty cells in {c}"
    if kind == 3:
        df["x2"] = df["x2"].astype(object)
        df.loc[rows[:1], "x2"] = "123456789012345678901234567890"
        return df, "integer beyond int64 in x2"
    if kind == 4:
        v = str(rng.choice(["1e999", "inf", "-inf", "-1e999", "1e200", "1e-320", "nan"]))
        df["x1"] = df["x1"].astype(object)
        df.loc[rows[:1], "x1"] = v
        return df, f"x1 cell {v}"
    if kind == 5:
        c = str(rng.choice(["site", "g2", "x1"]))
        df[c] = df[c].astype(object)
        df.loc[rows[:1], c] = "z" * 10_000
        return df, f"10 KB cell in {c}"
    if kind == 6:
        df["site"] = [f"s{i % 300}" for i in range(n)]
        return df, "300 levels in site"
    if kind == 7:
        return df.head(1), "one row"
    if kind == 8:
        df["y"] = 1
        return df, "one class"
    if kind == 9:
        df.loc[rows, "y"] = 2
        return df, "three classes"
    if kind == 10:
        df["y"] = df["y"].map({0: "no", 1: "yes"})
        return df, "text target"
    if kind == 11:
        df["g2"] = rng.choice(["1", "2"], n)
        df["g2"] = df["g2"].astype(object)
        df.loc[rows[:1], "g2"] = "1.0"
        return df, "group value 1 written 1.0"
    if kind == 12:
        df["g2"] = "F"
        return df, "one level in g2"
    if kind == 13:
        return df.drop(columns=[str(rng.choice(["y", "g1", "x1"]))]), "column missing"
    if kind == 14:
        return df.rename(columns={"x2": "x1"}), "duplicated column name"
    if kind == 15:
        return df.rename(columns={"g1": "g,1", "x1": "x=1"}), "names with ',' and '='"
    if kind == 16:
        df["g1"] = df["g1"].replace({"a": " a", "b": "b "})
        return df, "spaces around group values"
    if kind == 17:
        df["x1"] = df["x1"].astype(object)
        df.loc[rows[:1], "x1"] = "1.2.3"
        return df, "text in a numeric column"
    if kind == 18:
        extra = pd.DataFrame(rng.normal(size=(n, 400)), columns=[f"w{i}" for i in range(400)])
        return pd.concat([df, extra], axis=1), "400 more columns"
    if kind == 19:
        df["g1"] = [f"grp{i % 60}" for i in range(n)]
        return df, "60 small groups"
    if kind == 20:
        df["x1"] = df["x1"] * 1e12 + 1e12
        return df, "x1 offset 1e12"
    df["x2"] = 0.0
    return df, "constant column"


def mutate_text(text: str, rng: np.random.Generator) -> tuple[str | bytes, str]:
    """One mutation of the file's text or bytes."""
    kind = rng.integers(0, 11)
    lines = text.split("\n")
    if kind == 0:
        return "", "empty file"
    if kind == 1:
        return lines[0] + "\n", "header only"
    if kind == 2:
        return "\ufeff" + text, "byte-order mark"
    if kind == 3:
        return text.encode("utf-8")[:200] + b"\xff\xfe\x00" + text.encode("utf-8")[200:], "bytes not UTF-8"
    if kind == 4:
        i = int(rng.integers(1, max(2, len(lines) - 1)))
        lines[i] += ",extra,cells"
        return "\n".join(lines), "ragged row"
    if kind == 5:
        i = int(rng.integers(1, max(2, len(lines) - 1)))
        lines[i] = '"' + lines[i]
        return "\n".join(lines), "unclosed quote"
    if kind == 6:
        return text.replace("\n", "\r\n"), "CRLF line ends"
    if kind == 7:
        return text.replace(",", ";"), "semicolons"
    if kind == 8:
        return "\n".join(line + "," for line in lines if line), "trailing commas"
    if kind == 9:
        return text.encode("utf-16"), "UTF-16"
    return "\n" * 3 + text, "blank lines first"


# --------------------------------------------------------------------------- files and their states
def state(path: Path) -> tuple:
    """What a path is: kind, link target, content digest."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return ("absent",)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISREG(st.st_mode):
        return ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    if stat.S_ISFIFO(st.st_mode):
        return ("fifo",)
    if stat.S_ISCHR(st.st_mode):
        return ("chr", st.st_rdev)
    if stat.S_ISSOCK(st.st_mode):
        return ("socket",)
    if stat.S_ISDIR(st.st_mode):
        return ("dir",)
    return ("other",)


def snapshot(folder: Path) -> dict:
    return {p: state(p) for p in sorted(folder.rglob("*"))}


class Reader:
    """A thread that reads a named pipe (the other end of a pipe output)."""

    def __init__(self, path: Path):
        self.data: list[bytes] = []
        self.path = path
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):
            with open(self.path, "rb") as fh:
                self.data.append(fh.read())

    def close(self) -> None:
        if self.thread.is_alive():  # nobody wrote: open the write end so the reader returns
            with contextlib.suppress(OSError):
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)
        self.thread.join(timeout=5)


# --------------------------------------------------------------------------- running the command
@contextlib.contextmanager
def _alarm(seconds: float):
    def fire(signum, frame):
        raise Hang()

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def _fd1_to(path: Path):
    """Point file descriptor 1 at ``path`` (an output named /proc/self/fd/1 lands there)."""
    sys.stdout.flush()
    saved = os.dup(1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.close(fd)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def _fd_captured(fd: int, got: list[str]):
    """Append what C code writes to file descriptor ``fd`` to ``got`` (OpenBLAS prints
    LAPACK's argument errors to the standard output)."""
    with tempfile.TemporaryFile() as tmp:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(fd)
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            got.append(tmp.read().decode("utf-8", "replace"))


def run_main(argv: list[str], out: Outcome, *, fd1: Path | None = None) -> None:
    """Run ``fairuse ARGV`` in this process; record status, stderr (Python's, and what C code
    wrote to file descriptors 1 and 2), CPU and wall time."""
    from fairuse_opt.cli import main

    err, std = io.StringIO(), io.StringIO()
    t0, c0 = time.perf_counter(), time.process_time()
    c_err: list[str] = []
    try:
        with _alarm(WALL_LIMIT), _fd_captured(2, c_err), \
                (_fd_captured(1, c_err) if fd1 is None else _fd1_to(fd1)), \
                contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
            out.status = main(argv)
    except Hang:
        out.problem("hang", f"over {WALL_LIMIT:.0f} s of wall time")
    except BaseException as exc:  # noqa: BLE001 - anything out of main is a crash
        out.problem("crash", f"{type(exc).__name__} out of main: {' '.join(str(exc).split())[:300]}")
    out.wall = time.perf_counter() - t0
    out.cpu = time.process_time() - c0
    out.stderr = "".join(c_err) + err.getvalue()
    check_process(out)


def check_process(out: Outcome) -> None:
    if out.cpu > CPU_LIMIT:
        out.problem("hang", f"{out.cpu:.0f} s of CPU")
    if "Traceback" in out.stderr:
        out.problem("crash", "traceback: " + out.stderr.strip().splitlines()[-1][:300])
    if out.status is not None and out.status not in (0, 1, 2, 130):
        tail = out.stderr.strip().splitlines()[-1][:200] if out.stderr.strip() else ""
        out.problem("crash", f"exit status {out.status} ({tail})")
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if " error: " in ln or ln.startswith("fairuse: error")]
    if out.status in (1, 2):
        others = [ln for ln in lines if ln not in errors and ": warning: " not in ln]
        if len(errors) != 1 or others:
            out.problem("contract", f"exit {out.status} with {len(lines)} stderr line(s): "
                        + " | ".join(ln[:120] for ln in lines[:4]))
    for ln in errors:
        if len(ln) > MAX_ERROR_LINE:
            out.problem("contract", f"error line of {len(ln)} characters")


# --------------------------------------------------------------------------- oracles of a success
def read_as_written(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception:  # noqa: BLE001 - the oracle only applies to readable files
        return None


def _number(v: str) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _level_set(values) -> set:
    """Values as the model matches them: by number when every value is one, else as text."""
    values = list(values)
    numbers = [_number(v) for v in values]
    if values and all(x is not None for x in numbers):
        return {float(x) for x in numbers}
    return {str(v) for v in values}


def check_fit(out: Outcome, data: Path, model: Path, groups: list[str], *, system: bool, dropna: bool,
              na_values: list[str], categorical: list[str], features: list[str] | None, target: str) -> None:
    """A successful ``fit``: the model's levels are the CSV's group values as written, and a
    column of numbers is a numeric feature."""
    raw = read_as_written(data)
    if raw is None or not model.exists():
        out.problem("silent wrong", "fit succeeded but its data is unreadable or no model was written")
        return
    doc = json.loads(model.read_text(encoding="utf-8"))
    text_cols = set(groups) | set(categorical)
    feats = features if features is not None else [c for c in raw.columns if c != target and c not in groups]

    def missing(col: str) -> pd.Series:
        spell = {"", *na_values} if col in text_cols else {*DEFAULT_NA, *na_values}
        return raw[col].isin(spell)

    used = [target, *feats, *([] if system else groups)]
    bad = np.zeros(len(raw), dtype=bool)
    for c in used:
        bad |= missing(c).to_numpy()
    kept = raw[~bad] if dropna else raw
    levels = doc["groups"]["levels"]
    for g in groups:
        values = kept[g][~missing(g).loc[kept.index]]
        want = _level_set(pd.unique(values))
        got = _level_set(levels.get(g, []))
        if want != got:
            out.problem("silent wrong", f"group {g!r}: model levels {sorted(map(str, got))[:6]} but the CSV "
                        f"has {sorted(map(str, want))[:6]} as written")
    kinds = {c["name"]: c["kind"] for c in doc["input"]["columns"]}
    for c in feats:
        if c in categorical or c not in kinds:
            continue
        cells = kept[c][~missing(c).loc[kept.index]]
        if len(cells) and all(_number(v) is not None for v in cells) and kinds[c] != "numeric":
            out.problem("silent wrong", f"column {c!r} holds only numbers but became {kinds[c]}")


def check_predict(out: Outcome, data: Path, model: Path, scores: Path | bytes, groups: list[str],
                  na_values: list[str]) -> None:
    """A successful ``predict``: one row per input row, probabilities in [0, 1], and the score
    of each row is the model's under the row's own group (the CSV read as written)."""
    from fairuse_opt import model_io

    raw = read_as_written(data)
    try:
        table = pd.read_csv(io.BytesIO(scores) if isinstance(scores, bytes) else scores)
    except Exception as exc:  # noqa: BLE001
        out.problem("silent wrong", f"predict succeeded but its output is not a CSV: {exc}")
        return
    if raw is None:
        return
    if len(table) != len(raw):
        out.problem("silent wrong", f"predict wrote {len(table)} rows for {len(raw)} input rows")
        return
    if "probability" in table:
        p = table["probability"].to_numpy(dtype=float)
        if not np.all((p >= 0) & (p <= 1)):
            out.problem("silent wrong", "a probability outside [0, 1]")
    mf = model_io.read(model)
    est = mf.estimator
    if mf.kind == "system" or est.group_index_ is None:
        return
    frame = raw.copy()
    enc = mf.encoding
    for col in enc.input_columns:
        if col not in enc.categorical:
            frame[col] = pd.to_numeric(frame[col].replace({s: np.nan for s in (*DEFAULT_NA, *na_values)}))
    X = enc.transform(frame)
    from fairuse_opt.cli import _model_group_values

    G = _model_group_values(raw[groups], est)
    want = est.decision_function(X, groups=G)
    got = table["score" if "score" in table else "prediction"].to_numpy(dtype=float)
    if not np.allclose(got, want, rtol=1e-12, atol=1e-12):
        out.problem("silent wrong", f"scores differ from the model's by up to {np.max(np.abs(got - want)):.3g}")


def check_audit(out: Outcome, data: Path, report: Path, groups: list[str], na_values: list[str]) -> None:
    raw = read_as_written(data)
    if raw is None or not report.exists():
        return
    doc = json.loads(report.read_text(encoding="utf-8"))
    got = {r["group"] for r in doc["table"] if r.get("condition") == "rationality"}
    want = {", ".join(f"{g}={v}" for g, v in zip(groups, key))
            for key in raw[groups].drop_duplicates().itertuples(index=False, name=None)}
    if got and got != want:
        missing = sorted(want - got)[:3]
        out.problem("silent wrong", f"audit groups differ from the data's: missing {missing}")


# --------------------------------------------------------------------------- the cases
@dataclass
class Shared:
    """Files every case may use as inputs (a clean CSV, a model and a system fitted on it)."""

    folder: Path
    data: Path
    model: Path
    system: Path


def make_shared(folder: Path) -> Shared:
    from fairuse_opt.cli import main

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "train.csv"
    data.write_text(to_csv(base_frame(np.random.default_rng(12345), 200)), encoding="utf-8")
    model, system = folder / "model.json", folder / "system.json"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert main(["fit", "--data", str(data), "--target", "y", "--groups", "g1,g2", "--fair-use", "none",
                     "--out", str(model), "--quiet"]) == 0
        assert main(["fit", "--system", "--data", str(data), "--target", "y", "--groups", "g1,g2", "--n-boot",
                     "20", "--out", str(system), "--quiet"]) == 0
    return Shared(folder, data, model, system)


def _copy_inputs(shared: Shared, folder: Path) -> tuple[Path, Path, Path]:
    paths = []
    for p in (shared.data, shared.model, shared.system):
        q = folder / p.name
        shutil.copyfile(p, q)
        paths.append(q)
    return paths[0], paths[1], paths[2]


def case_csv(rng, folder: Path, shared: Shared, out: Outcome) -> Callable[[], None]:
    df = base_frame(rng)
    names = []
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.75:
            try:
                df, name = mutate_frame(df, rng)
            except (KeyError, TypeError, ValueError):  # the column this mutation changes was renamed,
                continue                                   # dropped or turned into text by another
            names.append(name)
    text: str | bytes = to_csv(df)
    if rng.random() < 0.3:
        text, name = mutate_text(text, rng)
        names.append(name)
    data = folder / "d.csv"
    if isinstance(text, bytes):
        data.write_bytes(text)
    else:
        data.write_text(text, encoding="utf-8")
    groups = ["g,1" if "g,1" in getattr(df, "columns", []) else "g1", "g2"]
    gflag = ",".join(g.replace(",", "\\,") for g in groups)
    _, model, system = _copy_inputs(shared, folder)
    command = rng.choice(["fit", "fit", "fit", "system", "predict", "audit"])
    dropna = bool(rng.random() < 0.3)
    na_values = ["?"] if rng.random() < 0.1 else []
    extra = (["--dropna"] if dropna else []) + (["--na-values", "?"] if na_values else [])
    out.note = "; ".join(names) or "clean"
    if command in ("fit", "system"):
        dest = folder / "m.json"
        argv = ["fit", "--data", str(data), "--target", "y", "--groups", gflag, "--out", str(dest), "--quiet",
                *extra]
        if command == "system":
            argv += ["--system", "--n-boot", "20"]
        else:
            argv += ["--fair-use", str(rng.choice(["none", "both"]))]
        out.argv = argv

        def run() -> None:
            run_main(argv, out)
            if out.status == 0 and not out.problems:
                check_fit(out, data, dest, groups, system=command == "system", dropna=dropna, na_values=na_values,
                          categorical=[], features=None, target="y")
        return run
    if command == "predict":
        dest = folder / "p.csv"
        use = system if rng.random() < 0.3 else model
        argv = ["predict", "--model", str(use), "--data", str(data), "--out", str(dest), "--quiet",
                *(["--na-values", "?"] if na_values else [])]
        out.argv = argv

        def run() -> None:
            run_main(argv, out)
            if out.status == 0 and not out.problems:
                check_predict(out, data, use, dest, ["g1", "g2"], na_values)
        return run
    dest = folder / "r.json"
    argv = ["audit", "--model", str(model), "--data", str(data), "--out", str(dest), "--n-boot", "20", "--quiet",
            *extra]
    out.argv = argv

    def run() -> None:
        run_main(argv, out)
        if out.status == 0 and not out.problems and not dropna:
            check_audit(out, data, dest, ["g1", "g2"], na_values)
    return run


FIT_FLAGS = {
    "--margin": ["0", "0.01", "se:1", "se:abc", "se:", "-1", "inf", "nan", "1e999", "x", "se:-2"],
    "--l2": ["0", "1e-3", "10", "-1", "inf", "nan", "x", "1e308"],
    "--fair-use": ["both", "none", "rationality", "envy_freeness", "foo", "rationality,envy_freeness", ""],
    "--encoding": ["onehot", "intersectional", "decoupled", "none", "bogus"],
    "--solver": ["auto", "CLARABEL", "ECOS", "bogus"],
    "--group-reg": ["set", "penalty", "x"],
    "--on-infeasible": ["raise", "generic", "x"],
    "--task": ["classification", "regression", "x"],
    "--features": ["x1,x2", "x1,y", "nope", "", "x1,x1", "g1"],
    "--categorical": ["site", "x1", "nope", "y"],
    "--alpha": ["0.1", "0.7"],
}
SYSTEM_FLAGS = {
    "--seed": ["0", "7", "-1", str(2 ** 32), "x", "1.5"],
    "--n-boot": ["20", "0", "-5", "x"],
    "--assign-size": ["0.3", "0", "1", "0.999", "5", "1e9", "x", "-0.2", "150"],
    "--metric": ["error", "log_loss", "brier", "auc", "ece", "mse", "foo"],
    "--test": ["bootstrap", "exact", "x"],
    "--correction": ["holm", "bonferroni", "none", "x"],
    "--alpha": ["0.1", "0.05", "0.5", "0.7", "0", "x", "nan"],
    "--kind": ["full", "minimal", "x"],
}
AUDIT_FLAGS = {
    "--metrics": ["error", "error,auc", "foo", "error,error", "mse", "", "log_loss,ece,brier"],
    "--alpha": ["0.1", "0.49", "0.5", "0.7", "0", "x"],
    "--ci-level": ["0.95", "0", "1", "x"],
    "--n-boot": ["20", "0", "x"],
    "--seed": ["0", "-1", "x", str(2 ** 32)],
    "--correction": ["holm", "none", "x"],
    "--test": ["bootstrap", "exact"],
    "--plot-metric": ["error", "auc", "nope"],
    "--groups": ["g1,g2", "g1", "nope", "g1,g1"],
    "--target": ["y", "nope", "x1"],
}
PREDICT_FLAGS = {
    "--report": ["g1=a,g2=F", "g1=zz,g2=F", "g1=a", "bad", "g1=a,g2=F,g3=x", "", "g1=a,g1=b", "g2=M",
                 "g1=" + "q" * 5000 + ",g2=F"],
    "--keep": ["x1", "nope", "x1,site", ""],
    "--groups": ["g1,g2", "g2,g1", "nope"],
}


def _flags(rng, table: dict, k_max: int = 3) -> list[str]:
    out = []
    keys = list(table)
    for key in rng.choice(keys, size=min(len(keys), int(rng.integers(1, k_max + 1))), replace=False):
        out += [str(key), str(rng.choice(table[key]))]
    return out


def case_flags(rng, folder: Path, shared: Shared, out: Outcome) -> Callable[[], None]:
    data, model, system = _copy_inputs(shared, folder)
    command = rng.choice(["fit", "fit", "system", "predict", "audit", "weird"])
    if command == "fit":
        dest = folder / "m.json"
        argv = ["fit", "--data", str(data), "--target", "y", "--groups", "g1,g2", "--out", str(dest), "--quiet",
                *_flags(rng, FIT_FLAGS)]
    elif command == "system":
        dest = folder / "s.json"
        argv = ["fit", "--system", "--data", str(data), "--target", "y", "--groups", "g1,g2", "--out", str(dest),
                "--quiet", "--n-boot", "20", *_flags(rng, SYSTEM_FLAGS)]
        if rng.random() < 0.2:
            argv += _flags(rng, {"--margin": ["0.01"], "--encoding": ["onehot"]}, 1)
    elif command == "predict":
        dest = folder / "p.csv"
        argv = ["predict", "--model", str(system if rng.random() < 0.3 else model), "--data", str(data), "--out",
                str(dest), "--quiet", *_flags(rng, PREDICT_FLAGS, 2)]
    elif command == "audit":
        dest = folder / "r.json"
        argv = ["audit", "--model", str(model), "--data", str(data), "--out", str(dest), "--quiet", "--n-boot",
                "20", *_flags(rng, AUDIT_FLAGS)]
    else:
        dest = folder / "m.json"
        weird = [["fit"], ["fit", "--data", str(data)], ["bogus"], ["fit", "--nope", "1"], [], ["--version"],
                 ["predict", "--model", str(data), "--data", str(data), "--out", str(dest)],
                 ["audit", "--model", str(model), "--data", str(data)],
                 ["fit", "--data", str(data), "--target", "y", "--groups", "", "--out", str(dest)],
                 ["demo", "--folds", "1"], ["demo", "--data", "no-such-data", "--out", str(folder / "demo")],
                 ["demo", "--out", str(data)], ["bench", "--folds", "1"],
                 ["predict", "--model", str(model), "--data", str(folder), "--out", str(dest)],
                 ["fit", "--data", "/dev/null", "--target", "y", "--groups", "g1", "--out", str(dest)]]
        argv = weird[int(rng.integers(0, len(weird)))]
    out.argv = argv
    out.note = command

    def run() -> None:
        run_main(argv, out)
        if out.status == 0 and not out.problems and command == "predict":
            groups = ["g2", "g1"] if "g2,g1" in argv else ["g1", "g2"]
            use = Path(argv[argv.index("--model") + 1])
            if "--report" not in argv and "--keep" not in argv:
                check_predict(out, data, use, dest, groups, [])
    return run


OUTPUT_KINDS = ("new", "existing", "link", "link-to-input", "dangling-link", "fifo", "chr", "socket", "folder",
                "missing-folder", "stdout", "same-twice", "input-itself")


def case_outputs(rng, folder: Path, shared: Shared, out: Outcome) -> Callable[[], None]:
    data, model, system = _copy_inputs(shared, folder)
    kind = str(rng.choice(OUTPUT_KINDS))
    command = str(rng.choice(["predict", "fit", "audit"]))
    target = folder / "results" / "out.dat"
    target.parent.mkdir()
    dest = folder / "out.dat"
    reader = None
    fd1 = None
    sock = None
    if kind == "existing":
        dest.write_text("old content", encoding="utf-8")
    elif kind == "link":
        target.write_text("stale", encoding="utf-8")
        dest.symlink_to(Path("results") / "out.dat")
    elif kind == "link-to-input":
        dest.symlink_to(data.name)
    elif kind == "dangling-link":
        dest.symlink_to(Path("results") / "nowhere" / "x.dat")
    elif kind == "fifo":
        os.mkfifo(dest)
        reader = Reader(dest)
    elif kind == "chr":
        try:
            os.mknod(dest, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except PermissionError:
            kind = "new"
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(dest))
    elif kind == "folder":
        dest.mkdir()
    elif kind == "missing-folder":
        dest = folder / "no" / "such" / "out.dat"
    elif kind == "stdout":
        dest.symlink_to("/proc/self/fd/1")
        fd1 = folder / "fd1.txt"
    elif kind == "input-itself":
        dest = data
    if command == "predict":
        argv = ["predict", "--model", str(model), "--data", str(data), "--out", str(dest), "--quiet"]
    elif command == "fit":
        argv = ["fit", "--data", str(data), "--target", "y", "--groups", "g1,g2", "--fair-use", "none", "--out",
                str(dest), "--quiet"]
    else:
        second = dest if kind == "same-twice" else folder / "r.md"
        argv = ["audit", "--model", str(model), "--data", str(data), "--out", str(dest), "--markdown", str(second),
                "--n-boot", "20", "--quiet"]
    out.argv = argv
    out.note = f"{command} to {kind}"
    before_kind = state(dest)

    def run() -> None:
        try:
            run_main(argv, out, fd1=fd1)
        finally:
            if reader is not None:
                reader.close()
            if sock is not None:
                sock.close()
        after = state(dest)
        if kind in ("fifo", "chr", "socket", "link", "link-to-input", "stdout", "dangling-link") \
                and after[0] != before_kind[0]:
            out.problem("lost or replaced file", f"{kind} output became {after[0]}")
        if out.status != 0:
            return
        content = None
        if kind == "fifo":
            content = reader.data[0] if reader and reader.data else b""
        elif kind == "stdout":
            content = fd1.read_bytes()
        elif kind == "link":
            content = target.read_bytes()
            if content == b"stale":
                out.problem("lost or replaced file", "the link's target kept its stale content")
        elif kind in ("new", "existing", "dangling-link"):
            content = Path(os.path.realpath(dest)).read_bytes()
        if content is not None and command == "predict":
            check_predict(out, data, model, content, ["g1", "g2"], [])
        if content is not None and command == "fit":
            try:
                json.loads(content.decode("utf-8"))
            except ValueError:
                out.problem("silent wrong", f"the model written to a {kind} output is not JSON")
    return run


TINY_CONFIG = {"datasets": [], "folds": 2, "n_boot": 20, "models": ["logistic"], "techniques": ["generic", "onehot"],
               "methods": ["unconstrained"],
               "extra_datasets": [{"name": "clinic", "csv": "clinic.csv", "target": "y", "groups": ["g2"]}]}
BAD_VALUES = [None, "x", "", -1, 0, 1, 2.5, 1e400, True, [], {}, [1, "a"], {"a": 1}, "../../x", 2 ** 40]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and not np.isfinite(value):
        return "inf"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return '"none"'


def _tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, dict) for x in value)


def case_configs(rng, folder: Path, shared: Shared, out: Outcome) -> Callable[[], None]:
    df = base_frame(rng, 120)
    df.to_csv(folder / "clinic.csv", index=False)
    config = json.loads(json.dumps(TINY_CONFIG))
    suffix = str(rng.choice([".toml", ".json"]))
    mutation = int(rng.integers(0, 9))
    note = "valid"
    if mutation in (0, 1, 2):
        key = str(rng.choice(list(TINY_CONFIG) + ["assign_size", "alpha", "seed", "margin_se", "correction",
                                                  "system_metric", "ccp_max_iter", "folds"]))
        value = BAD_VALUES[int(rng.integers(0, len(BAD_VALUES)))]
        config[key] = value
        note = f"{key} = {value!r}"[:80]
    elif mutation == 3:
        ds = config["extra_datasets"][0]
        key = str(rng.choice(["name", "csv", "target", "groups", "features", "task", "dropna", "kwargs", "loader"]))
        ds[key] = BAD_VALUES[int(rng.integers(0, len(BAD_VALUES)))]
        note = f"dataset {key} = {ds[key]!r}"[:80]
    elif mutation == 4:
        config["unknown_key"] = 1
        note = "unknown key"
    elif mutation == 8:  # a registry dataset with keyword arguments its loader may not take
        kwargs = [{}, {"nope": 1}, {"binary": True}, {"binary": "x"}, {"target": "nope"}][int(rng.integers(0, 5))]
        loader = str(rng.choice(["toy", "diabetes", "nope"]))
        config["extra_datasets"] = [{"name": "reg", "loader": loader, "kwargs": kwargs}]
        note = f"loader {loader} kwargs {kwargs}"
    if suffix == ".toml":
        lines = []
        for k, v in config.items():
            if k == "extra_datasets" and _tables(v):
                continue
            if v is not None:
                lines.append(f"{k} = {_toml(v)}")
        extra = config.get("extra_datasets")
        for d in extra if _tables(extra) else []:
            if isinstance(d, dict):
                lines.append("[[extra_datasets]]")
                lines += [f"{k} = {_toml(v)}" for k, v in d.items() if v is not None]
        text: str | bytes = "\n".join(lines) + "\n"
    else:
        text = json.dumps(config, allow_nan=True)
    if mutation == 5:
        text = text[: int(rng.integers(1, max(2, len(text))))]
        note = "cut short"
    elif mutation == 6:
        text = ("[" * 50_000 + "]" * 50_000) if suffix == ".json" else "a = " + "[" * 5_000 + "]" * 5_000
        note = "deep nesting"
    elif mutation == 7 and rng.random() < 0.5:
        text = text.encode("utf-8") + b"\n\xff\xfe"
        note = "not UTF-8"
    path = folder / f"bench{suffix}"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    argv = ["bench", "--config", str(path), "--out", str(folder / "out"), "--quiet", "--no-plots"]
    out.argv = argv
    out.note = note

    def run() -> None:
        run_main(argv, out)
        if out.status == 0 and not out.problems:
            results = folder / "out" / "results.csv"
            if not results.exists():
                out.problem("silent wrong", "bench exited 0 without results.csv")
    return run


def case_signals(rng, folder: Path, shared: Shared, out: Outcome) -> Callable[[], None]:
    data, model, system = _copy_inputs(shared, folder)
    command = str(rng.choice(["fit", "system", "audit", "demo"]))
    old = {}
    if command == "fit":
        dest = [folder / "m.json"]
        argv = ["fit", "--data", str(data), "--target", "y", "--groups", "g1,g2", "--out", str(dest[0])]
    elif command == "system":
        dest = [folder / "s.json"]
        argv = ["fit", "--system", "--data", str(data), "--target", "y", "--groups", "g1,g2", "--n-boot", "200",
                "--out", str(dest[0])]
    elif command == "audit":
        dest = [folder / "r.json", folder / "r.md"]
        argv = ["audit", "--model", str(model), "--data", str(data), "--out", str(dest[0]), "--markdown",
                str(dest[1]), "--n-boot", "2000"]
    else:
        d = folder / "demo"
        d.mkdir()
        dest = [d / n for n in ("per_fold.csv", "assignment.csv", "demo_report.png", "demo_report.md")]
        argv = ["demo", "--data", "diabetes", "--folds", "2", "--n-boot", "20", "--out", str(d)]
    for p in dest:
        if rng.random() < 0.5:
            p.write_text("old", encoding="utf-8")
            old[p] = "old"
    delay = float(rng.uniform(0.3, 8.0))
    out.argv = argv
    out.note = f"{command}, SIGINT after {delay:.1f} s"

    def run() -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "fairuse_opt", *argv], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=env)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=WALL_LIMIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            out.problem("hang", "no exit within 300 s of SIGINT")
        out.wall = time.perf_counter() - t0
        out.status = proc.returncode
        out.stderr = err
        if out.status == -signal.SIGINT and "fairuse: error: interrupted" in err:
            # Python itself ends by SIGINT (what a shell reports as 130) after Ctrl-C during the
            # import of scikit-learn, even when the KeyboardInterrupt is caught (6 and 7 of 30
            # interrupted `import sklearn.linear_model` in a script that catches it and ignores
            # SIGINT afterwards): the command printed its message; for a shell the status is 130
            out.status = 130
        check_process(out)
        if out.status != 130:
            return
        last = err.strip().splitlines()[-1] if err.strip() else ""
        kept = [p for p in dest if str(p) in last]
        if "nothing was written" not in last and not kept:
            out.problem("contract", f"after SIGINT: {last[:200]}")
        for p in dest:
            now = p.read_text(encoding="utf-8", errors="replace") if p.exists() else None
            if p in kept:
                if now is None or now == "old":
                    out.problem("lost or replaced file", f"{p.name} named as kept but not written")
            elif now != old.get(p):
                out.problem("lost or replaced file", f"{p.name} changed after SIGINT but the message says "
                                                     f"it was not written: {last[:120]}")
    return run


CASES = {"csv": case_csv, "flags": case_flags, "outputs": case_outputs, "configs": case_configs,
         "signals": case_signals}


def areas_of(n_cases: int, seed: int, areas: tuple) -> list[str]:
    rng = np.random.default_rng([seed, 10 ** 6])
    weights = np.array([WEIGHTS[a] for a in areas])
    return [str(a) for a in rng.choice(list(areas), size=n_cases, p=weights / weights.sum())]


def run_case(i: int, area: str, seed: int, root: Path, shared: Shared) -> Outcome:
    """Build, run and check case ``i`` in a fresh folder; inputs and old outputs must survive."""
    rng = np.random.default_rng([seed, i])
    folder = root / f"case{i:05d}"
    folder.mkdir()
    out = Outcome(i, area, [])
    try:
        run = CASES[area](rng, folder, shared, out)
    except Exception as exc:  # noqa: BLE001 - a broken generator is reported, not hidden
        out.problem("crash", f"case generator failed: {type(exc).__name__}: {exc}")
        return out
    inputs = {p: state(p) for p in folder.rglob("*") if p.suffix in (".csv", ".json", ".toml") and
              p.parent == folder and p.name in ("train.csv", "model.json", "system.json", "d.csv", "clinic.csv",
                                                  "bench.toml", "bench.json")}
    before = snapshot(folder)
    run()
    for p, st in inputs.items():
        if state(p) != st:
            out.problem("lost or replaced file", f"input {p.name} changed")
    after = snapshot(folder)
    if out.status not in (0, None) and area != "signals":
        for p, st in before.items():
            if st[0] == "file" and after.get(p) != st:
                out.problem("lost or replaced file", f"{p.relative_to(folder)} changed by a command that failed")
    leftovers = [p.name for p in after if p.name.endswith((".tmp", ".old")) and p.name.startswith(".")]
    if leftovers:
        out.problem("lost or replaced file", f"temporary files left: {leftovers[:3]}")
    return out


def fuzz(n_cases: int, seed: int = 0, areas: tuple = AREAS, only: list[int] | None = None,
         progress: Callable[[str], None] | None = None, keep: Path | None = None) -> list[Outcome]:
    """Run the cases; return their outcomes."""
    plan = areas_of(n_cases, seed, areas)
    with tempfile.TemporaryDirectory(prefix="fairuse_fuzz.") as tmp:
        root = Path(keep) if keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        shared = make_shared(root / "shared")
        outcomes = []
        for i, area in enumerate(plan):
            if only is not None and i not in only:
                continue
            o = run_case(i, area, seed, root, shared)
            outcomes.append(o)
            if not keep:
                shutil.rmtree(root / f"case{i:05d}", ignore_errors=True)
            if progress:
                flag = "; ".join(f"{k}: {d}" for k, d in o.problems) or "ok"
                progress(f"[{i + 1}/{n_cases}] {area} exit {o.status} {o.wall:.1f} s ({o.note}): {flag}")
    return outcomes


def counts(outcomes: list[Outcome]) -> pd.DataFrame:
    rows = []
    for area in AREAS:
        part = [o for o in outcomes if o.area == area]
        if not part:
            continue
        row = {"area": area, "cases": len(part)}
        for s in (0, 1, 2, 130):
            row[f"exit {s}"] = sum(o.status == s for o in part)
        for kind in KINDS:
            row[kind] = sum(any(k == kind for k, _ in o.problems) for o in part)
        row["max CPU s"] = round(max(o.cpu for o in part), 1)
        row["max wall s"] = round(max(o.wall for o in part), 1)
        rows.append(row)
    table = pd.DataFrame(rows)
    total = {"area": "all", **{c: table[c].sum() for c in table.columns if c != "area" and "max" not in c},
             "max CPU s": table["max CPU s"].max(), "max wall s": table["max wall s"].max()}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def markdown(outcomes: list[Outcome], command: str, seconds: float, seed: int) -> str:
    table = counts(outcomes)
    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in r) + " |" for r in table.itertuples(index=False)]
    bad = [o for o in outcomes if o.problems]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    lines = ["# Fuzz of the command line and the benchmark configs", "",
             f"Command: `{command}`", "",
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
             f"{os.cpu_count()} CPUs (shared machine; load average {os.getloadavg()[0]:.1f} at the end), "
             f"{seconds:.0f} s in all, peak RSS {peak:.0f} MB (this process), {peak_children:.0f} MB (children), "
             f"run as {'root' if os.geteuid() == 0 else 'a user'} (character-device outputs "
             f"{'made with mknod' if os.geteuid() == 0 else 'replaced by new files: mknod needs root'}).", "",
             "Each case is drawn from `numpy.random.default_rng([seed, case])`; what it checks is in the "
             "docstring of `benchmarks/fuzz_cli.py`. A case counts once per kind of problem it shows.", "",
             head, rule, *body, ""]
    if bad:
        lines += ["## Cases with a problem", ""]
        for o in bad[:200]:
            lines.append(f"- case {o.case} ({o.area}, {o.note}, exit {o.status}): "
                         + "; ".join(f"**{k}** {d}" for k, d in o.problems)
                         + f" — `fairuse {' '.join(o.argv)[:300]}`")
        lines.append("")
    else:
        lines += ["No case showed a problem.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--areas", default=",".join(AREAS))
    parser.add_argument("--only", default=None, help="comma-separated case numbers to rerun")
    parser.add_argument("--keep", default=None, help="keep every case's folder under this folder")
    parser.add_argument("--out", default=None, help="markdown file of the counts")
    args = parser.parse_args(argv)
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # started in the background by a shell: the children would inherit SIGINT ignored
        # and the signals area would test nothing
        signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.perf_counter()
    only = [int(x) for x in args.only.split(",")] if args.only else None
    outcomes = fuzz(args.cases, args.seed, tuple(args.areas.split(",")), only,
                    progress=lambda m: print(m, file=sys.stderr, flush=True), keep=args.keep)
    command = "python benchmarks/fuzz_cli.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(outcomes, command, time.perf_counter() - started, args.seed)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(counts(outcomes).to_string(index=False))
    return 1 if any(o.problems for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
