"""Writing files so that a failure never leaves a half-written one.

Every file the library or the command line writes goes through :func:`write_atomic`: the
content goes to a temporary file in the same folder, which then replaces the target in one
step (:func:`os.replace`).  A write that fails half-way, or is interrupted, leaves the old
file as it was and no temporary file behind.  :class:`Staged` does the same for several
files at once: every output is written to its temporary file first, and they are renamed
only when all of them are ready.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Union

__all__ = ["write_atomic", "Staged"]

Content = Union[str, bytes, Callable[[str], None]]


def _default_mode() -> int:
    """Permissions a new file gets under the current umask (what ``open`` would give)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _temporary(path: Path, content: Content) -> str:
    """Write ``content`` to a new temporary file beside ``path``; return its name."""
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if callable(content):
            os.close(fd)
            fd = -1
            content(tmp)  # a writer that takes a file name (matplotlib's savefig)
        else:
            data = content.encode("utf-8") if isinstance(content, str) else content
            with os.fdopen(fd, "wb") as fh:
                fd = -1
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        try:
            mode = path.stat().st_mode & 0o7777 if path.exists() else _default_mode()
        except OSError:
            mode = _default_mode()
        os.chmod(tmp, mode)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        _remove(tmp)
        raise
    return tmp


def _remove(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def write_atomic(path: str | os.PathLike, content: Content) -> None:
    """Write ``content`` (text as UTF-8, bytes, or ``writer(temporary_name)``) to ``path``.

    The old file, if any, is replaced only once the new content is complete.

    Raises
    ------
    OSError
        The folder does not exist or cannot be written (the old file is untouched).
    """
    path = Path(path)
    tmp = _temporary(path, content)
    try:
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


class Staged:
    """Several outputs written together: all of them, or none.

    ``add(path, content)`` writes each output to a temporary file beside its target;
    ``commit()`` renames them all; leaving the ``with`` block without ``commit()`` (an
    error, Ctrl-C) removes the temporary files and leaves every target as it was.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[str, Path]] = []

    def add(self, path: str | os.PathLike, content: Content) -> None:
        path = Path(path)
        self._pending.append((_temporary(path, content), path))

    def commit(self) -> list[Path]:
        done = []
        for tmp, path in self._pending:
            os.replace(tmp, path)
            done.append(path)
        self._pending = []
        return done

    def discard(self) -> None:
        for tmp, _ in self._pending:
            _remove(tmp)
        self._pending = []

    def __enter__(self) -> "Staged":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()
