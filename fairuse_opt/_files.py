"""Writing files so that a failure never leaves a half-written one, and never loses one.

Every file the library or the command line writes goes through :func:`write_atomic` or
:class:`Staged`.

- A **regular file** (or a new one) is written to a temporary file in the same folder,
  which then replaces the target in one step (:func:`os.replace`).  A write that fails
  half-way, or is interrupted, leaves the old file as it was and no temporary file behind.
- A **symbolic link** is followed: its target is replaced (as above) and the link stays a
  link, pointing at the new content.
- A **stream** (a character device such as ``/dev/null`` or a terminal, a named pipe, or
  the standard output named as ``/dev/stdout``, ``/dev/fd/N`` or ``/proc/self/fd/N``) is
  written in place, as ``cp`` would: it is never replaced by a regular file.
- Anything else (a block device, a socket, a folder) is refused with :class:`OSError`.

:class:`Staged` writes several outputs as one unit: every output is prepared first (its
temporary file, or for a stream its content in memory); ``commit()`` then writes the
streams and renames the files with Ctrl-C held off, and if one rename fails the files
already renamed are put back.  So either every file is replaced or none is.

What was written is recorded in the :func:`recording` journal, so that a command
interrupted by Ctrl-C can say exactly what it kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import tempfile
import threading
from contextvars import ContextVar
from pathlib import Path
from typing import Callable, Iterator, Union

__all__ = ["write_atomic", "Staged", "recording", "output_kind", "MSG_NOT_WRITABLE_KIND"]

Content = Union[str, bytes, Callable[[str], None]]

#: Refusal of an output that is neither a regular file nor a stream.
MSG_NOT_WRITABLE_KIND = ("it is a {kind}: give a regular file, a character device (such as /dev/null) "
                         "or a pipe")

#: Paths written by the current command, in order (``None``: not recording).
_JOURNAL: ContextVar[list | None] = ContextVar("fairuse_opt_written", default=None)

_FD_FOLDER = re.compile(r"^/proc/[^/]+/fd$")


@contextlib.contextmanager
def recording() -> Iterator[list]:
    """Record every path written (by :func:`write_atomic` and :meth:`Staged.commit`) inside
    the ``with`` block in the list it yields, in the order written."""
    written: list = []
    token = _JOURNAL.set(written)
    try:
        yield written
    finally:
        _JOURNAL.reset(token)


def _record(path: Path) -> None:
    journal = _JOURNAL.get()
    if journal is not None:
        journal.append(path)


def _default_mode() -> int:
    """Permissions a new file gets under the current umask (what ``open`` would give)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _kind_name(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _through_fd_link(path: Path) -> bool:
    """Whether ``path`` names an open file descriptor (``/dev/stdout``, ``/dev/fd/1``,
    ``/proc/self/fd/1``), following symbolic links one at a time."""
    q = Path(os.path.abspath(path))
    for _ in range(40):
        if _FD_FOLDER.match(os.path.realpath(q.parent)):
            return True
        if not q.is_symlink():
            return False
        q = Path(os.path.abspath(q.parent / os.readlink(q)))
    return False


def output_kind(path: str | os.PathLike) -> tuple[str, Path]:
    """Where and how an output is written: ``("file", real path)`` for a regular file or a
    new one (a symbolic link followed to its target), ``("stream", path)`` for a character
    device, a pipe or an open file descriptor.

    Raises
    ------
    OSError
        The path is a block device, a socket or a folder.
    """
    path = Path(path)
    try:
        st = os.stat(path)  # follows links
    except FileNotFoundError:
        st = None
    except OSError:  # a loop of links, a name too long: let the write say so
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            return "stream", path
        raise OSError(MSG_NOT_WRITABLE_KIND.format(kind=_kind_name(st.st_mode)))
    if st is not None and _through_fd_link(path):
        return "stream", path  # standard output redirected to a file: write into it
    return "file", Path(os.path.realpath(path))


def _bytes(content: Content) -> bytes:
    """The bytes of ``content`` (a writer is run on a private temporary file)."""
    if not callable(content):
        return content.encode("utf-8") if isinstance(content, str) else content
    with tempfile.TemporaryDirectory(prefix="fairuse_opt.") as folder:
        name = os.path.join(folder, "output")
        content(name)
        with open(name, "rb") as fh:
            return fh.read()


def _write_stream(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:  # as cp: open for writing (truncating a file), write, close
        fh.write(data)
        fh.flush()


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


def _keep_old(target: Path) -> str | None:
    """A second name (hard link) for ``target``'s current content, so that a failed commit
    can put it back; ``None`` where the filesystem has no hard links."""
    for k in range(100):
        name = str(target.parent / f".{target.name}.{os.getpid()}.{k}.old")
        try:
            os.link(target, name)
            return name
        except FileExistsError:
            continue
        except OSError:
            return None
    return None


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold SIGINT off (in the main thread) until the block ends: Ctrl-C during the renames
    takes effect after them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # A handler that only records the signal, not a blocked signal mask: with other threads
    # running (BLAS, joblib, a test runner's), a process-directed SIGINT is delivered to a
    # thread that does not block it, and Python would raise in the main thread at once.
    caught: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if caught and old is not signal.SIG_IGN:
            if callable(old):
                old(signal.SIGINT, None)
            else:
                raise KeyboardInterrupt


def write_atomic(path: str | os.PathLike, content: Content) -> None:
    """Write ``content`` (text as UTF-8, bytes, or ``writer(temporary_name)``) to ``path``.

    The old file, if any, is replaced only once the new content is complete; a symbolic
    link is followed, a stream (``/dev/null``, a pipe, ``/dev/stdout``) written in place.

    Raises
    ------
    OSError
        The folder does not exist or cannot be written, or ``path`` is a block device, a
        socket or a folder (the old file is untouched).
    """
    with Staged() as staged:
        staged.add(path, content)
        staged.commit()


class Staged:
    """Several outputs written together: all of them, or none.

    ``add(path, content)`` prepares each output (a temporary file beside its target, or
    for a stream its content); ``commit()`` writes the streams, then renames every
    temporary file onto its target with Ctrl-C held off, putting back the targets already
    replaced if a rename fails; leaving the ``with`` block without ``commit()`` (an error,
    Ctrl-C) removes the temporary files and leaves every target as it was.

    Attributes
    ----------
    written : list of Path
        The outputs written so far, as given to :meth:`add`.
    """

    def __init__(self) -> None:
        self._files: list[tuple[str, Path, Path]] = []  # (temporary, real target, as given)
        self._streams: list[tuple[bytes, Path]] = []
        self.written: list[Path] = []

    def add(self, path: str | os.PathLike, content: Content) -> None:
        """Prepare ``content`` for ``path`` (see :func:`write_atomic` for the kinds)."""
        given = Path(path)
        kind, target = output_kind(given)
        if kind == "stream":
            self._streams.append((_bytes(content), given))
        else:
            self._files.append((_temporary(target, content), target, given))

    def commit(self) -> list[Path]:
        """Write every output; return them (as given to :meth:`add`), in order.

        Raises
        ------
        OSError
            A stream could not be written (no file was replaced) or a rename failed (the
            files already replaced are put back).
        """
        for data, given in self._streams:  # streams cannot be taken back: before any file
            _write_stream(given, data)
            self.written.append(given)
            _record(given)
        self._streams = []
        with _ctrl_c_held():
            done: list[tuple[Path, str | None, bool]] = []  # (target, its old content kept as, existed)
            try:
                for tmp, target, _ in self._files:
                    existed = target.exists()
                    backup = _keep_old(target) if existed else None
                    done.append((target, backup, existed))
                    os.replace(tmp, target)
            except BaseException:
                for target, backup, existed in reversed(done):  # put back what was replaced
                    with contextlib.suppress(OSError):
                        if backup is not None:
                            os.replace(backup, target)
                        elif not existed:
                            os.unlink(target)
                raise
            for _, backup, _ in done:
                if backup is not None:
                    _remove(backup)
            for _, _, given in self._files:
                self.written.append(given)
                _record(given)
            self._files = []
        return list(self.written)

    def discard(self) -> None:
        """Remove the temporary files of the outputs not committed."""
        for tmp, _, _ in self._files:
            _remove(tmp)
        self._files = []
        self._streams = []

    def __enter__(self) -> "Staged":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()
