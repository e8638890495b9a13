"""Waiting for writes to a file without polling, through Linux inotify (ctypes).

Used by the SQLite transport to learn of commits by other processes: in WAL
mode every commit writes to the database's ``-wal`` file. Elsewhere than on
Linux :func:`open_watch` returns ``None`` and the caller polls instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
import sys

from . import _native

__all__ = ["FileWatch", "open_watch"]

_IN_MODIFY = 0x00000002
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")


class FileWatch:
    """Reports writes to files named *names* in one directory.

    The directory is watched rather than the files, so a file that is
    deleted and created again (SQLite removes the ``-wal`` file when its
    last connection closes) is still seen.
    """

    def __init__(self, fd: int, names: frozenset[bytes]) -> None:
        self._fd = fd
        self._names = names

    def wait(self, timeout: float) -> bool:
        """Block up to *timeout* seconds; return whether a watched file was written."""
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return False
        return self._drain()

    def _drain(self) -> bool:
        hit = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return hit
            offset = 0
            while offset + _EVENT.size <= len(data):
                _, _, _, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length]
                if name.rstrip(b"\0") in self._names:
                    hit = True
                offset += _EVENT.size + length

    def close(self) -> None:
        """Stop watching."""
        os.close(self._fd)


def open_watch(path: str, suffixes: tuple[str, ...]) -> FileWatch | None:
    """Watch writes to ``path + suffix`` for each suffix; ``None`` if unsupported.

    Unsupported also under eventlet: its green ``select`` never reports an
    inotify descriptor (not even its timeout), so callers fall back to polling.
    """
    if not sys.platform.startswith("linux") or _native.patched() == "eventlet":
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        init = libc.inotify_init1
        add = libc.inotify_add_watch
    except (OSError, AttributeError):
        return None
    fd = init(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        return None
    directory = os.path.dirname(path) or "."
    mask = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_CREATE | _IN_MOVED_TO
    if add(fd, os.fsencode(directory), mask) < 0:
        code = ctypes.get_errno()
        os.close(fd)
        if code in (errno.ENOSPC, errno.EACCES, errno.ENOENT, errno.EMFILE):
            return None
        return None
    base = os.path.basename(path)
    return FileWatch(fd, frozenset(os.fsencode(base + suffix) for suffix in suffixes))
